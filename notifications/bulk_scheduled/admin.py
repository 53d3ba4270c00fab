"""Admin screens of bulk sends: compose, the job list with badges, a job with its deliveries.

The compose form goes through the same parser (`bulk_scheduled.inputs`) and services as
the API, so the admin and `/api/v1/notifications/bulk-*` accept and reject the
same things with the same messages.
"""

from __future__ import annotations

import mimetypes
import posixpath
import uuid

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminSplitDateTime, FilteredSelectMultiple
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.files import File
from django.core.files.storage import default_storage
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from notifications.admin_scoping import PlatformScopedAdmin, SuperuserOnlyAdmin
from notifications.bulk_scheduled import selectors, services
from notifications.bulk_scheduled.inputs import BulkInputError, bulk_input_parse
from notifications.models import (
    IdempotencyKey,
    ImmediateSend,
    Level,
    Platform,
    Role,
    ScheduledChannel,
    ScheduledNotification,
)
from notifications.permissions import platform_permissions, user_may
from notifications.pipeline import send_counts
from notifications.tenancy import administered_platforms as managed_platforms

BADGE_COLOURS = {
    "pending": "#6c757d",
    "processing": "#0d6efd",
    "sent": "#198754",
    "failed": "#dc3545",
    "cancelled": "#adb5bd",
    "suppressed": "#6f42c1",
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


# --- Who may send what: every rights check of the compose flow is one of these -----


def sendable_channels(user, platforms) -> list[tuple[str, str]]:
    """Channels the user may send on at least one of their platforms; the chosen one is checked on submit."""
    held = set().union(*(platform_permissions(user, p) for p in platforms))
    return [(c, label) for c, label in ScheduledChannel.choices if CHANNEL_KEYS[c] in held]


def may_send(user, platform, channel: str) -> bool:
    return user_may(user, platform, CHANNEL_KEYS[channel])


def person(user) -> str:
    """A member as a platform admin knows them: full name, username, and a way to reach them."""
    if user is None:
        return "—"
    contact = user.email or getattr(user, "phone_number", "") or ""
    return f"{user} · {contact}" if contact else str(user)


class MemberChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return person(obj)


class ComposeForm(forms.Form):
    # The form's own idempotency key: made when the form is first shown and
    # carried through the confirmation, so a second submission sends nothing.
    form_key = forms.RegexField(
        regex=r"^[0-9a-f]{32}$",
        widget=forms.HiddenInput,
        error_messages={
            "required": "This form is incomplete; open the compose page again.",
            "invalid": "This form is incomplete; open the compose page again.",
        },
    )
    # An upload kept between the two steps (the confirmation page cannot carry the file itself).
    staged_file = forms.CharField(required=False, widget=forms.HiddenInput)
    platform = forms.ModelChoiceField(queryset=Platform.objects.none())
    channel = forms.ChoiceField(choices=ScheduledChannel.choices)
    title = forms.CharField(
        required=False, max_length=500, help_text="Subject (email) or headline (push, in-app); SMS has none."
    )
    message = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}))
    html = forms.CharField(
        required=False, label="HTML", widget=forms.Textarea(attrs={"rows": 4}), help_text="Email only."
    )
    users = MemberChoiceField(
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
        self.user = user
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
        self.fields["channel"].choices = sendable_channels(user, platforms)

    def clean_staged_file(self):
        # Only a file this user staged for this very form.
        name = self.cleaned_data["staged_file"]
        if name and not _is_staged_name(name, user=self.user, form_key=self.cleaned_data.get("form_key", "")):
            raise forms.ValidationError("The uploaded file of this form is no longer available; attach it again.")
        return name

    def staged_filename(self) -> str:
        return posixpath.basename(self["staged_file"].value() or "")

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


# --- Files kept between the compose page and its confirmation -------------------


def _staging_prefix(*, user, form_key: str) -> str:
    return f"{services.COMPOSE_UPLOADS_DIR}/{user.pk}/{form_key}/"


def _is_staged_name(name: str, *, user, form_key: str) -> bool:
    prefix = _staging_prefix(user=user, form_key=form_key)
    rest = name.removeprefix(prefix)
    return bool(form_key) and name.startswith(prefix) and rest and "/" not in rest and rest not in (".", "..")


def _stage_upload(upload, *, user, form_key: str) -> str:
    filename = posixpath.basename(upload.name or "upload").replace("\\", "_")[:100] or "upload"
    return default_storage.save(_staging_prefix(user=user, form_key=form_key) + filename, upload)


def _open_staged(name: str):
    """The staged upload as the send expects a file: its own name, size and content type."""
    handle = default_storage.open(name)
    staged = File(handle, name=posixpath.basename(name))
    staged.content_type = mimetypes.guess_type(staged.name)[0] or "application/octet-stream"
    return staged


def _drop_staged(name: str) -> None:
    if name and default_storage.exists(name):
        default_storage.delete(name)


# --- Compose → confirm → send -----------------------------------------------------


def _result_url(outcome: dict) -> str:
    if "scheduled" in outcome:
        return reverse("admin:notifications_schedulednotification_change", args=[outcome["scheduled"]])
    if "sent" in outcome:
        return reverse("admin:notifications_immediatesend_change", args=[outcome["sent"]])
    return reverse("admin:notifications_immediatesend_changelist")


def _render(model_admin, request, template: str, context: dict):
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "history_url": reverse("admin:notifications_immediatesend_changelist"),
        **context,
    }
    return TemplateResponse(request, f"admin/notifications/schedulednotification/{template}", context)


def _compose_page(model_admin, request, form):
    return _render(
        model_admin,
        request,
        "compose.html",
        {"title": "Compose a bulk send", "form": form, "media": model_admin.media + form.media},
    )


def _error_text(exc: BulkInputError) -> str:
    return f"{exc.message}: {exc.detail}" if exc.detail != exc.message else exc.message


def compose_view(model_admin, request):
    """Compose a bulk send, confirm it with its recipient count, then send now or schedule.

    Step one (compose) checks the form as the API would and resolves the
    audience; step two (confirm) sends. Both pages carry the form's key: a
    confirmed form that is submitted again sends nothing and shows what the
    first submission did.
    """
    if request.method != "POST":
        form = ComposeForm(initial={"form_key": uuid.uuid4().hex}, user=request.user)
    else:
        form = ComposeForm(request.POST, request.FILES or None, user=request.user)
    if not form.fields["channel"].choices:
        raise PermissionDenied
    if request.method != "POST" or not form.is_valid():
        return _compose_page(model_admin, request, form)
    channel = form.cleaned_data["channel"]
    if not may_send(request.user, form.cleaned_data["platform"], channel):
        raise PermissionDenied
    form_key = form.cleaned_data["form_key"]
    if "confirm" in request.POST:
        return _confirmed_send(model_admin, request, form)
    # Step one. A form already sent (the back button) is not offered for sending again.
    earlier = services.form_submission_outcome(user=request.user, form_key=form_key)
    if earlier is not None:
        model_admin.message_user(
            request, "This form was already sent; nothing was sent again. Compose a new send instead.", messages.WARNING
        )
        return HttpResponseRedirect(_result_url(earlier))
    staged = form.cleaned_data["staged_file"]
    if "file" in request.FILES:
        _drop_staged(staged)
        staged = _stage_upload(request.FILES["file"], user=request.user, form_key=form_key)
    files = [_open_staged(staged)] if staged else []
    platform = form.cleaned_data["platform"]
    try:
        data = bulk_input_parse(channel, form.api_data(), files)
        preview = services.bulk_preview(platform=platform, data=data)
    except BulkInputError as exc:
        form.add_error(None, _error_text(exc))
        # Shown again with the upload kept, so the corrected form need not attach it twice.
        form.data = form.data.copy()
        form.data["staged_file"] = staged
        return _compose_page(model_admin, request, form)
    finally:
        for f in files:
            f.close()
    # The confirmation page re-posts the form as hidden fields, with the staged upload's name.
    hidden = form.data.copy()
    hidden["staged_file"] = staged
    confirm_form = ComposeForm(hidden, user=request.user)
    confirm_form.is_valid()
    d = form.cleaned_data
    summary = [
        ("Platform", d["platform"].name or d["platform"].key),
        ("Channel", dict(ScheduledChannel.choices)[channel]),
        ("When", f"{data.scheduled_at:%Y-%m-%d %H:%M} UTC" if data.scheduled_at else "Now"),
        ("Title" if channel != ScheduledChannel.EMAIL else "Subject", d["title"] or "—"),
        ("Message", d["message"] or "—"),
    ]
    if staged:
        summary.append(("File", posixpath.basename(staged)))
    return _render(
        model_admin,
        request,
        "compose_confirm.html",
        {
            "title": "Confirm the send" if data.scheduled_at is None else "Confirm the scheduled send",
            "form": confirm_form,
            "summary": summary,
            "preview": preview,
            "scheduled": data.scheduled_at is not None,
            "channel": channel,
        },
    )


def _confirmed_send(model_admin, request, form):
    """Step two: send or schedule once per form key."""
    d = form.cleaned_data
    submission = services.form_submission_begin(user=request.user, form_key=d["form_key"], path=request.path)
    if submission.in_progress:
        model_admin.message_user(
            request, "This form is being sent already; its result appears in the send history.", messages.WARNING
        )
        return HttpResponseRedirect(reverse("admin:notifications_immediatesend_changelist"))
    if submission.earlier is not None:
        model_admin.message_user(
            request, "This form was already submitted; nothing was sent again. Here is what it did.", messages.WARNING
        )
        return HttpResponseRedirect(_result_url(submission.earlier))
    held = submission.held
    channel = d["channel"]
    platform = d["platform"]
    staged = d["staged_file"]
    files = [_open_staged(staged)] if staged else []
    base_url = request.build_absolute_uri("/")
    try:
        data = bulk_input_parse(channel, form.api_data(), files)
        if data.scheduled_at is not None:
            job = services.scheduled_create(platform=platform, data=data, created_by=request.user, base_url=base_url)
            outcome = {"scheduled": job.pk}
            text = f"Job #{job.pk} scheduled for {job.scheduled_at:%Y-%m-%d %H:%M} UTC."
        else:
            sent = services.bulk_send(platform=platform, data=data, base_url=base_url, created_by=request.user)
            outcome = {"sent": str(sent.record_id)}
            counts = sent.counts
            if channel == ScheduledChannel.PUSH:
                text = (
                    f"{SENT_MESSAGES[channel]}: {sent.target_users} user(s), "
                    f"{counts.units_sent} device(s) sent, {counts.units_failed} failed."
                )
            else:
                text = f"{SENT_MESSAGES[channel]}: {counts.sent} sent, {counts.failed} failed."
    except BulkInputError as exc:
        services.form_submission_abandon(held=held)
        form.add_error(None, _error_text(exc))
        return _compose_page(model_admin, request, form)
    except BaseException:
        services.form_submission_abandon(held=held)
        raise
    finally:
        for f in files:
            f.close()
    services.form_submission_finish(held=held, outcome=outcome)
    _drop_staged(staged)
    model_admin.message_user(request, text, messages.SUCCESS)
    # Redirect after the POST: a reload shows the result and cannot re-post the form.
    return HttpResponseRedirect(_result_url(outcome))


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
