"""Open WebSockets end with the credentials they were opened with.

A socket lives as long as its token, its user and its membership. Whatever
ends one of them tells the sockets at once over the channel layer:

- `tokens_revoke` (the API, the admin action, `revoke_tokens`) sends
  `credentials.revoked` to each token's group: its sockets close with 4401;
- membership changes and user deactivation (`notifications.signals`) send
  `credentials.check` to the user's group: each socket asks the one
  authorisation path again and closes with 4401 (token or user no longer
  valid) or 4403 (no longer allowed on its platform).

Messages go after commit, so a rolled-back change closes nothing. Each ASGI process
also re-checks its sockets every `WEBSOCKET_RECHECK_SECONDS` and each closes at
its token's expiry, which covers what bypasses these calls (a raw UPDATE, a lost message).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from notifications.realtime import groups_send_sync, user_group

logger = logging.getLogger(__name__)

# WebSocket close codes (documented in the README and docs/architecture.md).
CLOSE_UNAUTHENTICATED = 4401  # token revoked or expired, user deactivated or deleted
CLOSE_FORBIDDEN = 4403  # membership ended or deactivated: no longer allowed on the socket's platform

REVOKED = "credentials.revoked"
CHECK = "credentials.check"


def token_group(token_id: int) -> str:
    return f"token.{token_id}"


def _send(messages: list[tuple[str, dict]]) -> None:
    # The batched send, through each process's socket hub: in order with the
    # notifications sent after it (notifications/realtime.py).
    if get_channel_layer() is None or not messages:
        return
    try:
        groups_send_sync(messages)
    except Exception:
        logger.exception("could not tell %s socket group(s) that their credentials ended", len(messages))


def sockets_close_for_tokens(*, token_ids: Iterable[int]) -> None:
    """Close every socket opened with these tokens (4401), once the current transaction commits."""
    messages = [(token_group(pk), {"type": REVOKED}) for pk in token_ids]
    if messages:
        transaction.on_commit(lambda: _send(messages))


def sockets_recheck_for_users(*, user_ids: Iterable[int]) -> None:
    """Make every socket of these users check its credentials again, once the transaction commits."""
    messages = [(user_group(pk), {"type": CHECK}) for pk in set(user_ids)]
    if messages:
        transaction.on_commit(lambda: _send(messages))


def tokens_revoke(*, tokens) -> int:
    """Revoke the active tokens of a queryset and close their sockets; returns how many were revoked."""
    from notifications.models import AuthToken

    with transaction.atomic():
        ids = list(tokens.filter(revoked_at__isnull=True).values_list("pk", flat=True))
        revoked = AuthToken.objects.filter(pk__in=ids, revoked_at__isnull=True).update(revoked_at=timezone.now())
        sockets_close_for_tokens(token_ids=ids)
    return revoked
