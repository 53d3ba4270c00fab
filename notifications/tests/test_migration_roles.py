"""Migration 0005 forward on a database holding users with roles on several platforms."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = ("notifications", "0004_delivery_retries_and_inbox_counters")
AFTER = ("notifications", "0005_membership_role")

pytestmark = pytest.mark.django_db(transaction=True)


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_roles_and_direct_grants_move_onto_every_membership():
    old = _migrate([BEFORE])
    User = old.get_model("notifications", "User")
    Platform = old.get_model("notifications", "Platform")
    Membership = old.get_model("notifications", "Membership")
    Permission = old.get_model("auth", "Permission")
    Group = old.get_model("auth", "Group")

    a = Platform.objects.create(key="mig-a", name="A")
    b = Platform.objects.create(key="mig-b", name="B")
    boss = User.objects.create(username="boss", role="ADMIN")
    teacher = User.objects.create(username="teacher", role="INSTRUCTOR")
    bot = User.objects.create(username="bot", role="STUDENT")
    User.objects.create(username="loner", role="SUPPORT")  # no membership at all
    Membership.objects.create(user=boss, platform=a, is_platform_admin=True)
    Membership.objects.create(user=boss, platform=b)
    Membership.objects.create(user=teacher, platform=a)
    Membership.objects.create(user=teacher, platform=b, is_active=False)
    Membership.objects.create(user=bot, platform=b)
    event_send = Permission.objects.get(content_type__app_label="templates_app", codename="ibl_event_send")
    view_alert = Permission.objects.get(content_type__app_label="alerts", codename="view_alert")
    bot.user_permissions.add(event_send, view_alert)
    role_group = Group.objects.create(name="Role: ADMIN")
    other_group = Group.objects.create(name="Support desk")

    new = _migrate([AFTER])
    Membership = new.get_model("notifications", "Membership")
    User = new.get_model("notifications", "User")
    Group = new.get_model("auth", "Group")

    roles = {
        (m.user.username, m.platform.key): (m.role, m.is_platform_admin, m.is_active)
        for m in Membership.objects.select_related("user", "platform")
    }
    assert roles == {
        ("boss", "mig-a"): ("ADMIN", True, True),
        ("boss", "mig-b"): ("ADMIN", False, True),
        ("teacher", "mig-a"): ("INSTRUCTOR", False, True),
        ("teacher", "mig-b"): ("INSTRUCTOR", False, False),
        ("bot", "mig-b"): ("STUDENT", False, True),
    }
    assert "role" not in {f.name for f in User._meta.get_fields()}
    assert User.objects.filter(username="loner").exists()
    # A permission key granted to the user directly becomes a grant on each membership;
    # the admin site's own model permissions stay with the user.
    bot_membership = Membership.objects.get(user__username="bot")
    assert list(bot_membership.permissions.values_list("codename", flat=True)) == ["ibl_event_send"]
    assert list(User.objects.get(username="bot").user_permissions.values_list("codename", flat=True)) == ["view_alert"]
    # The global role groups are gone; other groups stay.
    assert not Group.objects.filter(pk=role_group.pk).exists()
    assert Group.objects.filter(pk=other_group.pk).exists()

    # Back to the latest state for the tests that follow.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
