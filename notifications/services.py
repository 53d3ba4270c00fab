"""Writes of the core domain: the one delivery pipeline and the inbox.

Every send path ends in `notification_send`:
resolve recipients -> render per recipient -> write one row per recipient and
channel under a unique (source, channel, recipient_key) -> hand pending rows to
the channel backend in batches -> record each result -> count from the rows.

Rules the pipeline keeps:
- Idempotent per source: rows already written are kept, a row is only ever
  dispatched while `pending`, so running the same source again never sends
  twice to a recipient already `sent`.
- Claimed rows carry a lease (`claimed_until`); a dispatcher that dies leaves
  its rows to be claimed again once the lease runs out. Each result is written
  as soon as the backend yields it: a crash loses at most the one in flight.
- Retryable failures go back to `pending` with `next_attempt_at` set by an
  exponential backoff (capped, never sooner than the provider's Retry-After);
  the scheduler's "deliveries" source picks up due retries and orphaned rows.
- Small sends are dispatched in the caller; large ones are split into chunks
  of row ids, one Celery task per (source, channel, chunk), queued after the
  rows are committed.
- In-app rows are written as `sent` in bulk (the row is the delivery) and
  announced over the channel layer after commit.

Inbox status changes live in `notifications.inbox`; the per-user unread
counters follow every write, there or here, through database triggers (see
`InboxCounter`).
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from notifications import metrics, rows
from notifications.backends import backend_class, get_backend
from notifications.backends.base import Result
from notifications.models import Channel, DeliveryStatus, InboxCounter, InboxStatus, Notification, Platform
from notifications.preferences import filter_deliveries, has_filters
from notifications.sanitize import sanitize_html

logger = logging.getLogger(__name__)

# Defaults of the NOTIFY_* settings that tune the pipeline (see README).
# How long a dispatcher owns the rows it claimed.
CLAIM_LEASE = timedelta(minutes=5)
# Transient failures are tried this many times in all before they stay failed.
MAX_ATTEMPTS = 5
RETRY_BASE_SECONDS = 30
RETRY_CAP_SECONDS = 3600
# A provider's Retry-After is honoured up to this much.
RETRY_AFTER_MAX_SECONDS = 86400
# Pending rows per channel that the caller dispatches itself; above this they
# go to Celery workers in chunks of DISPATCH_CHUNK ids.
SYNC_LIMIT = 200
DISPATCH_CHUNK = 500
# Recipients per write transaction, and how many transactions run at once
# (each on its own connection) when a large send is written outside a transaction.
WRITE_CHUNK = 10000
WRITE_THREADS = 2

StopCheck = Callable[[], bool]
# For many sends at once: given the sources still at work, which of them may go on.
RunningCheck = Callable[[list[str]], Collection[str]]


def _setting(name: str, default):
    return getattr(settings, f"NOTIFY_{name}", default)


def _lease() -> timedelta:
    return timedelta(seconds=_setting("CLAIM_LEASE_SECONDS", CLAIM_LEASE.total_seconds()))


@dataclass(frozen=True)
class Recipient:
    """A user account, or a bare address (email or phone) of someone without one."""

    user_id: int | None = None
    address: str = ""
    context: dict = field(default_factory=dict)

    def key(self) -> str:
        if self.user_id is not None:
            return f"user:{self.user_id}"
        kind = "email" if "@" in self.address else "phone"
        return f"{kind}:{self.address.lower() if kind == 'email' else self.address}"


@dataclass(frozen=True)
class Message:
    title: str = ""
    body: str = ""  # plain text
    html: str = ""  # HTML, always passed through the one sanitiser (see __post_init__)
    short_message: str = ""
    notification_type: str = "system_alert"
    level: str = "info"
    context: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    image_url: str = ""

    def __post_init__(self):
        # Every message the pipeline writes or sends is built here, so this is
        # the one door HTML passes on its way to a person (email part, inbox
        # body); already sanitised HTML is not cleaned twice.
        if self.html:
            object.__setattr__(self, "html", sanitize_html(self.html))


# A renderer gives the message for one recipient on one channel; `user` is the
# recipient's account or None for a bare address.
Renderer = Callable[[Recipient, str, object], Message]


@dataclass
class SendResult:
    total_recipients: int = 0
    sent: int = 0
    failed: int = 0
    # Waiting for a worker or a retry; `sent`/`failed` grow as they finish.
    pending: int = 0
    # Push counts device tokens, not users.
    units_sent: int = 0
    units_failed: int = 0
    # Failed deliveries that reached no unit at all (push: users without an
    # active device; rows cancelled before they went out).
    unreached: int = 0
    per_channel: dict = field(default_factory=dict)
    # What to poll `send_counts(source=...)` with for progress.
    source: str = ""


@dataclass(frozen=True)
class Send:
    """One send of `notification_send_many`: what goes out under one source."""

    platform: Platform
    source: str
    channels: Sequence[str]
    recipients: Sequence[Recipient]
    message: Message | None = None
    render: Renderer | None = None


# --- writing rows ------------------------------------------------------------------


def _address_for(channel: str, email: str, phone: str) -> str:
    if channel == Channel.EMAIL:
        return email or ""
    if channel == Channel.SMS:
        return phone or ""
    return ""


def _missing_address_error(channel: str) -> str:
    return {Channel.EMAIL: "User has no email address", Channel.SMS: "User has no phone number"}.get(channel, "")


def _backend_key(channel: str) -> str:
    # Settings name the push backend "push"; its rows say "push_notification".
    return "push" if channel == Channel.PUSH else channel


def _delivered_on_write(channel: str) -> bool:
    """True for channels whose row is the delivery (in-app): written as sent."""
    return bool(getattr(backend_class(_backend_key(channel)), "delivered_on_write", False))


def _dedupe(recipients: Iterable[Recipient]) -> list[Recipient]:
    seen: set[str] = set()
    unique: list[Recipient] = []
    for r in recipients:
        k = r.key()
        if k not in seen:
            seen.add(k)
            unique.append(r)
    return unique


# Plain strings for the row tuples: comparing and dumping 100k enum members costs.
_SENT, _FAILED, _PENDING = (str(s.value) for s in (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.PENDING))
_UNREAD = str(InboxStatus.UNREAD.value)


@dataclass(frozen=True)
class _WriteJob:
    platform_id: int
    source: str
    channels: tuple[str, ...]
    direct: frozenset[str]
    message: Message | None
    render: Renderer | None
    # No row of the source existed when the send began (see rows.insert_postgresql).
    fresh_source: bool = False


@dataclass(frozen=True)
class _Candidate:
    """What a recipient filter sees of a row about to be written."""

    index: int
    user_id: int
    channel: str
    notification_type: str


_MESSAGE_FIELDS = ("notification_type", "level", "title", "body", "html", "short_message", "data", "image_url")


def _build_rows(job: _WriteJob, chunk: Sequence[Recipient]) -> rows.Batch:
    """The rows of one chunk of recipients, column by column (see `rows.Batch`)."""
    now = timezone.now()
    user_ids = [r.user_id for r in chunk if r.user_id is not None]
    if job.render is not None:
        users = get_user_model().objects.in_bulk(user_ids)
        known = {pk: (u.email, u.phone_number) for pk, u in users.items()}
    else:
        # Without a renderer nobody needs the account itself, and only email
        # and SMS need its addresses.
        addresses = any(c in (Channel.EMAIL, Channel.SMS) for c in job.channels)
        users, known = {}, rows.contacts(user_ids, addresses=addresses)
    per_row_message = job.render is not None or any(r.context for r in chunk)
    col_user, col_key, col_address, col_channel, col_status, col_error = [], [], [], [], [], []
    messages, contexts = [], []
    for r in chunk:
        if r.user_id is not None and r.user_id not in known:
            continue  # deleted between resolution and write
        email, phone = known.get(r.user_id, ("", ""))
        key = r.key()
        for channel in job.channels:
            address = r.address
            if not address and r.user_id is not None and channel in (Channel.EMAIL, Channel.SMS):
                address = _address_for(channel, email, phone)
            error = ""
            if channel in (Channel.EMAIL, Channel.SMS) and not address:
                error = _missing_address_error(channel)
            elif channel in (Channel.IN_APP, Channel.PUSH) and r.user_id is None:
                error = "This channel needs a user account"
            col_user.append(r.user_id)
            col_key.append(key)
            col_address.append(address)
            col_channel.append(channel)
            col_error.append(error)
            col_status.append(_FAILED if error else _SENT if channel in job.direct else _PENDING)
            if per_row_message:
                msg = job.message if job.render is None else job.render(r, channel, users.get(r.user_id))
                messages.append(msg)
                contexts.append({**msg.context, **r.context} if r.context else msg.context)
    if has_filters():
        # Opted-out recipients get no row, on every send path (filters are
        # registered by the apps that keep preferences; see notifications/preferences.py).
        types = (
            [m.notification_type for m in messages]
            if per_row_message
            else [job.message.notification_type] * len(col_key)
        )
        candidates = [
            _Candidate(i, col_user[i], col_channel[i], types[i]) for i in range(len(col_key)) if col_user[i] is not None
        ]
        kept = {c.index for c in filter_deliveries(platform=job.platform_id, rows=candidates)}
        keep = [i for i in range(len(col_key)) if col_user[i] is None or i in kept]
        if len(keep) != len(col_key):
            columns = [col_user, col_key, col_address, col_channel, col_status, col_error]
            if per_row_message:
                columns += [messages, contexts]
            for column in columns:
                column[:] = [column[i] for i in keep]
    count = len(col_key)
    batch = rows.Batch(count)
    batch.set("id", rows.uuid7s(count))
    batch.set("platform_id", job.platform_id)
    batch.set("user_id", col_user)
    batch.set("recipient_key", col_key)
    batch.set("address", col_address)
    batch.set("channel", col_channel)
    batch.set("source", job.source)
    if per_row_message:
        for name in _MESSAGE_FIELDS:
            batch.set(name, [getattr(m, name) for m in messages])
        batch.set("context", contexts)
    else:
        for name in _MESSAGE_FIELDS:
            batch.set(name, getattr(job.message, name))
        batch.set("context", job.message.context)
    batch.set("status", _UNREAD)
    batch.set("delivery_status", col_status)
    batch.set("error", col_error)
    batch.set("provider_message_id", "")
    batch.set("claimed_until", None)
    batch.set("created_at", now)
    batch.set("updated_at", now)
    batch.set("read_at", None)
    # Columns that follow from the delivery status; one value each when all rows share it.
    pending_due = now + _lease()  # the sweep steps in for a writer that died
    derived = {
        "attempts": {_SENT: 1, _FAILED: 0, _PENDING: 0},
        "units_sent": {_SENT: 1, _FAILED: 0, _PENDING: 0},
        "units_failed": {_SENT: 0, _FAILED: 1, _PENDING: 0},
        "next_attempt_at": {_SENT: None, _FAILED: None, _PENDING: pending_due},
        "sent_at": {_SENT: now, _FAILED: None, _PENDING: None},
    }
    uniform = count and col_status.count(col_status[0]) == count
    for name, by_status in derived.items():
        batch.set(name, by_status[col_status[0]] if uniform else [by_status[v] for v in col_status])
    return batch


def _written_outcomes(batch: rows.Batch, inserted: Collection[str]) -> dict[tuple[str, str], int]:
    """Rows this insert created that are already sent or failed, by (channel, status)."""
    if not inserted:
        return {}
    if len(inserted) == batch.size and not {"channel", "delivery_status"} & batch.varies:
        counts = {(batch.values["channel"], batch.values["delivery_status"]): batch.size}  # a bulk send: O(1)
    else:
        pairs = zip(batch.column("channel"), batch.column("delivery_status"), strict=True)
        if len(inserted) != batch.size:
            pairs = (pair for pair, pk in zip(pairs, batch.column("id"), strict=True) if pk in inserted)
        counts = Counter(pairs)
    return {key: n for key, n in counts.items() if key[1] != _PENDING}


def _write_chunk(batch: rows.Batch, *, fresh_source: bool, direct_channels: Collection[str]) -> None:
    """One transaction: insert, then (after commit) announce what this call created."""
    if not batch.size:
        return
    with transaction.atomic():
        inserted = rows.insert(batch, fresh_source=fresh_source)
        # Rows decided while written (in-app sent, no address failed) are outcomes too.
        decided = _written_outcomes(batch, inserted)
        if decided:
            transaction.on_commit(partial(metrics.deliveries_counted, decided))
        ids, channels, statuses = batch.column("id"), batch.column("channel"), batch.column("delivery_status")
        for direct in direct_channels:
            fresh = [
                batch.view(i)
                for i in range(batch.size)
                if ids[i] in inserted and channels[i] == direct and statuses[i] == _SENT
            ]
            if fresh:
                # Only rows this call inserted: a re-run never repeats a socket message.
                transaction.on_commit(partial(get_backend(_backend_key(direct)).announce, fresh))


def _write_in_parallel(job: _WriteJob, chunks: list, should_stop: StopCheck | None) -> None:
    """Build chunk k+1 here while writers insert chunk k on their own connections.

    psycopg releases the GIL while PostgreSQL works, so building rows, two
    inserts and their triggers overlap on two cores.
    """
    from concurrent.futures import ThreadPoolExecutor

    def write(built):
        try:
            _write_chunk(built, fresh_source=job.fresh_source, direct_channels=job.direct)
        finally:
            connection.close()  # this thread's own connection

    writers = _setting("WRITE_THREADS", WRITE_THREADS)
    with ThreadPoolExecutor(max_workers=writers, thread_name_prefix="notify-write") as pool:
        running: deque = deque()
        for chunk in chunks:
            if should_stop is not None and should_stop():
                break
            built = _build_rows(job, chunk)
            while len(running) >= writers:
                running.popleft().result()  # at most `writers` chunks in flight
            running.append(pool.submit(write, built))
        for future in running:
            future.result()


def deliveries_write(
    *,
    platform: Platform,
    source: str,
    channels: Sequence[str],
    recipients: Iterable[Recipient],
    message: Message | None = None,
    render: Renderer | None = None,
    batch_size: int | None = None,
    should_stop: StopCheck | None = None,
) -> int:
    """Write one row per recipient and channel; rows that exist are left alone.

    Rows of channels whose backend is `delivered_on_write` (in-app) are written
    as sent and announced after their transaction commits; the others are
    written pending for `deliveries_dispatch`. Each chunk of recipients is one
    transaction, so a crash keeps what was written and a re-run completes it.
    Returns how many recipients were given (after de-duplication).
    """
    if (message is None) == (render is None):
        raise ValueError("give exactly one of message or render")
    size = batch_size or _setting("WRITE_CHUNK", WRITE_CHUNK)
    unique = _dedupe(recipients)
    job = _WriteJob(
        platform_id=platform.pk,
        source=source,
        channels=tuple(str(c) for c in channels),
        direct=_direct_channels(channels),
        message=message,
        render=render,
        fresh_source=not Notification.objects.filter(source=source).exists(),
    )
    chunks = [unique[start : start + size] for start in range(0, len(unique), size)]
    parallel = (
        len(chunks) > 1
        and connection.vendor == "postgresql"
        and not connection.in_atomic_block  # other connections could not see the caller's transaction
        and _setting("WRITE_THREADS", WRITE_THREADS) > 1
    )
    if parallel:
        _write_in_parallel(job, chunks, should_stop)
    else:
        for chunk in chunks:
            if should_stop is not None and should_stop():
                break
            _write_chunk(_build_rows(job, chunk), fresh_source=job.fresh_source, direct_channels=job.direct)
    return len(unique)


def _direct_channels(channels: Iterable[str]) -> frozenset[str]:
    return frozenset(str(c) for c in channels if _delivered_on_write(c))


def deliveries_write_many(*, sends: Sequence[Send]) -> None:
    """`deliveries_write` for many small sends: their rows go in as few INSERTs as possible.

    A thousand scheduled reminders falling due together would otherwise cost a
    thousand transactions. Rows are built per send (each its own renderer,
    filters and platform) and inserted WRITE_CHUNK rows at a time; the unique
    key still makes every send idempotent on its own.
    """
    if not sends:
        return
    existing = set(
        Notification.objects.filter(source__in={s.source for s in sends})
        .values_list("source", flat=True)
        .distinct()
        .order_by()
    )
    size = _setting("WRITE_CHUNK", WRITE_CHUNK)
    group: list[rows.Batch] = []
    fresh, direct, count = True, set(), 0

    def flush():
        nonlocal group, fresh, direct, count
        if group:
            _write_chunk(rows.Batch.concat(group), fresh_source=fresh, direct_channels=direct)
        group, fresh, direct, count = [], True, set(), 0

    for send in sends:
        if (send.message is None) == (send.render is None):
            raise ValueError("give exactly one of message or render")
        unique = _dedupe(send.recipients)
        job = _WriteJob(
            platform_id=send.platform.pk,
            source=send.source,
            channels=tuple(str(c) for c in send.channels),
            direct=_direct_channels(send.channels),
            message=send.message,
            render=send.render,
            fresh_source=send.source not in existing,
        )
        for start in range(0, len(unique), size):
            batch = _build_rows(job, unique[start : start + size])
            if count and count + batch.size > size:
                flush()
            group.append(batch)
            fresh = fresh and job.fresh_source
            direct |= job.direct
            count += batch.size
    flush()


# --- claiming, sending, recording ------------------------------------------------------


def _of_sources(qs, sources: Sequence[str]):
    """Rows of the given sources (a plain equality for one, which every index serves best)."""
    return qs.filter(source=sources[0]) if len(sources) == 1 else qs.filter(source__in=sources)


def _free(now: datetime) -> Q:
    """Pending rows nobody holds, whose first try or retry is due."""
    unleased = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    due = Q(attempts=0) | Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    return unleased & due


def _claim(
    *, channel: str, limit: int, sources: Sequence[str] | None = None, ids=None, ticket=None, after=None
) -> list[Notification]:
    """Claim up to `limit` pending rows under a lease (SELECT ... FOR UPDATE SKIP LOCKED).

    `ticket` is the lease end the sweep stamped on rows it queued for one task:
    that task may take them although they look held. `after`: only rows with
    a greater id (a dispatcher moving through a send in id order).
    """
    now = timezone.now()
    until = now + _lease()
    condition = _free(now)
    if ticket is not None:
        condition |= Q(claimed_until=ticket)
    qs = Notification.objects.filter(channel=channel, delivery_status=DeliveryStatus.PENDING).filter(condition)
    if sources is not None:
        qs = _of_sources(qs, sources)
    if ids is not None:
        qs = qs.filter(id__in=ids)
    if after is not None:
        qs = qs.filter(id__gt=after)
    with transaction.atomic():
        claimed = list(qs.select_for_update(skip_locked=True).order_by("id").values_list("id", flat=True)[:limit])
        if not claimed:
            return []
        # While held, the sweep leaves the rows alone; once the lease ends they are due again.
        Notification.objects.filter(id__in=claimed).update(claimed_until=until, next_attempt_at=until)
    return list(Notification.objects.filter(id__in=claimed).select_related("user", "platform").order_by("id"))


def retry_delay(attempts: int, retry_after: float | None = None) -> float:
    """Seconds before try number `attempts + 1`: exponential, capped, jittered.

    The provider's Retry-After wins when it asks for longer, even above the cap
    (a provider that says "not before" means it), within RETRY_AFTER_MAX.
    """
    base = _setting("RETRY_BASE_SECONDS", RETRY_BASE_SECONDS)
    cap = _setting("RETRY_CAP_SECONDS", RETRY_CAP_SECONDS)
    # Up to 10% jitter so a provider outage does not end in a synchronised stampede.
    delay = min(cap, base * 2 ** max(attempts - 1, 0) * (1 + random.random() * 0.1))
    if retry_after:
        delay = max(delay, min(float(retry_after), _setting("RETRY_AFTER_MAX_SECONDS", RETRY_AFTER_MAX_SECONDS)))
    return delay


def _outcome(delivery: Notification, result: Result, now: datetime) -> rows.Outcome:
    attempts = delivery.attempts + 1
    next_attempt_at = None
    if result.ok:
        status = _SENT
    elif result.retryable and attempts < _setting("MAX_ATTEMPTS", MAX_ATTEMPTS):
        status = _PENDING
        next_attempt_at = now + timedelta(seconds=retry_delay(attempts, result.retry_after))
    else:
        status = _FAILED
    return (
        delivery.pk,
        status,
        "" if result.ok else result.error[:2000],
        attempts,
        result.provider_message_id[:255],
        result.units_sent,
        result.units_failed,
        now if result.ok else None,
        next_attempt_at,
    )


def _record(pairs: Sequence[tuple[Notification, Result]]) -> None:
    """Record results that became known together, in one statement."""
    now = timezone.now()
    outcomes = [_outcome(delivery, result, now) for delivery, result in pairs]
    rows.record(outcomes, now=now)
    metrics.deliveries_recorded(channel=pairs[0][0].channel, statuses=[outcome[1] for outcome in outcomes])


def _send_claimed(backend, claimed: list[Notification]) -> tuple[int, bool]:
    """Send claimed rows, recording each group of results as it comes (see `BaseBackend.send_groups`).

    Returns (handled, broke). A backend that raises (instead of returning a
    failed Result) has the row in flight recorded as a retryable failure, so a
    row that crashes it every time ends failed after MAX_ATTEMPTS; the rest of
    the claim is released for the next dispatcher at once.
    """
    recorded = 0
    name = type(backend).__name__.removesuffix("Backend").lower()
    try:
        started = time.perf_counter()
        for group in backend.send_groups(claimed):
            # The wait for this group: one provider call (or one message on an open connection).
            metrics.provider_latency(channel=backend.channel, backend=name, seconds=time.perf_counter() - started)
            _record(group)
            recorded += len(group)
            started = time.perf_counter()
    except Exception as exc:  # a broken backend must not strand claimed rows
        logger.exception("%s backend failed after %s of %s deliveries", backend.channel, recorded, len(claimed))
        if recorded == len(claimed):
            return recorded, True  # everything was recorded; the backend broke on closing
        _record([(claimed[recorded], Result.failed(f"Backend error: {exc}"[:2000], retryable=True))])
        rest = [r.pk for r in claimed[recorded + 1 :]]
        if rest:
            Notification.objects.filter(pk__in=rest, delivery_status=DeliveryStatus.PENDING).update(
                claimed_until=None, next_attempt_at=timezone.now()
            )
        return recorded + 1, True
    return recorded, False


def _running_from(should_stop: StopCheck | None) -> RunningCheck | None:
    """A single send's `should_stop` as the many-sends form."""
    if should_stop is None:
        return None
    return lambda sources: () if should_stop() else sources


def _still_running(sources: Sequence[str], running: RunningCheck) -> list[str]:
    going = set(running(list(sources)))
    return [s for s in sources if s in going]


def _dispatch(
    *,
    channel: str,
    sources: Sequence[str] | None = None,
    ids=None,
    ticket=None,
    limit: int | None = None,
    running: RunningCheck | None = None,
) -> int:
    backend = get_backend(_backend_key(channel))
    step = max(backend.batch_size, 1)
    handled = 0
    # Each claim starts after the last one: the rows before it are sent or
    # held, and their dead index entries (until vacuum) need not be walked
    # again. A row skipped this way (locked, held) is taken by a later call.
    after = None
    while limit is None or handled < limit:
        if running is not None and sources is not None:
            # Sources stopped meanwhile (a cancelled job) leave the claim; the rest go on.
            sources = _still_running(sources, running)
            if not sources:
                break
        size = step if limit is None else min(step, limit - handled)
        rows = _claim(channel=channel, sources=sources, ids=ids, ticket=ticket, limit=size, after=after)
        if not rows:
            break
        after = rows[-1].pk
        done, broke = _send_claimed(backend, rows)
        handled += done
        if broke:
            break
    return handled


def deliveries_dispatch(
    *, source: str, channel: str, limit: int | None = None, should_stop: StopCheck | None = None
) -> int:
    """Send the due pending rows of one source and channel; returns how many were handled."""
    return _dispatch(channel=channel, sources=[source], limit=limit, running=_running_from(should_stop))


def deliveries_dispatch_ids(*, channel: str, ids: Sequence, source: str | None = None, ticket=None) -> int:
    """Send the due pending rows among `ids` (one Celery chunk or one sweep item)."""
    return _dispatch(channel=channel, sources=None if source is None else [source], ids=list(ids), ticket=ticket)


def _celery_eager() -> bool:
    from celery import current_app

    return bool(current_app.conf.task_always_eager)


def _enqueue_chunks(*, sources: Sequence[str], channel: str, ids: list) -> int:
    from notifications.tasks import dispatch_chunk

    size = _setting("DISPATCH_CHUNK", DISPATCH_CHUNK)
    # A chunk of many sends' rows is bounded by its ids alone.
    source = sources[0] if len(sources) == 1 else None
    chunks = 0
    for start in range(0, len(ids), size):
        chunk = [str(i) for i in ids[start : start + size]]
        # Workers must see the rows: queue only once they are committed.
        transaction.on_commit(partial(dispatch_chunk.delay, source, channel, chunk))
        chunks += 1
    return chunks


def _pending_ids(*, sources: Sequence[str], channel: str) -> list:
    now = timezone.now()
    return list(
        _of_sources(Notification.objects.filter(channel=channel, delivery_status=DeliveryStatus.PENDING), sources)
        .filter(_free(now))
        .order_by("id")
        .values_list("id", flat=True)
    )


def _dispatch_channel(*, sources: Sequence[str], channel: str, wait: bool, running: RunningCheck | None) -> None:
    ids = _pending_ids(sources=sources, channel=channel)
    if not ids:
        return
    in_transaction = connection.in_atomic_block
    if wait and (len(ids) <= _setting("SYNC_LIMIT", SYNC_LIMIT) or _celery_eager() or in_transaction):
        # Small sends, eager Celery (tests) and callers inside a transaction
        # (workers could not see uncommitted rows) dispatch here.
        _dispatch(channel=channel, sources=sources, running=running)
        return
    _enqueue_chunks(sources=sources, channel=channel, ids=ids)
    if wait:
        _help_and_wait(sources=sources, channel=channel, running=running)


def _help_and_wait(*, sources: Sequence[str], channel: str, running: RunningCheck | None, poll: float = 0.2) -> None:
    """Work through the chunks alongside the workers, then wait for theirs.

    Returns when no row of the sends is pending and held: rows waiting for a
    retry are left to the sweep rather than keeping the caller.
    """
    while True:
        if running is not None:
            sources = _still_running(sources, running)
            if not sources:
                return
        handled = _dispatch(channel=channel, sources=sources, running=running)
        if handled:
            continue
        held = _of_sources(
            Notification.objects.filter(
                channel=channel, delivery_status=DeliveryStatus.PENDING, claimed_until__gt=timezone.now()
            ),
            sources,
        ).exists()
        if not held:
            return
        time.sleep(poll)


def deliveries_cancel(*, source: str, channel: str | None = None, error: str = "Cancelled before delivery") -> int:
    """Stop a send: its pending rows that no dispatcher holds become failed.

    Rows a dispatcher holds right now finish (they may be on the wire); every
    later claim finds nothing, so each worker stops before its next batch.
    Returns how many rows were cancelled.
    """
    now = timezone.now()
    qs = Notification.objects.filter(source=source, delivery_status=DeliveryStatus.PENDING).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )
    if channel is not None:
        qs = qs.filter(channel=channel)
    return qs.update(delivery_status=DeliveryStatus.FAILED, error=error, next_attempt_at=None, updated_at=now)


def send_counts(*, source: str) -> SendResult:
    """Counts of one send, straight from its rows."""
    return send_counts_many(sources=[source])[source]


def send_counts_many(*, sources: Sequence[str]) -> dict[str, SendResult]:
    """Counts of many sends in one GROUP BY (plus one distinct count per multi-channel send)."""
    results = {source: SendResult(source=source) for source in sources}
    rows = (
        _of_sources(Notification.objects.all(), list(results))
        .values("source", "channel", "delivery_status")
        .annotate(
            n=Count("id"),
            us=Sum("units_sent"),
            uf=Sum("units_failed"),
            none=Count("id", filter=Q(units_sent=0, units_failed=0)),
        )
        .order_by()
    )
    for row in rows:
        result = results[row["source"]]
        per = result.per_channel.setdefault(row["channel"], {"sent": 0, "failed": 0, "pending": 0})
        per[row["delivery_status"]] += row["n"]
        if row["delivery_status"] == DeliveryStatus.SENT:
            result.sent += row["n"]
        elif row["delivery_status"] == DeliveryStatus.FAILED:
            result.failed += row["n"]
            result.unreached += row["none"]
        else:
            result.pending += row["n"]
        result.units_sent += row["us"] or 0
        result.units_failed += row["uf"] or 0
    for source, result in results.items():
        if len(result.per_channel) <= 1:
            # One channel: one row per recipient (the unique key), no DISTINCT needed.
            result.total_recipients = result.sent + result.failed + result.pending
        else:
            result.total_recipients = (
                Notification.objects.filter(source=source).values("recipient_key").distinct().order_by().count()
            )
    return results


def notification_send(
    *,
    platform: Platform,
    source: str,
    channels: Sequence[str],
    recipients: Iterable[Recipient],
    message: Message | None = None,
    render: Renderer | None = None,
    should_stop: StopCheck | None = None,
    wait: bool = True,
) -> SendResult:
    """Deliver `message` (or what `render` gives per recipient) over `channels`.

    Idempotent per `source`: rows already written are kept, rows already sent
    are never sent again. `should_stop` is asked before every batch (a
    cancelled scheduled job). With `wait=True` (the default) it returns once
    every row is sent or failed, except rows waiting for a retry; with
    `wait=False` it returns as soon as the rows are written and the workers'
    chunks are queued (after the caller's transaction commits), and the caller
    shows progress from `send_counts(source=result.source)`. In-app rows are
    delivered while they are written, in both modes.
    """
    deliveries_write(
        platform=platform,
        source=source,
        channels=channels,
        recipients=recipients,
        message=message,
        render=render,
        should_stop=should_stop,
    )
    _dispatch_sends(channels_of={source: channels}, wait=wait, running=_running_from(should_stop))
    return send_counts(source=source)


def notification_send_many(
    *, sends: Sequence[Send], running: RunningCheck | None = None, wait: bool = True
) -> dict[str, SendResult]:
    """`notification_send` for many sources at once; returns each source's counts.

    Small sends share their INSERTs, claims and counts (many scheduled jobs
    falling due together cost a handful of statements, not a handful each);
    a large send goes through `deliveries_write` on its own, in chunks. Every
    send stays idempotent under its own source. `running` is asked before
    every batch with the sources still at work and answers those that may go
    on: a source it drops sends nothing more.
    """
    size = _setting("WRITE_CHUNK", WRITE_CHUNK)
    going = set(_still_running([send.source for send in sends], running)) if running is not None else None
    small, large = [], []
    for send in sends:
        if going is not None and send.source not in going:
            continue  # stopped before anything was written
        (large if len(send.recipients) > size else small).append(send)
    deliveries_write_many(sends=small)
    for send in large:
        deliveries_write(
            platform=send.platform,
            source=send.source,
            channels=send.channels,
            recipients=send.recipients,
            message=send.message,
            render=send.render,
            should_stop=None if running is None else (lambda s=send.source: not _still_running([s], running)),
        )
    _dispatch_sends(channels_of={send.source: send.channels for send in sends}, wait=wait, running=running)
    return send_counts_many(sources=[send.source for send in sends])


def _dispatch_sends(*, channels_of: dict[str, Sequence[str]], wait: bool, running: RunningCheck | None) -> None:
    """Dispatch each channel's pending rows of the given sources, channel after channel."""
    order: dict[str, list[str]] = {}
    for source, channels in channels_of.items():
        for channel in channels:
            order.setdefault(str(channel), []).append(source)
    for channel, sources in order.items():
        if running is not None:
            sources = _still_running(sources, running)
            if not sources:
                continue
        _dispatch_channel(sources=sources, channel=channel, wait=wait, running=running)


# --- the scheduler's "deliveries" source: due retries and orphaned rows ----------------


def deliveries_due_claim(*, now: datetime, limit: int, lease: timedelta) -> list[dict]:
    """Claim pending rows whose retry is due or whose dispatcher is gone.

    Each claimed row gets a ticket (a lease end) and the returned items name
    it, so exactly the task the item goes to may take the rows; if that task
    is lost, the rows are due again when the ticket expires.
    """
    ticket = now + lease
    with transaction.atomic():
        claimed = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(delivery_status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .order_by("next_attempt_at")
            .values_list("id", "channel")[:limit]
        )
        if not claimed:
            return []
        Notification.objects.filter(id__in=[pk for pk, _ in claimed]).update(
            claimed_until=ticket, next_attempt_at=ticket
        )
    by_channel: dict[str, list[str]] = {}
    for pk, channel in claimed:
        by_channel.setdefault(channel, []).append(str(pk))
    size = _setting("DISPATCH_CHUNK", DISPATCH_CHUNK)
    return [
        {"channel": channel, "ids": ids[start : start + size], "ticket": ticket.isoformat()}
        for channel, ids in by_channel.items()
        for start in range(0, len(ids), size)
    ]


def deliveries_oldest_due(*, now: datetime) -> datetime | None:
    """The due time of the longest-waiting retry (or orphaned row) no dispatcher holds."""
    from notifications.scheduler import oldest

    waiting = Notification.objects.filter(delivery_status=DeliveryStatus.PENDING, next_attempt_at__lte=now).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )
    return oldest(waiting, "next_attempt_at")


def deliveries_due_run(*, item_id: dict) -> None:
    deliveries_dispatch_ids(channel=item_id["channel"], ids=item_id["ids"], ticket=parse_datetime(item_id["ticket"]))


# --- the inbox counters ----------------------------------------------------------


def inbox_counters_rebuild(*, platform: Platform | None = None, user=None) -> int:
    """Recount InboxCounter rows from the notifications (repair after TRUNCATE or a restore)."""
    rows = Notification.objects.filter(delivery_status=DeliveryStatus.SENT, user__isnull=False)
    counters = InboxCounter.objects.all()
    if platform is not None:
        rows, counters = rows.filter(platform=platform), counters.filter(platform=platform)
    if user is not None:
        rows, counters = rows.filter(user=user), counters.filter(user=user)
    totals = rows.values("user_id", "platform_id").annotate(
        unread=Count("id", filter=Q(status=InboxStatus.UNREAD)),
        read=Count("id", filter=Q(status=InboxStatus.READ)),
        cancelled=Count("id", filter=Q(status=InboxStatus.CANCELLED)),
    )
    with transaction.atomic():
        counters.delete()
        InboxCounter.objects.bulk_create(
            [
                InboxCounter(
                    user_id=t["user_id"],
                    platform_id=t["platform_id"],
                    unread=t["unread"],
                    read=t["read"],
                    cancelled=t["cancelled"],
                )
                for t in totals.order_by()
            ]
        )
    return len(totals)
