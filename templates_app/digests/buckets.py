"""Digest buckets: events join with one upsert, the sweep closes and sends each once.

Joining is one statement. On PostgreSQL an `INSERT … ON CONFLICT (platform,
digest_key, window_end) DO UPDATE` appends the event to its window's bucket
and counts it, or opens the bucket; the update applies only while the bucket
is open, so an event racing the close finds no row, and joins the next
window instead. Eight workers adding to one bucket queue on its row lock and
none of their items is lost; an event posted twice (same event id) is
appended once.

Sending is due work (`DUE_WORK`, registered in the app's `ready()`): once its
window has ended the sweep claims a bucket under a lease (`open` ->
`sending`), and the task hands it to the pipeline under the source
`digest:<id>`. The pipeline's unique key (source, channel, recipient) makes a
second run of the same bucket (a worker killed mid-send, its lease run out,
the bucket claimed again) write and send nothing twice; only the run that
moves the bucket to `sent` announces it (`lifecycle.digest_sent`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from notifications import lifecycle
from notifications.digests import Digester, DigestOutcome, DigestRequest
from notifications.models import DeliveryRule, Notification
from notifications.pipeline import Message, Recipient, Send, notification_send_many
from notifications.scheduler import DueWorkSource, claim_rows, first_due, oldest
from templates_app import defaults
from templates_app.digests.rules import DigestPlan, cadences_of, digest_plan, plan_from
from templates_app.messages import FieldRenderError, rendered_ahead, renderer_for
from templates_app.models import DigestBucket, DigestMode, DigestRule, DigestStatus

logger = logging.getLogger(__name__)

# A join that keeps finding its window closed moves on this many windows at most.
_MAX_WINDOWS = 4


@dataclass(frozen=True)
class Joined:
    """Where one event of one recipient went."""

    bucket_id: int
    window_end: datetime
    # Leading mode and this event opened the window: it goes out at once, live
    # (again true when the same event joins again: its live send is idempotent).
    send_now: bool


def digest_key(*, plan: DigestPlan, recipient: Recipient, context: dict) -> str:
    key = f"{plan.notification_type}|{recipient.key()}"
    if plan.key_context:
        value = context.get(plan.key_context, "")
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        key += f"|{plan.key_context}={text[:200]}"
    return key


def digest_join(
    *,
    platform,
    plan: DigestPlan,
    recipient: Recipient,
    recipient_timezone: str,
    event_id: str,
    context: dict,
    channels: list[str] | None = None,
    now: datetime | None = None,
) -> Joined:
    """Add one event to the open bucket of its key and window (opening it if need be).

    `channels` are those the digest goes out over (the rule's, narrowed to the
    ones the type's template and the platform allow); a bucket keeps the
    channels of the event that opened it.
    """
    now = now or timezone.now()
    channels = list(plan.channels if channels is None else channels)
    key = digest_key(plan=plan, recipient=recipient, context=context)
    item = {"event_id": event_id, "received_at": now.isoformat(), "context": context}
    start, end = plan.window(at=now, recipient_timezone=recipient_timezone)
    join = _join_postgresql if connection.vendor == "postgresql" else _join_sqlite
    for _ in range(_MAX_WINDOWS):
        row = join(
            platform_id=platform.pk,
            plan=plan,
            key=key,
            recipient=recipient,
            channels=channels,
            start=start,
            end=end,
            item=item,
            now=now,
        )
        if row is not None:
            bucket_id, live = row
            return Joined(bucket_id=bucket_id, window_end=end, send_now=live)
        # The bucket of this window closed while the event was on its way: the next one takes it.
        start, end = plan.window_after(end, recipient_timezone=recipient_timezone)
    raise RuntimeError(f"digest {key}: {_MAX_WINDOWS} windows in a row were closed")


def _first_item(plan: DigestPlan, item: dict) -> tuple[dict, int]:
    """The item a new bucket starts with, and its count: a leading event went out live and is not counted."""
    if plan.mode == DigestMode.LEADING:
        return {**item, "live": True}, 0
    return item, 1


_UPSERT = """
INSERT INTO {table} AS b (
    platform_id, notification_type, digest_key, user_id, address, channels, mode,
    window_start, window_end, items, count, status, error, created_at, updated_at
) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, jsonb_build_array(%s::jsonb), %s, 'open', '', %s, %s)
ON CONFLICT (platform_id, digest_key, window_end) DO UPDATE SET
    items = CASE WHEN b.items @> %s::jsonb THEN b.items ELSE b.items || jsonb_build_array(%s::jsonb) END,
    count = b.count + CASE WHEN b.items @> %s::jsonb THEN 0 ELSE 1 END,
    updated_at = EXCLUDED.updated_at
WHERE b.status = 'open'
RETURNING id, b.items @> %s::jsonb AS live
"""


def _join_postgresql(*, platform_id, plan, key, recipient, channels, start, end, item, now) -> tuple[int, bool] | None:
    """(bucket id, whether this event is the window's leading event), or None when the bucket is closed."""
    first, count = _first_item(plan, item)
    probe = json.dumps([{"event_id": item["event_id"]}])
    plain = json.dumps(item, default=str)
    with connection.cursor() as cursor:
        cursor.execute(
            _UPSERT.format(table=DigestBucket._meta.db_table),
            [
                platform_id,
                plan.notification_type,
                key,
                recipient.user_id,
                recipient.address if recipient.user_id is None else "",
                json.dumps(channels),
                plan.mode,
                start,
                end,
                json.dumps(first, default=str),
                count,
                now,
                now,
                probe,
                plain,
                probe,
                json.dumps([{"event_id": item["event_id"], "live": True}]),
            ],
        )
        row = cursor.fetchone()
    return (row[0], bool(row[1])) if row else None


def _join_sqlite(*, platform_id, plan, key, recipient, channels, start, end, item, now) -> tuple[int, bool] | None:
    # Development path: SQLite runs one writer at a time, so a read-then-write
    # in one transaction is as atomic as the upsert.
    with transaction.atomic():
        bucket = DigestBucket.objects.filter(platform_id=platform_id, digest_key=key, window_end=end).first()
        if bucket is None:
            first, count = _first_item(plan, item)
            try:
                with transaction.atomic():
                    bucket = DigestBucket.objects.create(
                        platform_id=platform_id,
                        notification_type=plan.notification_type,
                        digest_key=key,
                        user_id=recipient.user_id,
                        address=recipient.address if recipient.user_id is None else "",
                        channels=channels,
                        mode=plan.mode,
                        window_start=start,
                        window_end=end,
                        items=[json.loads(json.dumps(first, default=str))],
                        count=count,
                    )
                return bucket.pk, bool(first.get("live"))
            except IntegrityError:
                bucket = DigestBucket.objects.get(platform_id=platform_id, digest_key=key, window_end=end)
        if bucket.status != DigestStatus.OPEN:
            return None
        mine = next((i for i in bucket.items if i.get("event_id") == item["event_id"]), None)
        if mine is None:
            bucket.items.append(json.loads(json.dumps(item, default=str)))
            bucket.count += 1
            bucket.save(update_fields=["items", "count", "updated_at"])
        return bucket.pk, bool(mine and mine.get("live"))


# --- the core's bulk sends -------------------------------------------------------------------


def digests_apply(*, platform, notification_type: str, channel: str) -> bool:
    """Whether `platform` digests `notification_type` on `channel` (the core's `Digester.applies`)."""
    plan = digest_plan(platform=platform, notification_type=notification_type)
    return plan is not None and channel in plan.channels


def digests_join_send(request: DigestRequest) -> DigestOutcome:
    """Join each recipient of a bulk send that names a digest key (the core's `Digester.join`).

    The send's key splits the digests like a rule's `key_context`: sends
    naming the same key reach a recipient as one digest per window.
    """
    plan = digest_plan(platform=request.platform, notification_type=request.notification_type)
    if plan is None or request.channel not in plan.channels:
        raise ValueError(f"{request.notification_type} is not digested on {request.channel}")
    plan = replace(plan, key_context="digest_key")
    context = {**request.item, "digest_key": request.digest_key}
    cadence = cadences_of(
        platform=request.platform, plan=plan, user_ids=[r.user_id for r in request.recipients if r.user_id]
    )
    zones = dict(
        get_user_model()
        .objects.filter(pk__in=[r.user_id for r in request.recipients if r.user_id])
        .values_list("pk", "timezone")
    )
    at_once, ends, joined = [], [], 0
    for recipient in request.recipients:
        own = plan.for_cadence(cadence.get(recipient.user_id))
        if own is None:
            at_once.append(recipient)
            continue
        j = digest_join(
            platform=request.platform,
            plan=own,
            recipient=recipient,
            recipient_timezone=zones.get(recipient.user_id, ""),
            event_id=request.source,
            context=context,
            channels=[request.channel],
        )
        ends.append(j.window_end)
        if j.send_now:
            at_once.append(recipient)
        else:
            joined += 1
    return DigestOutcome(mode=plan.mode, at_once=at_once, joined=joined, goes_out_at=min(ends) if ends else None)


DIGESTER = Digester(applies=digests_apply, join=digests_join_send)


# --- the due-work source -----------------------------------------------------------------


def _due(now: datetime):
    return DigestBucket.objects.filter(
        Q(status=DigestStatus.OPEN, window_end__lte=now) | Q(status=DigestStatus.SENDING, claimed_until__lte=now)
    )


def digests_due_claim(*, now: datetime, limit: int, lease: timedelta) -> list[int]:
    """Close the buckets whose window has ended (and take back those whose sender died), under a lease."""
    return claim_rows(
        _due(now),
        limit=limit,
        updates={"status": DigestStatus.SENDING, "claimed_until": now + lease},
        order_by=("window_end", "id"),
    )


def digests_next_due(*, after: datetime, until: datetime) -> datetime | None:
    return first_due(DigestBucket.objects.filter(status=DigestStatus.OPEN), "window_end", after=after, until=until)


def digests_oldest_due(*, now: datetime) -> datetime | None:
    ends = [
        oldest(DigestBucket.objects.filter(status=DigestStatus.OPEN, window_end__lte=now), "window_end"),
        oldest(DigestBucket.objects.filter(status=DigestStatus.SENDING, claimed_until__lte=now), "claimed_until"),
    ]
    ends = [e for e in ends if e is not None]
    return min(ends) if ends else None


def digests_run(*, item_id) -> None:
    digests_deliver(bucket_ids=[item_id])


def digests_run_many(*, item_ids: list) -> None:
    digests_deliver(bucket_ids=item_ids)


class _DigestRenderer:
    """The digest's message as rendered, stored with the digest's id and count instead of every item."""

    def __init__(self, inner, bucket: DigestBucket):
        self.inner = inner
        self.stored = {"digest_id": str(bucket.pk), "count": bucket.count}

    def __call__(self, recipient: Recipient, channel: str, user) -> Message:
        return replace(self.inner(recipient, channel, user), context=self.stored)


# A digest template sees at most this many items (oldest first) beside the full `count`: a
# bucket of a hundred thousand events still renders within the template's context budget.
ITEMS_RENDERED = 200


def digest_items(bucket: DigestBucket) -> list[dict]:
    """The contexts the digest lists, oldest first (a leading event that went out live is left out)."""
    items = (item.get("context") or {} for item in bucket.items if not item.get("live"))
    return [context for context, _ in zip(items, range(ITEMS_RENDERED), strict=False)]


def _templates_for(buckets: list[DigestBucket]) -> dict[tuple[int, str], dict[str, str]]:
    """The digest template of each (platform, type): the platform's rule over the shipped one."""
    wanted = {(b.platform_id, b.notification_type) for b in buckets}
    rules = DigestRule.objects.filter(
        platform_id__in={p for p, _ in wanted}, notification_type__in={t for _, t in wanted}
    )
    templates = {}
    for rule in rules:
        plan = plan_from(rule)
        if plan is not None:
            templates[(rule.platform_id, rule.notification_type)] = plan.template
    for platform_id, notification_type in wanted:
        if (platform_id, notification_type) not in templates:
            shipped = defaults.DIGEST_BY_TYPE.get(notification_type)
            templates[(platform_id, notification_type)] = (
                shipped.template() if shipped is not None else defaults.GENERIC_DIGEST_TEMPLATE
            )
    return templates


def digests_deliver(*, bucket_ids: list) -> None:
    """Send each claimed bucket's digest through the pipeline, once; mark it sent and announce it.

    Runs again after a crash: rows the dead run wrote are kept and never sent
    twice (the pipeline's unique key on the bucket's source).
    """
    buckets = list(
        DigestBucket.objects.filter(pk__in=bucket_ids, status=DigestStatus.SENDING).select_related("platform", "user")
    )
    if not buckets:
        return
    empty = [b.pk for b in buckets if not b.count]
    if empty:
        DigestBucket.objects.filter(pk__in=empty, status=DigestStatus.SENDING).update(
            status=DigestStatus.EMPTY, claimed_until=None, sent_at=timezone.now()
        )
    templates = _templates_for(buckets)
    sends, failed = [], []
    for bucket in (b for b in buckets if b.count):
        recipient = Recipient(user_id=bucket.user_id) if bucket.user_id else Recipient(address=bucket.address)
        try:
            # Rendered first: a digest template that cannot render fails its bucket, not the batch.
            messages = rendered_ahead(
                render=renderer_for(
                    platform=bucket.platform,
                    channels=bucket.channels,
                    content=templates[(bucket.platform_id, bucket.notification_type)],
                    notification_type=bucket.notification_type,
                    context={"items": digest_items(bucket), "count": bucket.count},
                ),
                audience=[(recipient, bucket.user)],
                channels=bucket.channels,
            )
        except FieldRenderError as exc:
            failed.append((bucket, f"The digest template failed to render: {exc}"[:500]))
            continue
        sends.append(
            Send(
                platform=bucket.platform,
                source=bucket.source,
                channels=bucket.channels,
                recipients=[recipient],
                render=_DigestRenderer(messages, bucket),
            )
        )
    for bucket, error in failed:
        logger.error("digest %s: %s", bucket.pk, error)
        DigestBucket.objects.filter(pk=bucket.pk, status=DigestStatus.SENDING).update(
            status=DigestStatus.FAILED, claimed_until=None, error=error
        )
    if not sends:
        return
    results = notification_send_many(sends=sends)
    sources = [send.source for send in sends]
    # The rows say which rule shaped them: these deliveries are digests.
    Notification.objects.filter(source__in=sources).exclude(rule=DeliveryRule.DIGEST).update(rule=DeliveryRule.DIGEST)
    now = timezone.now()
    by_source = {b.source: b for b in buckets}
    for source in sources:
        bucket = by_source[source]
        moved = DigestBucket.objects.filter(pk=bucket.pk, status=DigestStatus.SENDING).update(
            status=DigestStatus.SENT, claimed_until=None, sent_at=now
        )
        if moved:
            # Only the run that moved the bucket on announces it: one announcement per digest.
            counts = results[source]
            lifecycle.announce(
                lifecycle.digest_sent,
                platform_id=bucket.platform_id,
                payload={
                    "digest_id": str(bucket.pk),
                    "source": source,
                    "notification_type": bucket.notification_type,
                    "user_id": str(bucket.user_id) if bucket.user_id else None,
                    "channels": list(bucket.channels),
                    "count": bucket.count,
                    "window_start": bucket.window_start.isoformat(),
                    "window_end": bucket.window_end.isoformat(),
                    "sent": counts.sent,
                    "failed": counts.failed,
                    "pending": counts.pending,
                },
            )


DUE_WORK = DueWorkSource(
    name="digests",
    claim=digests_due_claim,
    run=digests_run,
    run_many=digests_run_many,
    next_due=digests_next_due,
    oldest_due=digests_oldest_due,
)
