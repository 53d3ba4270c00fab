"""One token store for every surface: `Token <t>` and `Bearer <t>` both work."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from notifications.auth_cache import credentials_for
from notifications.models import AuthToken, hash_token

KEYWORDS = (b"token", b"bearer")
# last_used_at is bookkeeping; writing it on every request would turn reads into writes.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def token_lookup(raw: str, *, annotations: dict | None = None) -> AuthToken | None:
    """The active token for a raw value, with its user, or None.

    `annotations` ride along in the same query (the WebSocket handshake adds
    the membership it needs, so a connect costs one query).
    """
    return tokens_lookup([raw], annotations=annotations).get(raw)


def tokens_lookup(raws, *, annotations: dict | None = None) -> dict[str, AuthToken]:
    """raw value -> active token with an active user, for many raw values in one query.

    The WebSocket handshakes that arrive together are authenticated together
    (notifications/consumers.py): a reconnect of thousands of clients is a few
    queries, not thousands.
    """
    hashes = {hash_token(raw): raw for raw in raws if raw and len(raw) <= 200}
    found = _tokens_by_hash(list(hashes), annotations=annotations)
    return {hashes[key_hash]: token for key_hash, token in found.items()}


def _token_by_hash(key_hash: str) -> AuthToken | None:
    return _tokens_by_hash([key_hash]).get(key_hash)


def _tokens_by_hash(key_hashes: list[str], *, annotations: dict | None = None) -> dict[str, AuthToken]:
    if not key_hashes:
        return {}
    # The password hash is never needed to serve a request, and must not sit in the credentials cache.
    tokens = AuthToken.objects.active().select_related("user", "platform").defer("user__password")
    tokens = tokens.filter(key_hash__in=key_hashes).annotate(**(annotations or {}))
    found = {token.key_hash: token for token in tokens if token.user.is_active}
    now = timezone.now()
    stale = [t.pk for t in found.values() if t.last_used_at is None or now - t.last_used_at > LAST_USED_RESOLUTION]
    if stale:
        AuthToken.objects.filter(pk__in=stale).update(last_used_at=now)
    return found


def scope_check(request, token: AuthToken) -> None:
    """Where a scoped token may go: only views that list its scope in `token_scopes`.

    Deny by default, so a view added later is closed to inbox tokens until it
    says otherwise. DRF hands the view to authentication in `parser_context`.
    A browser page of another site must be one the token's platform lists.
    """
    from notifications.inbox_tokens import origin_allowed

    view = (getattr(request, "parser_context", None) or {}).get("view")
    if token.scope not in getattr(view, "token_scopes", ()):
        raise exceptions.PermissionDenied("This token only gives access to one user's inbox.")
    if not origin_allowed(origin=request.headers.get("Origin", ""), token=token):
        raise exceptions.PermissionDenied("This token may not be used from this origin.")


class TokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in KEYWORDS:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: expected '<Token|Bearer> <token>'.")
        try:
            raw = parts[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid token.") from exc
        creds = None
        if raw and len(raw) <= 200:
            key_hash = hash_token(raw)
            creds = credentials_for(key_hash, lookup=lambda: _token_by_hash(key_hash))
        if creds is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        token = creds.token
        # The caller's platforms and keys ride on the token (`permissions.request_permissions`).
        token.credentials = creds
        if token.scope:
            scope_check(request, token)
        return token.user, token

    def authenticate_header(self, request):
        # Having a challenge makes DRF answer 401 (not 403) to anonymous calls.
        return 'Bearer realm="api"'
