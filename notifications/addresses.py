"""Is an address one we may dial out to: public, or allow-listed by the operator.

Anything that connects to a host a tenant names (platform SMTP servers in
`notifications.smtp`, webhook endpoints in `webhooks.targets`) checks every
address the host resolves to here. `ipaddress`'s `is_global` is not enough on
its own: multicast and reserved ranges, addresses hidden inside IPv4-mapped,
NAT64, 6to4 and Teredo addresses, and the ranges newer Pythons no longer call
global (`NOT_GLOBAL`) are refused too. Allow-lists (`SMTP_TEST_ALLOWED_HOSTS`,
`WEBHOOK_ALLOWED_HOSTS`) name hosts, addresses or networks.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings

# The two IPv6 prefixes that carry an IPv4 address in their last 32 bits (RFC 6052, RFC 8215).
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


# Ranges that Python 3.11's `is_global` still calls global but that are not
# reachable public unicast (IANA special-purpose registries; later Pythons
# agree for most of them).
NOT_GLOBAL = tuple(
    ipaddress.ip_network(net)
    for net in (
        "192.88.99.0/24",  # 6to4 relay anycast, deprecated (RFC 7526)
        "fec0::/10",  # site-local, deprecated (RFC 3879); fec0::1 .. feff::...
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 SIDs (RFC 9602)
        "100::/64",  # discard-only (RFC 6666)
        "2001:2::/48",  # benchmarking (RFC 5180)
        "2001:10::/28",  # ORCHID, deprecated (RFC 4843)
        "2001:20::/28",  # ORCHIDv2 (RFC 7343)
    )
)


def _allow_list(entries=None) -> tuple[set[str], list]:
    """Names and networks of an allow-list setting (SMTP_TEST_ALLOWED_HOSTS unless given another)."""
    names: set[str] = set()
    networks = []
    for entry in settings.SMTP_TEST_ALLOWED_HOSTS if entries is None else entries:
        entry = entry.strip().lower().strip("[]").rstrip(".")
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry)
    return names, networks


def is_public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for an address on the public internet.

    `is_global` alone is not enough: it is True for multicast, and in Python
    3.11 an IPv6 address that embeds an IPv4 one is judged by its prefix, not
    by the address it leads to.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public_address(ip.ipv4_mapped)
        if any(ip in net for net in _NAT64):
            return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        embedded = [ip.sixtofour, *(ip.teredo or ())]
        if any(e is not None and not is_public_address(e) for e in embedded):
            return False
    if any(ip.version == net.version and ip in net for net in NOT_GLOBAL):
        return False
    return bool(
        ip.is_global
        and not ip.is_multicast
        and not ip.is_reserved
        and not ip.is_private
        and not ip.is_loopback
        and not ip.is_link_local
        and not ip.is_unspecified
    )


def allow_list(entries) -> tuple[set[str], list]:
    """(names, networks) of an allow-list like SMTP_TEST_ALLOWED_HOSTS, for other code dialling out."""
    return _allow_list(entries)


def address_allowed(ip, networks) -> bool:
    """Public, or inside one of the allow-listed `networks`."""
    return _address_allowed(ip, networks)


def _address_allowed(ip, networks) -> bool:
    return is_public_address(ip) or any(ip.version == net.version and ip in net for net in networks)
