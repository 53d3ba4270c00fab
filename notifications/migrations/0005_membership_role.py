"""Roles and grants move from the user to the membership.

Each user's role is copied onto every one of their memberships, and the
permission keys granted to the user directly become grants on each of their
memberships; then `User.role` and the global role groups go, since nothing
held globally grants API rights any more (superusers excepted).
"""

from django.db import migrations, models

ROLES = [
    ("STUDENT", "Student"),
    ("OPEN_LEARNER", "Open learner"),
    ("INSTRUCTOR", "Instructor"),
    ("ADMIN", "Admin"),
    ("SUPER_ADMIN", "Super admin"),
    ("SUPPORT", "Support"),
]
# The permission keys of the documents as they stood when roles moved, as
# (app_label, codename): a migration must not read the live registry.
KEY_PERMISSIONS = [
    ("notifications", codename)
    for codename in (
        "ibl_notification_list",
        "ibl_notification_write",
        "ibl_notification_delete",
        "ws_connect",
        "list_mine",
        "count_unread",
        "bulk_sms",
        "bulk_email",
        "bulk_push",
        "bulk_in_app",
        "scheduled_list",
        "scheduled_get",
        "scheduled_cancel",
        "scheduled_update",
        "ibl_smtp_action",
    )
] + [
    ("templates_app", "ibl_template_list"),
    ("templates_app", "ibl_template_write"),
    ("templates_app", "ibl_event_send"),
    ("builder", "direct_send"),
    ("alerts", "create_for_user"),
]


def roles_to_memberships(apps, schema_editor):
    Membership = apps.get_model("notifications", "Membership")
    User = apps.get_model("notifications", "User")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")

    # One UPDATE per role, not one per membership.
    for role, _ in ROLES:
        Membership.objects.filter(user__role=role).update(role=role)

    key_perms = Permission.objects.none()
    for app_label, codename in KEY_PERMISSIONS:
        key_perms |= Permission.objects.filter(content_type__app_label=app_label, codename=codename)
    key_perm_ids = set(key_perms.values_list("pk", flat=True))
    if key_perm_ids:
        UserPermission = User.user_permissions.through
        MembershipPermission = Membership.permissions.through
        direct = UserPermission.objects.filter(permission_id__in=key_perm_ids).values_list("user_id", "permission_id")
        grants = []
        for user_id, permission_id in direct:
            for membership_id in Membership.objects.filter(user_id=user_id).values_list("pk", flat=True):
                grants.append(MembershipPermission(membership_id=membership_id, permission_id=permission_id))
        MembershipPermission.objects.bulk_create(grants, ignore_conflicts=True)
        UserPermission.objects.filter(permission_id__in=key_perm_ids).delete()
    # The global role groups ("Role: ADMIN", ...) bundled the keys for everyone everywhere.
    Group.objects.filter(name__in=[f"Role: {role}" for role, _ in ROLES]).delete()


def memberships_to_roles(apps, schema_editor):
    """Backwards: a user's role is the highest of their memberships' (lossy by nature)."""
    Membership = apps.get_model("notifications", "Membership")
    User = apps.get_model("notifications", "User")
    order = ["STUDENT", "OPEN_LEARNER", "SUPPORT", "INSTRUCTOR", "ADMIN", "SUPER_ADMIN"]
    for role in order:
        User.objects.filter(memberships__role=role).update(role=role)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("notifications", "0004_delivery_retries_and_inbox_counters"),
    ]

    operations = [
        migrations.AddField(
            model_name="membership",
            name="role",
            field=models.CharField(choices=ROLES, default="STUDENT", max_length=20),
        ),
        migrations.AddField(
            model_name="membership",
            name="permissions",
            field=models.ManyToManyField(
                blank=True,
                help_text="Permission keys granted on this platform on top of the role's.",
                related_name="+",
                to="auth.permission",
            ),
        ),
        migrations.AlterField(
            model_name="membership",
            name="is_platform_admin",
            field=models.BooleanField(
                default=False, help_text="Administers this platform: settings, templates, builder, members' inboxes."
            ),
        ),
        migrations.AddIndex(
            model_name="membership",
            index=models.Index(fields=["platform", "role"], name="membership_platform_role"),
        ),
        migrations.RunPython(roles_to_memberships, memberships_to_roles),
        migrations.RemoveField(model_name="user", name="role"),
    ]
