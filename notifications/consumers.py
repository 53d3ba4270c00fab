"""The in-app WebSocket: `GET /api/v1/ws/connect?token=<token>[&platform=<key>]`.

The token travels in the query string (browsers cannot set headers on a
WebSocket); `notifications.logging.RedactTokensFilter` keeps it out of every
log line, uvicorn's access log included.

A socket serves one platform, resolved as on `/api/v1`: the one `?platform=`
(or an `X-Platform` header) names, else the user's only membership. A missing
or bad token, an ambiguous or foreign platform, or a user without
`notifications.ws_connect` on it is refused before the handshake completes
(HTTP 403), so a client never sees an open socket it cannot use. The socket
forwards that platform's notifications only.

An open socket ends with its credentials (`notifications.credentials`): close
code 4401 when its token is revoked or expires or its user is deactivated,
4403 when the membership ends or no longer allows the socket. Nothing is sent
after that moment.

An inbox token (notifications/inbox_tokens.py) is bound to its own platform,
may open a socket from a page of an origin its platform lists, and closes
(4401) when it expires or is revoked; the client then reconnects with a fresh
token.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs, urlparse

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.db.models import Exists, F, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from notifications import metrics
from notifications.authentication import token_lookup
from notifications.credentials import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, token_group
from notifications.inbox_tokens import origin_allowed
from notifications.models import AuthToken, Membership, Platform
from notifications.permissions import keys_for_role, platform_permissions
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


WS_CONNECT = "notifications.ws_connect"


@dataclass(frozen=True)
class SocketGrant:
    """What a socket was opened with: the token, its user and the one platform it serves."""

    token_id: int
    user: object
    platform_id: int
    expires_at: datetime | None


def _membership_annotations(wanted: str) -> dict:
    """What the handshake needs besides the token, as subqueries of the token's own query.

    The socket's platform is the one `wanted` names, the inbox token's own, or
    else the user's only membership (as on `/api/v1`): the first two active
    memberships that fit tell which (a second one means ambiguous). A
    superuser may name a platform without a membership.
    """
    memberships = Membership.objects.filter(
        user_id=OuterRef("user_id"), is_active=True, platform__is_active=True
    ).order_by("platform_id")
    if wanted:
        memberships = memberships.filter(platform__key=wanted[:100])
    else:
        # An inbox token (platform set) serves its own platform; a full one (NULL) any.
        memberships = memberships.filter(platform_id=Coalesce(OuterRef("platform_id"), F("platform_id")))
    annotations = {
        "ws_platform_id": Subquery(memberships.values("platform_id")[:1]),
        "ws_role": Subquery(memberships.values("role")[:1]),
        "ws_second_platform_id": Subquery(memberships.values("platform_id")[1:2]),
    }
    if wanted:
        named = Platform.objects.filter(key=wanted[:100], is_active=True)
        annotations["ws_named_platform_id"] = Subquery(named.values("pk")[:1])
    return annotations


def _authorise_sync(raw: str, wanted: str, origin: str) -> SocketGrant | None:
    """Who may open this socket, and for which platform: one query in the common case.

    The token, its user and platform, and the user's membership on the
    socket's platform come in one query. A role that holds `ws_connect` (every
    role does today) settles it; anything else asks `platform_permissions`,
    the one authorisation path, which also reads per-platform grants.
    """
    token = token_lookup(raw, annotations=_membership_annotations(wanted))
    if token is None:
        return None
    if not origin_allowed(origin=origin, token=token):
        return None
    if token.platform is not None and wanted and wanted != token.platform.key:
        return None  # an inbox token serves its own platform only
    if token.platform is not None and not token.platform.is_active:
        return None
    user = token.user
    if not wanted and token.ws_second_platform_id is not None:
        return None  # several platforms and none named
    platform_id = token.ws_platform_id
    if platform_id is None and user.is_superuser:
        # A superuser holds every key on any active platform, member or not.
        platform_id = token.platform_id if token.platform is not None else getattr(token, "ws_named_platform_id", None)
    if platform_id is None:
        return None
    allowed = user.is_superuser or WS_CONNECT in keys_for_role(token.ws_role)
    if not allowed:
        allowed = WS_CONNECT in platform_permissions(user, Platform.objects.filter(pk=platform_id).first())
    if not allowed:
        return None
    return SocketGrant(token_id=token.pk, user=user, platform_id=platform_id, expires_at=token.expires_at)


_authorise = database_sync_to_async(_authorise_sync)


@database_sync_to_async
def _close_code(grant: SocketGrant, *, full: bool) -> int | None:
    """None while the socket may stay open; else the code to close it with.

    `full` asks the one authorisation path (`platform_permissions`); the
    periodic safety net runs one indexed query instead: token still active,
    user active, membership on the platform active (every role holds
    ws_connect, so that is the same answer unless a grant was the reason).
    """
    if not full:
        membership = Membership.objects.filter(
            user_id=OuterRef("user_id"), platform_id=grant.platform_id, is_active=True, platform__is_active=True
        )
        row = (
            AuthToken.objects.active()
            .filter(pk=grant.token_id, user__is_active=True)
            .values_list("user__is_superuser", Exists(membership))
            .first()
        )
        if row is None:
            return CLOSE_UNAUTHENTICATED
        return None if any(row) else CLOSE_FORBIDDEN
    token = AuthToken.objects.active().select_related("user").filter(pk=grant.token_id).first()
    if token is None or not token.user.is_active:
        return CLOSE_UNAUTHENTICATED
    platform = Platform.objects.filter(pk=grant.platform_id).first()
    if WS_CONNECT not in platform_permissions(token.user, platform):
        return CLOSE_FORBIDDEN
    return None


class NotificationConsumer(AsyncJsonWebsocketConsumer):
    grant: SocketGrant | None = None
    groups_joined: tuple[str, ...] = ()
    # Set once the credentials stopped being valid: nothing is sent after that.
    ended = False
    watcher: asyncio.Task | None = None

    async def connect(self):
        query = parse_qs(self.scope.get("query_string", b"").decode())
        raw = (query.get("token") or [""])[0]
        wanted = (query.get("platform") or [""])[0] or _header(self.scope, b"x-platform")
        origin = self.scope.get("foreign_origin", "")
        grant = await _authorise(raw, wanted.strip(), origin) if raw else None
        if grant is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)  # before accept: the server answers the handshake with 403
            return
        self.grant = grant
        self.scope["user"] = grant.user
        # Join before accepting: a notification created right after the
        # client sees the socket open must reach it.
        self.groups_joined = (user_group(grant.user.pk), token_group(grant.token_id))
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        self.watcher = asyncio.create_task(self._watch())
        self.counted = True
        metrics.websocket_opened()

    async def disconnect(self, code):
        if getattr(self, "counted", False):
            self.counted = False
            metrics.websocket_closed()
        if self.watcher is not None:
            self.watcher.cancel()
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def _end(self, code: int) -> None:
        if self.ended:
            return
        self.ended = True
        await self.close(code=code)

    def _expired(self) -> bool:
        expires_at = self.grant.expires_at if self.grant else None
        return expires_at is not None and timezone.now() >= expires_at

    async def _watch(self) -> None:
        """Re-check the credentials every few seconds, and exactly when the token expires.

        It also renews the socket's group memberships every third of
        CHANNELS_GROUP_EXPIRY: channels-redis drops a membership older than
        that, which cleans up after a process that died with sockets open.
        """
        interval = settings.WEBSOCKET_RECHECK_SECONDS
        renew_every = settings.CHANNELS_GROUP_EXPIRY / 3
        renew_at = asyncio.get_running_loop().time() + renew_every
        # Sockets opened together spread their checks over the interval.
        delay = random.uniform(interval / 2, interval)
        while not self.ended:
            if asyncio.get_running_loop().time() >= renew_at:
                renew_at += renew_every
                for group in self.groups_joined:
                    await self.channel_layer.group_add(group, self.channel_name)
            if self.grant.expires_at is not None:
                until_expiry = (self.grant.expires_at - timezone.now()).total_seconds()
                delay = max(0.0, min(delay, until_expiry))
            await asyncio.sleep(delay)
            delay = interval
            if self.ended:
                return
            code = CLOSE_UNAUTHENTICATED if self._expired() else await _close_code(self.grant, full=False)
            if code is not None:
                await self._end(code)

    async def inbox_changed(self, event):
        if self.ended or event.get("platform_id") != self.grant.platform_id:
            return
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
        if self.ended:
            return
        if isinstance(content, dict) and content.get("type") == "PING":
            await self.send_json({"type": "PONG"})

    async def credentials_revoked(self, event):
        await self._end(CLOSE_UNAUTHENTICATED)

    async def credentials_check(self, event):
        if not self.ended:
            code = await _close_code(self.grant, full=True)
            if code is not None:
                await self._end(code)

    async def notification_created(self, event):
        if self.ended or event.get("platform_id") != self.grant.platform_id:
            return
        if self._expired():
            await self._end(CLOSE_UNAUTHENTICATED)
            return
        await self.send_json(
            {"type": "CREATED_NOTIFICATION", "recipient_id": event["recipient_id"], "payload": event["payload"]}
        )


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""
