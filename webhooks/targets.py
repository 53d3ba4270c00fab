"""Where a webhook may be posted: public addresses only, connected to as checked.

An endpoint URL names a host of the tenant's choice, reached from inside our
network, so it gets the checks platform SMTP servers get (`notifications.smtp`,
`notifications.addresses`):

- the scheme is http or https, with no user info; any port;
- the host is resolved and every address must be public (`notifications.addresses.is_public_address`:
  no loopback, private, link-local, reserved, multicast, nor those hidden in
  IPv4-mapped, NAT64, 6to4 or Teredo addresses) unless the host, the address
  or its network is listed in `WEBHOOK_ALLOWED_HOSTS` (tests allow loopback);
- the check runs when an endpoint is saved (API and admin), and again in
  every delivery task (for its batch), since a name may resolve differently later;
- the connection goes to the checked addresses, never to a fresh resolution
  (no DNS rebinding); TLS still verifies the certificate against the name
  (SNI and Host carry the name); connections are kept alive for a task's batch;
- redirects are not followed (a 3xx is a failed attempt); every socket
  operation times out after `WEBHOOK_TIMEOUT_SECONDS` and a whole attempt
  after twice that (`delivery`'s watchdog: a receiver trickling its answer).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from notifications import smtp
from notifications.addresses import address_allowed, allow_list

REFUSED = "This URL does not resolve to a public address. Webhook endpoints must be reachable on the public internet."


class EndpointRefused(Exception):
    """The URL is not one we post to; nothing was contacted but DNS."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # the name, for the Host header, SNI and certificate checks
    port: int
    path: str  # path and query, as sent on the request line
    addresses: tuple[tuple[int, tuple], ...]  # (family, sockaddr) of every checked address


def _parts(url: str):
    value = (url or "").strip()
    if len(value) > 2000 or any(c.isspace() for c in value):
        raise EndpointRefused("Enter a valid URL.")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise EndpointRefused("Enter a valid URL.") from None
    if parts.scheme not in ("http", "https"):
        raise EndpointRefused("The URL must start with https:// (or http://).")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise EndpointRefused("The URL must not carry a user name or password.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise EndpointRefused("Enter a valid URL.")
    port = port or (443 if parts.scheme == "https" else 80)
    if not 0 < port < 65536:
        raise EndpointRefused("Enter a valid URL.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port, path


def endpoint_url_check(url: str) -> str:
    """The URL, normalised, once it passes every check (DNS included); EndpointRefused otherwise."""
    target_resolve(url)
    return url.strip()


def target_resolve(url: str) -> Target:
    scheme, host, port, path = _parts(url)
    names, networks = allow_list(settings.WEBHOOK_ALLOWED_HOSTS)
    listed = host.lower() in names
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
        if not listed and (host.lower() == "localhost" or host.lower().endswith(".localhost")):
            raise EndpointRefused(REFUSED) from None
    if literal is not None and not listed and not address_allowed(literal, networks):
        raise EndpointRefused(REFUSED)
    try:
        infos = smtp._getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        # The same answer as a private address: we say nothing about our internal DNS.
        raise EndpointRefused(REFUSED) from None
    addresses: list[tuple[int, tuple]] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if not listed and not address_allowed(ip, networks):
            raise EndpointRefused(REFUSED)
        if (family, sockaddr) not in addresses:
            addresses.append((family, sockaddr))
    if not addresses:
        raise EndpointRefused(REFUSED)
    return Target(scheme=scheme, host=host, port=port, path=path, addresses=tuple(addresses))


def _connect(target: Target, timeout: float) -> socket.socket:
    error: OSError = OSError("no address")
    for family, sockaddr in target.addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        # Without this, a request written in two sends (a large body) waits on a kept-alive
        # connection for the receiver's delayed ACK of the first (~40 ms a request).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    raise error


class PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self.target = target

    def connect(self):
        self.sock = _connect(self.target, self.timeout)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self.target = target

    def connect(self):
        sock = _connect(self.target, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.target.host)


def connection_open(target: Target) -> http.client.HTTPConnection:
    """A connection (not yet opened) that will dial only the checked addresses."""
    timeout = float(settings.WEBHOOK_TIMEOUT_SECONDS)
    cls = PinnedHTTPSConnection if target.scheme == "https" else PinnedHTTPConnection
    return cls(target, timeout)
