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
import collections
import itertools
import json
import logging
import random
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs, urlparse

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.db.models import F, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from notifications import metrics
from notifications.auth_cache import Credentials, credentials_cached
from notifications.authentication import tokens_lookup
from notifications.credentials import CHECK, CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, REVOKED, token_group
from notifications.inbox_tokens import origin_allowed
from notifications.models import AuthToken, Membership, Platform, hash_token
from notifications.permissions import keys_for_role, platform_permissions
from notifications.realtime import socket_frame, user_group
from notifications.socket_hub import CLOSE_TRY_AGAIN, SocketHub


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
logger = logging.getLogger(__name__)


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


def _grant(token: AuthToken, wanted: str, origin: str) -> SocketGrant | None:
    """The socket a token (looked up with `_membership_annotations(wanted)`) may open, if any."""
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


def _grant_cached(creds: Credentials, wanted: str, origin: str) -> SocketGrant | None:
    """`_grant` from a token's cached credentials (`notifications.auth_cache`): the same rules, no query."""
    token = creds.token
    user = token.user
    if not user.is_active or not origin_allowed(origin=origin, token=token):
        return None
    if token.platform is not None:
        # An inbox token serves its own platform only.
        if (wanted and wanted != token.platform.key) or not token.platform.is_active:
            return None
        platform_id = token.platform_id if token.platform_id in creds.platforms else None
    elif wanted:
        platform = creds.platform_by_key(wanted[:100])
        platform_id = platform.pk if platform is not None else None
    else:
        # The user's only platform; several and none named is ambiguous.
        platform_id = next(iter(creds.platforms)) if len(creds.platforms) == 1 else None
    if platform_id is None or WS_CONNECT not in creds.keys.get(platform_id, ()):
        return None
    return SocketGrant(token_id=token.pk, user=user, platform_id=platform_id, expires_at=token.expires_at)


def _authorise_many_sync(requests: list[tuple[str, str, str]]) -> list[SocketGrant | None]:
    """Who may open each socket `(raw token, wanted platform, origin)`, and for which platform.

    First the tokens' cached credentials, the entries the REST API keeps
    (`notifications.auth_cache`), in one MGET: a client that called the API
    within AUTH_CACHE_SECONDS (the inbox element fetches the inbox, then
    opens its socket) is let in without a query. A superuser, whose rights
    reach platforms he is no member of, goes to the database.

    Then one query per distinct `wanted` (nearly always one) for the others:
    the tokens, their users and platforms, and each user's membership on the
    socket's platform. A role that holds `ws_connect` (every role does today)
    settles it; anything else asks `platform_permissions`, the one
    authorisation path, which also reads per-platform grants.
    """
    grants: list[SocketGrant | None] = [None] * len(requests)
    hashes = [hash_token(raw) if raw and len(raw) <= 200 else "" for raw, _, _ in requests]
    cached = credentials_cached([h for h in set(hashes) if h])
    by_wanted: dict[str, list[int]] = collections.defaultdict(list)
    for index, (_raw, wanted, origin) in enumerate(requests):
        creds = cached.get(hashes[index])
        if creds is not None and not creds.token.user.is_superuser:
            grants[index] = _grant_cached(creds, wanted, origin)
        elif hashes[index]:
            by_wanted[wanted].append(index)
    for wanted, indexes in by_wanted.items():
        tokens = tokens_lookup([requests[i][0] for i in indexes], annotations=_membership_annotations(wanted))
        for index in indexes:
            raw, _, origin = requests[index]
            token = tokens.get(raw)
            grants[index] = _grant(token, wanted, origin) if token is not None else None
    return grants


def _authorise_sync(raw: str, wanted: str, origin: str) -> SocketGrant | None:
    return _authorise_many_sync([(raw, wanted, origin)])[0]


_authorise_many = database_sync_to_async(_authorise_many_sync)

# Handshakes per database call at most.
HANDSHAKE_BATCH = 1000
# How long the first handshake of a batch waits for others. A lookup costs
# 5 to 10 ms of CPU however few tokens it reads (building and compiling the
# query, a pooled connection), 0.1 ms per token on top: during a wave of
# connects the batches that formed on their own held a score of handshakes,
# and the lookups cost 0.5 ms of CPU per connect; waiting 20 ms gathers three
# times as many and a third of the cost. 20 ms more on a handshake is nothing
# to a client.
HANDSHAKE_WAIT = 0.02


class _Handshakes:
    """The handshakes of an event loop, authenticated together.

    channels runs all database work of a process in one thread, and each call
    there opens a PostgreSQL connection (CONN_MAX_AGE 0): one query per
    handshake capped connects at well under a hundred a second. Handshakes
    that arrive while a lookup runs wait for the next one, which answers all
    of them in one query, so a reconnect of thousands of clients is a few
    queries whatever their number.
    """

    _by_loop: dict[asyncio.AbstractEventLoop, _Handshakes] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.pending: list[tuple[tuple[str, str, str], asyncio.Future]] = []
        self.task: asyncio.Task | None = None

    @classmethod
    async def authorise(cls, raw: str, wanted: str, origin: str) -> SocketGrant | None:
        loop = asyncio.get_running_loop()
        batcher = cls._by_loop.setdefault(loop, cls(loop))
        future = loop.create_future()
        batcher.pending.append(((raw, wanted, origin), future))
        if batcher.task is None:
            batcher.task = loop.create_task(batcher.run())
        return await future

    async def run(self) -> None:
        try:
            while self.pending:
                if len(self.pending) < HANDSHAKE_BATCH:
                    await asyncio.sleep(HANDSHAKE_WAIT)
                batch, self.pending = self.pending[:HANDSHAKE_BATCH], self.pending[HANDSHAKE_BATCH:]
                try:
                    grants = await _authorise_many([request for request, _ in batch])
                except Exception as error:  # noqa: BLE001 - each handshake fails with it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, future), grant in zip(batch, grants, strict=True):
                    if not future.done():
                        future.set_result(grant)
        finally:
            self.task = None
            if not self.pending and self._by_loop.get(self.loop) is self:
                del self._by_loop[self.loop]


@database_sync_to_async
def _close_code(grant: SocketGrant) -> int | None:
    """None while the socket may stay open; else the code to close it with (the one authorisation path)."""
    token = AuthToken.objects.active().select_related("user").filter(pk=grant.token_id).first()
    if token is None or not token.user.is_active:
        return CLOSE_UNAUTHENTICATED
    platform = Platform.objects.filter(pk=grant.platform_id).first()
    if WS_CONNECT not in platform_permissions(token.user, platform):
        return CLOSE_FORBIDDEN
    return None


RECHECK_CHUNK = 2000


@database_sync_to_async
def _close_codes(grants: list[SocketGrant]) -> dict[tuple[int, int], int]:
    """The periodic safety net for many sockets at once: (token, platform) -> close code, open ones left out.

    Two indexed queries per chunk of sockets, whatever their number: token
    still active with its user active, then the users' active memberships on
    active platforms (every role holds ws_connect, so that is the same answer
    as `platform_permissions` unless a grant was the reason; a superuser
    keeps any socket).
    """
    codes: dict[tuple[int, int], int] = {}
    for start in range(0, len(grants), RECHECK_CHUNK):
        chunk = grants[start : start + RECHECK_CHUNK]
        tokens = {
            pk: (user_id, is_superuser)
            for pk, user_id, is_superuser in AuthToken.objects.active()
            .filter(pk__in={grant.token_id for grant in chunk}, user__is_active=True)
            .values_list("pk", "user_id", "user__is_superuser")
        }
        members = set(
            Membership.objects.filter(
                user_id__in={user_id for user_id, _ in tokens.values()}, is_active=True, platform__is_active=True
            ).values_list("user_id", "platform_id")
        )
        for grant in chunk:
            row = tokens.get(grant.token_id)
            if row is None:
                codes[(grant.token_id, grant.platform_id)] = CLOSE_UNAUTHENTICATED
            elif not row[1] and (row[0], grant.platform_id) not in members:
                codes[(grant.token_id, grant.platform_id)] = CLOSE_FORBIDDEN
    return codes


class _Recheck:
    """Every WEBSOCKET_RECHECK_SECONDS, one check for all open sockets of this process (event loop).

    A check per socket would cost a query per socket and interval, all through
    channels' one database thread: at a thousand sockets it starved the
    handshakes and the message delivery queued behind it.
    """

    _by_loop: dict[asyncio.AbstractEventLoop, _Recheck] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.consumers: set[NotificationConsumer] = set()
        self.task: asyncio.Task | None = None

    @classmethod
    def join(cls, consumer: NotificationConsumer) -> None:
        loop = asyncio.get_running_loop()
        recheck = cls._by_loop.setdefault(loop, cls(loop))
        recheck.consumers.add(consumer)
        if recheck.task is None or recheck.task.done():
            recheck.task = loop.create_task(recheck.run())

    @classmethod
    def leave(cls, consumer: NotificationConsumer) -> None:
        recheck = cls._by_loop.get(asyncio.get_running_loop())
        if recheck is not None:
            recheck.consumers.discard(consumer)

    async def run(self) -> None:
        try:
            while self.consumers:
                await asyncio.sleep(settings.WEBSOCKET_RECHECK_SECONDS)
                live = [consumer for consumer in self.consumers if not consumer.ended]
                if not live:
                    continue
                try:
                    codes = await _close_codes([consumer.grant for consumer in live])
                except Exception:
                    logger.exception("WebSocket credentials re-check failed; retrying next interval")
                    continue
                for consumer in live:
                    code = codes.get((consumer.grant.token_id, consumer.grant.platform_id))
                    if code is not None:
                        await consumer._end(code)
        finally:
            if self._by_loop.get(self.loop) is self and not self.consumers:
                del self._by_loop[self.loop]


# Numbers the sockets of this process: with the layer's own random process
# prefix, a channel name no other socket has (what channels' uuid4 gave).
_socket_numbers = itertools.count(1)


class NotificationConsumer(AsyncJsonWebsocketConsumer):
    grant: SocketGrant | None = None
    groups_joined: tuple[str, ...] = ()
    # Set once the credentials stopped being valid: nothing is sent after that.
    ended = False
    watcher: asyncio.Task | None = None
    # Frames waiting for this socket, and the task that writes them (socket_hub.py).
    outbox: asyncio.Queue | None = None
    writer: asyncio.Task | None = None
    # While the credentials are being checked again, frames wait (and go only if they pass).
    hold: asyncio.Future | None = None
    on_hub = False

    async def __call__(self, scope, receive, send):
        """channels' consumer loop, without a channel-layer receive where the hub delivers.

        channels gives every consumer a channel (a uuid4) and a task that waits
        for messages on it, next to the one that waits for the client: two
        tasks per message and a receive registered with channels-redis per
        socket. On the Redis layer every message for a socket comes through
        the process's `SocketHub` (notifications/realtime.py sends nothing
        else to sockets), so the socket only waits for its client. The channel
        name stays: it is the socket's name in its groups and in the hub, and
        tells the senders its process. Other layers (in-memory, tests) keep
        channels' loop: their messages arrive through it.
        """
        layer = get_channel_layer(self.channel_layer_alias)
        if layer is None or not SocketHub.supports(layer):
            return await super().__call__(scope, receive, send)
        self.scope = scope
        self.channel_layer = layer
        self.channel_name = f"specific.{layer.client_prefix}!{next(_socket_numbers)}"
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message):
        """channels' dispatch without its thread hop before every handler.

        channels runs `close_old_connections` in its one database thread before
        each message, so every delivered notification and every handshake
        queued behind the others for that thread. This consumer reaches the
        database only through `database_sync_to_async`, which closes stale
        connections itself, in that thread, around each call.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self):
        query = parse_qs(self.scope.get("query_string", b"").decode())
        raw = (query.get("token") or [""])[0]
        wanted = (query.get("platform") or [""])[0] or _header(self.scope, b"x-platform")
        origin = self.scope.get("foreign_origin", "")
        grant = await _Handshakes.authorise(raw, wanted.strip(), origin) if raw else None
        if grant is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)  # before accept: the server answers the handshake with 403
            return
        self.grant = grant
        self.scope["user"] = grant.user
        self.outbox = asyncio.Queue(maxsize=settings.WEBSOCKET_SEND_QUEUE)
        if SocketHub.supports(self.channel_layer):
            self.on_hub = True
            await SocketHub.join(self.channel_layer, self.channel_name, self)
        # Join before accepting: a notification created right after the
        # client sees the socket open must reach it.
        self.groups_joined = (user_group(grant.user.pk), token_group(grant.token_id))
        await self._join_groups()
        await self.accept()
        self.writer = asyncio.create_task(self._write())
        self.watcher = asyncio.create_task(self._watch())
        _Recheck.join(self)
        self.counted = True
        metrics.websocket_opened()

    async def disconnect(self, code):
        if getattr(self, "counted", False):
            self.counted = False
            metrics.websocket_closed()
        if self.watcher is not None:
            self.watcher.cancel()
            _Recheck.leave(self)
        if self.on_hub:
            self.on_hub = False
            SocketHub.leave(self.channel_layer, self.channel_name)
        if self.writer is not None:
            self.writer.cancel()
        if self.groups_joined:
            if hasattr(self.channel_layer, "groups_discard"):
                await self.channel_layer.groups_discard(self.groups_joined, self.channel_name)
            else:
                for group in self.groups_joined:
                    await self.channel_layer.group_discard(group, self.channel_name)

    async def _join_groups(self) -> None:
        if hasattr(self.channel_layer, "groups_add"):
            await self.channel_layer.groups_add(self.groups_joined, self.channel_name)
        else:
            for group in self.groups_joined:
                await self.channel_layer.group_add(group, self.channel_name)

    async def _end(self, code: int) -> None:
        closing = self._end_soon(code)
        if closing is not None:
            await closing

    def _end_soon(self, code: int) -> asyncio.Task | None:
        """Stop sending at once and close with `code`; None if already ending."""
        if self.ended:
            return None
        self.ended = True
        if self.writer is not None:
            self.writer.cancel()  # nothing queued goes out after this
        self.closing = asyncio.ensure_future(self.close(code=code))
        return self.closing

    def deliver(self, platform_id: int, text: str, now: datetime) -> None:
        """Queue one frame for this socket (called by the hub for every frame, in memory).

        Frames of another platform are not this socket's. A socket whose
        client does not keep up is closed once `WEBSOCKET_SEND_QUEUE` frames
        wait (1013: reconnect and refetch), so it never holds up the others.
        """
        if self.ended or self.outbox is None or platform_id != self.grant.platform_id:
            return
        if self.grant.expires_at is not None and now >= self.grant.expires_at:
            self._end_soon(CLOSE_UNAUTHENTICATED)
            return
        self._queue(text)

    def _queue(self, text: str) -> None:
        # Every frame goes through the writer: one send at a time, in order.
        try:
            self.outbox.put_nowait(text)
        except asyncio.QueueFull:
            logger.info("WebSocket of user %s closed: %s frames waiting", self.grant.user.pk, self.outbox.qsize())
            self._end_soon(CLOSE_TRY_AGAIN)

    async def _write(self) -> None:
        """Send the queued frames in order; only this socket waits for its client."""
        send = self.base_send
        while True:
            text = await self.outbox.get()
            while self.hold is not None:
                await asyncio.shield(self.hold)
            try:
                await send({"type": "websocket.send", "text": text})
            except Exception:  # noqa: BLE001 - the client went away: disconnect cleans up
                return

    def _expired(self) -> bool:
        expires_at = self.grant.expires_at if self.grant else None
        return expires_at is not None and timezone.now() >= expires_at

    async def _watch(self) -> None:
        """Close the socket exactly when its token expires; renew its group memberships meanwhile.

        Memberships are renewed every third of CHANNELS_GROUP_EXPIRY:
        channels-redis drops a membership older than that, which cleans up
        after a process that died with sockets open. Revokes and membership
        changes are `_Recheck`'s and the signals' business.
        """
        loop = asyncio.get_running_loop()
        renew_every = settings.CHANNELS_GROUP_EXPIRY / 3
        # Sockets opened together spread their renewals.
        renew_at = loop.time() + random.uniform(renew_every / 2, renew_every)
        while not self.ended:
            delay = renew_at - loop.time()
            if self.grant.expires_at is not None:
                delay = min(delay, (self.grant.expires_at - timezone.now()).total_seconds())
            await asyncio.sleep(max(0.0, delay))
            if self.ended:
                return
            if self._expired():
                await self._end(CLOSE_UNAUTHENTICATED)
                return
            if loop.time() >= renew_at:
                renew_at = loop.time() + renew_every
                await self._join_groups()

    async def inbox_changed(self, event):
        # Through the channel layer only where there is no hub (the in-memory layer).
        self.deliver(event["platform_id"], socket_frame(event), timezone.now())

    async def receive_json(self, content, **kwargs):
        # The socket is server-to-client; a ping gets a pong so clients can keep it alive.
        if self.ended:
            return
        if isinstance(content, dict) and content.get("type") == "PING":
            self._queue(json.dumps({"type": "PONG"}))

    def control(self, kind: str) -> None:
        """A credentials message, from the hub in order with the frames around it."""
        if self.ended:
            return
        if kind == REVOKED:
            self._end_soon(CLOSE_UNAUTHENTICATED)
        elif kind == CHECK and self.hold is None:
            # Frames that arrive from now on wait until the answer is in.
            self.hold = asyncio.get_running_loop().create_future()
            self.checking = asyncio.ensure_future(self._check())

    async def _check(self) -> None:
        try:
            code = await _close_code(self.grant)
            if code is not None:
                self._end_soon(code)
        except Exception:  # the periodic re-check tries again
            logger.exception("WebSocket credentials check failed")
        finally:
            hold, self.hold = self.hold, None
            hold.set_result(None)

    async def credentials_revoked(self, event):
        # Through the channel layer only where there is no hub (the in-memory layer).
        self.control(REVOKED)

    async def credentials_check(self, event):
        self.control(CHECK)

    async def notification_created(self, event):
        # Through the channel layer only where there is no hub (the in-memory layer).
        self.deliver(event["platform_id"], socket_frame(event), timezone.now())


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""
