"""Platform SMTP servers: where we may connect, how we connect, and the live test.

A platform admin names a host and a port and we open a connection from inside
our network. Left unchecked that is a port scanner and a relay into private
services (cloud metadata, Redis, the database), so every connection to a
platform's server goes through `smtp_target_resolve`:

- the port must be an SMTP port (25, 465, 587, 2525) or listed in
  `SMTP_TEST_EXTRA_PORTS`;
- the host is resolved once and every address it resolves to must be public
  (`notifications.addresses.is_public_address`: `ipaddress` `is_global`, and
  neither multicast nor reserved, looking inside IPv4-mapped, NAT64, 6to4 and
  Teredo addresses, and outside the ranges newer Pythons no longer call
  global), unless the host or the address is listed in
  `SMTP_TEST_ALLOWED_HOSTS` (names, addresses, networks);
- the same check runs when settings are saved (API and admin), name
  resolution included, so `127.1`, `0x7f.1`, `2130706433` or a name that
  resolves to a private address is never stored; connecting checks again,
  since a name may resolve differently later;
- the connection goes to the addresses that were checked, never to a fresh
  resolution of the name, so a DNS answer that changes between the check and
  the connect (rebinding) reaches nothing new. The name is kept for TLS
  certificate checks and SNI.

Refusals happen before any packet leaves but DNS, and a name that does not
resolve is refused like one that resolves to a private address. Once a
connection is attempted, a closed, refused, filtered or silent target or a
peer that does not speak SMTP all give the same generic answer, so the test tells nobody
more about a network than "this is not a working SMTP server". Only a peer that
has greeted us as an SMTP server gets a specific diagnosis (authentication,
TLS, rejected addresses).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import smtplib
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.smtp import EmailBackend as DjangoSMTPBackend
from django.core.mail.message import sanitize_address
from django.db import transaction

from notifications.addresses import _address_allowed, _allow_list
from notifications.models import Platform, PlatformSMTPSettings

logger = logging.getLogger(__name__)

SMTP_PORTS = frozenset({25, 465, 587, 2525})

AUTH_FAILED = "SMTP test failed: Authentication failed. Please check your username and password."
CONNECTION_FAILED = "SMTP test failed: Connection failed. Please check your host and port settings."
AUTH_NOT_OFFERED = (
    "SMTP test failed: Authentication failed. The server does not offer authentication on this connection; "
    "servers often offer it only after STARTTLS, so check use_tls and use_ssl."
)
STARTTLS_NOT_OFFERED = (
    "SMTP test failed: The server does not support STARTTLS. Use use_ssl with port 465, or turn use_tls off."
)
TLS_FAILED = (
    "SMTP test failed: The TLS handshake failed. Check use_tls and use_ssl and that the server's certificate "
    "is valid for this host name."
)


# Resolution goes through this name so tests can answer for the (outside) DNS.
_getaddrinfo = socket.getaddrinfo


class TargetRefused(Exception):
    """The host or port is not one we connect to; nothing was sent anywhere."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class SMTPTestFailed(Exception):
    """The live test ran and did not deliver; `message` is what the caller sees."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class SMTPTarget:
    host: str  # the name as given, for SNI, certificate checks and the EHLO dialogue
    port: int
    # (family, sockaddr) of every address the name resolved to, all checked.
    addresses: tuple[tuple[int, tuple], ...]


# --- where we may connect -------------------------------------------------------


def allowed_ports() -> frozenset[int]:
    return SMTP_PORTS | frozenset(int(p) for p in settings.SMTP_TEST_EXTRA_PORTS)


def smtp_host_normalize(host: str) -> str:
    """The host name or address as we will resolve it; TargetRefused when malformed."""
    value = (host or "").strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    value = value.rstrip(".")
    if not value:
        raise TargetRefused("smtp_host", "Enter the SMTP server's host name.")
    if len(value) > 253 or any(c.isspace() or c in "/\\@?#" for c in value):
        raise TargetRefused("smtp_host", "Enter a host name or IP address, without a scheme, path or port.")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if ":" in value:
            raise TargetRefused("smtp_host", "Give the port in smtp_port, not in the host name.") from None
    return value


def smtp_port_check(port: int) -> None:
    ports = allowed_ports()
    if port not in ports:
        listed = ", ".join(str(p) for p in sorted(ports))
        raise TargetRefused("smtp_port", f"Port {port} is not an SMTP port. Allowed ports: {listed}.")


def _refused_address() -> TargetRefused:
    # One answer for "resolves to a private address" and "does not resolve",
    # naming no address: otherwise the endpoint would tell a tenant which
    # names exist on our internal DNS.
    return TargetRefused(
        "smtp_host",
        "This host does not resolve to a public address. SMTP servers must be reachable on the public internet.",
    )


def smtp_target_check(*, host: str, port: int) -> str:
    """The checks that need no DNS: syntax, port, and a literal address's range.

    `smtp_target_resolve` runs these first, then resolves the name.
    """
    host = smtp_host_normalize(host)
    smtp_port_check(port)
    names, networks = _allow_list()
    if host.lower() in names:
        return host
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            raise _refused_address() from None
        return host
    if not _address_allowed(literal, networks):
        raise _refused_address()
    return host


def smtp_target_resolve(*, host: str, port: int) -> SMTPTarget:
    """Resolve and check a platform SMTP server before connecting to it.

    Raises TargetRefused: nothing was contacted but DNS.
    """
    host = smtp_target_check(host=host, port=port)
    names, networks = _allow_list()
    try:
        infos = _getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise _refused_address() from None
    addresses: list[tuple[int, tuple]] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if host.lower() not in names and not _address_allowed(ip, networks):
            raise _refused_address()
        if (family, sockaddr) not in addresses:
            addresses.append((family, sockaddr))
    if not addresses:
        raise _refused_address()
    return SMTPTarget(host=host, port=port, addresses=tuple(addresses))


# --- how we connect -------------------------------------------------------------


class _Deadline:
    """A hard limit on a whole SMTP conversation.

    Socket timeouts bound each read; a server that trickles a byte at a time
    could still hold us for minutes. When the deadline passes, the watchdog
    shuts the sockets down and the blocked read returns at once.
    """

    def __init__(self, seconds: float | None):
        # None: no overall limit (long-lived connections of the email backend).
        self.seconds = seconds
        self.expires = time.monotonic() + seconds if seconds is not None else float("inf")
        self.greeted = False  # the peer answered with an SMTP 220 greeting
        self._sockets: list[socket.socket] = []
        self._connections: list[smtplib.SMTP] = []
        self._timer: threading.Timer | None = None

    def remaining(self) -> float:
        return max(0.0, self.expires - time.monotonic())

    def track(self, sock: socket.socket) -> None:
        self._sockets.append(sock)

    def track_connection(self, connection: smtplib.SMTP) -> None:
        # After STARTTLS the connection's socket is a new (TLS) object; look it
        # up when the deadline fires rather than remembering the plain one.
        self._connections.append(connection)

    def start(self) -> None:
        if self.seconds is None:
            return
        self.expires = time.monotonic() + self.seconds
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _expire(self) -> None:
        current = [getattr(c, "sock", None) for c in self._connections]
        for sock in [*self._sockets, *(s for s in current if s is not None)]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _connect_checked(target: SMTPTarget, deadline: _Deadline, timeout: float) -> socket.socket:
    """A TCP connection to the first checked address that answers."""
    error: OSError = TimeoutError("SMTP deadline passed")
    for family, sockaddr in target.addresses:
        remaining = deadline.remaining()
        if remaining <= 0:
            break
        sock = socket.socket(family, socket.SOCK_STREAM)
        deadline.track(sock)
        sock.settimeout(min(timeout, remaining))
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        sock.settimeout(timeout)
        return sock
    raise error


class _PinnedMixin:
    """Connects to the checked addresses instead of resolving the host again."""

    def __init__(self, *args, target: SMTPTarget, deadline: _Deadline, **kwargs):
        self._target = target
        self._deadline = deadline
        deadline.track_connection(self)
        super().__init__(*args, **kwargs)

    def connect(self, host="localhost", port=0, source_address=None):
        code, msg = super().connect(host, port, source_address)
        if code == 220:
            self._deadline.greeted = True
        return code, msg

    def _checked_socket(self, timeout):
        return _connect_checked(self._target, self._deadline, timeout)


class PinnedSMTP(_PinnedMixin, smtplib.SMTP):
    def _get_socket(self, host, port, timeout):
        return self._checked_socket(timeout)


class PinnedSMTP_SSL(_PinnedMixin, smtplib.SMTP_SSL):
    def _get_socket(self, host, port, timeout):
        # `self._host` is the name (smtplib.connect sets it), so the
        # certificate is checked against the name, not the address.
        return self.context.wrap_socket(self._checked_socket(timeout), server_hostname=self._host)


class PinnedEmailBackend(DjangoSMTPBackend):
    """Django's SMTP backend, connecting only to a checked `SMTPTarget`.

    The platform email backend uses it for a platform's own server, so mail
    and the live test take the same path, certificate checks included.
    """

    def __init__(self, *, target: SMTPTarget, deadline: _Deadline | None = None, **kwargs):
        kwargs.setdefault("timeout", settings.SMTP_TEST_CONNECT_TIMEOUT)
        super().__init__(host=target.host, port=target.port, **kwargs)
        self.target = target
        self.deadline = deadline or _Deadline(None)

    @property
    def connection_class(self):
        cls = PinnedSMTP_SSL if self.use_ssl else PinnedSMTP
        return functools.partial(cls, target=self.target, deadline=self.deadline)


# --- the live test (IBL §7.4) -------------------------------------------------------


def _server_reply(exc: smtplib.SMTPException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()), (0, b""))
    else:
        code, text = getattr(exc, "smtp_code", 0), getattr(exc, "smtp_error", b"")
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".strip()[:200]


def smtp_test_send(
    *,
    platform: Platform,
    host: str,
    port: int,
    username: str,
    password: str,
    use_tls: bool,
    use_ssl: bool,
    from_email: str,
    to_email: str,
) -> None:
    """Send one test email through the given server; raise what went wrong.

    TargetRefused: refused before connecting (bad host, port or address range).
    SMTPTestFailed: the attempt failed; its message is safe to show the caller.

    This probes credentials the admin has not saved yet, so it talks to the
    server directly and writes no notification row.
    """
    target = smtp_target_resolve(host=host, port=port)
    deadline = _Deadline(settings.SMTP_TEST_TOTAL_TIMEOUT)
    backend = PinnedEmailBackend(
        target=target,
        deadline=deadline,
        username=username,
        password=password,
        use_tls=use_tls,
        use_ssl=use_ssl,
        fail_silently=False,
    )
    name = platform.site_name or platform.name or platform.key
    message = EmailMessage(
        subject=f"SMTP test from {name}",
        body=(
            f"This is a test email from {name}'s notification service.\n\n"
            f"It was sent through {target.host}:{target.port} to check the SMTP settings. "
            "If you are reading it, the settings work."
        ),
        from_email=from_email,
        to=[to_email],
    )
    deadline.start()
    try:
        backend.open()
        msg = message.message()
        backend.connection.sendmail(
            sanitize_address(from_email, message.encoding or settings.DEFAULT_CHARSET),
            [sanitize_address(to_email, message.encoding or settings.DEFAULT_CHARSET)],
            msg.as_bytes(linesep="\r\n"),
        )
    except smtplib.SMTPAuthenticationError:
        raise SMTPTestFailed(AUTH_FAILED) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise SMTPTestFailed(AUTH_NOT_OFFERED if "AUTH" in str(exc) else STARTTLS_NOT_OFFERED) from None
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        raise SMTPTestFailed(f"SMTP test failed: The server refused the test email ({_server_reply(exc)}).") from None
    except ssl.SSLError:
        # Before the greeting a TLS failure only says "something listens here".
        raise SMTPTestFailed(TLS_FAILED if deadline.greeted else CONNECTION_FAILED) from None
    except (OSError, smtplib.SMTPException) as exc:
        logger.info("SMTP test for %s to %s:%s failed: %r", platform.key, target.host, target.port, exc)
        raise SMTPTestFailed(CONNECTION_FAILED) from None
    finally:
        deadline.cancel()
        try:
            backend.close()
        except (OSError, smtplib.SMTPException):
            pass  # the outcome is already decided; a rude goodbye changes nothing


# --- saved settings (IBL §11) -----------------------------------------------------


def smtp_settings_save(
    *,
    platform: Platform,
    host: str,
    port: int,
    username: str = "",
    password: str | None = None,
    use_tls: bool = True,
    use_ssl: bool = False,
    from_email: str = "",
    timeout: int = 10,
    is_active: bool = True,
) -> PlatformSMTPSettings:
    """Create or replace a platform's SMTP server; `password=None` keeps the stored one."""
    if use_tls and use_ssl:
        raise TargetRefused("use_ssl", "use_tls and use_ssl are mutually exclusive.")
    # Resolved and checked now, so nothing that leads to a private address is stored.
    host = smtp_target_resolve(host=host, port=port).host
    with transaction.atomic():
        current = PlatformSMTPSettings.objects.select_for_update().filter(platform=platform).first()
        obj = current or PlatformSMTPSettings(platform=platform)
        obj.host = host
        obj.port = port
        obj.username = username
        if password is not None:
            obj.password = password
        obj.use_tls = use_tls
        obj.use_ssl = use_ssl
        obj.from_email = from_email
        obj.timeout = timeout
        obj.is_active = is_active
        obj.save()
    return obj


def smtp_settings_reset(*, platform: Platform) -> bool:
    """Drop the platform's own server; its mail goes through the project's again."""
    deleted, _ = PlatformSMTPSettings.objects.filter(platform=platform).delete()
    return bool(deleted)
