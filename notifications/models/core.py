"""Core domain: platforms, people, tokens, and the one inbox/delivery table."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone

from notifications.channels import Channel
from notifications.zones import is_time_zone


def validate_origins(value: str) -> None:
    """One origin per line: scheme://host[:port], http or https, nothing after it."""
    from urllib.parse import urlsplit

    from django.core.exceptions import ValidationError

    for line in value.split():
        try:
            parts = urlsplit(line)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            parts = None
        if not parts or parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
            raise ValidationError(f"{line!r} is not an origin such as https://learn.example.com")
        if parts.query or parts.fragment or parts.username:
            raise ValidationError(f"{line!r} is not an origin such as https://learn.example.com")


def validate_time_zone(value: str) -> None:
    """An IANA time zone name that zoneinfo knows (e.g. Africa/Addis_Ababa)."""
    if not is_time_zone(value):
        raise ValidationError(f"{value!r} is not an IANA time zone such as Africa/Addis_Ababa")


def normalize_origin(origin: str) -> str:
    """`Origin` values compare as browsers send them: lower case, no trailing slash."""
    return origin.strip().rstrip("/").lower()


class Platform(models.Model):
    """A tenant: the `{org}` / `{platform_key}` of the IBL paths."""

    key = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    # Site fields templates use as global variables (IBL §8.2).
    site_name = models.CharField(max_length=200, blank=True)
    site_url = models.URLField(blank=True)
    logo_url = models.URLField(blank=True)
    support_email = models.EmailField(blank=True)
    privacy_url = models.URLField(blank=True)
    terms_url = models.URLField(blank=True)
    base_domain = models.CharField(max_length=200, blank=True)
    skills_url = models.URLField(blank=True)
    from_email = models.EmailField(blank=True, help_text="From-address of this platform's mail.")
    rbac_enabled = models.BooleanField(
        default=False, help_text="Require the Ibl.Notifications/* grants on top of role checks."
    )
    push_enabled = models.BooleanField(default=True, help_text="Allow push device registration and push sends.")
    # Pages of the platform's own sites that embed <notify-inbox>: CORS on the
    # inbox endpoints and the WebSocket's Origin check admit these, and only
    # for the platform's inbox tokens.
    allowed_origins = models.TextField(
        blank=True,
        validators=[validate_origins],
        help_text="Origins that may embed the inbox, one per line (scheme://host[:port], e.g. https://learn.example.com).",
    )
    # Quiet hours for members who set none of their own: SMS, push and email
    # wait until the window ends (in-app arrives silently); critical types and
    # alerts go through. Read in each member's own time zone, and in
    # `time_zone` for recipients known only by an address.
    quiet_hours_start = models.TimeField(
        null=True, blank=True, help_text="Default quiet hours start (e.g. 22:00); empty: no default quiet hours."
    )
    quiet_hours_end = models.TimeField(null=True, blank=True, help_text="Default quiet hours end (e.g. 07:00).")
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="IANA zone of recipients known only by an address (quiet hours).",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key

    def clean(self):
        super().clean()
        if (self.quiet_hours_start is None) != (self.quiet_hours_end is None):
            raise ValidationError("Give both ends of the default quiet hours, or neither.")

    @property
    def origin_list(self) -> list[str]:
        return [normalize_origin(line) for line in self.allowed_origins.split() if line.strip()]


class Role(models.TextChoices):
    """Platform roles of the bulk document (`users.role`), held per membership."""

    STUDENT = "STUDENT", "Student"
    OPEN_LEARNER = "OPEN_LEARNER", "Open learner"
    INSTRUCTOR = "INSTRUCTOR", "Instructor"
    ADMIN = "ADMIN", "Admin"
    SUPER_ADMIN = "SUPER_ADMIN", "Super admin"
    SUPPORT = "SUPPORT", "Support"


class User(AbstractUser):
    email = models.EmailField(blank=True, db_index=True)
    # Stored in E.164; `notifications.phones.normalize` runs on every write path.
    phone_number = models.CharField(max_length=20, blank=True, db_index=True)
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA zone for dates in messages.")
    is_service_account = models.BooleanField(
        default=False, help_text="A machine client of other services (posts alerts and events)."
    )

    objects = UserManager()

    def __str__(self) -> str:
        # How the admin names a person everywhere (lists, pickers, related records).
        name = self.get_full_name().strip()
        return f"{name} ({self.username})" if name else self.username

    def save(self, *args, **kwargs):
        if self.phone_number:
            from notifications.phones import normalize

            self.phone_number = normalize(self.phone_number) or self.phone_number
        super().save(*args, **kwargs)


# Sent with `user_ids` and/or `key_hashes` when a write may change what a token
# may do, including queryset writes, which send no model signals. The credentials
# cache listens (`notifications.signals`), so the models import no cache.
credentials_written = Signal()


class MembershipQuerySet(models.QuerySet):
    """Writes that bypass the model's signals still drop the members' cached credentials."""

    def update(self, **kwargs):
        users = list(self.values_list("user_id", flat=True).distinct())
        credentials_written.send(sender=Membership, user_ids=users)
        return super().update(**kwargs)

    def bulk_create(self, objs, *args, **kwargs):
        created = super().bulk_create(objs, *args, **kwargs)
        credentials_written.send(sender=Membership, user_ids={m.user_id for m in created})
        return created


class Membership(models.Model):
    """A user on one platform: every right a user has on a platform comes from here.

    `role` carries the permission keys of its bundle (`notifications.permissions`),
    `permissions` the extra keys granted to this member on this platform only, and
    `is_platform_admin` makes the member an administrator of the platform (its
    settings, templates, builder and members' inboxes, its rows in the admin site).
    The two are independent: a platform's admins usually have the ADMIN role too.
    Nothing held on one platform counts on another; only superusers are global.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.STUDENT)
    is_platform_admin = models.BooleanField(
        default=False, help_text="Administers this platform: settings, templates, builder, members' inboxes."
    )
    permissions = models.ManyToManyField(
        "auth.Permission",
        blank=True,
        related_name="+",
        help_text="Permission keys granted on this platform on top of the role's.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["platform", "user"], name="uniq_membership")]
        indexes = [
            models.Index(fields=["platform", "is_active"], name="membership_platform_active"),
            # Role-targeted sends: the members of one platform with one role.
            models.Index(fields=["platform", "role"], name="membership_platform_role"),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.platform}"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class AuthTokenQuerySet(models.QuerySet):
    def active(self):
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))

    # Writes through the queryset drop the tokens' cached credentials (notifications.auth_cache),
    # except the once-a-minute last_used_at bookkeeping.
    def update(self, **kwargs):
        if set(kwargs) - {"last_used_at"}:
            _forget_tokens(self)
        return super().update(**kwargs)

    def delete(self):
        _forget_tokens(self)
        return super().delete()


def _forget_tokens(tokens) -> None:
    credentials_written.send(sender=AuthToken, key_hashes=list(tokens.values_list("key_hash", flat=True)))


class TokenScope(models.TextChoices):
    FULL = "", "Full (everything the user may do)"
    # One user's inbox on one platform: list, count, mark, dismiss and the
    # WebSocket. Given to pages that embed <notify-inbox> (notifications/inbox_tokens.py).
    INBOX = "inbox", "Inbox only"


class AuthToken(models.Model):
    """One token per device or client; only its SHA-256 is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="auth_tokens")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=8, editable=False, help_text="First characters, to tell tokens apart.")
    name = models.CharField(max_length=100, blank=True, help_text="Device or client the token was issued to.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    scope = models.CharField(max_length=20, choices=TokenScope.choices, default=TokenScope.FULL, blank=True)
    # Set on scoped tokens: the one platform they act on.
    platform = models.ForeignKey(
        Platform, null=True, blank=True, on_delete=models.CASCADE, related_name="scoped_tokens"
    )

    objects = AuthTokenQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["user", "revoked_at"], name="token_user_revoked")]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @classmethod
    def issue(
        cls,
        *,
        user,
        name: str = "",
        ttl: timedelta | None = None,
        scope: str = TokenScope.FULL,
        platform: Platform | None = None,
    ) -> tuple[AuthToken, str]:
        """Create a token; the raw value is returned once and never stored."""
        raw = secrets.token_urlsafe(32)
        while raw.startswith("-"):  # command-line tools would read a leading dash as an option
            raw = secrets.token_urlsafe(32)
        if ttl is None:
            ttl = timedelta(days=settings.TOKEN_TTL_DAYS)
        token = cls.objects.create(
            user=user,
            key_hash=hash_token(raw),
            prefix=raw[:8],
            name=name,
            expires_at=timezone.now() + ttl,
            scope=scope,
            platform=platform,
        )
        return token, raw

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())

    def delete(self, *args, **kwargs):
        credentials_written.send(sender=AuthToken, key_hashes=[self.key_hash])
        return super().delete(*args, **kwargs)


class InboxStatus(models.TextChoices):
    # Alphabetical order matters: ordering by -status puts UNREAD first, then
    # READ, then CANCELLED, which is the IBL list order, straight off an index.
    UNREAD = "UNREAD", "Unread"
    READ = "READ", "Read"
    CANCELLED = "CANCELLED", "Cancelled"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    # Written but never to be sent: a delivery rule held it back (the row's `rule` says which).
    SUPPRESSED = "suppressed", "Suppressed"


class DeliveryRule(models.TextChoices):
    """The delivery rule that deferred, suppressed, redirected or rerouted a delivery."""

    QUIET_HOURS = "quiet_hours", "Quiet hours"
    FREQUENCY_CAP = "frequency_cap", "Frequency cap"
    FALLBACK = "fallback", "Channel fallback"
    ESCALATION = "escalation", "Escalation"
    FAILOVER = "failover", "Provider failover"
    SUPPRESSION_LIST = "suppression_list", "Suppression list"
    DIGEST = "digest", "Digest"


class Level(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"
    SUCCESS = "success", "Success"


class Notification(models.Model):
    """One delivery to one recipient over one channel, and the user's inbox entry.

    Every send path writes these rows and nothing else; the unique key on
    (source, channel, recipient_key) is what makes re-running a send harmless.
    A row with a user is that user's inbox notification once it is sent; a row
    with only an address is a delivery to someone without an account.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No database-level foreign keys on this table: PostgreSQL checks one per
    # inserted row by locking the referenced user row, which was half the cost
    # of a 100k-recipient fan-out. The pipeline writes only users it has just
    # read, and Django's collector still cascades deletes (it always does so in
    # Python): a user's rows through the inbox index below; a platform's by a
    # table scan, an acceptable price for deleting a whole tenant.
    platform = models.ForeignKey(
        Platform, on_delete=models.CASCADE, related_name="notifications", db_constraint=False, db_index=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
        db_constraint=False,
        db_index=False,
    )
    # "user:<id>", "email:<address>" or "phone:<E.164>".
    recipient_key = models.CharField(max_length=320)
    address = models.CharField(max_length=320, blank=True, help_text="Email or phone the delivery went to.")
    channel = models.CharField(max_length=20, choices=Channel.choices)
    # What asked for the send: "bulk:<uuid>", "scheduled:<id>", "alert:<id>", ...
    source = models.CharField(max_length=120)
    notification_type = models.CharField(max_length=100, default="system_alert")
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    title = models.CharField(max_length=500, blank=True)
    body = models.TextField(blank=True)
    html = models.TextField(blank=True)
    short_message = models.CharField(max_length=1000, blank=True)
    context = models.JSONField(default=dict, blank=True)
    data = models.JSONField(default=dict, blank=True, help_text="Extra key/values for push payloads.")
    image_url = models.URLField(max_length=1000, blank=True)

    status = models.CharField(max_length=10, choices=InboxStatus.choices, default=InboxStatus.UNREAD)
    delivery_status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    error = models.TextField(blank=True)
    # Empty unless a delivery rule acted on the row (deferred, suppressed, fell back, failed over).
    rule = models.CharField(max_length=20, choices=DeliveryRule.choices, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    provider_message_id = models.CharField(max_length=255, blank=True)
    # The provider that sent the row, or whose last attempt may have sent it (a
    # timeout): its retries stay on that provider. SMS: the configured provider's
    # name (afromessage, africastalking); email: anymail's esp_name ("Postmark",
    # ...) or "smtp". Receipts find their row by (provider, provider_message_id).
    provider = models.CharField(max_length=40, blank=True)
    # Push counts devices: how many of this user's device tokens took it.
    units_sent = models.PositiveIntegerField(default=0)
    units_failed = models.PositiveIntegerField(default=0)

    # A dispatcher that picked the row up owns it until then; a crashed one's
    # rows become claimable again when the lease runs out.
    claimed_until = models.DateTimeField(null=True, blank=True)
    # When the sweep should (re)dispatch this unsent row if nobody else has:
    # a retry's backoff, or a grace period for the dispatcher that wrote it.
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["source", "channel", "recipient_key"], name="uniq_delivery"),
        ]
        indexes = [
            # The one inbox index: a user's rows by status, newest first. `id`
            # breaks ties (one bulk send gives thousands of rows the same
            # created_at; without it a LIMIT would sort the whole tie group).
            # It serves the IBL order (unread first) directly, the /api/v1
            # order (newest first over UNREAD and READ) as a merge of two of
            # its ranges (selectors.inbox_visible_for), and the user_id lookups
            # of a cascading delete. One index instead of two is a tenth less
            # work for every row a fan-out writes.
            models.Index(
                fields=["user", "platform", "-status", "-created_at", "-id"], name="inbox_user_status_created"
            ),
            # Dispatchers claim the unsent rows of one send; the sweep finds unsent
            # rows that are due. Both stay small: rows leave them once sent or failed.
            models.Index(
                fields=["source", "channel", "id"], name="delivery_pending", condition=Q(delivery_status="pending")
            ),
            models.Index(fields=["next_attempt_at"], name="delivery_due", condition=Q(delivery_status="pending")),
            # Provider callbacks (delivery reports) find their row by the id the
            # provider gave it. Partial: rows without one (in-app, unsent) cost nothing.
            models.Index(
                fields=["provider_message_id"], name="delivery_provider_message", condition=~Q(provider_message_id="")
            ),
        ]
        permissions = [
            ("ibl_notification_list", "Ibl.Notifications/Notification/list"),
            ("ibl_notification_write", "Ibl.Notifications/Notification/write"),
            ("ibl_notification_delete", "Ibl.Notifications/Notification/delete"),
            ("ws_connect", "notifications.ws_connect"),
            ("list_mine", "notifications.list_mine"),
            ("count_unread", "notifications.count_unread"),
            ("bulk_sms", "notifications.bulk_sms"),
            ("bulk_email", "notifications.bulk_email"),
            ("bulk_push", "notifications.bulk_push"),
            ("bulk_in_app", "notifications.bulk_in_app"),
            ("scheduled_list", "notifications_scheduled.list"),
            ("scheduled_get", "notifications_scheduled.get"),
            ("scheduled_cancel", "notifications_scheduled.cancel"),
            ("ibl_smtp_action", "Ibl.Notifications/SMTP/action"),
            ("update_mine", "notifications.update_mine"),
            ("inbox_token", "notifications.inbox_token"),
        ]

    def __str__(self) -> str:
        # The member's name when the row came with its user (the admin's lists); never a query of its own.
        who = self.recipient_key
        if self.user_id is not None and type(self).user.is_cached(self):
            who = self.user.get_username()
        return f"{self.channel} to {who} ({self.delivery_status})"


class InboxCounter(models.Model):
    """How many sent inbox rows one user has on one platform, per inbox status.

    Counting a user's 100k unread rows on every poll costs tens of
    milliseconds; reading this row costs one index lookup. Database triggers on
    the Notification table keep it exact for every write (the pipeline's bulk
    inserts, status changes, deletes, cascades, the admin, raw SQL), see
    migration 0002. Never write it from Python; `inbox_counters_rebuild` repairs
    it from the rows if the triggers were ever bypassed (TRUNCATE, a restore).
    """

    # Like Notification's, without database-level foreign keys: a fan-out to
    # 100k first-time recipients creates 100k counters inside the trigger, and
    # PostgreSQL would check (and lock) a user row for each. Django's
    # collector deletes a user's or platform's counters. No index of its own
    # on the platform either: every counter a fan-out creates paid for an
    # entry there, read only when a platform is deleted or by the admin's
    # platform filter (a scan of this narrow table). On PostgreSQL the table
    # keeps half of each page free (migration 0020), so the trigger's counter
    # updates stay on their page (HOT) without touching the indexes.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    platform = models.ForeignKey(
        Platform, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    unread = models.IntegerField(default=0)
    read = models.IntegerField(default=0)
    cancelled = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "platform"], name="uniq_inbox_counter")]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.platform_id}: {self.unread} unread"


def attachment_path(instance, filename):
    return f"attachments/{instance.source.replace(':', '_')}/{filename}"


class Attachment(models.Model):
    """A file that goes with every email of one send (source)."""

    source = models.CharField(max_length=120, db_index=True)
    file = models.FileField(upload_to=attachment_path, max_length=500)
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100, default="application/octet-stream")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.filename
