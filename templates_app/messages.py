"""From a template and a context to the `Message` the delivery pipeline sends.

`renderer_for` is the front door every send path that carries content uses
(builder, automatic events, proactive runs, templates' preview and test-send,
alerts): it turns a template, template text the caller wrote, or a finished
message into the pipeline's `Renderer`. A send path resolves its audience,
chooses its content, and calls `notification_send` with the renderer.

The context a template sees is built here: the §8.2 globals from the Platform
record, the recipient's own variables, what the caller supplied, then the
recipient's own context. Only plain values go in (`rendering.plain` converts
the rest), and every field renders through the locked-down engine under its
budget (`rendering.render`), HTML through the one sanitiser.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from notifications.models import Channel, Platform
from notifications.pipeline import Message, Recipient, Renderer
from notifications.sanitize import sanitize_html
from templates_app import defaults, selectors
from templates_app.models import NotificationTemplate
from templates_app.rendering import SharedContext, Substitution, TemplateError, names_read, render, substitution

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


# The variables that differ from one recipient to the next; the rest of a context is the send's.
RECIPIENT_NAMES = frozenset({"username", "recipient_timezone", "unsubscribe_url"})


def login_variables(platform: Platform) -> dict:
    login_url = platform.site_url or ""
    return {"login_url": login_url, "login_path": urlsplit(login_url).path or "/"}


def recipient_variables(
    platform: Platform, *, user=None, address: str = "", notification_type: str = "", signed: bool = True
) -> dict:
    """The RECIPIENT_NAMES of one recipient (an account's; a bare address has only a username).

    `signed=False` leaves out the unsubscribe link, for a send whose fields never show it.
    """
    variables = {"username": user.username if user is not None else (address.split("@")[0] if "@" in address else "")}
    if user is not None:
        variables["recipient_timezone"] = user.timezone or "UTC"
        if signed:
            variables["unsubscribe_url"] = unsubscribe_url(
                platform=platform, user_id=user.pk, notification_type=notification_type
            )
    return variables


def recipient_context(
    platform: Platform, *, user=None, address: str = "", notification_type: str = "", globals_: dict | None = None
) -> dict:
    """Globals plus the recipient's variables (`username`, `login_url`, ...)."""
    context = dict(globals_ if globals_ is not None else platform_globals(platform))
    context.update(login_variables(platform))
    context.update(recipient_variables(platform, user=user, address=address, notification_type=notification_type))
    return context


def render_fields(
    content: Mapping[str, str],
    context: dict,
    *,
    fields: Iterable[str],
    shared: SharedContext | None = None,
    substitutions: Mapping[str, Substitution] | None = None,
) -> dict[str, str]:
    """Render the named template fields of `content` (`context` over `shared`); raises FieldRenderError.

    A field with one of `substitutions` only has `context`'s values put into it.
    """
    out = {}
    for field in fields:
        try:
            html = defaults.TEMPLATE_FIELDS.get(field, False)
            found = substitutions.get(field) if substitutions else None
            text = found.fill(context) if found is not None else None
            out[field] = render(content.get(field) or "", context, html=html, shared=shared) if text is None else text
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


# --- the front door -------------------------------------------------------------------

# Maps a render failure to the error the caller reports (a 400, a failed build).
ErrorFor = Callable[[FieldRenderError], Exception]


def renderer_for(
    *,
    platform: Platform,
    channels: Sequence[str],
    template: NotificationTemplate | None = None,
    content: Mapping[str, str] | None = None,
    message: Message | None = None,
    notification_type: str = "",
    context: Mapping[str, object] | None = None,
    error: ErrorFor | None = None,
) -> Renderer:
    """The pipeline's renderer (recipient, channel, user) -> Message for one send.

    Give one kind of content:
    - `template`: the template row that applies (the platform's copy or the
      inherited default, as `selectors.template_for_type` resolves it); fields
      in `content` replace the template's own (an event's subject line);
    - `content` alone: template text the caller wrote (a build's custom
      content), sent as `notification_type`;
    - `message`: a finished message, no template (an alert), the same for
      every recipient and channel.

    Template text renders per recipient through the locked-down engine with the
    §8.2 globals, the recipient's variables, `context`, then the recipient's
    own `Recipient.context`; only the fields `channels` need are rendered, once
    per recipient for all its channels. A field that cannot render (syntax,
    missing name, over its time or size budget) raises `error(exc)` when
    given, else the FieldRenderError itself.
    """
    if message is not None:
        if template is not None or content is not None:
            raise ValueError("a message is sent as it is: give no template or content with it")
        return lambda recipient, channel, user: message
    if template is None and content is None:
        raise ValueError("give one of template, content or message")
    fields_of_template: dict[str, str] = {}
    from_address = ""
    if template is not None:
        fields_of_template = {f: getattr(template, f) for f in defaults.TEMPLATE_FIELDS}
        notification_type = notification_type or template.type
        from_address = template.email_from_address
    if not notification_type:
        raise ValueError("content without a template needs its notification_type")
    return _TemplateRenderer(
        platform=platform,
        channels=tuple(channels),
        content={**fields_of_template, **(content or {})},
        notification_type=notification_type,
        from_address=from_address,
        context=dict(context or {}),
        error=error,
    )


class _TemplateRenderer:
    """Renders a recipient's fields on its first channel and reuses them for its other channels.

    The pipeline (and `rendered_ahead`) asks channel by channel for one
    recipient in a row, so only the last recipient's fields are kept. Only
    what differs is rendered per recipient: a field that reads none of the
    RECIPIENT_NAMES ("Maintenance on {{ site_name }}") renders once for the
    whole send; one that shows them only as bare variables ("Hi {{ username }}")
    renders once with holes that each recipient's values fill
    (`rendering.Substitution`); the others render per recipient over the
    send's part of the context, made plain once (`rendering.SharedContext`).
    A recipient with its own context renders every field itself.
    """

    def __init__(
        self,
        *,
        platform: Platform,
        channels: tuple[str, ...],
        content: dict[str, str],
        notification_type: str,
        from_address: str,
        context: dict,
        error: ErrorFor | None,
    ):
        self.platform = platform
        self.content = content
        self.fields = tuple(f for f in fields_for(channels) if f in content)
        self.notification_type = notification_type
        self.from_address = from_address
        self.context = context
        self.error = error
        self.globals = platform_globals(platform)
        self.shared = SharedContext({**self.globals, **login_variables(platform), **context})
        reads = {field: _names_read(content[field]) for field in self.fields}
        # None: not to be told from the text (a tag that reads the context itself), so per recipient.
        self.per_recipient = tuple(f for f in self.fields if reads[f] is None or reads[f] & RECIPIENT_NAMES)
        self.common = tuple(f for f in self.fields if f not in self.per_recipient)
        self.signed = any(reads[f] is None or "unsubscribe_url" in reads[f] for f in self.per_recipient)
        self._common: dict[str, str] | None = None
        self._substitutions: dict[str, Substitution] = {}
        self._last: Recipient | None = None
        self._rendered: dict[str, str] = {}
        self._stored: dict = {}

    def __call__(self, recipient: Recipient, channel: str, user) -> Message:
        if self._last is None or recipient != self._last:
            self._render(recipient, user)
        return message_for(
            self._rendered,
            channel=channel,
            notification_type=self.notification_type,
            context=self._stored,
            from_address=self.from_address,
        )

    def _render(self, recipient: Recipient, user) -> None:
        own = recipient_variables(
            self.platform,
            user=user,
            address=recipient.address,
            notification_type=self.notification_type,
            signed=self.signed or bool(recipient.context),
        )
        # Precedence as in one context: globals, the recipient's variables, the send's, the recipient's own.
        for name in self.context:
            own.pop(name, None)
        own.update(recipient.context)
        try:
            if recipient.context:
                rendered = render_fields(self.content, own, fields=self.fields, shared=self.shared)
            else:
                if self._common is None:
                    self._common = render_fields(self.content, {}, fields=self.common, shared=self.shared)
                    self._substitutions = _substitutions(self.content, fields=self.per_recipient, shared=self.shared)
                per_recipient = render_fields(
                    self.content, own, fields=self.per_recipient, shared=self.shared, substitutions=self._substitutions
                )
                rendered = {**self._common, **per_recipient}
        except FieldRenderError as exc:
            if self.error is None:
                raise
            raise self.error(exc) from None
        self._last, self._rendered = recipient, rendered
        username = own["username"] if "username" in own else self.context.get("username", "")
        self._stored = {**self.context, **recipient.context, "username": username}


def _substitutions(content: Mapping[str, str], *, fields: Iterable[str], shared: SharedContext) -> dict:
    found = {}
    for field in fields:
        try:
            html = defaults.TEMPLATE_FIELDS.get(field, False)
            made = substitution(content.get(field) or "", names=RECIPIENT_NAMES, shared=shared, html=html)
        except TemplateError as exc:
            raise FieldRenderError(field, exc) from None
        if made is not None:
            found[field] = made
    return found


def _names_read(source: str) -> frozenset[str] | None:
    try:
        return names_read(source)
    except TemplateError:
        return None  # rendered per recipient, where it fails with the caller's error as before


class RenderedAhead:
    """Every message of a send, rendered before anything is written; itself the send's renderer."""

    def __init__(self, render: Renderer | None = None):
        self.recipients: list[Recipient] = []
        self.messages: dict[tuple[str, str], Message] = {}
        self.render = render

    def __call__(self, recipient: Recipient, channel: str, user) -> Message:
        found = self.messages.get((recipient.key(), channel))
        if found is None and self.render is not None:
            # A channel the pipeline added (a fallback): rendered now from the
            # fields this recipient rendered ahead without error.
            return self.render(recipient, channel, user)
        if found is None:
            raise KeyError((recipient.key(), channel))
        return found


def rendered_ahead(
    *, render: Renderer, audience: Iterable[tuple[Recipient, object]], channels: Sequence[str]
) -> RenderedAhead:
    """Render every (recipient, user) of `audience` on every channel now.

    For sends that must fail whole when one message cannot render (an event
    answers 400 with nothing sent). `audience` is read lazily, so a template
    that fails on its first recipient stops before the rest are prepared.
    """
    ahead = RenderedAhead(render)
    for recipient, user in audience:
        ahead.recipients.append(recipient)
        for channel in channels:
            ahead.messages[(recipient.key(), channel)] = render(recipient, channel, user)
    return ahead


def follow_up_messages(*, rows: Sequence[tuple[object, str]]) -> dict[int, Message]:
    """The pipeline's follow-up renderer: a fallback written in dispatch, rendered for its own channel.

    `rows` are (failed delivery row, fallback channel). A row counts as
    rendered from its type's template when that template, rendered again with
    the row's stored context for the row's own channel, gives the row's
    content; its fallback is then rendered from the template for the new
    channel (an SMS gets the template's SMS text, not the email's subject and
    body). Anything else keeps the original content: an alert or a build's
    custom content (their type's template may only hold the policy), an
    event's own subject line, a template edited since the send.
    """
    templates: dict[tuple, NotificationTemplate | None] = {}
    out: dict[int, Message] = {}
    for index, (row, channel) in enumerate(rows):
        if row.user_id is None:
            continue
        key = (row.platform_id, row.notification_type)
        if key not in templates:
            effective = selectors.template_for_type(platform=row.platform, notification_type=row.notification_type)
            templates[key] = effective.template if effective is not None else None
        template = templates[key]
        if template is None:
            continue
        render = renderer_for(
            platform=row.platform, channels=(row.channel, channel), template=template, context=row.context or {}
        )
        recipient = Recipient(user_id=row.user_id)
        try:
            again = render(recipient, row.channel, row.user)
            if (again.title, again.body, again.short_message, again.data) != (
                row.title,
                row.body,
                row.short_message,
                row.data,
            ):
                continue
            out[index] = render(recipient, channel, row.user)
        except TemplateError:
            continue  # the template no longer renders: the original content goes
    return out
