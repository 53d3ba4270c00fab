"""The in-app WebSocket: `GET /api/v1/ws/connect?token=<token>`.

The token travels in the query string (browsers cannot set headers on a
WebSocket); `notifications.logging.RedactTokensFilter` keeps it out of every
log line, uvicorn's access log included. A missing or bad token, or a user
without `notifications.ws_connect`, is refused before the handshake completes
(HTTP 403), so a client never sees an open socket it cannot use.

An inbox token (notifications/inbox_tokens.py) opens a socket that carries
only its platform's notifications, may come from a page of an origin its
platform lists, and closes (4401) when the token expires or is revoked; the
client then reconnects with a fresh token.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlparse

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.utils import timezone

from notifications.authentication import token_lookup
from notifications.inbox_tokens import origin_allowed
from notifications.permissions import has_key
from notifications.realtime import token_group, user_group

# Close code of a socket whose token expired or was revoked.
CLOSE_TOKEN_ENDED = 4401


class BrowserOriginValidator(OriginValidator):
    """Refuse browsers on foreign origins; let native clients in.

    Browsers always send Origin on a WebSocket handshake, so a page on another
    site is turned away (its Origin is not one of ALLOWED_HOSTS). Mobile and
    server clients usually send none, and for them an Origin check proves
    nothing (they could send any value); the token is what authenticates them.
    channels' own AllowedHostsOriginValidator refuses a missing Origin, which
    would lock out the mobile apps the bulk document addresses.
    """

    def valid_origin(self, parsed_origin):
        if parsed_origin is None:
            return True
        return self.validate_origin(parsed_origin)

    async def __call__(self, scope, receive, send):
        origin = dict(scope.get("headers", [])).get(b"origin", b"").decode("latin1")
        if origin and not self.valid_origin(urlparse(origin)):
            # A page of another site: only an inbox token of a platform that
            # lists this origin may open a socket. The consumer decides, as
            # only it knows the token.
            return await self.application({**scope, "foreign_origin": origin}, receive, send)
        return await super().__call__(scope, receive, send)


def allowed_hosts_origin_validator(application):
    """ALLOWED_HOSTS as the list of allowed origins (as channels does; DEBUG adds localhost)."""
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return BrowserOriginValidator(application, allowed_hosts)


@database_sync_to_async
def _authorised_token(raw: str, origin: str):
    token = token_lookup(raw)
    if token is None or not has_key(token.user, "notifications.ws_connect"):
        return None
    if not origin_allowed(origin=origin, token=token):
        return None
    if token.platform is not None:
        from notifications.tenancy import is_member

        if not token.platform.is_active or not is_member(token.user, token.platform):
            return None
    return token


class NotificationConsumer(AsyncJsonWebsocketConsumer):
    groups_joined: tuple[str, ...] = ()
    # Set for sockets of a scoped token: only this platform's messages pass.
    platform_id: int | None = None
    _expiry: asyncio.Task | None = None

    async def connect(self):
        query = parse_qs(self.scope.get("query_string", b"").decode())
        raw = (query.get("token") or [""])[0]
        token = await _authorised_token(raw, self.scope.get("foreign_origin", "")) if raw else None
        if token is None:
            await self.close(code=CLOSE_TOKEN_ENDED)  # before accept: the server answers the handshake with 403
            return
        self.scope["user"] = token.user
        self.platform_id = token.platform_id
        self.groups_joined = (user_group(token.user.pk), token_group(token.pk))
        # Join before accepting: a notification created right after the
        # client sees the socket open must reach it.
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        if token.expires_at is not None:
            self._expiry = asyncio.ensure_future(self._close_at((token.expires_at - timezone.now()).total_seconds()))

    async def _close_at(self, seconds: float):
        await asyncio.sleep(max(seconds, 0))
        await self.close(code=CLOSE_TOKEN_ENDED)

    async def disconnect(self, code):
        if self._expiry is not None:
            self._expiry.cancel()
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    def _passes(self, event) -> bool:
        return self.platform_id is None or event.get("platform_id") == self.platform_id

    async def token_revoked(self, event):
        await self.close(code=CLOSE_TOKEN_ENDED)

    async def inbox_changed(self, event):
        if self._passes(event):
            await self.send_json(
                {
                    "type": "INBOX_UPDATED",
                    "platform": event["platform"],
                    "ids": event["ids"],
                    "status": event["status"],
                    "unread": event["unread"],
                }
            )

    async def receive_json(self, content, **kwargs):
        # The socket is server-to-client; a ping gets a pong so clients can keep it alive.
        if isinstance(content, dict) and content.get("type") == "PING":
            await self.send_json({"type": "PONG"})

    async def notification_created(self, event):
        if not self._passes(event):
            return
        await self.send_json(
            {"type": "CREATED_NOTIFICATION", "recipient_id": event["recipient_id"], "payload": event["payload"]}
        )
