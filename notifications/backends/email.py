"""Email through Django's mail machinery.

A platform with active `PlatformSMTPSettings` sends through its own SMTP
server; every other platform through the project's connection
(`settings.EMAIL_BACKEND`: SMTP, console, or any email provider django-anymail
supports, e.g. `anymail.backends.postmark.EmailBackend`). One connection per
platform is opened on first use and kept until `close()`, so a batch costs one
SMTP handshake (or one HTTP session) per platform, not one per recipient.

Through anymail, the provider's message id and name (`esp_name`) are recorded
on the delivery row, which is how its delivery receipts find the row later
(`notifications.email_receipts`); a provider's 5xx, 429 or timeout is a
retryable failure like an SMTP 4xx, a refused recipient a final one.

Each recipient gets a message of their own (rendered per recipient, and an SMTP
refusal then belongs to exactly one delivery).

A refusal that says the address itself does not exist is marked
`Result.address_refused`, and dispatch lists the address (`hard_bounce`): an
SMTP server refusing the recipient with an enhanced status of bad address
(5.1.1 and its kin, `ADDRESS_STATUSES`) or, without one, a 550 whose text
says the user is unknown; an anymail provider answering the recipient
`invalid`. Refusals for policy, spam or relaying (5.7.x and the like) and
anymail's `rejected` (the provider's own block list) are not marked.
"""

from __future__ import annotations

import html as html_lib
import logging
import re
import smtplib
from dataclasses import dataclass, field
from email.utils import formataddr, make_msgid, parseaddr

from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends import smtp as smtp_backend
from django.core.mail.backends.base import BaseEmailBackend
from django.core.validators import validate_email
from django.utils.html import strip_tags

from notifications.backends.base import BaseBackend, Result
from notifications.backends.httputil import RETRYABLE_STATUS, excerpt, retry_after
from notifications.models import Attachment, Platform, PlatformSMTPSettings
from notifications.sanitize import sanitize_html
from notifications.smtp import PinnedEmailBackend, TargetRefused, smtp_target_resolve

logger = logging.getLogger(__name__)


@dataclass
class _Route:
    """How one platform's mail leaves: a connection and a From, or why it cannot."""

    connection: BaseEmailBackend | None = None
    from_email: str = ""
    reply_to: list[str] = field(default_factory=list)
    label: str = "the project's mail server"
    # Recorded on each delivery: anymail's esp_name, "smtp", or "" (console, locmem).
    provider: str = ""
    # Set when the connection cannot be used at all; every delivery of the
    # platform in this send gets it instead of a new connection attempt each.
    failure: Result | None = None

    @property
    def connection_is_api(self) -> bool:
        return hasattr(self.connection, "esp_name")


def _provider_name(connection: BaseEmailBackend) -> str:
    esp_name = getattr(connection, "esp_name", None)
    if esp_name:
        return str(esp_name)
    if isinstance(connection, smtp_backend.EmailBackend):
        return "smtp"
    return ""


def _provider_refusal(exc: AnymailError, address: str, route: _Route, message=None) -> Result:
    """An anymail error as a result: the provider's trouble is retryable, a refused recipient final."""
    if isinstance(exc, AnymailRecipientsRefused):
        invalid = _anymail_status(message, address) == "invalid"
        what = "invalid address" if invalid else "refused"
        return _named(Result.failed(f"Recipient {address} {what} by {route.label}", address_refused=invalid), route)
    if isinstance(exc, AnymailAPIError):
        status = exc.status_code
        response = getattr(exc, "response", None)
        wait = retry_after(response.headers.get("Retry-After")) if response is not None else None
        if status is None:  # no answer at all: connection refused, timed out
            return Result.failed(f"Cannot reach {route.label}: {excerpt(str(exc))}", retryable=True)
        return Result.failed(
            f"{route.label} refused the message: {excerpt(str(exc))}",
            retryable=status in RETRYABLE_STATUS,
            retry_after=wait,
        )
    # Unsupported feature, serialisation, invalid address: sending again changes nothing.
    return Result.failed(f"{route.label} cannot send the message: {excerpt(str(exc))}")


def _named(result: Result, route: _Route) -> Result:
    """The result naming who refused (anymail's esp_name, "smtp"), as a sent one names who took it."""
    # The suppression list's entry for a refused address says which provider refused it.
    if route.provider:
        result.provider = route.provider
    return result


def _anymail_status(message, address: str) -> str:
    """anymail's status for `address` in the message's answer ("invalid", "rejected", ...), or ""."""
    recipients = getattr(getattr(message, "anymail_status", None), "recipients", None) or {}
    wanted = address.lower()
    for email, status in recipients.items():
        if email.lower() == wanted:
            return str(getattr(status, "status", "") or "")
    return ""


# RFC 3463 enhanced status codes (class 5) that say the recipient's address is bad: other
# address status, bad mailbox, bad system (domain), bad mailbox syntax, mailbox moved
# without forwarding, domain accepts no mail (null MX, RFC 7505). Not X.1.7 / X.1.8:
# those are about the *sender's* address.
ADDRESS_STATUSES = frozenset({"1.0", "1.1", "1.2", "1.3", "1.6", "1.10"})
_ENHANCED = re.compile(r"\s*([245])\.(\d{1,3}\.\d{1,3})(?!\d)")
# Without an enhanced code: the wordings servers use for a mailbox that does not exist.
_UNKNOWN_USER = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|recipient|address)|recipient unknown|unknown recipient"
    r"|(?:mailbox|user|account|address|recipient) (?:not found|does not exist|doesn't exist)",
    re.IGNORECASE,
)


def smtp_address_refused(code: int, reply: str) -> bool:
    """Whether an SMTP refusal of RCPT TO says the recipient's address does not exist (for good).

    The enhanced status code decides when the reply has one (a 550 5.7.1
    "user unknown" is a policy refusal); only a reply without one is read
    for its words, and then only a 550 or 551 (553 is as often syntax or policy).
    """
    enhanced = _ENHANCED.match(reply)
    if enhanced:
        return code // 100 == 5 and enhanced.group(1) == "5" and enhanced.group(2) in ADDRESS_STATUSES
    if code not in (550, 551) or "sender" in reply.lower():
        return False
    return bool(_UNKNOWN_USER.search(reply))


class _AttachmentUnavailable(Exception):
    def __init__(self, result: Result):
        super().__init__(result.error)
        self.result = result


def _smtp_reply(prefix: str, code: int, reply: bytes | str, *, recipient: bool = False) -> Result:
    """An SMTP reply as a result: 4xx is temporary (try later), anything else is final.

    `recipient`: the reply refused RCPT TO, so it may say the address does not exist.
    """
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    return Result.failed(
        f"{prefix}: {code} {text}".strip(),
        retryable=400 <= code < 500,
        address_refused=recipient and smtp_address_refused(code, text),
    )


def _one_line(value: str) -> str:
    # Django refuses header values with line breaks (header injection); a
    # title that spans lines is still a fine subject on one.
    return " ".join(value.split())


def _text_from_html(value: str) -> str:
    return html_lib.unescape(strip_tags(value)).strip()


# Django mail backends that deliver nothing: the project-wide mail goes nowhere.
DEVELOPMENT_MAIL_BACKENDS = frozenset(
    f"django.core.mail.backends.{name}.EmailBackend" for name in ("console", "locmem", "dummy", "filebased")
)


class EmailBackend(BaseBackend):
    batch_size = 100

    @classmethod
    def describe(cls) -> dict:
        # The channel is as real as Django's EMAIL_BACKEND behind it (platforms
        # with their own SMTP settings send through those regardless).
        mail = settings.EMAIL_BACKEND
        real = mail not in DEVELOPMENT_MAIL_BACKENDS
        return {"backend": "email", "mail_backend": mail.rsplit(".", 2)[-2], "real": real}

    def __init__(self, **options):
        super().__init__(**options)
        self._routes: dict[int, _Route] = {}
        self._attachments: dict[str, list[tuple[str, bytes, str]] | Result] = {}

    def open(self) -> None:
        self._routes = {}
        self._attachments = {}

    def close(self) -> None:
        for route in self._routes.values():
            if route.connection is not None:
                self._close_connection(route)
        self._routes = {}
        self._attachments = {}

    # -- the loop ---------------------------------------------------------------

    def send_batch(self, deliveries):
        self._load_routes({d.platform_id for d in deliveries})
        for delivery in deliveries:
            yield self._send(delivery)

    def _send(self, delivery) -> Result:
        if not delivery.address:
            return Result.failed("No email address")
        try:
            validate_email(delivery.address)
        except ValidationError:
            return Result.failed(f"Invalid email address: {delivery.address!r}")
        route = self._routes[delivery.platform_id]
        if route.failure is None:
            route.failure = self._ensure_open(route)
        if route.failure is not None:
            return route.failure
        try:
            message, message_id = self._message(delivery, route)
        except _AttachmentUnavailable as exc:
            return exc.result
        try:
            sent = route.connection.send_messages([message])
        except AnymailError as exc:
            return _provider_refusal(exc, delivery.address, route, message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (550, b"refused"))
            if code == 421:  # smtplib hung up on the server's "closing channel"
                self._close_connection(route)
            return _named(_smtp_reply(f"Recipient {delivery.address} refused", code, reply, recipient=True), route)
        except smtplib.SMTPResponseException as exc:
            # MAIL FROM refused, DATA rejected, ...: the server answered and the
            # connection stays usable, unless it said it is closing it (421).
            if exc.smtp_code == 421:
                self._close_connection(route)
            return _smtp_reply(f"Message refused by {route.label}", exc.smtp_code, exc.smtp_error)
        except (smtplib.SMTPException, OSError) as exc:
            # Disconnected or timed out mid-conversation: drop the connection so
            # the next recipient starts a fresh one.
            self._close_connection(route)
            return Result.failed(f"Connection to {route.label} failed: {exc}", retryable=True)
        if not sent:
            return Result.failed(f"The mail backend ({route.label}) did not send the message")
        status = getattr(message, "anymail_status", None)
        if status is not None and status.message_id:
            # The provider's own id: its receipts name the message by it.
            message_id = str(status.message_id)
        return Result.sent(message_id, provider=route.provider)

    # -- connections --------------------------------------------------------------

    def _load_routes(self, platform_ids: set[int]) -> None:
        missing = platform_ids - self._routes.keys()
        if not missing:
            return
        platforms = Platform.objects.in_bulk(missing)
        smtp = {s.platform_id: s for s in PlatformSMTPSettings.objects.filter(platform_id__in=missing, is_active=True)}
        for platform_id in missing:
            self._routes[platform_id] = self._route(platforms[platform_id], smtp.get(platform_id))

    def _route(self, platform: Platform, smtp: PlatformSMTPSettings | None) -> _Route:
        route = _Route(
            from_email=self._from_address(platform, smtp),
            reply_to=[platform.support_email] if platform.support_email else [],
        )
        if smtp is None:
            route.connection = get_connection(fail_silently=False)
            route.provider = _provider_name(route.connection)
            if route.provider and route.provider != "smtp":
                route.label = route.provider
            return route
        route.label = f"SMTP server {smtp.host}:{smtp.port}"
        route.provider = "smtp"
        password = smtp.password
        if password is None:
            route.failure = Result.failed(
                f"The SMTP password of platform {platform.key} cannot be decrypted "
                "(SECRET_KEY changed since it was saved); enter it again"
            )
            return route
        # A platform admin names this server: it gets the same checks as the
        # live SMTP test (SMTP ports, public or allow-listed addresses, connect
        # to the address checked), so platform mail cannot reach internal hosts.
        try:
            target = smtp_target_resolve(host=smtp.host, port=smtp.port)
        except TargetRefused as exc:
            route.failure = Result.failed(f"{route.label} is not allowed: {exc.message}")
            return route
        route.connection = PinnedEmailBackend(
            target=target,
            fail_silently=False,
            username=smtp.username or None,
            password=password or None,
            use_tls=smtp.use_tls,
            use_ssl=smtp.use_ssl,
            timeout=smtp.timeout,
        )
        return route

    def _ensure_open(self, route: _Route) -> Result | None:
        """Open the route's connection if it is not; a failure covers the rest of the send."""
        try:
            route.connection.open()
        except smtplib.SMTPResponseException as exc:  # e.g. 535 authentication failed
            self._close_connection(route)
            return _smtp_reply(f"Login refused by {route.label}", exc.smtp_code, exc.smtp_error)
        except (smtplib.SMTPException, OSError) as exc:
            self._close_connection(route)
            return Result.failed(f"Cannot connect to {route.label}: {exc}", retryable=True)
        return None

    @staticmethod
    def _close_connection(route: _Route) -> None:
        try:
            route.connection.close()
        except (smtplib.SMTPException, OSError) as exc:
            # The server is already gone; there is nothing left to release.
            logger.info("closing SMTP connection to %s: %s", route.label, exc)

    @staticmethod
    def _from_address(platform: Platform, smtp: PlatformSMTPSettings | None) -> str:
        address = (
            (smtp.from_email if smtp else "")
            or platform.from_email
            # The IBL SMTP settings: the sender defaults to the SMTP username.
            or (smtp.username if smtp and "@" in smtp.username else "")
            or settings.DEFAULT_FROM_EMAIL
        )
        name, addr = parseaddr(address)
        display = platform.site_name or platform.name
        if not name and display and addr:
            # Platforms that share the project's sender still sign with their own name.
            return formataddr((display, addr))
        return address

    # -- the message ----------------------------------------------------------------

    def _message(self, delivery, route: _Route) -> tuple[EmailMultiAlternatives, str]:
        domain = parseaddr(route.from_email)[1].rpartition("@")[2] or "localhost"
        message_id = make_msgid(domain=domain)
        # Rows are written sanitised (Message); cleaning again at the door also
        # covers rows an older version stored before every HTML field was.
        html = sanitize_html(delivery.html)
        body = delivery.body or _text_from_html(html)
        headers = {
            # RFC 3834: an automatic message; auto-responders must not answer it.
            "Auto-Submitted": "auto-generated",
            "X-Notification-ID": str(delivery.id),
        }
        if not route.connection_is_api:
            # An API provider names the message itself (and answers with that id).
            headers = {"Message-ID": message_id, **headers}
        message = EmailMultiAlternatives(
            subject=_one_line(delivery.title),
            body=body,
            from_email=route.from_email,
            to=[delivery.address],
            reply_to=route.reply_to,
            headers=headers,
        )
        if html:
            message.attach_alternative(html, "text/html")
        for filename, content, content_type in self._attachments_for(delivery.source):
            message.attach(filename, content, content_type)
        return message, message_id

    def _attachments_for(self, source: str) -> list[tuple[str, bytes, str]]:
        """The files of one send, read from storage once per send, not once per recipient."""
        if source not in self._attachments:
            self._attachments[source] = self._read_attachments(source)
        files = self._attachments[source]
        if isinstance(files, Result):
            raise _AttachmentUnavailable(files)
        return files

    @staticmethod
    def _read_attachments(source: str) -> list[tuple[str, bytes, str]] | Result:
        files = []
        for attachment in Attachment.objects.filter(source=source).order_by("id"):
            try:
                with attachment.file.open("rb") as fh:
                    files.append((attachment.filename, fh.read(), attachment.content_type))
            except FileNotFoundError:
                return Result.failed(f"Attachment {attachment.filename!r} is missing from storage")
            except OSError as exc:
                return Result.failed(f"Attachment {attachment.filename!r} cannot be read: {exc}", retryable=True)
        return files
