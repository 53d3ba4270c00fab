"""Notification types, default and per-platform templates, toggles and preferences.

A template row with `platform=None` is a shipped default (kept in sync with
`templates_app/defaults.py`); a row with a platform is that platform's copy
(copy-on-write) or one of its custom types. The on/off toggle is a separate
record, so neither editing nor resetting a template touches it.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from notifications.lookups import AnyOf
from notifications.models import Channel, Platform


class NotificationChannel(models.Model):
    """A delivery channel as a record: the API speaks `channel_ids`."""

    id = models.PositiveSmallIntegerField(primary_key=True)
    name = models.CharField(max_length=30, unique=True, choices=Channel.choices)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Spa(models.Model):
    """A single-page app of the platform family a template belongs to (skills, admin, mentor)."""

    name = models.SlugField(max_length=50, unique=True)
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "SPA"

    def __str__(self) -> str:
        return self.name


class NotificationTemplate(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # None: the shipped default of a system type.
    platform = models.ForeignKey(
        Platform, null=True, blank=True, on_delete=models.CASCADE, related_name="notification_templates"
    )
    type = models.CharField(max_length=100, db_index=True)
    is_custom = models.BooleanField(default=False, help_text="A type this platform defined itself.")

    name = models.CharField(max_length=200)
    description = models.CharField(max_length=500, blank=True)
    message_title = models.CharField(max_length=500, blank=True)
    message_body = models.TextField(blank=True)
    short_message_body = models.TextField(blank=True)
    email_subject = models.CharField(max_length=500, blank=True)
    email_from_address = models.EmailField(blank=True)
    email_html_template = models.TextField(blank=True)
    spas = models.ManyToManyField(Spa, blank=True, related_name="templates")
    allowed_channels = models.ManyToManyField(NotificationChannel, blank=True, related_name="templates")
    # Custom types declare their variables here; system types take them from defaults.py.
    available_context = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    periodic_config = models.JSONField(null=True, blank=True)
    policy_config = models.JSONField(null=True, blank=True)
    human_support_config = models.JSONField(null=True, blank=True)
    # Channel fallback and escalation of this type's deliveries on the platform:
    # {"fallback": {"push_notification": "sms"}, "escalation": {"channel": "email", "after_minutes": 30}}.
    # Inherited from the shipped default like the other settings (a copy starts from it).
    delivery_policy = models.JSONField(
        null=True,
        blank=True,
        help_text='Fallback and escalation, e.g. {"fallback": {"push_notification": "sms"}, '
        '"escalation": {"channel": "email", "after_minutes": 30}}.',
    )

    # On a default: the hash of its content in code. On a copy: the hash of the
    # default it was made from, to tell when the default has moved on.
    content_hash = models.CharField(max_length=64, blank=True)

    # Periodic sends (PROACTIVE_LEARNER_NOTIFICATION): the due-work sweep claims
    # rows whose next run is due, under a lease.
    next_execution_at = models.DateTimeField(null=True, blank=True)
    last_execution_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["platform_id", "type"]
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "type"], condition=Q(platform__isnull=False), name="uniq_platform_template"
            ),
            models.UniqueConstraint(fields=["type"], condition=Q(platform__isnull=True), name="uniq_default_template"),
        ]
        indexes = [
            models.Index(
                fields=["next_execution_at"], condition=Q(next_execution_at__isnull=False), name="template_periodic_due"
            ),
        ]
        permissions = [
            ("ibl_template_list", "Ibl.Notifications/Template/list"),
            ("ibl_template_write", "Ibl.Notifications/Template/write"),
            ("ibl_event_send", "Ibl.Notifications/Event/send"),
        ]

    def __str__(self) -> str:
        return f"{self.type} ({self.platform.key if self.platform_id else 'default'})"

    @property
    def is_default(self) -> bool:
        return self.platform_id is None

    @property
    def api_id(self) -> str:
        """The id the API shows: custom types carry a `custom_` prefix."""
        return f"custom_{self.pk}" if self.is_custom else str(self.pk)


class NotificationToggle(models.Model):
    """A platform's on/off switch for one type; no row means the type's default."""

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="notification_toggles")
    type = models.CharField(max_length=100)
    enabled = models.BooleanField()
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["platform", "type"], name="uniq_toggle")]

    def __str__(self) -> str:
        return f"{self.type} @ {self.platform}: {'on' if self.enabled else 'off'}"


ALL_TYPES = "*"


class UserNotificationPreference(models.Model):
    """One user's choice for one type (or "*" for every type) on one channel (or all)."""

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="notification_preferences")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    notification_type = models.CharField(max_length=100, help_text='A type, or "*" for every type.')
    channel = models.CharField(max_length=30, blank=True, help_text="Empty: every channel.")
    enabled = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["platform", "user", "notification_type", "channel"], name="uniq_preference")
        ]
        indexes = [models.Index(fields=["platform", "user"], name="preference_platform_user")]

    def __str__(self) -> str:
        return f"{self.user} {self.notification_type}/{self.channel or '*'}: {'on' if self.enabled else 'off'}"


# The recipient filter asks about every recipient of a send, thousands at a time.
UserNotificationPreference._meta.get_field("user").register_lookup(AnyOf)


class QuietHours(models.Model):
    """A user's own quiet hours on one platform, read in the user's time zone (`User.timezone`).

    SMS, push and email falling inside wait until the window ends; in-app
    arrives silently. start == end: no quiet hours at all (not even the
    platform's default). No row: the platform's default applies.
    """

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="quiet_hours")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quiet_hours")
    start = models.TimeField()
    end = models.TimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["platform", "user"], name="uniq_quiet_hours")]
        verbose_name_plural = "quiet hours"

    def __str__(self) -> str:
        return f"{self.user} @ {self.platform}: {self.start:%H:%M}-{self.end:%H:%M}"


QuietHours._meta.get_field("user").register_lookup(AnyOf)


class Mentor(models.Model):
    """An AI mentor of the platform; its owner can receive human-support requests."""

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="mentors")
    unique_id = models.CharField(max_length=200)
    name = models.CharField(max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_mentors"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["platform", "unique_id"], name="uniq_mentor")]

    def __str__(self) -> str:
        return f"{self.name} ({self.unique_id})"


class ActivityKind(models.TextChoices):
    COURSE_PROGRESS = "course_progress", "Course progress"
    VIDEO_WATCHED = "video_watched", "Video watched"
    TIME_SPENT = "time_spent", "Time spent"
    CREDENTIAL_EARNED = "credential_earned", "Credential earned"
    ASSESSMENT_COMPLETED = "assessment_completed", "Assessment completed"


class LearnerActivity(models.Model):
    """A learning event the platform reports; proactive recommendations summarise these."""

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="learner_activities")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="learner_activities")
    kind = models.CharField(max_length=30, choices=ActivityKind.choices)
    course_name = models.CharField(max_length=300, blank=True)
    # Minutes for time_spent, a 0-100 percentage for course_progress, a count otherwise.
    value = models.FloatField(default=1)
    occurred_at = models.DateTimeField()
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at"]
        verbose_name_plural = "learner activities"
        indexes = [
            models.Index(fields=["platform", "user", "occurred_at"], name="activity_user_time"),
            models.Index(fields=["platform", "occurred_at"], name="activity_platform_time"),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.kind} {self.course_name}"


class EventStatus(models.TextChoices):
    PROCESSED = "processed", "Processed"
    SKIPPED = "skipped", "Skipped"


class NotificationEvent(models.Model):
    """A platform event that asked for an automatic notification (one per `event_id`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="notification_events")
    event_id = models.CharField(max_length=200, help_text="The caller's idempotency key (generated when absent).")
    type = models.CharField(max_length=100)
    payload_hash = models.CharField(max_length=64)
    context = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=EventStatus.choices)
    reason = models.CharField(max_length=300, blank=True)
    result = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["platform", "event_id"], name="uniq_event")]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id} ({self.status})"

    @property
    def source(self) -> str:
        """The delivery pipeline's idempotency key for this event's deliveries."""
        return f"event:{self.pk}"


# --- digests ------------------------------------------------------------------------------


class DigestMode(models.TextChoices):
    LEADING = "leading", "Leading: the first event goes out at once, the rest are collected"
    TRAILING = "trailing", "Trailing: everything waits for the window's end"


class DigestRule(models.Model):
    """A platform's digest of one type: collected events go out as one message per channel.

    Blank fields inherit the type's shipped default (`defaults.DIGESTS`), as a
    template copy inherits its default; a type without a shipped default needs
    its window, channels and mode here. Critical types are never digested.
    """

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="digest_rules")
    notification_type = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    window_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="A window of this many minutes, aligned to the clock (60: every full hour)."
    )
    daily_at = models.TimeField(
        null=True, blank=True, help_text="Or: daily at this local time (in `timezone`, else the recipient's)."
    )
    timezone = models.CharField(max_length=64, blank=True, help_text="IANA zone of `daily_at`; blank: the recipient's.")
    mode = models.CharField(max_length=10, choices=DigestMode.choices, blank=True)
    channels = models.JSONField(
        null=True, blank=True, help_text="Channels collected into the digest; the others stay live. Null: inherit."
    )
    key_context = models.CharField(
        max_length=100,
        null=True,
        blank=True,
        help_text="A context variable (course_id) that splits a recipient's digests; empty: one per recipient.",
    )
    learner_cadences = models.JSONField(
        default=list,
        blank=True,
        help_text='Cadences learners may choose for themselves among "immediate", "hourly", "daily", "weekly"; '
        "empty: everyone follows this rule.",
    )
    # The digest template; blank fields inherit the shipped digest template.
    message_title = models.CharField(max_length=500, blank=True)
    message_body = models.TextField(blank=True)
    short_message_body = models.TextField(blank=True)
    email_subject = models.CharField(max_length=500, blank=True)
    email_html_template = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["platform", "notification_type"], name="uniq_digest_rule")]

    def __str__(self) -> str:
        return f"digest of {self.notification_type} @ {self.platform}"


class Cadence(models.TextChoices):
    IMMEDIATE = "immediate", "Immediately, one message per event"
    HOURLY = "hourly", "An hourly digest"
    DAILY = "daily", "A daily digest"
    WEEKLY = "weekly", "A weekly digest"


class DigestCadence(models.Model):
    """A learner's own cadence for one digested type, within the cadences the platform's rule offers."""

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="digest_cadences")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="digest_cadences")
    notification_type = models.CharField(max_length=100)
    cadence = models.CharField(max_length=10, choices=Cadence.choices)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["platform", "user", "notification_type"], name="uniq_digest_cadence")
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.notification_type}: {self.cadence}"


class DigestStatus(models.TextChoices):
    OPEN = "open", "Open: collecting"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    EMPTY = "empty", "Closed with nothing to send"
    FAILED = "failed", "Failed"


class DigestBucket(models.Model):
    """The events of one digest key in one window, and the digest they become.

    Events join with one upsert on (platform, digest_key, window_end); the
    due-work sweep claims the bucket under a lease once its window has ended
    and hands it to the pipeline under the source `digest:<id>`.
    """

    id = models.BigAutoField(primary_key=True)
    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="digest_buckets")
    notification_type = models.CharField(max_length=100)
    # "<type>|<recipient key>" plus "|<name>=<value>" when the rule splits by a context value.
    digest_key = models.CharField(max_length=400)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="digest_buckets"
    )
    address = models.CharField(max_length=320, blank=True)
    channels = models.JSONField(default=list)
    mode = models.CharField(max_length=10, choices=DigestMode.choices)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField(help_text="When the digest goes out.")
    # [{"event_id", "received_at", "context", "live"?}]; `live` marks the leading event already sent.
    items = models.JSONField(default=list)
    # Items the digest will carry (a leading event is not counted: it went out at once).
    count = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=DigestStatus.choices, default=DigestStatus.OPEN)
    claimed_until = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["window_end", "id"]
        constraints = [
            models.UniqueConstraint(fields=["platform", "digest_key", "window_end"], name="uniq_digest_bucket")
        ]
        indexes = [
            models.Index(fields=["window_end"], condition=Q(status="open"), name="digest_open_due"),
            models.Index(fields=["claimed_until"], condition=Q(status="sending"), name="digest_sending_lease"),
            models.Index(fields=["platform", "status", "window_end"], name="digest_platform_status"),
        ]

    def __str__(self) -> str:
        return f"digest {self.pk} {self.notification_type} ({self.count})"

    @property
    def source(self) -> str:
        """The pipeline's idempotency key of this digest's deliveries."""
        return f"digest:{self.pk}"


class CapWindow(models.TextChoices):
    """How long a frequency cap's window is; day and week follow the platform's clock (`Platform.time_zone`)."""

    HOUR = "hour", "Hour"
    DAY = "day", "Day (from midnight)"
    WEEK = "week", "Week (from Monday midnight)"


class CapAction(models.TextChoices):
    DEFER = "defer", "Defer to the next window"
    SUPPRESS = "suppress", "Suppress"


class FrequencyCap(models.Model):
    """At most `limit` non-critical deliveries on `channel` per recipient and window, on one platform.

    What exceeds it waits for the next window with room (`defer`) or is
    written `suppressed` (`suppress`); either way the row shows
    `rule=frequency_cap`. See `templates_app.services.frequency_caps`.
    """

    # The channels that interrupt; in-app is the inbox, a record rather than an interruption (quiet
    # hours likewise only silence it).
    CHANNELS = [(c.value, c.label) for c in (Channel.SMS, Channel.PUSH, Channel.EMAIL)]

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="frequency_caps")
    channel = models.CharField(max_length=20, choices=CHANNELS)
    limit = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    window = models.CharField(max_length=8, choices=CapWindow.choices, default=CapWindow.DAY)
    over_limit = models.CharField(max_length=8, choices=CapAction.choices, default=CapAction.DEFER)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["platform", "channel"], name="uniq_frequency_cap"),
            models.CheckConstraint(condition=Q(limit__gte=1), name="frequency_cap_limit_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.platform}: {self.limit} {self.channel} per {self.window} ({self.over_limit})"


class FrequencyCapCount(models.Model):
    """Deliveries asked for by one recipient on one channel in one cap window (the counter the cap reads).

    `count` may run past the cap's limit: the rows past it went to a later
    window or were suppressed. Rows of windows long over are deleted as sends
    go on (`frequency_caps.counts_prune`).
    """

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=20)
    recipient_key = models.CharField(max_length=320)
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "channel", "recipient_key", "window_start"], name="uniq_frequency_cap_count"
            )
        ]
        indexes = [models.Index(fields=["window_start"], name="frequency_cap_count_window")]

    def __str__(self) -> str:
        return f"{self.recipient_key} {self.channel} @ {self.window_start}: {self.count}"
