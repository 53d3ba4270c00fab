"""The in-app WebSocket: `GET /api/v1/ws/connect?token=<token>`.

The token travels in the query string (browsers cannot set headers on a
WebSocket); `notifications.logging.RedactTokensFilter` keeps it out of every
log line, uvicorn's access log included. A missing or bad token, or a user
without `notifications.ws_connect`, is refused before the handshake completes
(HTTP 403), so a client never sees an open socket it cannot use.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.security.websocket import OriginValidator
from django.conf import settings

from notifications import metrics
from notifications.authentication import token_lookup
from notifications.permissions import has_key
from notifications.realtime import user_group


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


def allowed_hosts_origin_validator(application):
    """ALLOWED_HOSTS as the list of allowed origins (as channels does; DEBUG adds localhost)."""
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return BrowserOriginValidator(application, allowed_hosts)


@database_sync_to_async
def _authorised_user(raw: str):
    token = token_lookup(raw)
    if token is None or not has_key(token.user, "notifications.ws_connect"):
        return None
    return token.user


class NotificationConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None

    async def connect(self):
        query = parse_qs(self.scope.get("query_string", b"").decode())
        raw = (query.get("token") or [""])[0]
        user = await _authorised_user(raw) if raw else None
        if user is None:
            await self.close(code=4401)  # before accept: the server answers the handshake with 403
            return
        self.scope["user"] = user
        self.group = user_group(user.pk)
        # Join before accepting: a notification created right after the
        # client sees the socket open must reach it.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.counted = True
        metrics.websocket_opened()

    async def disconnect(self, code):
        if getattr(self, "counted", False):
            self.counted = False
            metrics.websocket_closed()
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        # The socket is server-to-client; a ping gets a pong so clients can keep it alive.
        if isinstance(content, dict) and content.get("type") == "PING":
            await self.send_json({"type": "PONG"})

    async def notification_created(self, event):
        await self.send_json(
            {"type": "CREATED_NOTIFICATION", "recipient_id": event["recipient_id"], "payload": event["payload"]}
        )
