"""Direct-send builds and the audiences they draw on.

Departments, user groups, programs and pathways are this app's own records of
who belongs where on a platform; a build resolves its sources against them
into `BuildRecipient` rows inside the database, de-duplicated by a unique key,
and the send walks those rows in chunks.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from notifications.models import Platform


class Department(models.Model):
    """A part of an organisation; its admins may send to its active members."""

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="departments")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["platform", "name"], name="uniq_department_name")]

    def __str__(self) -> str:
        return self.name


class DepartmentMember(models.Model):
    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="department_memberships")
    is_active = models.BooleanField(default=True)
    is_admin = models.BooleanField(
        default=False, help_text="A department admin may send direct notifications to this department."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["department", "user"], name="uniq_department_member")]
        indexes = [models.Index(fields=["user", "is_admin"], name="department_member_admin")]

    def __str__(self) -> str:
        return f"{self.user} in {self.department}"


class UserGroup(models.Model):
    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="user_groups")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["platform", "name"], name="uniq_user_group_name")]

    def __str__(self) -> str:
        return self.name


class UserGroupMember(models.Model):
    group = models.ForeignKey(UserGroup, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="user_group_memberships")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "user"], name="uniq_user_group_member")]

    def __str__(self) -> str:
        return f"{self.user} in {self.group}"


class Program(models.Model):
    """A learning program; the builder targets its suggested members."""

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="programs")
    # Programs and pathways are named by string ids in the source `data`.
    key = models.CharField("program ID", max_length=200)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["platform", "key"], name="uniq_program_key")]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"


class ProgramMember(models.Model):
    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="program_memberships")
    is_suggested = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["program", "user"], name="uniq_program_member")]

    def __str__(self) -> str:
        return f"{self.user} in {self.program}"


class Pathway(models.Model):
    """A learning pathway; the builder targets its suggested members."""

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="pathways")
    key = models.CharField("pathway ID", max_length=200)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["platform", "key"], name="uniq_pathway_key")]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"


class PathwayMember(models.Model):
    pathway = models.ForeignKey(Pathway, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="pathway_memberships")
    is_suggested = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pathway", "user"], name="uniq_pathway_member")]

    def __str__(self) -> str:
        return f"{self.user} in {self.pathway}"


class BuildStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PREVIEWED = "previewed", "Previewed"
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# A build in one of these states has gone (or is going) out: it counts for
# duplicate detection (a failed one only if it reached somebody).
SUBMITTED_STATUSES = (BuildStatus.QUEUED, BuildStatus.SENDING, BuildStatus.COMPLETED)


class Build(models.Model):
    """One direct send: content, channels, and a resolved, de-duplicated audience."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="builds")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=BuildStatus.choices, default=BuildStatus.DRAFT)

    # Exactly one of a template (by id) and custom content.
    template_id = models.CharField(max_length=64, blank=True, help_text="ID of the template the build renders.")
    template_name = models.CharField(max_length=200, blank=True)
    # The send renders the platform's template of this type as it is then.
    template_type = models.CharField(max_length=100, blank=True)
    template_data = models.JSONField(null=True, blank=True, help_text="Custom message_title / message_body.")
    context = models.JSONField(default=dict, blank=True, help_text="Extra template variables.")
    channels = models.JSONField(default=list, help_text="Channel names, e.g. ['email', 'in_app'].")
    sources = models.JSONField(default=list, help_text="The sources as given, for the record.")
    process_on = models.DateTimeField(null=True, blank=True)

    recipient_count = models.PositiveIntegerField(default=0)
    # Recipients that left `pending`; each moves exactly once (the update that
    # moves it filters on pending), so these stay exact under concurrent workers.
    sent_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    # SHA-256 over recipients, template (or content) and channels.
    content_hash = models.CharField(max_length=64, blank=True)
    warning = models.TextField(blank=True)
    similar_build = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="The duplicate found."
    )

    submitted_at = models.DateTimeField(null=True, blank=True, help_text="When the send was requested.")
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Sending despite a duplicate warning is recorded: who and when.
    forced_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    forced_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True)
    # Runs that ended in an unexpected error; after a few the build fails.
    attempts = models.PositiveSmallIntegerField(default=0)
    # Lease of the worker sending the build; a dead worker's lease runs out and
    # the scheduler hands the build to another.
    claimed_until = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["platform", "content_hash", "submitted_at"], name="build_duplicate_lookup"),
            models.Index(fields=["process_on"], name="build_queued_due", condition=Q(status=BuildStatus.QUEUED)),
            models.Index(fields=["claimed_until"], name="build_sending_lease", condition=Q(status=BuildStatus.SENDING)),
        ]
        permissions = [("direct_send", "Ibl.Notifications/NotificationBuilder/action")]

    def __str__(self) -> str:
        return f"build {self.id} ({self.status})"

    @property
    def source(self) -> str:
        """The delivery pipeline's source name of this build's rows."""
        return f"build:{self.id}"


class RecipientStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class BuildRecipient(models.Model):
    """One de-duplicated recipient of a build: a user account, or an email address alone."""

    id = models.BigAutoField(primary_key=True)
    build = models.ForeignKey(Build, on_delete=models.CASCADE, related_name="recipients")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # "user:<id>" or "email:<address>", as the delivery pipeline keys recipients.
    recipient_key = models.CharField(max_length=320)
    # Copied when the build is previewed, so browsing and searching need no join.
    username = models.CharField(max_length=150, blank=True)
    email = models.CharField(max_length=320, blank=True)
    status = models.CharField(max_length=10, choices=RecipientStatus.choices, default=RecipientStatus.PENDING)
    error = models.TextField(blank=True)
    # A sending worker owns the chunk it claimed until then.
    claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["build", "recipient_key"], name="uniq_build_recipient")]
        indexes = [models.Index(fields=["build", "status"], name="build_recipient_status")]

    def __str__(self) -> str:
        return self.recipient_key

    @property
    def has_account(self) -> bool:
        return self.recipient_key.startswith("user:")


class StagedEntry(models.Model):
    """Scratch rows of one resolution: the emails or usernames a source listed.

    A CSV of 100k rows is streamed into this table in batches and matched to
    users in SQL, so no request holds a whole audience in memory. Rows live
    only inside the transaction of the request that wrote them.
    """

    id = models.BigAutoField(primary_key=True)
    batch = models.UUIDField()
    value = models.CharField(max_length=320)

    class Meta:
        verbose_name_plural = "staged entries"
        indexes = [models.Index(fields=["batch", "value"], name="staged_entry_batch_value")]

    def __str__(self) -> str:
        return self.value
