from django.contrib import admin, messages
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from builder.errors import BuildError
from builder.models import (
    Build,
    BuildRecipient,
    BuildStatus,
    Department,
    DepartmentMember,
    Pathway,
    PathwayMember,
    Program,
    ProgramMember,
    StagedEntry,
    UserGroup,
    UserGroupMember,
)
from builder.services import build_cancel
from notifications.admin_scoping import PlatformScopedAdmin, PlatformScopedInline, SuperuserOnlyAdmin


def _members_inline(model_, fk: str, flags: list[str]):
    class Inline(PlatformScopedInline):
        model = model_
        fk_name = fk
        extra = 0
        autocomplete_fields = ["user"]
        fields = ["user", *flags, "created_at"]
        readonly_fields = ["created_at"]

    Inline.__name__ = f"{model_.__name__}Inline"
    return Inline


class _GroupAdmin(PlatformScopedAdmin):
    """A platform's department / group / program / pathway, with its members inline."""

    list_filter = ["platform"]
    search_fields = ["name", "platform__key"]
    autocomplete_fields = ["platform"]
    ordering = ["name", "id"]  # the member count's GROUP BY drops the model's default order

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("platform").annotate(member_count=Count("members"))

    @admin.display(description="members", ordering="member_count")
    def members_count(self, obj):
        return obj.member_count


@admin.register(Department)
class DepartmentAdmin(_GroupAdmin):
    list_display = ["name", "id", "platform", "members_count", "created_at"]
    inlines = [_members_inline(DepartmentMember, "department", ["is_active", "is_admin"])]


@admin.register(UserGroup)
class UserGroupAdmin(_GroupAdmin):
    list_display = ["name", "id", "platform", "members_count", "created_at"]
    inlines = [_members_inline(UserGroupMember, "group", ["is_active"])]


@admin.register(Program)
class ProgramAdmin(_GroupAdmin):
    list_display = ["name", "key", "platform", "members_count", "created_at"]
    search_fields = ["name", "key", "platform__key"]
    inlines = [_members_inline(ProgramMember, "program", ["is_suggested"])]


@admin.register(Pathway)
class PathwayAdmin(_GroupAdmin):
    list_display = ["name", "key", "platform", "members_count", "created_at"]
    search_fields = ["name", "key", "platform__key"]
    inlines = [_members_inline(PathwayMember, "pathway", ["is_suggested"])]


class _MemberAdmin(PlatformScopedAdmin):
    autocomplete_fields = ["user"]
    search_fields = ["user__username", "user__email"]


@admin.register(DepartmentMember)
class DepartmentMemberAdmin(_MemberAdmin):
    platform_lookup = "department__platform"
    list_display = ["user", "department", "is_active", "is_admin", "created_at"]
    list_filter = ["is_active", "is_admin", "department__platform", "department"]
    search_fields = [*_MemberAdmin.search_fields, "department__name"]
    autocomplete_fields = ["user", "department"]


@admin.register(UserGroupMember)
class UserGroupMemberAdmin(_MemberAdmin):
    platform_lookup = "group__platform"
    list_display = ["user", "group", "is_active", "created_at"]
    list_filter = ["is_active", "group__platform", "group"]
    search_fields = [*_MemberAdmin.search_fields, "group__name"]
    autocomplete_fields = ["user", "group"]


@admin.register(ProgramMember)
class ProgramMemberAdmin(_MemberAdmin):
    platform_lookup = "program__platform"
    list_display = ["user", "program", "is_suggested", "created_at"]
    list_filter = ["is_suggested", "program__platform", "program"]
    search_fields = [*_MemberAdmin.search_fields, "program__name", "program__key"]
    autocomplete_fields = ["user", "program"]


@admin.register(PathwayMember)
class PathwayMemberAdmin(_MemberAdmin):
    platform_lookup = "pathway__platform"
    list_display = ["user", "pathway", "is_suggested", "created_at"]
    list_filter = ["is_suggested", "pathway__platform", "pathway"]
    search_fields = [*_MemberAdmin.search_fields, "pathway__name", "pathway__key"]
    autocomplete_fields = ["user", "pathway"]


def progress_bar(build: Build) -> str:
    """Sent (green) and failed (red) recipients as a share of the audience."""
    total = build.recipient_count or 0
    if not total:
        return "-"
    sent = round(100 * build.sent_count / total, 1)
    failed = round(100 * build.failed_count / total, 1)
    return format_html(
        '<div title="{} sent, {} failed, {} pending" style="width:160px;height:12px;background:#e5e5e5;'
        'display:flex;border-radius:2px;overflow:hidden">'
        '<div style="width:{}%;background:#3a9b4e"></div><div style="width:{}%;background:#c0392b"></div></div>'
        "<small>{}/{}</small>",
        build.sent_count,
        build.failed_count,
        max(total - build.sent_count - build.failed_count, 0),
        sent,
        failed,
        build.sent_count + build.failed_count,
        total,
    )


@admin.register(Build)
class BuildAdmin(PlatformScopedAdmin):
    list_display = [
        "created_at",
        "platform",
        "status",
        "title",
        "channels_list",
        "recipient_count",
        "progress",
        "process_on",
        "created_by",
        "forced_by",
    ]
    list_filter = ["status", "platform", ("forced_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["id", "template_name", "template_id", "created_by__username", "content_hash"]
    date_hierarchy = "created_at"
    list_select_related = ["platform", "created_by", "forced_by"]
    readonly_fields = [
        "id",
        "platform",
        "created_by",
        "status",
        "progress",
        "recipients_link",
        "template_id",
        "template_name",
        "template_data",
        "context",
        "channels",
        "sources",
        "process_on",
        "recipient_count",
        "sent_count",
        "failed_count",
        "content_hash",
        "warning",
        "similar_build",
        "submitted_at",
        "submitted_by",
        "forced_by",
        "forced_at",
        "started_at",
        "completed_at",
        "cancelled_at",
        "cancelled_by",
        "attempts",
        "error",
        "claimed_until",
        "created_at",
        "updated_at",
    ]
    actions = ["cancel"]

    def has_add_permission(self, request):
        # Builds come from the preview endpoint, which resolves and de-duplicates the audience.
        return False

    def has_change_permission(self, request, obj=None):
        # Every field is the API's to set: a build here is a record (no Save), cancelled with the action.
        return False

    @admin.display(description="content")
    def title(self, obj):
        if obj.template_name:
            return obj.template_name
        return (obj.template_data or {}).get("message_title", "")[:60]

    @admin.display(description="channels")
    def channels_list(self, obj):
        return ", ".join(obj.channels or [])

    @admin.display(description="progress")
    def progress(self, obj):
        return progress_bar(obj)

    @admin.display(description="recipients")
    def recipients_link(self, obj):
        url = reverse("admin:builder_buildrecipient_changelist") + f"?build__id__exact={obj.pk}"
        return format_html('<a href="{}">{} recipients</a>', url, obj.recipient_count)

    @admin.action(description="Cancel selected builds (not yet sending)")
    def cancel(self, request, queryset):
        done = 0
        for build in queryset.filter(status__in=[BuildStatus.PREVIEWED, BuildStatus.QUEUED, BuildStatus.DRAFT]):
            try:
                build_cancel(build=build, user=request.user, now=timezone.now())
            except BuildError as exc:
                self.message_user(request, f"{build.pk}: {exc.message}", messages.WARNING)
            else:
                done += 1
        self.message_user(request, f"Cancelled {done} build(s).", messages.SUCCESS)


@admin.register(BuildRecipient)
class BuildRecipientAdmin(PlatformScopedAdmin):
    platform_lookup = "build__platform"
    list_display = ["recipient", "email", "status", "build", "error"]
    list_filter = ["status", "build__platform"]
    search_fields = ["username", "email", "recipient_key", "=build__id"]
    raw_id_fields = ["build", "user"]
    list_select_related = ["build", "user"]
    readonly_fields = ["build", "user", "recipient_key", "username", "email", "status", "error", "claimed_until"]
    show_full_result_count = False  # a build can have 100k recipients

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="recipient", ordering="username")
    def recipient(self, obj):
        # A member by name, or the bare address of someone without an account.
        if obj.user_id is not None:
            return str(obj.user)
        return obj.username or obj.email or obj.recipient_key


@admin.register(StagedEntry)
class StagedEntryAdmin(SuperuserOnlyAdmin):
    """Scratch rows of a resolution in progress; they never outlive its transaction."""

    list_display = ["batch", "value"]
    list_filter = ["batch"]
    search_fields = ["value", "=batch"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
