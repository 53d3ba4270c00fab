"""What a bulk send request says, parsed and checked once for the API and the admin.

The bulk document fixes the error messages word for word (`Message is required`,
`No recipients specified`, ...); `BulkInputError.message` carries them and
`detail` says more. JSON bodies (SMS, in-app) and multipart forms (email, push,
where `user_ids` and `emails` arrive as JSON-array strings) go through the
same function.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone

from notifications import phones as phone_numbers
from notifications.bounds import BIGINT_MAX, as_utc, date_horizon, horizon_text, text_problem
from notifications.models import Level, Role, ScheduledChannel
from notifications.sanitize import sanitize_html

TITLE_MAX = 500
TYPE_MAX = 100
# A message (SMS, push, in-app, plain-text email) and an email's HTML body.
MESSAGE_MAX = 100_000
HTML_MAX = 1_000_000
ROLE_MAX = 50
# Push images travel to devices; providers cap them at about 1 MB, we keep some room.
IMAGE_MAX_BYTES = 5 * 1024 * 1024
ATTACHMENT_MAX_BYTES = 10 * 1024 * 1024
ATTACHMENTS_MAX = 10
TARGETS_MAX = 100_000

# Magic numbers of the image formats FCM and the mobile clients display.
IMAGE_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": ("image/png", ".png"),
    b"\xff\xd8\xff": ("image/jpeg", ".jpg"),
    b"GIF87a": ("image/gif", ".gif"),
    b"GIF89a": ("image/gif", ".gif"),
}


class BulkInputError(Exception):
    """A request the document rejects with a 400; `message` is the documented text."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.message = message
        self.detail = detail or message


@dataclass(frozen=True)
class Targeting:
    """Who a send goes to, as the request gave it."""

    user_ids: tuple[int, ...] = ()
    role: str = ""
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.user_ids or self.role or self.phones or self.emails)


@dataclass(frozen=True)
class Content:
    """What a send says; `title` is the email subject."""

    title: str = ""
    message: str = ""
    html: str = ""
    notification_type: str = "system_alert"
    level: str = Level.INFO


@dataclass
class BulkInput:
    channel: str
    content: Content
    targeting: Targeting
    scheduled_at: datetime | None = None
    # Email attachments or the push image.
    files: list = field(default_factory=list)
    # Where a delivery that cannot reach a member goes instead (a bulk channel name, "" : none).
    fallback_channel: str = ""
    # Email and in-app sends now: join each recipient's digest of this key instead of sending at once.
    digest_key: str = ""


# Which direct-address field each channel takes (the document's "Combining targets" table).
DIRECT_FIELD = {ScheduledChannel.SMS: "phone_numbers", ScheduledChannel.EMAIL: "emails"}


def _value(data: Mapping, name: str):
    """A field of a JSON body or of a form (QueryDict: the last value)."""
    if hasattr(data, "getlist") and not isinstance(data.get(name), (list, dict)):
        values = data.getlist(name)
        return values[-1] if values else None
    return data.get(name)


def _text(data: Mapping, name: str, *, max_length: int | None = None) -> str:
    value = _value(data, name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BulkInputError(f"Invalid {name} format", f"{name} must be a string")
    problem = text_problem(value)
    if problem:
        raise BulkInputError(f"Invalid {name} format", f"{name}: {problem}")
    value = value.strip()
    if max_length is not None and len(value) > max_length:
        raise BulkInputError(f"Invalid {name} format", f"{name} may be at most {max_length} characters")
    return value


def _json_list(data: Mapping, name: str) -> list:
    """A list from a JSON body, or from a form field holding a JSON-array string."""
    value = _value(data, name)
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise BulkInputError(f"Invalid {name} format", f"{name} must be a JSON array, e.g. [1,2,3]") from None
    if not isinstance(value, list):
        raise BulkInputError(f"Invalid {name} format", f"{name} must be a JSON array")
    if len(value) > TARGETS_MAX:
        raise BulkInputError(f"Invalid {name} format", f"{name} holds more than {TARGETS_MAX} entries")
    return value


def _user_ids(data: Mapping) -> tuple[int, ...]:
    ids = _json_list(data, "user_ids")
    if not all(isinstance(i, int) and not isinstance(i, bool) and 0 < i <= BIGINT_MAX for i in ids):
        raise BulkInputError("Invalid user_ids format", "user_ids must be an array of positive integers")
    return tuple(dict.fromkeys(ids))


def _role(data: Mapping) -> str:
    role = _text(data, "role", max_length=ROLE_MAX).upper()
    if role and role not in Role.values:
        raise BulkInputError("Invalid role", f"role must be one of {', '.join(Role.values)}")
    return role


def _phones(data: Mapping) -> tuple[str, ...]:
    out = []
    for raw in _json_list(data, "phone_numbers"):
        if not isinstance(raw, str) or len(raw) > 64 or text_problem(raw):
            raise BulkInputError("Invalid phone_numbers format", "phone_numbers must be an array of phone numbers")
        number = phone_numbers.normalize(raw.strip())
        if number is None:
            raise BulkInputError("Invalid phone number", f"'{raw}' is not a valid phone number")
        out.append(number)
    return tuple(dict.fromkeys(out))


def _emails(data: Mapping) -> tuple[str, ...]:
    out = []
    for raw in _json_list(data, "emails"):
        if not isinstance(raw, str) or len(raw) > 320 or text_problem(raw):
            raise BulkInputError("Invalid emails format", "emails must be an array of email addresses")
        address = raw.strip()
        try:
            validate_email(address)
        except ValidationError:
            raise BulkInputError("Invalid email address", f"'{raw}' is not a valid email address") from None
        out.append(address)
    # Addresses differ only in case are one mailbox for every provider we use.
    return tuple({a.lower(): a for a in out}.values())


def scheduled_at_parse(raw, *, now: datetime | None = None, horizon: bool = True) -> datetime | None:
    """RFC 3339 with an offset (`2026-06-15T09:00:00Z`); empty means "send now".

    A time to send at must lie in the future and within INPUT_DATE_HORIZON_DAYS
    (`horizon=False` for filters, which only need a time UTC can hold).
    """
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise BulkInputError("Invalid scheduled_at format", "scheduled_at must be an RFC3339 string")
    text = raw.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = None
    # RFC 3339 needs a date, a time and an offset; a bare date or a local time is ambiguous.
    if value is None or value.tzinfo is None or ("T" not in text.upper() and " " not in text):
        raise BulkInputError(
            "Invalid scheduled_at format", "scheduled_at must be RFC3339 with a zone, e.g. 2026-06-15T09:00:00Z"
        )
    value = as_utc(value)
    if value is None:
        raise BulkInputError("Invalid scheduled_at format", "scheduled_at is out of range")
    if not horizon:
        return value
    now = now or timezone.now()
    if value <= now:
        raise BulkInputError("scheduled_at must be in the future")
    if value > date_horizon(now=now):
        raise BulkInputError(
            "scheduled_at is too far in the future", f"scheduled_at may be at most {horizon_text()} ahead"
        )
    return value


def _image(files: Sequence) -> list:
    if not files:
        return []
    if len(files) > 1:
        raise BulkInputError("Invalid file", "a push notification takes one image")
    image = files[0]
    if image.size > IMAGE_MAX_BYTES:
        raise BulkInputError("File too large", f"the image may be at most {IMAGE_MAX_BYTES // (1024 * 1024)} MB")
    head = image.read(16)
    image.seek(0)
    if not any(head.startswith(sig) for sig in IMAGE_SIGNATURES) and not (
        head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    ):
        raise BulkInputError("Invalid image", "the file must be a PNG, JPEG, GIF or WebP image")
    return [image]


def image_kind(head: bytes) -> tuple[str, str]:
    """(content type, extension) of an image checked by `_image`."""
    for sig, kind in IMAGE_SIGNATURES.items():
        if head.startswith(sig):
            return kind
    return ("image/webp", ".webp")


def _attachments(files: Sequence) -> list:
    if len(files) > ATTACHMENTS_MAX:
        raise BulkInputError("Too many files", f"an email takes at most {ATTACHMENTS_MAX} attachments")
    for f in files:
        if f.size > ATTACHMENT_MAX_BYTES:
            raise BulkInputError(
                "File too large", f"each attachment may be at most {ATTACHMENT_MAX_BYTES // (1024 * 1024)} MB"
            )
    return list(files)


def content_parse(channel: str, data: Mapping) -> Content:
    if channel == ScheduledChannel.EMAIL:
        title = _text(data, "subject")
        message = _text(data, "message", max_length=MESSAGE_MAX)
        # Stored sanitised: the job's html is shown back by the API and the admin.
        html = sanitize_html(_text(data, "html", max_length=HTML_MAX))
        if not title:
            raise BulkInputError("Subject is required")
        if not message and not html:
            raise BulkInputError("Message is required", "give a plain-text message, an HTML body or both")
        content = Content(title=title, message=message, html=html)
    else:
        title = _text(data, "title") if channel != ScheduledChannel.SMS else ""
        message = _text(data, "message", max_length=MESSAGE_MAX)
        if channel != ScheduledChannel.SMS and not title:
            raise BulkInputError("Title is required")
        if not message:
            raise BulkInputError("Message is required")
        content = Content(title=title, message=message)
    if len(content.title) > TITLE_MAX:
        raise BulkInputError("Title is too long", f"at most {TITLE_MAX} characters")
    if channel == ScheduledChannel.IN_APP:
        kind = _text(data, "type", max_length=TYPE_MAX) or "system_alert"
        level = (_text(data, "level", max_length=TYPE_MAX) or Level.INFO).lower()
        if len(kind) > TYPE_MAX:
            raise BulkInputError("Invalid type", f"type may be at most {TYPE_MAX} characters")
        if level not in Level.values:
            raise BulkInputError("Invalid level", f"level must be one of {', '.join(Level.values)}")
        content = Content(title=content.title, message=content.message, notification_type=kind, level=level)
    return content


def targeting_parse(channel: str, data: Mapping) -> Targeting:
    user_ids = _user_ids(data)
    role = _role(data)
    phones = _phones(data) if channel == ScheduledChannel.SMS else ()
    emails = _emails(data) if channel == ScheduledChannel.EMAIL else ()
    targeting = Targeting(user_ids=user_ids, role=role, phones=phones, emails=emails)
    if not targeting:
        raise BulkInputError("No recipients specified", _no_recipients_detail(channel))
    return targeting


def _no_recipients_detail(channel: str) -> str:
    direct = DIRECT_FIELD.get(channel)
    return f"give user_ids, role{' or ' + direct if direct else ''}"


def fallback_channel_parse(channel: str, data: Mapping) -> str:
    """`fallback_channel`: another channel for members the send cannot reach (see pipeline.fallback)."""
    value = _value(data, "fallback_channel")
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or value.strip() not in ScheduledChannel.values:
        raise BulkInputError(
            "Invalid fallback_channel", f"fallback_channel must be one of {', '.join(ScheduledChannel.values)}"
        )
    value = value.strip()
    if channel == ScheduledChannel.IN_APP:
        raise BulkInputError(
            "Invalid fallback_channel", "an in-app notification is delivered when written: it has no fallback"
        )
    if value == channel:
        raise BulkInputError("Invalid fallback_channel", "fallback_channel must differ from the send's channel")
    return value


def bulk_input_parse(channel: str, data: Mapping, files: Sequence = (), *, now: datetime | None = None) -> BulkInput:
    """Check a bulk request of one channel; raises `BulkInputError` with the documented message."""
    if channel not in ScheduledChannel.values:
        raise BulkInputError("Invalid channel", f"channel must be one of {', '.join(ScheduledChannel.values)}")
    if not isinstance(data, Mapping):
        raise BulkInputError("Invalid request body", "the body must be a JSON object or a form")
    content = content_parse(channel, data)
    targeting = targeting_parse(channel, data)
    scheduled_at = scheduled_at_parse(_value(data, "scheduled_at"), now=now)
    fallback_channel = fallback_channel_parse(channel, data)
    if channel == ScheduledChannel.PUSH:
        files = _image(files)
    elif channel == ScheduledChannel.EMAIL:
        files = _attachments(files)
    else:
        files = []
    digest_key = digest_key_parse(channel, data, scheduled=scheduled_at is not None, files=files)
    return BulkInput(
        channel=channel,
        content=content,
        targeting=targeting,
        scheduled_at=scheduled_at,
        files=files,
        fallback_channel=fallback_channel,
        digest_key=digest_key,
    )


DIGEST_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def digest_key_parse(channel: str, data: Mapping, *, scheduled: bool, files: Sequence) -> str:
    """`digest_key`: email and in-app sends now only, letters, digits and `_.:-`, at most 100."""
    key = _text(data, "digest_key")
    if not key:
        return ""
    if channel not in (ScheduledChannel.EMAIL, ScheduledChannel.IN_APP):
        raise BulkInputError("Invalid digest_key", "digest_key is for email and in-app sends")
    if scheduled:
        raise BulkInputError("Invalid digest_key", "digest_key is for sends now, not scheduled sends")
    if files:
        raise BulkInputError("Invalid digest_key", "a digested email carries no attachments")
    if not DIGEST_KEY.match(key):
        raise BulkInputError("Invalid digest_key", "digest_key: 1 to 100 letters, digits and _ . : -")
    return key
