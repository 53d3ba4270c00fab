"""Proactive learner notifications: periodic configs run by the core's due-work sweep.

A platform's PROACTIVE_LEARNER_NOTIFICATION copy carries `periodic_config` and
`next_execution_at`. The sweep claims due rows with SKIP LOCKED under a lease
(`claim_rows`) and runs each once: every learner in scope gets one message per
configured mentor, with an `ai_recommendation` from the configured provider.
The delivery source names the scheduled run, so a run retried after a crash
reaches only the learners it had not reached yet; then the row moves on to
its next execution.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone
from tqdm import tqdm

from notifications.models import Notification
from notifications.pipeline import Recipient, SendResult, eligibility, notification_send
from notifications.scheduler import DueWorkSource, claim_rows, oldest
from notifications.selectors import platform_members
from templates_app import defaults, selectors
from templates_app.automation.recommendations import activity_summary, get_provider, recommendation_for
from templates_app.automation.schedule import next_execution
from templates_app.messages import rendered_ahead, renderer_for
from templates_app.models import LearnerActivity, NotificationTemplate
from templates_app.rendering import TemplateError
from templates_app.services.configs import PROACTIVE

logger = logging.getLogger(__name__)


def _due(now: datetime):
    return NotificationTemplate.objects.filter(
        type=PROACTIVE, platform__isnull=False, platform__is_active=True, next_execution_at__lte=now
    ).filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))


def periodic_claim(*, now: datetime, limit: int, lease: timedelta) -> list:
    return claim_rows(
        _due(now), limit=limit, updates={"claimed_until": now + lease}, order_by=("next_execution_at", "pk")
    )


def learners_in_scope(*, platform, config: dict, now: datetime) -> list:
    """ACTIVE_LEARNERS: members with activity in the report period; ALL_LEARNERS: every learner member."""
    learners = platform_members(platform=platform, admin=False).filter(is_service_account=False)
    if (config.get("learner_scope") or "ACTIVE_LEARNERS") == "ACTIVE_LEARNERS":
        since = now - timedelta(days=int(config.get("report_period_days") or 7))
        active = LearnerActivity.objects.filter(platform=platform, occurred_at__gte=since).values("user_id")
        learners = learners.filter(pk__in=active)
    return list(learners.order_by("pk"))


def run_source(template: NotificationTemplate, scheduled: datetime, mentor: dict) -> str:
    return f"proactive:{template.pk}:{scheduled:%Y%m%dT%H%M}:{mentor.get('unique_id') or '-'}"


def proactive_send(
    *, template: NotificationTemplate, scheduled: datetime, now: datetime | None = None, progress: bool = False
) -> dict[str, SendResult]:
    """One scheduled run of a periodic config; returns the send counts per mentor."""
    now = now or timezone.now()
    platform = template.platform
    config = {**defaults.DEFAULT_PERIODIC_CONFIG, **(template.periodic_config or {})}
    # Only what the pipeline would deliver over (push may be switched off): no
    # learner's summary is asked of the AI provider for a channel that sends nothing.
    allowed = [c.name for c in template.allowed_channels.all()]
    channels = list(eligibility.platform_channels(platform=platform, channels=allowed))
    learners = learners_in_scope(platform=platform, config=config, now=now)
    mentors = config.get("mentors") or [{}]
    provider = get_provider()
    results = {}
    for mentor in mentors:
        source = run_source(template, scheduled, mentor)
        # A retried run only renders (and asks the AI provider) for learners it has not written yet.
        done = set(Notification.objects.filter(source=source).values_list("user_id", flat=True).distinct())
        todo = [u for u in learners if u.pk not in done]
        if not todo or not channels:
            continue
        audience = _audience(platform=platform, learners=todo, mentor=mentor, config=config, provider=provider, now=now)
        if progress:
            audience = tqdm(audience, total=len(todo), desc=f"{platform.key} {mentor.get('name') or 'proactive'}")
        try:
            messages = rendered_ahead(
                render=renderer_for(platform=platform, channels=channels, template=template),
                audience=audience,
                channels=channels,
            )
        except TemplateError as exc:
            logger.error("proactive template of %s cannot render: %s", platform.key, exc)
            return results
        results[source] = notification_send(
            platform=platform, source=source, channels=channels, recipients=messages.recipients, render=messages
        )
    return results


def _audience(*, platform, learners: list, mentor: dict, config: dict, provider, now: datetime):
    """(Recipient carrying the learner's variables for `mentor`, learner) per learner.

    A generator: each learner's activity summary and AI recommendation are
    prepared only when the renderer reaches them, so a template that cannot
    render stops the run before the provider is asked for everyone.
    """
    period_days = int(config.get("report_period_days") or 7)
    for learner in learners:
        summary = activity_summary(platform=platform, user=learner, period_days=period_days, now=now)
        context = {
            "student_name": learner.get_full_name() or learner.username,
            "student_email": learner.email,
            "mentor_name": mentor.get("name") or "",
            "mentor_unique_id": mentor.get("unique_id") or "",
            "ai_recommendation": recommendation_for(learner=learner, mentor=mentor, summary=summary, provider=provider),
        }
        yield Recipient(user_id=learner.pk, context=context), learner


def periodic_run(*, item_id) -> None:
    """Run one claimed periodic config, then move it to its next execution."""
    template = NotificationTemplate.objects.select_related("platform").filter(pk=item_id).first()
    if template is None or template.next_execution_at is None:
        return
    scheduled = template.next_execution_at
    now = timezone.now()
    if selectors.type_enabled(platform=template.platform, notification_type=PROACTIVE):
        proactive_send(template=template, scheduled=scheduled, now=now)
    else:
        logger.info("proactive notifications are disabled on %s; skipping the run", template.platform.key)
    config = {**defaults.DEFAULT_PERIODIC_CONFIG, **(template.periodic_config or {})}
    # Only the claimer of this very run moves it on (an edit in between already rescheduled it).
    moved = NotificationTemplate.objects.filter(pk=template.pk, next_execution_at=scheduled).update(
        last_execution_at=now,
        next_execution_at=next_execution(config, now=now, previous=scheduled),
        claimed_until=None,
    )
    if not moved:
        NotificationTemplate.objects.filter(pk=template.pk).update(last_execution_at=now, claimed_until=None)


def periodic_oldest_due(*, now: datetime):
    """The `next_execution_at` of the longest-waiting due config no sweep holds."""
    return oldest(_due(now), "next_execution_at")


DUE_WORK = DueWorkSource(
    name="proactive_learner", claim=periodic_claim, run=periodic_run, oldest_due=periodic_oldest_due
)
