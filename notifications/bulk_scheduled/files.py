"""Files of bulk sends and scheduled jobs: email attachments and push images.

Attachments are stored under the send's source (`bulk:<id>`, `scheduled:<id>`)
and attached by the email backend; a push image is stored and sent as its
public URL.
"""

from __future__ import annotations

import posixpath
import uuid

from django.conf import settings
from django.core.files.storage import default_storage

from notifications.bulk_scheduled.inputs import image_kind
from notifications.models import Attachment


def public_url(name: str, *, base_url: str) -> str:
    """An absolute URL of a stored file, for clients outside this host (push images)."""
    url = default_storage.url(name)
    if url.startswith(("http://", "https://")):
        return url
    base = (getattr(settings, "PUBLIC_BASE_URL", "") or base_url).rstrip("/")
    return f"{base}{url}"


def push_image_store(*, image, base_url: str) -> str:
    head = image.read(16)
    image.seek(0)
    _, ext = image_kind(head)
    name = default_storage.save(posixpath.join("notification_images", f"{uuid.uuid4().hex}{ext}"), image)
    return public_url(name, base_url=base_url)


def attachments_store(*, source: str, files) -> list[Attachment]:
    """The files go with every email of `source`; the email backend attaches them."""
    return [
        Attachment.objects.create(
            source=source,
            file=f,
            filename=posixpath.basename(f.name)[:255] or "attachment",
            content_type=(getattr(f, "content_type", "") or "application/octet-stream")[:100],
        )
        for f in files
    ]


def attachments_delete(*, source: str) -> None:
    for attachment in Attachment.objects.filter(source=source):
        attachment.file.delete(save=False)
        attachment.delete()
