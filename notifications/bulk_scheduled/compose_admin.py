"""The admin's compose flow: compose a bulk send, confirm it with its recipient count, send or schedule.

The compose form goes through the same parser (`bulk_scheduled.inputs`) and services as
the API, so the admin and `/api/v1/notifications/bulk-*` accept and reject the
same things with the same messages. Mounted by `ScheduledNotificationAdmin`
(`bulk_scheduled/admin.py`) at `compose/`.
"""

from __future__ import annotations

import mimetypes
import posixpath
import uuid

from django import forms
from django.contrib import messages
from django.contrib.admin.widgets import AdminSplitDateTime, FilteredSelectMultiple
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.files import File
from django.core.files.storage import default_storage
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from notifications.bulk_scheduled import compose, jobs, sends
from notifications.bulk_scheduled.inputs import BulkInputError, bulk_input_parse
from notifications.models import Level, Platform, Role, ScheduledChannel
from notifications.permissions import platform_permissions, user_may
from notifications.tenancy import administered_platforms as managed_platforms

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
    fallback_channel = forms.ChoiceField(
        choices=[("", "—"), *ScheduledChannel.choices],
        required=False,
        help_text="SMS, email and push: another channel for members this send cannot reach (no device or "
        "address, or the provider refused for good); each gets it once.",
    )

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
        if d.get("fallback_channel"):
            data["fallback_channel"] = d["fallback_channel"]
        if d["when"] == "schedule":
            when = d["scheduled_at"]
            data["scheduled_at"] = when.isoformat() if when else "not set"
        return data


# --- Files kept between the compose page and its confirmation -------------------


def _staging_prefix(*, user, form_key: str) -> str:
    return f"{compose.COMPOSE_UPLOADS_DIR}/{user.pk}/{form_key}/"


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
    earlier = compose.form_submission_outcome(user=request.user, form_key=form_key)
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
        preview = sends.bulk_preview(platform=platform, data=data)
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
    submission = compose.form_submission_begin(user=request.user, form_key=d["form_key"], path=request.path)
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
            job = jobs.scheduled_create(platform=platform, data=data, created_by=request.user, base_url=base_url)
            outcome = {"scheduled": job.pk}
            text = f"Job #{job.pk} scheduled for {job.scheduled_at:%Y-%m-%d %H:%M} UTC."
        else:
            sent = sends.bulk_send(platform=platform, data=data, base_url=base_url, created_by=request.user)
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
        compose.form_submission_abandon(held=held)
        form.add_error(None, _error_text(exc))
        return _compose_page(model_admin, request, form)
    except BaseException:
        compose.form_submission_abandon(held=held)
        raise
    finally:
        for f in files:
            f.close()
    compose.form_submission_finish(held=held, outcome=outcome)
    _drop_staged(staged)
    model_admin.message_user(request, text, messages.SUCCESS)
    # Redirect after the POST: a reload shows the result and cannot re-post the form.
    return HttpResponseRedirect(_result_url(outcome))
