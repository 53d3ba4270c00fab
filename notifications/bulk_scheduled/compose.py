"""What an admin compose form keeps between its requests: its one-send key and its staged uploads.

The views are in `compose_admin`; these are the writes they (and the daily
purge task) make.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.files.storage import default_storage
from django.utils import timezone

from notifications.models import IdempotencyKey

# An admin compose form carries a key of its own from the first page to the
# confirmation; the first confirmed submission holds it, and a second one
# (a double click, a reload, the back button) finds its outcome instead of
# sending again. Stored with the API's Idempotency-Key records, under a prefix
# no API client can collide with.
FORM_KEY_PREFIX = "admin-compose:"
FORM_KEY_TTL = timedelta(hours=24)
FORM_KEY_STALE = timedelta(minutes=10)


@dataclass(frozen=True)
class FormSubmission:
    held: IdempotencyKey | None = None  # this request holds the key: go ahead
    earlier: dict | None = None  # the outcome of the submission that held it first
    in_progress: bool = False  # the first submission is still sending


def form_submission_begin(*, user, form_key: str, path: str) -> FormSubmission:
    key = FORM_KEY_PREFIX + form_key
    held, existing = IdempotencyKey.claim(
        user=user,
        key=key,
        fingerprint=hashlib.sha256(key.encode()).hexdigest(),
        method="POST",
        path=path,
        ttl=FORM_KEY_TTL,
        stale_after=FORM_KEY_STALE,
    )
    if held is not None:
        return FormSubmission(held=held)
    if existing is None or not existing.is_complete:
        return FormSubmission(in_progress=True)
    return FormSubmission(earlier=existing.response_body or {})


def form_submission_outcome(*, user, form_key: str) -> dict | None:
    """What the confirmed submission of this form did, if there was one."""
    record = IdempotencyKey.objects.filter(
        user=user, key=FORM_KEY_PREFIX + form_key, expires_at__gt=timezone.now(), response_status__isnull=False
    ).first()
    return None if record is None else (record.response_body or {})


def form_submission_finish(*, held: IdempotencyKey, outcome: dict) -> None:
    held.response_status = 200
    held.response_body = outcome
    held.save(update_fields=["response_status", "response_body"])


def form_submission_abandon(*, held: IdempotencyKey) -> None:
    """The submission was rejected (bad input): the same form may be corrected and sent."""
    held.delete()


# Uploads of compose forms wait in storage between the form and its
# confirmation; those of forms never confirmed are removed after a day.
COMPOSE_UPLOADS_DIR = "compose-uploads"
COMPOSE_UPLOADS_KEPT = timedelta(hours=24)


def compose_uploads_purge(*, now: datetime | None = None) -> int:
    """Delete staged uploads older than a day; returns how many (any storage with listdir)."""
    before = (now or timezone.now()) - COMPOSE_UPLOADS_KEPT
    deleted = 0
    try:
        users, _ = default_storage.listdir(COMPOSE_UPLOADS_DIR)
    except FileNotFoundError:
        return 0
    for user_dir in users:
        forms, _ = default_storage.listdir(f"{COMPOSE_UPLOADS_DIR}/{user_dir}")
        for form_dir in forms:
            folder = f"{COMPOSE_UPLOADS_DIR}/{user_dir}/{form_dir}"
            for name in default_storage.listdir(folder)[1]:
                path = f"{folder}/{name}"
                if default_storage.get_modified_time(path) < before:
                    default_storage.delete(path)
                    deleted += 1
    return deleted
