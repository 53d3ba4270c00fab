"""The builder's one door to templates: channels, template choices, and renderers.

Everything the builder needs from templates goes through these few functions,
so the rest of the app does not care where templates live or how they render.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.template import Context, Engine, TemplateSyntaxError

from builder.errors import BuildError
from notifications.models import Channel
from notifications.services import Message, Recipient

CUSTOM_TYPE = "CUSTOM_NOTIFICATION"
# Channel ids of the IBL API (the context endpoint lists them).
CHANNELS: tuple[tuple[int, str], ...] = (
    (1, Channel.EMAIL.value),
    (2, Channel.PUSH.value),
    (3, Channel.IN_APP.value),
    (4, Channel.SMS.value),
)

# Interpolation and simple logic only: no loaders, no libraries to load.
_ENGINE = Engine(loaders=[], libraries={}, builtins=[], string_if_invalid="")


@dataclass(frozen=True)
class TemplateRef:
    id: str
    name: str
    type: str


def channel_choices() -> list[tuple[int, str]]:
    return list(CHANNELS)


def template_choices(*, platform) -> list[dict]:
    return []


def template_resolve(*, platform, template_id: str) -> TemplateRef:
    raise BuildError(f"Template {template_id!r} not found.")


def _compile(source: str, field: str):
    try:
        return _ENGINE.from_string(source)
    except TemplateSyntaxError as exc:
        raise BuildError(f"template_data.{field}: {exc}") from None


def content_check(*, template_data: dict) -> None:
    for field in ("message_title", "message_body"):
        _compile(template_data.get(field) or "", field)


def build_renderer(*, build):
    """A renderer (recipient, channel, user) -> Message for the build's content."""
    if build.template_id:
        template_resolve(platform=build.platform, template_id=build.template_id)
    data = build.template_data or {}
    title = _compile(data.get("message_title") or "", "message_title")
    body = _compile(data.get("message_body") or "", "message_body")
    platform = build.platform
    extra = dict(build.context or {})

    def render(recipient: Recipient, channel: str, user) -> Message:
        context = {
            "site_name": platform.site_name or platform.name,
            "site_url": platform.site_url,
            "platform_name": platform.site_name or platform.name,
            **extra,
            "username": user.username if user is not None else "",
        }
        return Message(
            title=title.render(Context(context, autoescape=False)),
            body=body.render(Context(context, autoescape=False)),
            notification_type=CUSTOM_TYPE,
            context=context,
        )

    return render
