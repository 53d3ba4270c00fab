"""The channel fallback and escalation a send's rows were written under.

The pipeline decides at write time, per send (`source`) and notification
type, which fallback and escalation apply (the caller's `fallback_channel`,
then the platform's per-type policy) and keeps that decision here: dispatch
reads it when a delivery fails for good (the policy may have changed since,
or the send was a bulk request's), and the `escalations` due-work source
claims the plans whose unread in-app rows fall due (see
`notifications.pipeline.fallback`). One row per (source, type), not per
recipient: a 100k in-app send with an escalation writes one plan.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from notifications.channels import Channel
from notifications.models.core import Platform


class DeliveryPlan(models.Model):
    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    source = models.CharField(max_length=120)
    notification_type = models.CharField(max_length=100)
    # {channel: channel it falls back to}, delivery-row channel names.
    fallback = models.JSONField(default=dict, blank=True)
    # In-app rows still unread `escalation_after_seconds` after they were written
    # get a delivery on this channel; empty: no escalation.
    escalation_channel = models.CharField(max_length=20, choices=Channel.choices, blank=True)
    escalation_after_seconds = models.PositiveIntegerField(null=True, blank=True)
    # When the escalation sweep should look at this send's in-app rows next; None: nothing left to look at.
    escalation_due_at = models.DateTimeField(null=True, blank=True)
    # The sweep's lease on the plan while one task escalates it.
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "notification_type"], name="uniq_delivery_plan")]
        indexes = [
            models.Index(
                fields=["escalation_due_at"],
                name="delivery_plan_escalation_due",
                condition=Q(escalation_due_at__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.notification_type}"
