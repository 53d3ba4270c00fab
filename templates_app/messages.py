"""From a template and a context to the `Message` the delivery pipeline sends.

The context a template sees is built here: the §8.2 globals from the Platform
record, the recipient's own variables, then what the caller supplied. Only
plain values go in (`rendering.plain` converts the rest).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from notifications.models import Channel, Platform
from notifications.pipeline import Message
from notifications.sanitize import sanitize_html
from templates_app import defaults
from templates_app.rendering import TemplateError, render

UNSUBSCRIBE_SALT = "templates_app.unsubscribe"

# Which template fields each channel needs, so a render does no more than it must.
CHANNEL_FIELDS: dict[str, tuple[str, ...]] = {
    Channel.EMAIL: ("email_subject", "message_title", "message_body", "short_message_body", "email_html_template"),
    Channel.PUSH: ("message_title", "message_body", "short_message_body"),
    Channel.IN_APP: ("message_title", "message_body", "short_message_body"),
    Channel.SMS: ("message_body", "short_message_body"),
}


class FieldRenderError(TemplateError):
    """A TemplateError that knows which template field it came from."""

    def __init__(self, field: str, error: TemplateError):
        super().__init__(error.message, line=error.line)
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {super().__str__()}"


def _capitalized(name: str) -> str:
    # "acme learning" -> "Acme Learning"; names that already carry capitals
    # ("IBL.ai") are left as their owners wrote them.
    return name if any(ch.isupper() for ch in name) else name.title()


def platform_globals(platform: Platform) -> dict:
    """The §8.2 global variables of one platform."""
    site_name = platform.site_name or platform.name
    base_domain = platform.base_domain or urlsplit(platform.site_url).hostname or ""
    return {
        "site_name": site_name,
        "site_url": platform.site_url,
        "site_logo_url": platform.logo_url,
        "platform_name": _capitalized(site_name),
        "support_email": platform.support_email,
        "privacy_url": platform.privacy_url,
        "terms_url": platform.terms_url,
        "logo_url": platform.logo_url,
        "current_year": timezone.now().year,
        "base_domain": base_domain,
        "skills_url": platform.skills_url,
        "unsubscribe_url": "",
        "platform_key": platform.key,
        "recipient_timezone": "UTC",
    }


def unsubscribe_token(*, platform: Platform, user_id: int, notification_type: str) -> str:
    return signing.dumps({"p": platform.pk, "u": user_id, "t": notification_type}, salt=UNSUBSCRIBE_SALT)


def unsubscribe_url(*, platform: Platform, user_id: int | None, notification_type: str) -> str:
    """A one-click link that switches this type off for this user (none for critical types)."""
    base = getattr(settings, "PUBLIC_BASE_URL", "")
    if not base or user_id is None or notification_type in defaults.CRITICAL_TYPES:
        return ""
    token = unsubscribe_token(platform=platform, user_id=user_id, notification_type=notification_type)
    return base.rstrip("/") + reverse("templates-unsubscribe", kwargs={"token": token})


def recipient_context(
    platform: Platform, *, user=None, address: str = "", notification_type: str = "", globals_: dict | None = None
) -> dict:
    """Globals plus the recipient's variables (`username`, `login_url`, ...)."""
    context = dict(globals_ if globals_ is not None else platform_globals(platform))
    login_url = platform.site_url or ""
    context.update(
        {
            "username": user.username if user is not None else (address.split("@")[0] if "@" in address else ""),
            "login_url": login_url,
            "login_path": urlsplit(login_url).path or "/",
        }
    )
    if user is not None:
        context["recipient_timezone"] = user.timezone or "UTC"
        context["unsubscribe_url"] = unsubscribe_url(
            platform=platform, user_id=user.pk, notification_type=notification_type
        )
    return context


def render_fields(content: Mapping[str, str], context: dict, *, fields: Iterable[str]) -> dict[str, str]:
    """Render the named template fields of `content`; raises FieldRenderError."""
    out = {}
    for field in fields:
        try:
            out[field] = render(content.get(field) or "", context, html=defaults.TEMPLATE_FIELDS.get(field, False))
        except TemplateError as exc:
            raise FieldRenderError(field, exc) from None
    if out.get("email_html_template"):
        out["email_html_template"] = sanitize_html(out["email_html_template"])
    return out


def fields_for(channels: Iterable[str]) -> tuple[str, ...]:
    needed: list[str] = []
    for channel in channels:
        for field in CHANNEL_FIELDS.get(channel, ()):
            if field not in needed:
                needed.append(field)
    return tuple(needed)


def message_for(
    rendered: Mapping[str, str],
    *,
    channel: str,
    notification_type: str,
    context: dict,
    from_address: str = "",
    level: str = "info",
) -> Message:
    """The Message of one channel from the rendered fields."""
    title = rendered.get("message_title", "")
    body = rendered.get("message_body", "")
    short = rendered.get("short_message_body", "")
    data: dict = {}
    html = ""
    if channel == Channel.EMAIL:
        title = rendered.get("email_subject") or title
        html = rendered.get("email_html_template", "")
        if from_address:
            # The email backend sends from here instead of the platform's address.
            data["from_email"] = from_address
    elif channel == Channel.PUSH:
        body = short or body
    elif channel == Channel.SMS:
        title, body = "", short or body
    return Message(
        title=title[:500],
        body=body,
        html=html,
        short_message=short[:1000],
        notification_type=notification_type,
        level=level,
        context=context,
        data=data,
    )
