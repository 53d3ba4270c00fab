"""The builder's one door to `templates_app`: channels, template choices, renderers.

A build names a template by id (which resolves, as everywhere, to the
platform's copy when it has one) or carries its own content. Either way it is
rendered through templates_app's front door, `renderer_for`, the same one
every other send path uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from builder.errors import BuildError
from notifications.pipeline import Renderer
from templates_app import selectors
from templates_app.messages import renderer_for
from templates_app.rendering import TemplateError, compile_template

# What custom content is sent as (and what recipients opt out of to refuse it).
CUSTOM_TYPE = "CUSTOM_NOTIFICATION"
CUSTOM_FIELDS = ("message_title", "message_body")


@dataclass(frozen=True)
class TemplateRef:
    id: str
    name: str
    type: str
    channels: tuple[str, ...]


def channel_choices() -> list[tuple[int, str]]:
    """(id, name) of every channel, ids as the API speaks them."""
    return [(channel.pk, channel.name) for channel in selectors.channel_records()]


def template_choices(*, platform) -> list[dict]:
    """The templates a build may use: every enabled type of the platform, its own copy where it has one."""
    return [
        {"id": effective.template.api_id, "name": effective.template.name, "type": effective.type}
        for effective in selectors.templates_for_platform(platform=platform)
        if effective.is_enabled
    ]


def _ref(effective) -> TemplateRef:
    return TemplateRef(
        id=effective.template.api_id,
        name=effective.template.name,
        type=effective.type,
        channels=tuple(effective.channel_names()),
    )


def template_resolve(*, platform, template_id: str, channels: list[str] | None = None) -> TemplateRef:
    """The template `template_id` names for `platform`; 400 when unknown, disabled or not on `channels`."""
    effective = selectors.template_by_id(platform=platform, template_id=template_id)
    if effective is None:
        raise BuildError(f"Template {template_id!r} not found.")
    if not effective.is_enabled:
        raise BuildError(f"Notification type {effective.type} is disabled for this platform.")
    ref = _ref(effective)
    refused = [c for c in channels or () if c not in ref.channels]
    if refused:
        raise BuildError(f"The {ref.type} template does not deliver over: {', '.join(refused)}.")
    return ref


def content_check(*, template_data: dict) -> None:
    """Compile custom content now, so a syntax error is a 400 at preview, not a failed send."""
    for field in CUSTOM_FIELDS:
        try:
            compile_template(template_data.get(field) or "")
        except TemplateError as exc:
            raise BuildError(f"template_data.{field}: {exc}") from None


def _render_failed(exc: TemplateError) -> BuildError:
    return BuildError(f"The template failed to render: {exc}")


def build_renderer(*, build) -> Renderer:
    """The build's renderer for the pipeline: its template or its custom content; raises BuildError."""
    platform = build.platform
    if build.template_type:
        effective = selectors.template_for_type(platform=platform, notification_type=build.template_type)
        if effective is None:
            raise BuildError(f"The {build.template_type} template no longer exists.")
        if not effective.is_enabled:
            raise BuildError(f"Notification type {build.template_type} is disabled for this platform.")
        return renderer_for(
            platform=platform,
            channels=build.channels,
            template=effective.template,
            context=build.context,
            error=_render_failed,
        )
    return renderer_for(
        platform=platform,
        channels=build.channels,
        content={field: (build.template_data or {}).get(field, "") for field in CUSTOM_FIELDS},
        notification_type=CUSTOM_TYPE,
        context=build.context,
        error=_render_failed,
    )
