"""The in-app WebSocket: `GET /api/v1/ws/connect?token=<token>`."""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from notifications.authentication import token_lookup
from notifications.permissions import has_key
from notifications.realtime import user_group


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
            await self.close(code=4401)  # refused before accept: the handshake fails
            return
        self.scope["user"] = user
        self.group = user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
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
