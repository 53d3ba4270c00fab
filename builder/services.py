"""Writes of the builder: preview a build, send it, cancel it, validate one source.

Preview resolves every source into `BuildRecipient` rows with INSERT ... SELECT
(a unique key on the build and recipient de-duplicates across sources), so the
audience never passes through Python. Sending marks the build `sending` (or
`queued` for its `process_on`) and queues workers; the worker that walks the
recipients and hands them to the delivery pipeline is `builder.runs`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.db.models import BigIntegerField, CharField, F, Q, UUIDField, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from builder import templating
from builder.errors import BuildConflict, BuildError, BuildForbidden
from builder.models import Build, BuildRecipient, BuildStatus, RecipientStatus
from builder.runs import LEASE
from builder.selectors import Access, build_similar
from builder.sources import (
    DEPARTMENT,
    Resolved,
    Source,
    insert_select,
    source_resolve,
    staged_drop,
)
from notifications.channels import Channel

logger = logging.getLogger(__name__)

SENT_MESSAGE = "Notifications sent"
QUEUED_MESSAGE = "Notifications queued"
SIMILAR_MESSAGE = "Similar notifications found"

PREVIEW_SIZE = 10
_RECIPIENT_COLUMNS = ["build_id", "user_id", "recipient_key", "username", "email", "status", "error"]


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
