"""Writes of the builder: preview a build, send it, cancel it, and the worker that sends.

Preview resolves every source into `BuildRecipient` rows with INSERT ... SELECT
(a unique key on the build and recipient de-duplicates across sources), so the
audience never passes through Python. Sending walks those rows in chunks that
a worker claims under a lease (SKIP LOCKED) and hands each chunk to the one
delivery pipeline under the source `build:<id>`, users and bare addresses in
one call (the pipeline gives each the channels it can take); the pipeline's
unique keys make a re-run after a crash send nothing twice, and each recipient
row is settled from the pipeline's per-recipient outcomes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import BigIntegerField, CharField, F, Q, UUIDField, Value
from django.db.models.functions import Cast, Coalesce, Concat
from django.utils import timezone

from builder import templating
from builder.errors import BuildConflict, BuildError, BuildForbidden
from builder.models import Build, BuildRecipient, BuildStatus, RecipientStatus
from builder.selectors import Access, build_similar
from builder.sources import (
    DEPARTMENT,
    Resolved,
    Source,
    insert_select,
    source_resolve,
    staged_drop,
)
from notifications import lifecycle
from notifications.channels import Channel
from notifications.pipeline import Recipient, notification_send
from notifications.pipeline.counts import recipient_outcomes
from notifications.pipeline.retry import BUILD_RUNS
from notifications.scheduler import claim_rows, first_due, oldest

logger = logging.getLogger(__name__)

SENT_MESSAGE = "Notifications sent"
QUEUED_MESSAGE = "Notifications queued"
SIMILAR_MESSAGE = "Similar notifications found"

# A sending worker owns the build, and the chunk of recipients it claimed, this long.
LEASE = timedelta(minutes=5)
PREVIEW_SIZE = 10
_RECIPIENT_COLUMNS = ["build_id", "user_id", "recipient_key", "username", "email", "status", "error"]


def _chunk_size() -> int:
    return max(1, int(getattr(settings, "BUILDER_SEND_CHUNK", 1000)))


def _parallel_workers() -> int:
    return max(1, int(getattr(settings, "BUILDER_SEND_WORKERS", 1)))


# --- preview -------------------------------------------------------------------------


def sources_authorize(*, access: Access, sources: list[Source]) -> None:
    """A department admin may only reach members of the departments they administer."""
    if access.is_platform_admin:
        return
    for source in sources:
        if source.type != DEPARTMENT:
            raise BuildForbidden(
                f"Department admins may only send to their own departments; {source.label} is not allowed."
            )
        if int(source.data) not in access.department_ids:
            raise BuildForbidden(f"You are not an admin of department {source.data}; {source.label} is not allowed.")


def build_preview(
    *,
    access: Access,
    channels: list[str],
    sources: list[Source],
    template_id: str = "",
    template_data: dict | None = None,
    context: dict | None = None,
    process_on: datetime | None = None,
) -> Build:
    """Resolve and de-duplicate every source into a new build; raises BuildError on bad input."""
    sources_authorize(access=access, sources=sources)
    platform = access.platform
    template = (
        templating.template_resolve(platform=platform, template_id=template_id, channels=channels)
        if template_id
        else None
    )
    if template_data is not None:
        templating.content_check(template_data=template_data)
    with transaction.atomic():
        build = Build.objects.create(
            platform=platform,
            created_by=access.user,
            status=BuildStatus.DRAFT,
            template_id=template.id if template else "",
            template_name=template.name if template else "",
            template_type=template.type if template else "",
            template_data=template_data,
            context=context or {},
            channels=list(channels),
            sources=[s.record() for s in sources],
            process_on=process_on,
        )
        batches = []
        for source in sources:
            resolved = source_resolve(platform=platform, source=source)
            batches += resolved.batches
            _recipients_insert(build=build, resolved=resolved)
        staged_drop(batches)
        count = BuildRecipient.objects.filter(build=build).count()
        if count == 0:
            raise BuildError("The sources resolve to no recipients.")
        email_only = BuildRecipient.objects.filter(build=build, recipient_key__startswith="email:").count()
        if email_only and Channel.EMAIL not in channels:
            raise BuildError(
                f"{email_only} recipient(s) have no account on this platform and can only be reached by email: "
                "add the email channel or remove them."
            )
        build.recipient_count = count
        build.content_hash = build_fingerprint(build=build)
        similar = build_similar(build=build)
        build.similar_build = similar
        build.warning = similar_warning(similar) if similar else ""
        build.status = BuildStatus.PREVIEWED
        build.save()
    return build


def _recipients_insert(*, build: Build, resolved: Resolved) -> None:
    build_id = Value(build.pk, output_field=UUIDField())
    pending, no_error = Value(RecipientStatus.PENDING.value), Value("")
    users = resolved.users.order_by("pk").values(
        b=build_id,
        u=F("pk"),
        k=Concat(Value("user:"), Cast("pk", CharField())),
        un=F("username"),
        em=F("email"),
        st=pending,
        er=no_error,
    )
    insert_select(model=BuildRecipient, columns=_RECIPIENT_COLUMNS, queryset=users)
    if resolved.addresses is not None:
        addresses = resolved.addresses.order_by("pk").values(
            b=build_id,
            u=Cast(Value(None), BigIntegerField()),
            k=Concat(Value("email:"), F("value")),
            un=no_error,
            em=F("value"),
            st=pending,
            er=no_error,
        )
        insert_select(model=BuildRecipient, columns=_RECIPIENT_COLUMNS, queryset=addresses)


def build_fingerprint(*, build: Build) -> str:
    """SHA-256 over the recipient set, the template (or its content and context) and the channels.

    Keys are streamed from the database in order, so a 100k audience is hashed
    without holding it.
    """
    digest = hashlib.sha256()
    keys = (
        BuildRecipient.objects.filter(build=build)
        .order_by("recipient_key")
        .values_list("recipient_key", flat=True)
        .iterator(chunk_size=5000)
    )
    for key in keys:
        digest.update(key.encode())
        digest.update(b"\n")
    if build.template_type:
        # One template per type on a platform: the type names it, whichever row (default or copy) it is.
        content = {"template": build.template_type}
    else:
        content = {"template_data": build.template_data}
    content["context"] = build.context or {}
    content["channels"] = sorted(build.channels)
    digest.update(b"\0")
    digest.update(json.dumps(content, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()


def similar_warning(similar: Build) -> str:
    by = f" by {similar.submitted_by.username}" if similar.submitted_by_id and similar.submitted_by else ""
    when = similar.submitted_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if similar.submitted_at else ""
    return (
        f"A similar notification (build {similar.pk}) went to the same {similar.recipient_count} recipient(s) "
        f"with the same content on {', '.join(sorted(similar.channels))} at {when}{by}. "
        'Sending it again needs "force": true.'
    )


# --- send, cancel ------------------------------------------------------------------------


@dataclass(frozen=True)
class SendOutcome:
    build: Build
    message: str
    notifications_sent: int
    similar: Build | None = None


def _not_sendable(build: Build) -> BuildConflict:
    reasons = {
        BuildStatus.DRAFT: "This build has not been previewed.",
        BuildStatus.QUEUED: "This build is already queued.",
        BuildStatus.SENDING: "This build is already being sent.",
        BuildStatus.COMPLETED: "This build has already been sent.",
        BuildStatus.FAILED: "This build has already been sent (it failed).",
        BuildStatus.CANCELLED: "This build was cancelled.",
    }
    return BuildConflict(reasons.get(build.status, "This build cannot be sent."))


def build_send(*, build: Build, user, force: bool = False, now: datetime | None = None) -> SendOutcome:
    """Send `build` now, or queue it for its `process_on`; a build goes out at most once."""
    now = now or timezone.now()
    if build.status != BuildStatus.PREVIEWED:
        raise _not_sendable(build)
    similar = build_similar(build=build, now=now)
    if similar is not None and not force:
        Build.objects.filter(pk=build.pk).update(similar_build=similar, warning=similar_warning(similar))
        build.refresh_from_db()
        return SendOutcome(build=build, message=SIMILAR_MESSAGE, notifications_sent=0, similar=similar)
    queued = build.process_on is not None and build.process_on > now
    updates = {
        "status": BuildStatus.QUEUED if queued else BuildStatus.SENDING,
        "submitted_at": now,
        "submitted_by": user,
    }
    if similar is not None:
        updates.update(similar_build=similar, forced_by=user, forced_at=now)
    if not queued:
        updates.update(started_at=now, claimed_until=now + LEASE)
    with transaction.atomic():
        # The status filter makes two concurrent sends of one build send it once.
        if not Build.objects.filter(pk=build.pk, status=BuildStatus.PREVIEWED).update(**updates):
            build.refresh_from_db()
            raise _not_sendable(build)
        if not queued:
            build_id = str(build.pk)
            transaction.on_commit(lambda: _dispatch(build_id))
    build.refresh_from_db()
    if queued:
        return SendOutcome(build=build, message=QUEUED_MESSAGE, notifications_sent=0, similar=similar)
    return SendOutcome(build=build, message=SENT_MESSAGE, notifications_sent=build.recipient_count, similar=similar)


# enqueue(build id): queue a sending worker for the build. Registered by the
# builder's AppConfig.ready() (`builder.tasks` puts it on Celery).
_enqueue: Callable[[str], None] | None = None


def use_enqueue(enqueue: Callable[[str], None]) -> None:
    global _enqueue
    _enqueue = enqueue


def _dispatch(build_id: str) -> None:
    # Several tasks share one build's chunks through SKIP LOCKED claims.
    try:
        for _ in range(_parallel_workers()):
            _enqueue(build_id)
    except Exception:
        # The build is already `sending` under a lease: when the lease runs out
        # the due-work sweep claims it and sends it, broker or no broker now.
        logger.exception("could not queue build %s; the scheduler will pick it up", build_id)


def build_cancel(*, build: Build, user, now: datetime | None = None) -> Build:
    """Cancel a build that has not started sending (a queued one only before its process_on)."""
    now = now or timezone.now()
    cancellable = Q(status__in=[BuildStatus.DRAFT, BuildStatus.PREVIEWED]) | Q(
        status=BuildStatus.QUEUED, process_on__gt=now
    )
    done = Build.objects.filter(cancellable, pk=build.pk).update(
        status=BuildStatus.CANCELLED, cancelled_at=now, cancelled_by=user, claimed_until=None
    )
    build.refresh_from_db()
    if not done:
        if build.status == BuildStatus.QUEUED:
            raise BuildConflict("This build is due and can no longer be cancelled.")
        raise BuildConflict(f"A {build.status} build cannot be cancelled.")
    return build


# --- the sending worker -----------------------------------------------------------------


def builds_claim_due(*, now: datetime, limit: int, lease: timedelta) -> list[str]:
    """The scheduler's claim: queued builds whose process_on has come, and sends whose worker died."""
    due = Q(status=BuildStatus.QUEUED, process_on__lte=now) | Q(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now), status=BuildStatus.SENDING
    )
    ids = claim_rows(
        Build.objects.filter(due),
        limit=limit,
        updates={
            "status": BuildStatus.SENDING,
            "claimed_until": now + lease,
            "started_at": Coalesce(F("started_at"), Value(now)),
        },
    )
    return [str(pk) for pk in ids]


def builds_next_due(*, after: datetime, until: datetime) -> datetime | None:
    """When the next queued build's `process_on` comes in (after, until] (the sweep's follow-up)."""
    return first_due(Build.objects.filter(status=BuildStatus.QUEUED), "process_on", after=after, until=until)


def builds_oldest_due(*, now: datetime) -> datetime | None:
    """Since when the longest-waiting queued build has been due (a dead worker's build: since its lease ended)."""
    due = oldest(Build.objects.filter(status=BuildStatus.QUEUED, process_on__lte=now), "process_on")
    orphaned = oldest(Build.objects.filter(status=BuildStatus.SENDING, claimed_until__lt=now), "claimed_until")
    return min((t for t in (due, orphaned) if t is not None), default=None)


def build_run(*, build_id) -> None:
    """Send the pending recipients of a `sending` build, chunk by chunk, then settle its status.

    Safe to run many times and side by side: chunks are claimed with SKIP
    LOCKED under a lease, and the pipeline never sends a delivery twice.
    """
    build = Build.objects.select_related("platform").filter(pk=build_id).first()
    if build is None or build.status != BuildStatus.SENDING:
        return
    try:
        render = templating.build_renderer(build=build)
    except BuildError as exc:
        _build_fail(build, exc.message)
        return
    ids: list = []
    try:
        while _lease_renew(build):
            now = timezone.now()
            claimable = BuildRecipient.objects.filter(build=build, status=RecipientStatus.PENDING).filter(
                Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
            )
            ids = claim_rows(claimable, limit=_chunk_size(), updates={"claimed_until": now + LEASE})
            if not ids:
                break
            _chunk_send(build, ids, render)
        _reconcile(build)
        _finish_if_done(build)
    except BuildError as exc:
        # The template cannot be rendered: trying again would fail the same way.
        _build_fail(build, exc.message)
    except Exception as exc:  # recorded on the build; the scheduler retries it
        logger.exception("sending build %s failed", build.pk)
        # The chunk in hand goes back to the pool for the retry.
        BuildRecipient.objects.filter(pk__in=ids, status=RecipientStatus.PENDING).update(claimed_until=None)
        _run_failed(build, exc)


def _lease_renew(build: Build) -> bool:
    """Extend the build's lease; False when it is no longer sending (finished, failed)."""
    return bool(
        Build.objects.filter(pk=build.pk, status=BuildStatus.SENDING).update(claimed_until=timezone.now() + LEASE)
    )


def _chunk_send(build: Build, ids: list, render) -> None:
    rows = list(BuildRecipient.objects.filter(pk__in=ids).values_list("pk", "user_id", "recipient_key", "email"))
    # Users and bare addresses together: the pipeline emails an address and
    # nothing else. A recipient whose account was deleted since the preview is
    # left out and settled below.
    recipients = [
        Recipient(user_id=user_id) if user_id is not None else Recipient(address=email)
        for _, user_id, key, email in rows
        if user_id is not None or key.startswith("email:")
    ]
    if recipients:
        notification_send(
            platform=build.platform, source=build.source, channels=build.channels, recipients=recipients, render=render
        )
    _settle(build, rows, settle_missing=True)


def _settle(build: Build, rows: list[tuple], *, settle_missing: bool) -> None:
    """Settle the recipient rows, and the build's counters, from the pipeline's per-recipient outcomes.

    A recipient is sent when any of its channels delivered, pending while any
    is still pending, failed otherwise. `settle_missing` settles recipients the
    pipeline wrote nothing for: an account deleted since the preview, or a
    user who opted out of this type on every channel of the build.
    """
    outcomes = recipient_outcomes(source=build.source, keys=[key for _, _, key, _ in rows])
    groups: dict[tuple[str, str], list] = {}
    for pk, user_id, key, _ in rows:
        outcome = outcomes.get(key)
        if outcome is None:
            if not settle_missing:
                continue
            if key.startswith("user:") and user_id is None:
                reason = "The user account no longer exists."
            else:
                reason = "The recipient opted out of these notifications on every channel."
            groups.setdefault((RecipientStatus.FAILED, reason), []).append(pk)
        elif outcome.sent:
            groups.setdefault((RecipientStatus.SENT, "; ".join(outcome.errors)), []).append(pk)
        elif outcome.pending:
            groups.setdefault((RecipientStatus.PENDING, ""), []).append(pk)
        else:
            groups.setdefault((RecipientStatus.FAILED, "; ".join(outcome.errors)), []).append(pk)
    sent = failed = 0
    with transaction.atomic():
        for (status, error), pks in groups.items():
            mine = BuildRecipient.objects.filter(pk__in=pks, status=RecipientStatus.PENDING)
            if status == RecipientStatus.PENDING:
                # Another dispatcher holds these deliveries; look again after the lease.
                mine.update(claimed_until=timezone.now() + LEASE)
                continue
            moved = mine.update(status=status, error=error[:2000], claimed_until=None)
            if status == RecipientStatus.SENT:
                sent += moved
            else:
                failed += moved
        if sent or failed:
            Build.objects.filter(pk=build.pk).update(
                sent_count=F("sent_count") + sent, failed_count=F("failed_count") + failed
            )


def _reconcile(build: Build) -> None:
    """Settle pending recipients whose deliveries another worker finished after it settled its chunk."""
    last = 0
    while True:
        rows = list(
            BuildRecipient.objects.filter(build=build, status=RecipientStatus.PENDING, pk__gt=last)
            .order_by("pk")
            .values_list("pk", "user_id", "recipient_key", "email")[: _chunk_size()]
        )
        if not rows:
            return
        _settle(build, rows, settle_missing=False)
        last = rows[-1][0]


def _finish_if_done(build: Build) -> None:
    if BuildRecipient.objects.filter(build=build, status=RecipientStatus.PENDING).exists():
        return  # another worker holds the rest; it (or the scheduler, if it dies) finishes
    build.refresh_from_db(fields=["sent_count", "failed_count"])
    failed = build.sent_count == 0 and build.failed_count > 0
    finished = Build.objects.filter(pk=build.pk, status=BuildStatus.SENDING).update(
        status=BuildStatus.FAILED if failed else BuildStatus.COMPLETED,
        error="No recipient could be reached." if failed else "",
        completed_at=timezone.now(),
        claimed_until=None,
    )
    if finished:
        _completed_announce(build)


def _completed_announce(build: Build) -> None:
    """`build.completed` (completed or failed), once: only the worker whose UPDATE ended the build announces."""
    if not lifecycle.wanted(lifecycle.build_completed, platform_id=build.platform_id):
        return
    build.refresh_from_db(fields=["status", "sent_count", "failed_count", "error", "completed_at"])
    lifecycle.announce(
        lifecycle.build_completed,
        platform_id=build.platform_id,
        payload={
            "build_id": str(build.pk),
            "status": build.status,
            "sent_count": build.sent_count,
            "failed_count": build.failed_count,
            "error": build.error[:300],
            "completed_at": build.completed_at.isoformat() if build.completed_at else None,
        },
    )


def _build_fail(build: Build, error: str) -> None:
    failed = Build.objects.filter(pk=build.pk, status=BuildStatus.SENDING).update(
        status=BuildStatus.FAILED, error=error[:2000], completed_at=timezone.now(), claimed_until=None
    )
    if failed:
        _completed_announce(build)


def _run_failed(build: Build, exc: Exception) -> None:
    """Record an unexpected error; the build is retried after a pause, and failed after a few tries."""
    build.refresh_from_db(fields=["attempts"])
    attempts = build.attempts + 1
    error = f"{type(exc).__name__}: {exc}"[:2000]
    if BUILD_RUNS.exhausted(attempts):
        Build.objects.filter(pk=build.pk, status=BuildStatus.SENDING).update(attempts=attempts)
        _build_fail(build, error)
        return
    Build.objects.filter(pk=build.pk, status=BuildStatus.SENDING).update(
        attempts=attempts, error=error, claimed_until=timezone.now() + BUILD_RUNS.backoff(attempts)
    )


# --- validate one source ------------------------------------------------------------------

SAMPLE_SIZE = 10


def source_validate(*, access: Access, source: Source) -> dict:
    """Resolve one source for a look: valid count, invalid entries, a sample. Nothing is kept."""
    sources_authorize(access=access, sources=[source])
    with transaction.atomic():
        resolved = source_resolve(platform=access.platform, source=source)
        sample = [
            {"username": username, "email": email}
            for username, email in resolved.users.order_by("pk").values_list("username", "email")[:SAMPLE_SIZE]
        ]
        if len(sample) < SAMPLE_SIZE and resolved.addresses is not None:
            addresses = resolved.addresses.values_list("value", flat=True).distinct().order_by("value")
            sample += [{"username": None, "email": a} for a in addresses[: SAMPLE_SIZE - len(sample)]]
        result = {
            "valid_count": resolved.valid_count(),
            "invalid_entries": resolved.invalid_entries,
            "invalid_count": resolved.invalid_count,
            "sample_recipients": sample,
        }
        # The staged rows were only needed for these answers.
        transaction.set_rollback(True)
    return result
