"""The write path: one row per recipient and channel, in chunked transactions.

Each chunk of recipients is one transaction (a crash keeps what was written,
a re-run completes it) of one `INSERT … SELECT FROM unnest(...)` (see `sql`);
a large send outside a transaction writes two chunks at once on their own
connections while the next is built. Rows a channel delivers while written
(in-app) are announced after their transaction commits, only those this call
created, so a re-run never repeats a socket message.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from django.db import connection, transaction
from django.utils import timezone

import notifications.pipeline.sql as sql
import notifications.pipeline.tuning as tuning
from notifications import lifecycle, metrics
from notifications.backends import get_backend
from notifications.channels import settings_key
from notifications.models import Notification, Platform
from notifications.pipeline.build import PENDING, SENT, WriteJob, build_rows, delivered_on_write
from notifications.pipeline.parts import Message, Recipient, Renderer, Send, StopCheck
from notifications.pipeline.policies import FALLBACK, allowed_channels, plans_write


def dedupe(recipients: Iterable[Recipient]) -> list[Recipient]:
    seen: set[int | str] = set()
    unique: list[Recipient] = []
    for r in recipients:
        # An account by its id (an int never equals an address key): no key string per user.
        k = r.user_id if r.user_id is not None else r.key()
        if k not in seen:
            seen.add(k)
            unique.append(r)
    return unique


def direct_channels(channels: Iterable[str]) -> frozenset[str]:
    return frozenset(str(c) for c in channels if delivered_on_write(c))


def _written_outcomes(batch: sql.Batch, inserted: Collection[str]) -> dict[tuple[str, str], int]:
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
    return {key: n for key, n in counts.items() if key[1] != PENDING}


def _platforms(batch: sql.Batch) -> list[int]:
    if "platform_id" not in batch.varies:
        return [batch.values["platform_id"]]
    return sorted(set(batch.column("platform_id")))


def _lifecycle_announce(batch: sql.Batch, inserted: Collection[str]) -> None:
    """After commit: `notification.created` for the rows this call inserted, and the outcomes decided on write.

    Asked per platform whether anyone listens first (`lifecycle.wanted`, a
    cached answer), so a fan-out nobody subscribed to costs nothing; one that
    somebody did costs a list of ids per chunk (the bulk form: listeners read
    the rows themselves).
    """
    events = (lifecycle.notification_created, lifecycle.delivery_sent, lifecycle.delivery_failed)
    wanted = [
        (signal, pid) for pid in _platforms(batch) for signal in events if lifecycle.wanted(signal, platform_id=pid)
    ]
    if not wanted:
        return
    ids = batch.column("id")
    fresh = range(batch.size) if len(inserted) == batch.size else [i for i, pk in enumerate(ids) if pk in inserted]
    platforms, statuses = batch.column("platform_id"), batch.column("delivery_status")
    for signal, pid in wanted:
        if signal is lifecycle.notification_created:
            chosen = [ids[i] for i in fresh if platforms[i] == pid]
        else:
            sent = signal is lifecycle.delivery_sent
            chosen = [
                ids[i]
                for i in fresh
                if platforms[i] == pid and (statuses[i] == SENT if sent else statuses[i] not in (SENT, PENDING))
            ]
        if chosen:
            transaction.on_commit(
                partial(lifecycle.announce_notifications, signal, platform_id=pid, notification_ids=chosen)
            )


def _sent_on(batch: sql.Batch, inserted: Collection[str], channel: str) -> Sequence[int]:
    """Indexes of the rows this insert created on `channel` as sent."""
    if len(inserted) == batch.size and not {"channel", "delivery_status"} & batch.varies:
        # A bulk send: every row or none, without a look at each.
        uniform = batch.values["channel"] == channel and batch.values["delivery_status"] == SENT
        return range(batch.size) if uniform else []
    ids, channels, statuses = batch.column("id"), batch.column("channel"), batch.column("delivery_status")
    return [i for i in range(batch.size) if ids[i] in inserted and channels[i] == channel and statuses[i] == SENT]


def write_chunk(batch: sql.Batch, *, fresh_source: bool, direct_channels: Collection[str]) -> set[str]:
    """One transaction: insert, then (after commit) announce what this call created; returns the new ids."""
    if not batch.size and not batch.plans:
        return set()
    with transaction.atomic():
        inserted = sql.insert(batch, fresh_source=fresh_source)
        if batch.plans:
            # The fallback and escalation these rows were written under (see policies.plans_write).
            plans_write(batch.plans, now=timezone.now())
        if batch.fell_back and inserted:
            rows = zip(batch.column("id"), batch.column("channel"), batch.column("rule"), strict=True)
            written = Counter(channel for pk, channel, rule in rows if rule == FALLBACK and pk in inserted)
            transaction.on_commit(partial(metrics.delivery_rule_applied, rule=FALLBACK, counts=written))
            # A fallback to in-app is delivered while written, like any in-app row.
            direct_channels = set(direct_channels) | {c for c in written if delivered_on_write(c)}
        if not inserted:
            return inserted
        # Rows decided while written (in-app sent, no address failed) are outcomes too.
        decided = _written_outcomes(batch, inserted)
        if decided:
            transaction.on_commit(partial(metrics.deliveries_counted, decided))
        if inserted:
            _lifecycle_announce(batch, inserted)
        for direct in direct_channels:
            fresh = sql.RowViews(batch, _sent_on(batch, inserted, direct))
            if fresh:
                # Only rows this call inserted: a re-run never repeats a socket message.
                transaction.on_commit(partial(get_backend(settings_key(direct)).announce, fresh))
    return inserted


def _write_in_parallel(job: WriteJob, chunks: list, should_stop: StopCheck | None) -> None:
    """Build chunk k+1 here while writers insert chunk k on their own connections.

    psycopg releases the GIL while PostgreSQL works, so building rows, two
    inserts and their triggers overlap on two cores.
    """

    def write(built):
        try:
            write_chunk(built, fresh_source=job.fresh_source, direct_channels=job.direct)
        finally:
            connection.close()  # this thread's own connection

    writers = tuning.setting("WRITE_THREADS", tuning.WRITE_THREADS)
    with ThreadPoolExecutor(max_workers=writers, thread_name_prefix="notify-write") as pool:
        running: deque = deque()
        for chunk in chunks:
            if should_stop is not None and should_stop():
                break
            built = build_rows(job, chunk)
            while len(running) >= writers:
                running.popleft().result()  # at most `writers` chunks in flight
            running.append(pool.submit(write, built))
        for future in running:
            future.result()


def _job(
    *,
    platform: Platform,
    source: str,
    channels: Sequence[str],
    message,
    render,
    fresh_source: bool,
    fallback_channel: str = "",
    type_policies: dict | None = None,
) -> WriteJob:
    if (message is None) == (render is None):
        raise ValueError("give exactly one of message or render")
    channels = tuple(str(c) for c in channels)
    return WriteJob(
        platform_id=platform.pk,
        source=source,
        channels=channels,
        direct=direct_channels(channels),
        message=message,
        render=render,
        fresh_source=fresh_source,
        fallback_channel=str(fallback_channel or ""),
        allowed=allowed_channels(platform),
        type_policies={} if type_policies is None else type_policies,
    )


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
    fallback_channel: str = "",
) -> int:
    """Write one row per recipient and channel; rows that exist are left alone.

    Rows of channels whose backend is `delivered_on_write` (in-app) are written
    as sent and announced after their transaction commits; the others are
    written pending for dispatch. Returns how many recipients were given
    (after de-duplication).
    """
    size = batch_size or tuning.setting("WRITE_CHUNK", tuning.WRITE_CHUNK)
    job = _job(
        platform=platform,
        source=source,
        channels=channels,
        message=message,
        render=render,
        fresh_source=not Notification.objects.filter(source=source).exists(),
        fallback_channel=fallback_channel,
    )
    unique = dedupe(recipients)
    chunks = [unique[start : start + size] for start in range(0, len(unique), size)]
    parallel = (
        len(chunks) > 1
        and connection.vendor == "postgresql"
        and not connection.in_atomic_block  # other connections could not see the caller's transaction
        and tuning.setting("WRITE_THREADS", tuning.WRITE_THREADS) > 1
    )
    if parallel:
        _write_in_parallel(job, chunks, should_stop)
    else:
        for chunk in chunks:
            if should_stop is not None and should_stop():
                break
            write_chunk(build_rows(job, chunk), fresh_source=job.fresh_source, direct_channels=job.direct)
    return len(unique)


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
    size = tuning.setting("WRITE_CHUNK", tuning.WRITE_CHUNK)
    group: list[sql.Batch] = []
    fresh, direct, count = True, set(), 0
    # Sends of one platform and type (a thousand reminders) look their policy up once.
    type_policies: dict = {}

    def flush():
        nonlocal group, fresh, direct, count
        if group:
            write_chunk(sql.Batch.concat(group), fresh_source=fresh, direct_channels=direct)
        group, fresh, direct, count = [], True, set(), 0

    for send in sends:
        job = _job(
            platform=send.platform,
            source=send.source,
            channels=send.channels,
            message=send.message,
            render=send.render,
            fresh_source=send.source not in existing,
            fallback_channel=send.fallback_channel,
            type_policies=type_policies,
        )
        unique = dedupe(send.recipients)
        for start in range(0, len(unique), size):
            batch = build_rows(job, unique[start : start + size])
            if count and count + batch.size > size:
                flush()
            group.append(batch)
            fresh = fresh and job.fresh_source
            direct |= job.direct
            count += batch.size
    flush()
