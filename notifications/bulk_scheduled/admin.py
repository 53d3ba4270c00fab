"""Admin screens of bulk sends: the job list with badges, a job with its deliveries, the send history.

The compose flow these screens link to is `compose_admin`.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from notifications.admin_scoping import PlatformScopedAdmin, SuperuserOnlyAdmin
from notifications.bulk_scheduled import jobs, selectors
from notifications.bulk_scheduled.compose_admin import compose_view, person
from notifications.models import IdempotencyKey, ImmediateSend, ScheduledNotification
from notifications.permissions import user_may
from notifications.pipeline import send_counts

BADGE_COLOURS = {
    "pending": "#6c757d",
    "processing": "#0d6efd",
    "sent": "#198754",
    "failed": "#dc3545",
    "cancelled": "#adb5bd",
    "suppressed": "#6f42c1",
}
DELIVERIES_SHOWN = 100


class ScheduledDateFilter(admin.SimpleListFilter):
    title = "scheduled"
    parameter_name = "when"

    def lookups(self, request, model_admin):
        return [("past", "In the past"), ("today", "Today"), ("next7", "Next 7 days"), ("later", "Later")]

    def queryset(self, request, queryset):
        now = timezone.now()
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.value() == "past":
            return queryset.filter(scheduled_at__lt=now)
        if self.value() == "today":
            return queryset.filter(scheduled_at__gte=start, scheduled_at__lt=start + timezone.timedelta(days=1))
        if self.value() == "next7":
            return queryset.filter(scheduled_at__gte=now, scheduled_at__lt=now + timezone.timedelta(days=7))
        if self.value() == "later":
            return queryset.filter(scheduled_at__gte=now + timezone.timedelta(days=7))
        return queryset


def status_badge(status: str):
    return format_html(
        '<span style="background:{};color:#fff;padding:2px 8px;border-radius:10px;font-size:11px;'
        'text-transform:uppercase">{}</span>',
        BADGE_COLOURS.get(status, "#6c757d"),
        status,
    )


def progress_bar(done: int, failed: int, total: int):
    if not total:
        return format_html('<span style="color:#6c757d">{}</span>', "no deliveries yet")
    ok = round(100 * done / total)
    bad = round(100 * failed / total)
    return format_html(
        '<div style="display:flex;width:220px;height:12px;background:#e9ecef;border-radius:6px;overflow:hidden" '
        'title="{} sent, {} failed of {}">'
        '<div style="width:{}%;background:#198754"></div><div style="width:{}%;background:#dc3545"></div></div>'
        "<small>{} sent · {} failed · {} pending of {}</small>",
        done,
        failed,
        total,
        ok,
        bad,
        done,
        failed,
        total - done - failed,
        total,
    )


class ScheduledNotificationAdmin(PlatformScopedAdmin):
    list_display = ["id", "badge", "channel", "title_or_message", "platform", "scheduled_at", "counts", "sender"]
    list_display_links = ["id", "title_or_message"]
    list_filter = ["status", "channel", ScheduledDateFilter, "scheduled_at", "platform"]
    search_fields = ["id", "title", "message", "target_role", "created_by__username"]
    date_hierarchy = "scheduled_at"
    list_select_related = ["platform", "created_by"]
    ordering = ["-scheduled_at", "-id"]
    actions = ["cancel_jobs"]
    change_list_template = "admin/notifications/schedulednotification/change_list.html"
    change_form_template = "admin/notifications/schedulednotification/change_form.html"
    fieldsets = [
        (None, {"fields": ["badge", "channel", "platform", "scheduled_at", "progress"]}),
        ("Content", {"fields": ["title", "message", "html", "image_preview", "attachments"]}),
        ("Targeting", {"fields": ["audience", "target_raw"]}),
        (
            "Run",
            {
                "fields": [
                    "attempt_count",
                    "last_error",
                    "due_at",
                    "claimed_until",
                    "processing_started_at",
                    "sent_at",
                    "cancelled_at",
                    "finished_at",
                    "sender",
                    "created_at",
                    "updated_at",
                ]
            },
        ),
        ("Deliveries", {"fields": ["deliveries"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [f for group in self.fieldsets for f in group[1]["fields"]]

    def has_add_permission(self, request):
        return False  # jobs are created by composing a send

    def has_change_permission(self, request, obj=None):
        # Nothing here is edited in place: a pending job is edited through the
        # API or cancelled with its button; a finished one is a record. So no Save.
        return False

    def get_urls(self):
        return [
            path("compose/", self.admin_site.admin_view(self.compose), name="notifications_bulk_compose"),
            path(
                "<int:pk>/cancel/",
                self.admin_site.admin_view(self.cancel_one),
                name="notifications_schedulednotification_cancel",
            ),
            *super().get_urls(),
        ]

    def compose(self, request):
        return compose_view(self, request)

    def cancel_one(self, request, pk: int):
        if request.method != "POST":
            raise PermissionDenied
        job = get_object_or_404(self.get_queryset(request), pk=pk)
        if not user_may(request.user, job.platform, "notifications_scheduled.cancel"):
            raise PermissionDenied
        try:
            jobs.scheduled_cancel(job=job)
            self.message_user(request, f"Job #{job.pk} cancelled.", messages.SUCCESS)
        except jobs.JobStateError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        return HttpResponseRedirect(reverse("admin:notifications_schedulednotification_change", args=[job.pk]))

    @admin.action(description="Cancel selected pending or processing jobs")
    def cancel_jobs(self, request, queryset):
        allowed = [
            p for p in {job.platform for job in queryset} if user_may(request.user, p, "notifications_scheduled.cancel")
        ]
        if not allowed:
            raise PermissionDenied
        done = 0
        for job in queryset.filter(status__in=["pending", "processing"], platform__in=allowed):
            try:
                jobs.scheduled_cancel(job=job)
                done += 1
            except jobs.JobStateError:
                continue  # finished between the list and the click
        self.message_user(request, f"Cancelled {done} job(s).", messages.SUCCESS)

    @admin.display(description="status", ordering="status")
    def badge(self, obj):
        return status_badge(obj.status)

    @admin.display(description="title / message")
    def title_or_message(self, obj):
        text = obj.title or obj.message
        return text if len(text) <= 60 else text[:59] + "…"

    @admin.display(description="created by", ordering="created_by__username")
    def sender(self, obj):
        return person(obj.created_by) if obj.created_by_id else "—"

    @admin.display(description="audience")
    def audience(self, obj):
        raw = obj.target_raw or {}
        addresses = [*(raw.get("phones") or []), *(raw.get("emails") or [])]
        return audience_label(user_ids=obj.target_user_ids or [], role=obj.target_role, addresses=addresses)

    @admin.display(description="sent / failed / recipients")
    def counts(self, obj):
        if obj.status in ("pending", "cancelled") and not obj.total_recipients:
            return "—"
        return f"{obj.sent_count} / {obj.failed_count} / {obj.total_recipients}"

    @admin.display(description="progress")
    def progress(self, obj):
        counts = send_counts(source=obj.source)
        return progress_bar(counts.sent, counts.failed, counts.total_recipients)

    @admin.display(description="image")
    def image_preview(self, obj):
        if not obj.image_url:
            return "—"
        return format_html('<a href="{0}"><img src="{0}" style="max-height:80px"></a>', obj.image_url)

    @admin.display(description="attachments")
    def attachments(self, obj):
        from notifications.models import Attachment

        rows = Attachment.objects.filter(source=obj.source)
        if not rows:
            return "—"
        return format_html_join(", ", '<a href="{}">{}</a>', ((a.file.url, a.filename) for a in rows))

    @admin.display(description="deliveries")
    def deliveries(self, obj):
        return deliveries_table(obj)


def recipient_label(row) -> str:
    """Who a delivery went to: the member, or the bare address of someone without an account."""
    if row.user_id is not None:
        return person(row.user)
    return row.address or row.recipient_key


def _rule_label(row) -> str:
    if not row.rule:
        return "—"
    label = row.get_rule_display()
    if row.delivery_status == "pending" and row.next_attempt_at is not None and row.attempts == 0:
        return f"{label} (until {row.next_attempt_at:%Y-%m-%d %H:%M} UTC)"
    return label


def deliveries_table(obj):
    """The first deliveries of a job or an immediate send (anything with `source` and `platform_id`)."""
    rows = list(selectors.job_deliveries(job=obj).select_related("user")[:DELIVERIES_SHOWN])
    if not rows:
        return "No deliveries yet."
    link = reverse("admin:notifications_notification_changelist") + f"?source={obj.source}"
    body = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                recipient_label(r),
                r.address or "—",
                status_badge(r.delivery_status),
                # Which delivery rule deferred or held the row back, and until when it waits.
                _rule_label(r),
                r.attempts,
                r.sent_at.strftime("%Y-%m-%d %H:%M:%S") if r.sent_at else "—",
                r.error or "",
            )
            for r in rows
        ),
    )
    return format_html(
        "<table><thead><tr><th>recipient</th><th>address</th><th>status</th><th>rule</th><th>attempts</th>"
        "<th>sent at</th>"
        "<th>error</th></tr></thead><tbody>{}</tbody></table>"
        '<p><a href="{}">All {} deliveries in the notifications list</a> (first {} shown)</p>',
        body,
        link,
        obj.total_recipients or len(rows),
        DELIVERIES_SHOWN,
    )


def audience_label(*, user_ids, role: str, addresses) -> str:
    """Who a send was asked for, in words: the role, the first members by name, the first addresses."""
    parts = []
    if role:
        parts.append(f"everyone with role {role}")
    if user_ids:
        names = get_user_model().objects.filter(pk__in=list(user_ids)[:5]).order_by("username")
        shown = ", ".join(str(u) for u in names)
        more = len(user_ids) - len(names)
        parts.append(shown + (f" and {more} more" if more > 0 else ""))
    if addresses:
        more = len(addresses) - 3
        parts.append(", ".join(addresses[:3]) + (f" and {more} more" if more > 0 else ""))
    return "; ".join(parts) or "—"


class ImmediateSendAdmin(PlatformScopedAdmin):
    """The send history: every bulk send that went out at once, from the API or the compose form."""

    list_display = ["created_at", "channel", "title_or_message", "platform", "audience", "counts", "sender"]
    list_display_links = ["created_at", "title_or_message"]
    list_filter = ["channel", "created_at", "platform"]
    search_fields = ["title", "message", "created_by__username", "created_by__email"]
    date_hierarchy = "created_at"
    list_select_related = ["platform", "created_by"]
    change_list_template = "admin/notifications/immediatesend/change_list.html"
    fieldsets = [
        (None, {"fields": ["channel", "platform", "created_at", "sender", "progress"]}),
        ("Content", {"fields": ["title", "message", "image_preview", "attachments"]}),
        ("Targeting", {"fields": ["audience", "target_users", "total_recipients", "sent_count", "failed_count"]}),
        ("Deliveries", {"fields": ["deliveries"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [f for group in self.fieldsets for f in group[1]["fields"]]

    # A record of what happened: nobody adds, edits or deletes it.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    title_or_message = ScheduledNotificationAdmin.title_or_message

    @admin.display(description="sent by", ordering="created_by__username")
    def sender(self, obj):
        return person(obj.created_by) if obj.created_by_id else "—"

    @admin.display(description="audience")
    def audience(self, obj):
        return audience_label(user_ids=obj.target_user_ids, role=obj.target_role, addresses=obj.target_addresses)

    @admin.display(description="sent / failed / recipients")
    def counts(self, obj):
        return f"{obj.sent_count} / {obj.failed_count} / {obj.total_recipients}"

    # Live from the delivery rows: retries may have settled since the send answered.
    progress = ScheduledNotificationAdmin.progress
    image_preview = ScheduledNotificationAdmin.image_preview
    attachments = ScheduledNotificationAdmin.attachments

    @admin.display(description="deliveries")
    def deliveries(self, obj):
        return deliveries_table(obj)


class IdempotencyKeyAdmin(SuperuserOnlyAdmin):
    list_display = ["key", "user", "method", "path", "response_status", "created_at", "expires_at"]
    list_filter = ["method", "response_status", "created_at"]
    search_fields = ["key", "path", "user__username"]
    readonly_fields = [
        "user",
        "key",
        "fingerprint",
        "method",
        "path",
        "response_status",
        "response_body",
        "created_at",
        "expires_at",
    ]
    list_select_related = ["user"]

    def has_add_permission(self, request):
        return False


def register(site) -> None:
    site.register(ScheduledNotification, ScheduledNotificationAdmin)
    site.register(ImmediateSend, ImmediateSendAdmin)
    site.register(IdempotencyKey, IdempotencyKeyAdmin)
