"""Escalation as due work: the `escalations` source of the scheduler (see `fallback` for the rules).

A send written under an escalation ("in-app still unread after N minutes,
then email") keeps its plan (`DeliveryPlan`) with the moment its in-app rows
fall due. The sweep claims due plans under a lease; the task escalates, in
bulk, every in-app row of that send still unread after the wait, then re-arms
the plan for rows younger than the wait or closes it. Registered by the
core's AppConfig.ready().
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

import notifications.pipeline.sql as sql
import notifications.pipeline.tuning as tuning
from notifications.channels import Channel
from notifications.models import DeliveryPlan, DeliveryStatus, InboxStatus, Notification
from notifications.pipeline.dispatch import dispatch_channel
from notifications.pipeline.fallback import COPIED, follow_ups_write
from notifications.pipeline.policies import ESCALATION, allowed_channels
from notifications.scheduler import DueWorkSource, claim_rows, first_due, oldest

_ADDRESSED = (str(Channel.EMAIL), str(Channel.SMS))


def _due(now: datetime):
    return DeliveryPlan.objects.filter(escalation_due_at__lte=now).exclude(claimed_until__gt=now)


def escalations_claim(*, now: datetime, limit: int, lease: timedelta) -> list[dict]:
    """Claim the sends whose in-app rows may be due for an escalation, under a lease.

    Each item carries the sweep's clock: the task checks "unread for N minutes"
    against the moment the sweep saw them due.
    """
    ids = claim_rows(
        _due(now), limit=limit, updates={"claimed_until": now + lease}, order_by=("escalation_due_at", "pk")
    )
    return [{"plan": pk, "now": now.isoformat()} for pk in ids]


def escalations_next_due(*, after: datetime, until: datetime) -> datetime | None:
    return first_due(DeliveryPlan.objects.all(), "escalation_due_at", after=after, until=until)


def escalations_oldest_due(*, now: datetime) -> datetime | None:
    return oldest(_due(now), "escalation_due_at")


def escalation_run(*, item_id: dict) -> None:
    """Escalate one send's in-app rows that are still unread after the wait, then re-arm or close the plan.

    Idempotent: rows already escalated conflict on the unique key and are not
    written again, so a task that died and is claimed again sends nothing twice.
    """
    plan = DeliveryPlan.objects.select_related("platform").filter(pk=item_id["plan"]).first()
    if plan is None:
        return
    seen_due = plan.escalation_due_at
    now = parse_datetime(item_id["now"]) or timezone.now()
    if not (plan.escalation_channel and plan.escalation_after_seconds):
        DeliveryPlan.objects.filter(pk=plan.pk).update(escalation_due_at=None, claimed_until=None)
        return
    wait = timedelta(seconds=plan.escalation_after_seconds)
    cutoff = now - wait
    unread = Notification.objects.filter(
        source=plan.source,
        channel=Channel.IN_APP,
        notification_type=plan.notification_type,
        delivery_status=DeliveryStatus.SENT,
        status=InboxStatus.UNREAD,
        user__isnull=False,
    )
    channel = plan.escalation_channel
    written = 0
    if channel in allowed_channels(plan.platform):
        size = tuning.setting("WRITE_CHUNK", tuning.WRITE_CHUNK)
        after = None
        while True:
            qs = unread.filter(created_at__lte=cutoff)
            if after is not None:
                qs = qs.filter(id__gt=after)
            rows = list(qs.order_by("id").values("id", *COPIED)[:size])
            if not rows:
                break
            after = rows[-1]["id"]
            contacts = sql.contacts([r["user_id"] for r in rows], addresses=channel in _ADDRESSED)
            pending = follow_ups_write(rows, channels=[channel] * len(rows), rule=ESCALATION, contacts=contacts)
            written += sum(len(ids) for ids in pending.values())
        if written:
            dispatch_channel(sources=[plan.source], channel=channel, wait=True, running=None)
    # Rows younger than the wait (a send still being written) are looked at again when theirs is up.
    youngest_unread = unread.filter(created_at__gt=cutoff).order_by("created_at").values_list("created_at", flat=True)
    first_young = youngest_unread.first()
    next_due = first_young + wait if first_young is not None else None
    with transaction.atomic():
        # Unless a writer of the same send moved the due time meanwhile (its rows come next).
        moved = not DeliveryPlan.objects.filter(pk=plan.pk, escalation_due_at=seen_due).update(
            escalation_due_at=next_due, claimed_until=None
        )
        if moved:
            DeliveryPlan.objects.filter(pk=plan.pk).update(claimed_until=None)


DUE_WORK = DueWorkSource(
    name="escalations",
    claim=escalations_claim,
    run=escalation_run,
    next_due=escalations_next_due,
    oldest_due=escalations_oldest_due,
)
