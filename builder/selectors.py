"""Reads of the builder. Every queryset starts from the caller's platform and access."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from builder.models import (
    SUBMITTED_STATUSES,
    Build,
    BuildRecipient,
    BuildStatus,
    DepartmentMember,
    RecipientStatus,
)
from notifications.models import Platform
from notifications.permissions import PLATFORM_ADMIN, platform_permissions

# An identical build submitted within this window is a duplicate.
DUPLICATE_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Access:
    """What a caller may do with the builder on one platform."""

    platform: Platform
    user: object
    is_platform_admin: bool
    # Departments of the platform the caller administers.
    department_ids: frozenset[int]

    @property
    def allowed(self) -> bool:
        return self.is_platform_admin or bool(self.department_ids)


def access_for(*, user, platform: Platform, held: frozenset[str] | None = None) -> Access:
    """`held`: the caller's keys on the platform when already known (`request_permissions`)."""
    if held is None:
        held = platform_permissions(user, platform)
    admin = PLATFORM_ADMIN in held
    departments = frozenset(
        DepartmentMember.objects.filter(
            user=user, is_admin=True, is_active=True, department__platform=platform
        ).values_list("department_id", flat=True)
    )
    return Access(platform=platform, user=user, is_platform_admin=admin, department_ids=departments)


def builds_for(*, access: Access) -> QuerySet[Build]:
    """Builds the caller may see: all of the platform's for its admins, their own for department admins."""
    qs = Build.objects.filter(platform=access.platform)
    if not access.is_platform_admin:
        qs = qs.filter(created_by=access.user)
    return qs.select_related("created_by", "submitted_by", "forced_by", "cancelled_by")


def build_similar(*, build: Build, now: datetime | None = None) -> Build | None:
    """The latest identical build of the platform submitted in the last 24 hours, if any."""
    if not build.content_hash:
        return None
    since = (now or timezone.now()) - DUPLICATE_WINDOW
    return (
        Build.objects.filter(
            Q(status__in=SUBMITTED_STATUSES) | Q(status=BuildStatus.FAILED, sent_count__gt=0),
            platform_id=build.platform_id,
            content_hash=build.content_hash,
            submitted_at__gte=since,
        )
        .exclude(pk=build.pk)
        .select_related("submitted_by")
        .order_by("-submitted_at")
        .first()
    )


def recipients_for(*, build: Build, search: str = "") -> QuerySet[BuildRecipient]:
    qs = BuildRecipient.objects.filter(build=build)
    search = search.strip()
    if search:
        qs = qs.filter(Q(username__icontains=search) | Q(email__icontains=search))
    return qs.order_by("pk")


def build_progress(*, build: Build) -> dict:
    """Recipients per status, counted from the recipient rows themselves."""
    counts = {status: 0 for status in RecipientStatus.values}
    for row in BuildRecipient.objects.filter(build=build).values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    total = sum(counts.values())
    done = counts[RecipientStatus.SENT] + counts[RecipientStatus.FAILED]
    return {"total": total, **counts, "percent": round(100 * done / total, 1) if total else 100.0}
