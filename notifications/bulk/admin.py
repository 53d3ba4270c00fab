"""Admin screens of bulk sends: compose, the job list with badges, a job with its deliveries.

The compose form goes through the same parser (`bulk.inputs`) and services as
the API, so the admin and `/api/v1/notifications/bulk-*` accept and reject the
same things with the same messages.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminSplitDateTime, FilteredSelectMultiple
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from notifications.admin_scoping import PlatformScopedAdmin, SuperuserOnlyAdmin
from notifications.bulk import selectors, services
from notifications.bulk.inputs import BulkInputError, bulk_input_parse
from notifications.models import IdempotencyKey, Level, Platform, Role, ScheduledChannel, ScheduledNotification
from notifications.permissions import platform_permissions, user_may
from notifications.services import send_counts
from notifications.tenancy import administered_platforms as managed_platforms

BADGE_COLOURS = {
    "pending": "#6c757d",
    "processing": "#0d6efd",
    "sent": "#198754",
    "failed": "#dc3545",
    "cancelled": "#adb5bd",
}
CHANNEL_KEYS = {
    ScheduledChannel.SMS: "notifications.bulk_sms",
    ScheduledChannel.EMAIL: "notifications.bulk_email",
    ScheduledChannel.PUSH: "notifications.bulk_push",
    ScheduledChannel.IN_APP: "notifications.bulk_in_app",
}
SENT_MESSAGES = {
    ScheduledChannel.SMS: "Bulk SMS sent",
    ScheduledChannel.EMAIL: "Bulk email sent",
    ScheduledChannel.PUSH: "Bulk push notification sent",
    ScheduledChannel.IN_APP: "Bulk in-app notification sent",
}
DELIVERIES_SHOWN = 100


def _lines(text: str) -> list[str]:
    return [part.strip() for chunk in text.splitlines() for part in chunk.split(",") if part.strip()]


class ComposeForm(forms.Form):
    platform = forms.ModelChoiceField(queryset=Platform.objects.none())
    channel = forms.ChoiceField(choices=ScheduledChannel.choices)
    title = forms.CharField(
        required=False, max_length=500, help_text="Subject (email) or headline (push, in-app); SMS has none."
    )
    message = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}))
    html = forms.CharField(
        required=False, label="HTML", widget=forms.Textarea(attrs={"rows": 4}), help_text="Email only."
    )
    users = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.none(),
        required=False,
        widget=FilteredSelectMultiple("users", is_stacked=False),
        help_text="Members of the chosen platform.",
    )
    role = forms.ChoiceField(choices=[("", "—"), *Role.choices], required=False)
    phone_numbers = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="SMS only; one per line or comma-separated."
    )
    emails = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Email only; one per line or comma-separated.",
    )
    when = forms.ChoiceField(
        choices=[("now", "Send now"), ("schedule", "Schedule")], initial="now", widget=forms.RadioSelect
    )
    scheduled_at = forms.SplitDateTimeField(
        required=False, widget=AdminSplitDateTime, help_text="UTC.", label="Scheduled at"
    )
    file = forms.FileField(required=False, help_text="Email: an attachment. Push: the image (PNG, JPEG, GIF, WebP).")
    type = forms.CharField(required=False, initial="system_alert", help_text="In-app only.")
    level = forms.ChoiceField(choices=Level.choices, initial=Level.INFO, help_text="In-app only.")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        platforms = managed_platforms(user)
        self.fields["platform"].queryset = platforms
        if platforms.count() == 1:
            self.fields["platform"].initial = platforms.first()
        self.fields["users"].queryset = (
            get_user_model()
            .objects.filter(memberships__platform__in=platforms, memberships__is_active=True, is_active=True)
            .distinct()
            .order_by("username")
        )
        # Channels the user may send on at least one of their platforms; the
        # chosen platform is checked again on submit.
        held = set().union(*(platform_permissions(user, p) for p in platforms))
        self.fields["channel"].choices = [
            (c, label) for c, label in ScheduledChannel.choices if CHANNEL_KEYS[c] in held
        ]

    def api_data(self) -> dict:
        """The cleaned form as the fields of the channel's API request."""
        d = self.cleaned_data
        channel = d["channel"]
        data = {"message": d["message"], "user_ids": [u.pk for u in d["users"]], "role": d["role"]}
        if channel == ScheduledChannel.EMAIL:
            data.update(subject=d["title"], html=d["html"], emails=_lines(d["emails"]))
        else:
            data["title"] = d["title"]
        if channel == ScheduledChannel.SMS:
            data["phone_numbers"] = _lines(d["phone_numbers"])
        if channel == ScheduledChannel.IN_APP:
            data.update(type=d["type"], level=d["level"])
        if d["when"] == "schedule":
            when = d["scheduled_at"]
            data["scheduled_at"] = when.isoformat() if when else "not set"
        return data


def compose_view(model_admin, request):
    """Compose a bulk send per channel; send now or schedule."""
    form = ComposeForm(request.POST or None, request.FILES or None, user=request.user)
    if not form.fields["channel"].choices:
        raise PermissionDenied
    result = None
    if request.method == "POST" and form.is_valid():
        channel = form.cleaned_data["channel"]
        platform = form.cleaned_data["platform"]
        if not user_may(request.user, platform, CHANNEL_KEYS[channel]):
            raise PermissionDenied
        files = [request.FILES["file"]] if "file" in request.FILES else []
        base_url = request.build_absolute_uri("/")
        try:
            data = bulk_input_parse(channel, form.api_data(), files)
            if data.scheduled_at is not None:
                job = services.scheduled_create(
                    platform=platform, data=data, created_by=request.user, base_url=base_url
                )
                model_admin.message_user(
                    request,
                    f"Job #{job.pk} scheduled for {job.scheduled_at:%Y-%m-%d %H:%M} UTC.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:notifications_schedulednotification_change", args=[job.pk]))
            sent = services.bulk_send(platform=platform, data=data, base_url=base_url)
        except BulkInputError as exc:
            form.add_error(None, f"{exc.message}: {exc.detail}" if exc.detail != exc.message else exc.message)
        else:
            counts = sent.counts
            if channel == ScheduledChannel.PUSH:
                result = {
                    "message": SENT_MESSAGES[channel],
                    "rows": [
                        ("Target users", sent.target_users),
                        ("Devices sent", counts.units_sent),
                        ("Devices failed", counts.units_failed),
                    ],
                    "image": sent.image_url,
                }
            else:
                result = {
                    "message": SENT_MESSAGES[channel],
                    "rows": [
                        ("Recipients", counts.total_recipients),
                        ("Sent", counts.sent),
                        ("Failed", counts.failed),
                    ],
                }
            model_admin.message_user(request, f"{SENT_MESSAGES[channel]}: {counts.sent} sent, {counts.failed} failed.")
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Compose a bulk send",
        "form": form,
        "result": result,
        "opts": model_admin.model._meta,
        "media": model_admin.media + form.media,
    }
    return TemplateResponse(request, "admin/notifications/schedulednotification/compose.html", context)


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
    list_display = ["id", "badge", "channel", "title_or_message", "platform", "scheduled_at", "counts", "created_by"]
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
        ("Targeting", {"fields": ["target_user_ids", "target_role", "target_raw"]}),
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
                    "created_by",
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
            services.scheduled_cancel(job=job)
            self.message_user(request, f"Job #{job.pk} cancelled.", messages.SUCCESS)
        except services.JobStateError as exc:
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
                services.scheduled_cancel(job=job)
                done += 1
            except services.JobStateError:
                continue  # finished between the list and the click
        self.message_user(request, f"Cancelled {done} job(s).", messages.SUCCESS)

    @admin.display(description="status", ordering="status")
    def badge(self, obj):
        return status_badge(obj.status)

    @admin.display(description="title / message")
    def title_or_message(self, obj):
        text = obj.title or obj.message
        return text if len(text) <= 60 else text[:59] + "…"

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
        rows = list(selectors.job_deliveries(job=obj)[:DELIVERIES_SHOWN])
        if not rows:
            return "No deliveries yet."
        link = reverse("admin:notifications_notification_changelist") + f"?source={obj.source}"
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    r.recipient_key,
                    r.address or "—",
                    status_badge(r.delivery_status),
                    r.attempts,
                    r.sent_at.strftime("%Y-%m-%d %H:%M:%S") if r.sent_at else "—",
                    r.error or "",
                )
                for r in rows
            ),
        )
        return format_html(
            "<table><thead><tr><th>recipient</th><th>address</th><th>status</th><th>attempts</th><th>sent at</th>"
            "<th>error</th></tr></thead><tbody>{}</tbody></table>"
            '<p><a href="{}">All deliveries of this job in the notifications list</a> (first {} shown)</p>',
            body,
            link,
            DELIVERIES_SHOWN,
        )


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
    site.register(IdempotencyKey, IdempotencyKeyAdmin)
