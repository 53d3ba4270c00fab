"""Delivering webhook messages: signed, at least once, with backoff over about three days.

A message is posted to its endpoint with the Standard Webhooks headers
(`webhook-id`, `webhook-timestamp`, `webhook-signature`, signed by the
`standardwebhooks` library with the endpoint's secret). A 2xx answer
delivers it; anything else (another status, a refused address, a connection
error, a timeout) is logged as an attempt and retried on `WEBHOOKS` backoff
(1 minute doubling up to 12 hours, 16 attempts: about three days), after which
the message is failed and can be replayed. An endpoint whose attempts have all
failed for `WEBHOOK_DISABLE_AFTER_SECONDS` is disabled, its pending messages
failed, and the platform's admins are told through the notification pipeline.

A task claims its messages first (`messages_claim`: SKIP LOCKED, its own
`claim_token`, a lease in `claimed_until`), so two tasks never send a message
at once; a worker that dies leaves them to the sweep once the lease runs out,
so a message may arrive twice, never zero times; receivers de-duplicate on
`webhook-id`. A task posts an endpoint's messages over a few kept-alive
connections and records them in groups (one INSERT of attempts, one UPDATE of
messages per `RECORD_EVERY`). This module does not know
Celery: `webhooks.tasks` hands it a queue at start-up (`use_queue`).
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from notifications import scheduler, selectors
from notifications.models import Platform
from notifications.pipeline import Message, Recipient, notification_send
from notifications.pipeline.retry import RetryPolicy
from webhooks import subscriptions, targets
from webhooks.models import MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage

logger = logging.getLogger(__name__)

WEBHOOKS = RetryPolicy(
    max_attempts=16,
    base_seconds=60,
    cap_seconds=12 * 3600,
    max_attempts_setting="WEBHOOK_MAX_ATTEMPTS",
    base_setting="WEBHOOK_RETRY_BASE_SECONDS",
    cap_setting="WEBHOOK_RETRY_CAP_SECONDS",
    jitter=0.1,
)
# Messages one task claims and delivers (the write path's chunks).
CHUNK = 500
# Attempts recorded together (one INSERT of attempts, one UPDATE of messages): a killed
# worker loses at most this many attempts' log lines (their messages are retried after the lease).
RECORD_EVERY = 100
USER_AGENT = "notify-webhooks/1"
# Bytes of a receiver's answer read (and thrown away) before a kept-alive connection is reused.
MAX_ANSWER = 64 * 1024
# What a message of a disabled endpoint becomes: failed, replayable once the endpoint is enabled again.
DISABLED = {
    "status": MessageStatus.FAILED,
    "last_error": "Endpoint disabled",
    "next_attempt_at": None,
    "claimed_until": None,
    "claim_token": None,
}


@dataclass(frozen=True)
class Queue:
    # enqueue([message ids as strings]): deliver these (already claimed) messages
    enqueue: Callable[[list[str]], None]
    # record(platform id, event type, [notification ids]): write the messages a bulk event owes
    record: Callable[[int, str, list[str]], None]


_QUEUE: Queue | None = None


def use_queue(queue: Queue) -> None:
    """Registered by the app's AppConfig.ready(); without one, messages wait for the sweep."""
    global _QUEUE
    _QUEUE = queue


def queue() -> Queue | None:
    return _QUEUE


def lease() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "DUE_WORK_LEASE_SECONDS", 300)))


def messages_enqueue(*, ids: Sequence[str]) -> None:
    """Hand claimed messages to the workers, CHUNK at a time, once the caller's transaction commits."""
    if _QUEUE is None or not ids:
        return
    for start in range(0, len(ids), CHUNK):
        chunk = list(ids[start : start + CHUNK])
        transaction.on_commit(lambda chunk=chunk: _QUEUE.enqueue(chunk))


# --- the sweep's source ----------------------------------------------------------------------


def _due(now: datetime) -> Q:
    return Q(status=MessageStatus.PENDING, next_attempt_at__lte=now) & (
        Q(claimed_until__isnull=True) | Q(claimed_until__lte=now)
    )


def messages_claim_due(*, now: datetime, limit: int, lease: timedelta) -> list[str]:
    """Pending messages whose attempt is due (or whose task was lost), claimed for one task each batch."""
    until = now + lease
    ids = scheduler.claim_rows(
        WebhookMessage.objects.filter(_due(now)),
        limit=limit,
        updates={"claimed_until": until, "next_attempt_at": until, "claim_token": None},
        order_by=("next_attempt_at",),
    )
    return [str(pk) for pk in ids]


def messages_next_due(*, after: datetime, until: datetime) -> datetime | None:
    return scheduler.first_due(
        WebhookMessage.objects.filter(status=MessageStatus.PENDING), "next_attempt_at", after=after, until=until
    )


def messages_oldest_due(*, now: datetime) -> datetime | None:
    return scheduler.oldest(WebhookMessage.objects.filter(_due(now)), "next_attempt_at")


# --- one attempt ---------------------------------------------------------------------------------


def message_body(message: WebhookMessage) -> bytes:
    """The JSON body, the same bytes on every attempt: type, event time and data."""
    return json.dumps(
        {"type": message.event_type, "timestamp": message.created_at.isoformat(), "data": message.payload},
        cls=DjangoJSONEncoder,
        separators=(",", ":"),
    ).encode()


def message_headers(message: WebhookMessage, body: bytes, *, signer: Webhook, at: datetime) -> dict[str, str]:
    signature = signer.sign(msg_id=message.webhook_id, timestamp=at, data=body)
    return {
        "webhook-id": message.webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


@dataclass
class _Answer:
    status_code: int | None
    error: str
    duration_ms: int
    at: datetime

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class _Watchdog:
    """Bounds each attempt's whole duration: socket timeouts bound each read, but a receiver that
    trickles its answer a byte at a time would hold a worker. One thread per task checks the
    attempts in flight (a timer thread per attempt cost more than the attempt on a busy machine)."""

    TICK = 0.1

    def __init__(self):
        self.deadlines: dict[int, tuple[float, object]] = {}  # id(poster) -> (deadline, connection)
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def watch(self, poster, connection, seconds: float) -> None:
        with self.lock:
            self.deadlines[id(poster)] = (time.monotonic() + seconds, connection)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="webhook-watchdog", daemon=True)
                self.thread.start()

    def done(self, poster) -> None:
        with self.lock:
            self.deadlines.pop(id(poster), None)

    def _run(self) -> None:
        while not self.stopped.wait(self.TICK):
            now = time.monotonic()
            # Under the lock: a poster that finished meanwhile has reused its connection for the next attempt.
            with self.lock:
                late = [key for key, (deadline, _connection) in self.deadlines.items() if deadline <= now]
                for key in late:
                    _expire(self.deadlines.pop(key)[1])

    def stop(self) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()


def _expire(connection) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Poster:
    """Posts to one checked target over one kept-alive connection, reconnecting when it drops.

    Used by one thread at a time; touches no database (posting threads hold no connection).
    """

    def __init__(self, target: targets.Target, signer: Webhook, watchdog: _Watchdog):
        self.target = target
        self.signer = signer
        self.watchdog = watchdog
        self.connection = None

    def post(self, message: WebhookMessage) -> _Answer:
        at = timezone.now()
        started = time.perf_counter()

        def answer(code, error=""):
            return _Answer(code, error[:300], int((time.perf_counter() - started) * 1000), at)

        body = message_body(message)
        headers = message_headers(message, body, signer=self.signer, at=at)
        for second_try in (False, True):
            if self.connection is None:
                self.connection = targets.connection_open(self.target)
            self.watchdog.watch(self, self.connection, 2 * float(settings.WEBHOOK_TIMEOUT_SECONDS))
            try:
                self.connection.request("POST", self.target.path, body=body, headers=headers)
                response = self.connection.getresponse()
                response.read(MAX_ANSWER)  # only the status matters
                if response.will_close or not response.isclosed():
                    self.close()  # an answer we did not read to the end leaves the connection unusable
                return answer(response.status, "" if 200 <= response.status < 300 else f"HTTP {response.status}")
            except (OSError, ValueError) as exc:
                self.close()
                if not second_try and isinstance(exc, (ConnectionResetError, BrokenPipeError)):
                    continue  # a kept-alive connection the receiver closed meanwhile: once more on a new one
                kind = "Timed out" if isinstance(exc, TimeoutError) else "Connection failed"
                return answer(None, f"{kind}: {type(exc).__name__}")
            except http.client.HTTPException as exc:  # a peer that does not speak HTTP, or cut off by the watchdog
                self.close()
                return answer(None, f"Bad answer: {type(exc).__name__}")
            finally:
                self.watchdog.done(self)
        return answer(None, "Connection failed")

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.close()
            except OSError:
                pass
        self.connection = None


class _Sender:
    """One endpoint's messages in one task: up to `WEBHOOK_DELIVERY_CONNECTIONS` kept-alive
    connections, each in a thread of its own, all to the address checked for this task."""

    def __init__(self, endpoint: WebhookEndpoint):
        self.endpoint = endpoint
        self.refused = ""
        self.posters: list[_Poster] = []
        self.pool: ThreadPoolExecutor | None = None
        self.watchdog = _Watchdog()
        secret = endpoint.secret
        if not secret:
            self.refused = "The endpoint's secret is unreadable (SECRET_KEY changed): rotate it."
            return
        try:
            # Checked again for every task: a name may point somewhere else by now.
            target = targets.target_resolve(endpoint.url)
        except targets.EndpointRefused as exc:
            self.refused = exc.message
            return
        signer = Webhook(secret)
        width = max(1, int(getattr(settings, "WEBHOOK_DELIVERY_CONNECTIONS", 4)))
        self.posters = [_Poster(target, signer, self.watchdog) for _ in range(width)]

    def post_all(self, messages: Sequence[WebhookMessage]) -> list[_Answer]:
        """One attempt per message, in the messages' order."""
        if self.refused:
            return [_Answer(None, self.refused[:300], 0, timezone.now()) for _ in messages]
        width = min(len(self.posters), len(messages))
        if width <= 1:
            return [self.posters[0].post(m) for m in messages]
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=len(self.posters), thread_name_prefix="webhook")
        # Poster i takes every width-th message, so each connection is used by one thread at a time.
        slices = [messages[i::width] for i in range(width)]
        futures = [
            self.pool.submit(lambda p, part: [p.post(m) for m in part], self.posters[i], slices[i])
            for i in range(width)
        ]
        answers: list[_Answer | None] = [None] * len(messages)
        for i, future in enumerate(futures):
            answers[i::width] = future.result()
        return answers

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        self.watchdog.stop()
        for poster in self.posters:
            poster.close()


def _record(messages: Sequence[WebhookMessage], answers: Sequence[_Answer], token: uuid.UUID) -> int:
    """Log one attempt per message (one INSERT) and move each message on (one UPDATE); returns the delivered.

    Only messages this task still holds are moved on: a replay or a disable since the
    claim, or a lease that ran out and was claimed again, wins over this task's result.
    """
    attempts = [
        WebhookAttempt(
            message_id=message.pk,
            created_at=answer.at,
            status_code=answer.status_code,
            error=answer.error,
            duration_ms=answer.duration_ms,
        )
        for message, answer in zip(messages, answers, strict=True)
    ]
    delivered = 0
    for message, answer in zip(messages, answers, strict=True):
        message.attempts += 1
        message.last_status_code = answer.status_code
        message.last_error = answer.error
        message.claimed_until = None
        message.claim_token = None
        if answer.ok:
            delivered += 1
            message.status = MessageStatus.DELIVERED
            message.delivered_at = answer.at
            message.next_attempt_at = None
        elif WEBHOOKS.exhausted(message.attempts):
            message.status = MessageStatus.FAILED
            message.next_attempt_at = None
        else:
            message.next_attempt_at = answer.at + WEBHOOKS.backoff(message.attempts)
    with transaction.atomic():
        WebhookAttempt.objects.bulk_create(attempts)
        _messages_update(messages, token)
    return delivered


_RECORDED = ["status", "attempts", "last_status_code", "last_error", "delivered_at", "next_attempt_at"]


def _messages_update(messages: Sequence[WebhookMessage], token: uuid.UUID) -> None:
    """Write the messages' new states and release them, where this task still holds them.

    PostgreSQL gets one UPDATE ... FROM unnest (Django's bulk_update builds a
    CASE per field and row, which costs more than the HTTP requests); other
    databases one UPDATE per message.
    """
    if connection.vendor != "postgresql":
        for message in messages:
            WebhookMessage.objects.filter(pk=message.pk, claim_token=token).update(
                **{name: getattr(message, name) for name in _RECORDED}, claimed_until=None, claim_token=None
            )
        return
    table = connection.ops.quote_name(WebhookMessage._meta.db_table)
    sql = (
        f"UPDATE {table} AS m SET status = v.status, attempts = v.attempts, last_status_code = v.code, "
        "last_error = v.error, delivered_at = v.delivered_at, next_attempt_at = v.next_at, "
        "claimed_until = NULL, claim_token = NULL "
        "FROM unnest(%s::uuid[], %s::text[], %s::int[], %s::int[], %s::text[], %s::timestamptz[], "
        "%s::timestamptz[]) AS v(id, status, attempts, code, error, delivered_at, next_at) "
        "WHERE m.id = v.id AND m.claim_token = %s"
    )
    columns = [[m.pk for m in messages]] + [[getattr(m, name) for m in messages] for name in _RECORDED]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*columns, token])


def _claimable(now: datetime) -> Q:
    # Handed to a task (by a writer, a replay or the sweep) and not yet claimed by one;
    # or due, its lease (if any) run out: a killed worker's messages are taken again.
    handed = Q(claim_token__isnull=True, claimed_until__isnull=False)
    due = Q(next_attempt_at__lte=now) & (Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
    return handed | due


def messages_claim(*, ids: Sequence[str], token: uuid.UUID, now: datetime | None = None) -> list[WebhookMessage]:
    """Claim the pending messages among `ids` nobody is sending (SELECT ... FOR UPDATE SKIP LOCKED) under a lease.

    Two tasks given the same ids (a duplicate, a replay, the sweep after a lease
    ran out) claim disjoint sets: a message is sent by one task at a time.
    """
    now = now or timezone.now()
    until = now + lease()
    with transaction.atomic():
        claimed = list(
            WebhookMessage.objects.filter(pk__in=list(ids), status=MessageStatus.PENDING)
            .filter(_claimable(now))
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        if claimed:
            WebhookMessage.objects.filter(pk__in=claimed).update(
                claim_token=token, claimed_until=until, next_attempt_at=until
            )
    if not claimed:
        return []
    messages = list(
        WebhookMessage.objects.filter(pk__in=claimed, claim_token=token).order_by("endpoint_id", "created_at", "pk")
    )
    # One instance per endpoint (not one per message, as select_related would make).
    endpoints = WebhookEndpoint.objects.in_bulk({m.endpoint_id for m in messages})
    for message in messages:
        message.endpoint = endpoints[message.endpoint_id]
    return messages


def _release(messages: Sequence[WebhookMessage], *, token: uuid.UUID, at: datetime) -> None:
    """Hand claimed messages back unattempted (no attempt spent), due at `at`."""
    WebhookMessage.objects.filter(pk__in=[m.pk for m in messages], claim_token=token).update(
        claim_token=None, claimed_until=None, next_attempt_at=at
    )


def _groups(messages: list[WebhookMessage], first: int):
    """(group, rest) pairs: a first small group (one attempt per connection: is anyone there?), then RECORD_EVERY."""
    start, size = 0, max(1, min(first, RECORD_EVERY))
    while start < len(messages):
        yield messages[start : start + size], messages[start + size :]
        start, size = start + size, RECORD_EVERY


def _endpoint_deliver(endpoint: WebhookEndpoint, messages: list[WebhookMessage], token: uuid.UUID) -> int:
    """Post an endpoint's claimed messages, recording each group; returns how many were delivered."""
    delivered = 0
    sender = _Sender(endpoint) if endpoint.is_active else None
    try:
        for group, rest in _groups(messages, first=len(sender.posters) if sender else 1):
            if not endpoint.is_active:
                WebhookMessage.objects.filter(pk__in=[m.pk for m in group + rest], claim_token=token).update(**DISABLED)
                break
            answers = sender.post_all(group)
            delivered += _record(group, answers, token)
            now = timezone.now()
            _endpoint_health(endpoint, ok=any(a.ok for a in answers), now=now)
            if rest and endpoint.is_active and all(a.status_code is None for a in answers):
                # Not one answer in a whole group (down, refused, timing out): the rest of the batch
                # waits for the same retry, unattempted, instead of each waiting out its timeout now
                # (and the task outliving its lease).
                retries = [m.next_attempt_at for m in group if m.next_attempt_at is not None]
                _release(rest, token=token, at=min(retries, default=now + WEBHOOKS.backoff(1)))
                break
    finally:
        if sender is not None:
            sender.close()
    return delivered


def messages_deliver(*, ids: Sequence[str]) -> int:
    """Claim the pending messages among `ids` and attempt each once; returns how many were delivered.

    Messages already delivered or failed (a replayed chunk), or held by another
    task, are skipped; messages of a disabled endpoint are failed without a call.
    Each endpoint's messages go over kept-alive connections (`_Sender`); attempts
    and message states are written in bulk every RECORD_EVERY messages.
    """
    token = uuid.uuid4()
    messages = messages_claim(ids=ids, token=token)
    delivered = 0
    for _endpoint_id, group in groupby(messages, key=lambda m: m.endpoint_id):
        group = list(group)
        delivered += _endpoint_deliver(group[0].endpoint, group, token)
    return delivered


# --- endpoint health -------------------------------------------------------------------------------


def _endpoint_health(endpoint: WebhookEndpoint, *, ok: bool, now: datetime) -> None:
    """Track the failing streak; disable an endpoint that has failed for too long."""
    if ok:
        if endpoint.failing_since is not None:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
            endpoint.failing_since = None
        return
    if endpoint.failing_since is None:
        WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=now)
        endpoint.failing_since = now
        return
    limit = timedelta(seconds=float(settings.WEBHOOK_DISABLE_AFTER_SECONDS))
    if now - endpoint.failing_since >= limit:
        endpoint_disable(endpoint=endpoint, now=now)


def endpoint_disable(*, endpoint: WebhookEndpoint, now: datetime | None = None) -> bool:
    """Disable a failing endpoint, fail its pending messages and tell the platform's admins (once)."""
    now = now or timezone.now()
    days = (now - (endpoint.failing_since or now)).total_seconds() / 86400
    reason = f"Every delivery failed for {days:.1f} days."
    changed = WebhookEndpoint.objects.filter(pk=endpoint.pk, is_active=True).update(
        is_active=False, disabled_at=now, disabled_reason=reason
    )
    endpoint.is_active = False
    subscriptions.subscriptions_forget(endpoint.platform_id)
    if not changed:
        return False  # another worker disabled it first, and told the admins
    WebhookMessage.objects.filter(endpoint=endpoint, status=MessageStatus.PENDING).update(**DISABLED)
    try:
        _admins_notify(endpoint=endpoint, reason=reason, now=now)
    except Exception:
        logger.exception("telling platform %s's admins about webhook %s failed", endpoint.platform_id, endpoint.pk)
    return True


def _admins_notify(*, endpoint: WebhookEndpoint, reason: str, now: datetime) -> None:
    platform = Platform.objects.get(pk=endpoint.platform_id)
    admins = list(selectors.platform_members(platform=platform, admin=True).values_list("pk", flat=True))
    if not admins:
        return
    notification_send(
        platform=platform,
        source=f"webhooks:disabled:{endpoint.pk}:{int(now.timestamp())}",
        channels=["in_app", "email"],
        recipients=[Recipient(user_id=pk) for pk in admins],
        message=Message(
            title="A webhook endpoint was disabled",
            body=(
                f"The webhook endpoint {endpoint.url} was disabled: {reason} Its pending messages were "
                "marked failed. Fix the receiver, enable the endpoint again and replay the failed messages."
            ),
            notification_type="system_alert",
            level="warning",
            data={"kind": "webhook_endpoint_disabled", "webhook_id": endpoint.pk, "url": endpoint.url},
        ),
        wait=False,
    )


# --- replay ------------------------------------------------------------------------------------------


def _replay(queryset) -> int:
    """Start a new round of attempts for these messages, now; returns how many."""
    now = timezone.now()
    until = now + lease()
    # A message a task is sending right now is left to it: a replay must not send it beside that task.
    sending = Q(claim_token__isnull=False, claimed_until__gt=now)
    with transaction.atomic():
        ids = [str(pk) for pk in queryset.exclude(sending).values_list("pk", flat=True)]
        if ids:
            WebhookMessage.objects.filter(pk__in=ids).update(
                status=MessageStatus.PENDING,
                attempts=0,
                next_attempt_at=until,
                claimed_until=until,
                claim_token=None,
                delivered_at=None,
            )
            messages_enqueue(ids=ids)
    return len(ids)


def message_replay(*, message: WebhookMessage) -> WebhookMessage:
    """Send one message again (delivered or not), with the same webhook-id."""
    _replay(WebhookMessage.objects.filter(pk=message.pk))
    message.refresh_from_db()
    return message


def messages_replay_failed(*, endpoint: WebhookEndpoint) -> int:
    """Send again every message of the endpoint whose last attempt failed: given up, or waiting to retry."""
    failed = WebhookMessage.objects.filter(endpoint=endpoint).filter(
        Q(status=MessageStatus.FAILED) | Q(status=MessageStatus.PENDING, attempts__gt=0)
    )
    return _replay(failed)
