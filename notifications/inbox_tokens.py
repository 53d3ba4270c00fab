"""Short-lived tokens scoped to one user's inbox on one platform, and the origins that may use them.

A page that embeds `<notify-inbox>` must never hold a long-lived API token: a
script on that page (or an extension, or a leaked log) would own the user's
whole account. The platform's backend asks `POST /api/v1/inbox-tokens` (a
service account with `notifications.inbox_token`) for a token that lives
minutes (`INBOX_TOKEN_TTL_SECONDS`) and may only list, count, mark and dismiss
that user's notifications on that platform and open the WebSocket. The page
gets a fresh one from its backend before the old one runs out.

The scope is data on the token (`AuthToken.scope`, `AuthToken.platform`) and
is enforced in one place, `TokenAuthentication`: a scoped token is refused
(403) by every view that does not list its scope in `token_scopes`, and its
platform is the request's platform (`tenancy.platform_for_request`). The
WebSocket consumer applies the same rules to the socket.

Origins: a platform lists the origins of its pages (`Platform.allowed_origins`).
Browsers on those origins may call the inbox endpoints (CORS, `cors_allowed`)
and open the socket, and only with an inbox token of that platform
(`origin_allowed`); our own pages (ALLOWED_HOSTS) are always allowed.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

from corsheaders.middleware import CorsMiddleware
from django.conf import settings
from django.utils.http import is_same_domain

from notifications.models import AuthToken, Platform, TokenScope, normalize_origin

INBOX_TOKEN_NAME = "inbox"
# The endpoints a page of another site calls: the inbox, nothing else.
INBOX_CORS_PATHS = re.compile(r"^/api/v1/notifications(/unread|/read-all|/[0-9a-fA-F-]{36}/(read|dismiss))?$")


def inbox_token_issue(*, user, platform: Platform, ttl_seconds: int | None = None) -> tuple[AuthToken, str]:
    """A new inbox-scoped token for `user` on `platform`; the raw value is returned once."""
    ttl = timedelta(seconds=ttl_seconds or settings.INBOX_TOKEN_TTL_SECONDS)
    return AuthToken.issue(user=user, name=INBOX_TOKEN_NAME, ttl=ttl, scope=TokenScope.INBOX, platform=platform)


def tokens_revoke(*, token_ids: list[int], user) -> int:
    """Revoke the given tokens of `user` and close the sockets they opened; how many were active."""
    from notifications.credentials import tokens_revoke as revoke

    return revoke(tokens=AuthToken.objects.active().filter(user=user, pk__in=token_ids))


def inbox_tokens_purge(*, older_than: timedelta = timedelta(days=1)) -> int:
    """Delete inbox tokens that ended (expired or revoked) more than `older_than` ago.

    A page mints one every few minutes, so they would pile up; a full token is
    kept as the record of a device and is never purged here.
    """
    from django.db.models import Q
    from django.utils import timezone

    cutoff = timezone.now() - older_than
    ended = Q(expires_at__lt=cutoff) | Q(revoked_at__lt=cutoff)
    deleted, _ = AuthToken.objects.filter(ended, scope=TokenScope.INBOX).delete()
    return deleted


def is_own_origin(origin: str) -> bool:
    """True for pages this service serves itself (the host is in ALLOWED_HOSTS)."""
    host = urlsplit(origin).hostname or ""
    allowed = settings.ALLOWED_HOSTS
    return any(pattern == "*" or is_same_domain(host, pattern.lower()) for pattern in allowed)


def origin_allowed(*, origin: str, token: AuthToken) -> bool:
    """May a browser page on `origin` use `token`?

    Our own pages may use any token. A foreign page only an inbox token of a
    platform that lists its origin: a full token has no business in a page of
    another site, and a platform's origins say nothing about another platform.
    """
    if not origin or is_own_origin(origin):
        return True
    if token.scope != TokenScope.INBOX or token.platform is None:
        return False
    return normalize_origin(origin) in token.platform.origin_list


def cors_allowed(sender, request, **kwargs) -> bool:
    """django-cors-headers' `check_request_enabled`: origins some active platform lists.

    A preflight carries no token, so this can only say "some platform embeds
    the inbox there"; `origin_allowed` then ties each request to its token's
    own platform. Only the inbox endpoints (INBOX_CORS_PATHS): the signal
    overrides django-cors-headers' own CORS_URLS_REGEX.
    """
    origin = request.headers.get("Origin")
    if not origin or not INBOX_CORS_PATHS.match(request.path_info):
        return False
    wanted = normalize_origin(origin)
    rows = Platform.objects.filter(is_active=True).exclude(allowed_origins="").values_list("allowed_origins", flat=True)
    return any(wanted in (normalize_origin(line) for line in text.split()) for text in rows)


class InboxCorsMiddleware(CorsMiddleware):
    """django-cors-headers' middleware, run synchronously.

    Its `check_request_enabled` signal (`cors_allowed`) reads the platforms'
    origins from the database; in the async mode django-cors-headers prefers
    under ASGI that query would run on the event loop, which Django refuses.
    """

    async_capable = False
