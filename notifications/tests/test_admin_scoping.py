"""The Django admin seen by a staff platform admin of A: none of platform B's rows, on any page.

Every check iterates `admin.site._registry`, so a ModelAdmin registered later
without scoping (or without a row in `rows_for`) fails here.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.forms import ModelChoiceField
from django.urls import reverse
from django.utils import timezone
from fcm_django.models import FCMDevice

from alerts.models import Alert, UpcomingEvent
from builder.models import (
    Build,
    BuildRecipient,
    Department,
    DepartmentMember,
    Pathway,
    PathwayMember,
    Program,
    ProgramMember,
    UserGroup,
    UserGroupMember,
)
from notifications.admin_scoping import PlatformScopedAdmin, SuperuserOnlyAdmin
from notifications.models import (
    DeviceRegistration,
    ImmediateSend,
    Membership,
    Notification,
    Platform,
    PlatformProviderCredentials,
    PlatformSMTPSettings,
    ScheduledNotification,
    Suppression,
    User,
)
from notifications.tests.factories import PlatformFactory, make_member
from templates_app.models import (
    DigestBucket,
    DigestCadence,
    DigestRule,
    FrequencyCap,
    LearnerActivity,
    Mentor,
    NotificationEvent,
    NotificationTemplate,
    NotificationToggle,
    UserNotificationPreference,
)
from webhooks.models import WebhookEndpoint, WebhookMessage

pytestmark = pytest.mark.django_db


def rows_for(platform: Platform, user: User) -> dict:
    """One row of every platform-scoped model, belonging to `platform`."""
    now = timezone.now()
    device = FCMDevice.objects.create(user=user, registration_id=f"token-{platform.key}", type="android")
    department = Department.objects.create(platform=platform, name=f"dept {platform.key}")
    group = UserGroup.objects.create(platform=platform, name=f"group {platform.key}")
    program = Program.objects.create(platform=platform, key=f"prog-{platform.key}", name="Program")
    pathway = Pathway.objects.create(platform=platform, key=f"path-{platform.key}", name="Pathway")
    build = Build.objects.create(platform=platform, channels=["email"], template_data={"message_title": "Hi"})
    endpoint = WebhookEndpoint(platform=platform, url=f"https://{platform.key}.example.com/hooks", event_types=[])
    endpoint.secret_set("whsec_" + "A" * 44)
    endpoint.save()
    event = Alert.objects.create(
        platform=platform, user=user, title="Exam", message="m", is_event=True, scheduled_at=now + timedelta(days=2)
    )
    return {
        Platform: platform,
        User: user,
        Membership: Membership.objects.get(user=user, platform=platform),
        Notification: Notification.objects.create(
            platform=platform, user=user, recipient_key=f"user:{user.pk}", channel="in_app", source="test:1"
        ),
        PlatformSMTPSettings: PlatformSMTPSettings.objects.create(platform=platform, host="smtp.example.com"),
        PlatformProviderCredentials: PlatformProviderCredentials.objects.create(
            platform=platform, provider="africastalking", username=f"at-{platform.key}"
        ),
        DeviceRegistration: DeviceRegistration.objects.create(device=device, platform=platform),
        ScheduledNotification: ScheduledNotification.objects.create(
            platform=platform, channel="in_app", message="m", scheduled_at=now, due_at=now
        ),
        ImmediateSend: ImmediateSend.objects.create(platform=platform, channel="in_app", message="m"),
        Alert: Alert.objects.create(platform=platform, user=user, title="Hello", message="m"),
        UpcomingEvent: event,
        NotificationTemplate: NotificationTemplate.objects.create(
            platform=platform, type=f"custom_{platform.key}", is_custom=True, name="Custom"
        ),
        NotificationToggle: NotificationToggle.objects.create(platform=platform, type="x", enabled=False),
        UserNotificationPreference: UserNotificationPreference.objects.create(
            platform=platform, user=user, notification_type="*"
        ),
        Mentor: Mentor.objects.create(platform=platform, unique_id="m1", name="Mentor", owner=user),
        LearnerActivity: LearnerActivity.objects.create(
            platform=platform, user=user, kind="time_spent", occurred_at=now
        ),
        NotificationEvent: NotificationEvent.objects.create(
            platform=platform, event_id="e1", type="x", payload_hash="0" * 64, status="processed"
        ),
        Department: department,
        UserGroup: group,
        Program: program,
        Pathway: pathway,
        DepartmentMember: DepartmentMember.objects.create(department=department, user=user),
        UserGroupMember: UserGroupMember.objects.create(group=group, user=user),
        ProgramMember: ProgramMember.objects.create(program=program, user=user),
        PathwayMember: PathwayMember.objects.create(pathway=pathway, user=user),
        Suppression: Suppression.objects.create(
            platform=platform, channel="email", address=f"gone@{platform.key}.example", reason="hard_bounce"
        ),
        Build: build,
        DigestRule: DigestRule.objects.create(platform=platform, notification_type="ADMIN_NOTIF_COURSE_ENROLLMENT"),
        FrequencyCap: FrequencyCap.objects.create(platform=platform, channel="sms", limit=3),
        DigestCadence: DigestCadence.objects.create(
            platform=platform, user=user, notification_type="ADMIN_NOTIF_COURSE_ENROLLMENT", cadence="daily"
        ),
        DigestBucket: DigestBucket.objects.create(
            platform=platform,
            notification_type="ADMIN_NOTIF_COURSE_ENROLLMENT",
            digest_key=f"ADMIN_NOTIF_COURSE_ENROLLMENT|user:{user.pk}",
            user=user,
            mode="trailing",
            window_start=now,
            window_end=now + timedelta(hours=1),
        ),
        BuildRecipient: BuildRecipient.objects.create(build=build, user=user, recipient_key=f"user:{user.pk}"),
        WebhookEndpoint: endpoint,
        WebhookMessage: WebhookMessage.objects.create(
            platform=platform, endpoint=endpoint, event_type="delivery.sent", created_at=now
        ),
    }


@pytest.fixture
def world(platform):
    other = PlatformFactory(key="other-school")
    boss = make_member(platform=platform, username="boss", admin=True, is_staff=True)
    a_user = make_member(platform=platform, username="alice")
    b_user = make_member(platform=other, username="bob")
    return {
        "A": platform,
        "B": other,
        "boss": boss,
        "a_rows": rows_for(platform, a_user),
        "b_rows": rows_for(other, b_user),
    }


@pytest.fixture
def boss_client(client, world):
    client.force_login(world["boss"])
    return client


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def registry():
    return sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def test_every_model_admin_declares_its_scope():
    for model, model_admin in registry():
        assert isinstance(model_admin, PlatformScopedAdmin | SuperuserOnlyAdmin), (
            f"{model._meta.label} is registered without platform scoping"
        )


def test_changelists_and_change_pages_hold_no_other_platform_rows(boss_client, world):
    a_rows, b_rows = world["a_rows"], world["b_rows"]
    for model, model_admin in registry():
        label = model._meta.label
        if isinstance(model_admin, SuperuserOnlyAdmin):
            assert boss_client.get(url(model, "changelist")).status_code == 403, label
            continue
        response = boss_client.get(url(model, "changelist"))
        assert response.status_code == 200, label
        if model_admin.platform_lookup is None:
            continue  # shared reference table
        assert model in b_rows, f"{label}: add a row to rows_for() so its scoping is checked"
        shown = {obj.pk for obj in response.context["cl"].result_list}
        assert a_rows[model].pk in shown and b_rows[model].pk not in shown, label
        for view in ("change", "history"):
            assert boss_client.get(url(model, view, b_rows[model].pk)).status_code == 404, (label, view)
        # 403 where this admin may delete nothing at all (Django asks that before looking the row up).
        assert boss_client.get(url(model, "delete", b_rows[model].pk)).status_code in (403, 404), label
        assert boss_client.get(url(model, "change", a_rows[model].pk)).status_code == 200, label


def test_internal_tables_are_off_the_index(boss_client):
    app_list = boss_client.get("/admin/").context["app_list"]
    apps = {a["app_label"]: {m["object_name"] for m in a["models"]} for a in app_list}
    assert "django_celery_beat" not in apps and "auth" not in apps and "fcm_django" not in apps
    assert {"IdempotencyKey", "InboxCounter", "AuthToken"}.isdisjoint(apps["notifications"])
    assert {"Notification", "Membership", "User", "ScheduledNotification"} <= apps["notifications"]


def _autocomplete_fields():
    for model, model_admin in registry():
        for holder in [model_admin, *model_admin.inlines]:
            for field_name in holder.autocomplete_fields:
                source = holder.model if holder is not model_admin else model
                yield source, field_name, source._meta.get_field(field_name).remote_field.model


def test_autocomplete_answers_hold_no_other_platform_rows(boss_client, world):
    b_rows = world["b_rows"]
    checked = 0
    for source, field_name, remote in _autocomplete_fields():
        params = {"app_label": source._meta.app_label, "model_name": source._meta.model_name, "field_name": field_name}
        response = boss_client.get("/admin/autocomplete/", params)
        if isinstance(admin.site._registry.get(remote), SuperuserOnlyAdmin):
            assert response.status_code == 403, (source, field_name)
            continue
        assert response.status_code == 200, (source, field_name)
        ids = {item["id"] for item in response.json()["results"]}
        assert str(b_rows[remote].pk) not in ids, (source._meta.label, field_name)
        assert str(world["a_rows"][remote].pk) in ids, (source._meta.label, field_name)
        checked += 1
    assert checked >= 20


def test_add_forms_offer_no_other_platform_choices(boss_client, world):
    b_rows = world["b_rows"]
    checked = 0
    for model, model_admin in registry():
        if not isinstance(model_admin, PlatformScopedAdmin) or model_admin.platform_lookup is None:
            continue
        response = boss_client.get(url(model, "add"))
        if response.status_code == 403:
            continue  # no adding here (builds, events, jobs come from their APIs)
        assert response.status_code == 200, model._meta.label
        forms = [response.context["adminform"].form]
        forms += [f for formset in response.context["inline_admin_formsets"] for f in formset.formset.forms]
        forms += [formset.formset.empty_form for formset in response.context["inline_admin_formsets"]]
        for form in forms:
            for name, field in form.fields.items():
                # An inline row's hidden own-id field offers every id; Django resolves a posted
                # id within the parent's rows only, so it cannot reach another platform's row.
                if isinstance(field, ModelChoiceField) and name != form._meta.model._meta.pk.name:
                    b_row = b_rows.get(field.queryset.model)
                    assert b_row is None or not field.queryset.filter(pk=b_row.pk).exists(), (model._meta.label, name)
                    checked += 1
    assert checked >= 15


def test_a_post_naming_another_platform_is_refused(boss_client, world):
    a, b = world["A"], world["B"]
    b_user = world["b_rows"][User]
    a_user = world["a_rows"][User]
    r = boss_client.post(url(Mentor, "add"), {"platform": b.pk, "unique_id": "x", "name": "Evil"})
    assert r.status_code == 200 and "platform" in r.context["adminform"].form.errors
    r = boss_client.post(url(Membership, "add"), {"platform": a.pk, "user": b_user.pk, "is_active": "on"})
    assert r.status_code == 200 and "user" in r.context["adminform"].form.errors
    r = boss_client.post(url(Alert, "add"), {"platform": a.pk, "user": b_user.pk, "title": "t", "message": "m"})
    assert r.status_code == 200 and "user" in r.context["adminform"].form.errors
    # A raw-id field: the id of B's user is refused on save.
    note = world["a_rows"][Notification]
    data = {
        "platform": a.pk,
        "user": b_user.pk,
        "recipient_key": "user:1",
        "channel": "in_app",
        "source": "test:1",
        "notification_type": "x",
        "level": "info",
        "status": "unread",
        "delivery_status": "pending",
        "attempts": 0,
        "units_sent": 0,
        "units_failed": 0,
        "context": "{}",
        "data": "{}",
    }
    r = boss_client.post(url(Notification, "change", note.pk), data)
    assert r.status_code == 200 and "user" in r.context["adminform"].form.errors
    data["user"] = a_user.pk
    data["platform"] = b.pk
    r = boss_client.post(url(Notification, "change", note.pk), data)
    assert r.status_code == 200 and "platform" in r.context["adminform"].form.errors
    assert Mentor.objects.filter(name="Evil").count() == 0
    note.refresh_from_db()
    assert note.platform_id == a.pk and note.user_id == a_user.pk
    # Shipped defaults (no platform) are readable, not writable.
    default = NotificationTemplate.objects.filter(platform=None).first()
    r = boss_client.get(url(NotificationTemplate, "change", default.pk))
    assert r.status_code == 200 and not r.context["has_change_permission"]


def test_list_filters_and_overviews_name_no_other_platform(boss_client, world):
    for model in (Notification, Department, DepartmentMember, User, BuildRecipient, NotificationTemplate):
        html = boss_client.get(url(model, "changelist")).content.decode()
        assert "other-school" not in html, model._meta.label
    html = boss_client.get(reverse("admin:templates_app_customisation")).content.decode()
    assert "custom_acme-learning" in html and "other-school" not in html


def test_user_admin_keeps_platform_admins_to_their_own_members(boss_client, world):
    a_user, b_user = world["a_rows"][User], world["b_rows"][User]
    shared = make_member(platform=world["A"], username="sam")
    Membership.objects.create(user=shared, platform=world["B"])
    # Privilege fields are read-only: posting them changes nothing.
    form = boss_client.get(url(User, "change", a_user.pk)).context["adminform"].form
    assert "is_superuser" not in form.fields and "is_staff" not in form.fields
    # A user who also belongs to B is visible, not editable.
    r = boss_client.get(url(User, "change", shared.pk))
    assert r.status_code == 200 and not r.context["has_change_permission"]
    # Its membership of B is not shown on A's admin's page.
    shown = {m.platform_id for fs in r.context["inline_admin_formsets"] for m in fs.formset.queryset}
    assert shown == {world["A"].pk}
    assert boss_client.post(url(User, "change", shared.pk), {"username": "sam2"}).status_code == 403
    assert boss_client.get(reverse("admin:auth_user_password_change", args=[shared.pk])).status_code == 403
    assert boss_client.get(reverse("admin:auth_user_password_change", args=[b_user.pk])).status_code == 404
    # A new user joins one of the admin's platforms.
    new = {"password1": "x-Long-passw0rd", "password2": "x-Long-passw0rd", "usable_password": "true", "role": "STUDENT"}
    r = boss_client.post(url(User, "add"), {**new, "username": "newbie", "platform": world["A"].pk})
    assert r.status_code == 302, r.context["adminform"].form.errors if r.context else r
    assert Membership.objects.filter(user__username="newbie", platform=world["A"]).exists()
    r = boss_client.post(url(User, "add"), {**new, "username": "evil", "platform": world["B"].pk})
    assert r.status_code == 200 and not User.objects.filter(username="evil").exists()


def test_a_superuser_sees_every_platform(client, world):
    root = make_member(platform=world["A"], username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    b_rows = world["b_rows"]
    for model, _ in registry():
        assert client.get(url(model, "changelist")).status_code == 200, model._meta.label
        if model in b_rows:
            assert client.get(url(model, "change", b_rows[model].pk)).status_code == 200, model._meta.label


def test_a_staff_user_who_administers_nothing_sees_nothing(client, world):
    member = make_member(platform=world["A"], username="clerk", is_staff=True)
    client.force_login(member)
    assert client.get("/admin/").context["app_list"] == []
    assert client.get(url(Notification, "changelist")).status_code == 403


def test_url_filters_cannot_probe_another_platform(boss_client, world):
    shared = make_member(platform=world["A"], username="sam")
    Membership.objects.create(user=shared, platform=world["B"])
    # With two platforms of their own the platform filter is on the page (one choice hides it).
    Membership.objects.create(user=world["boss"], platform=PlatformFactory(key="third"), is_platform_admin=True)
    users = url(User, "changelist")
    r = boss_client.get(users, {"memberships__platform__id__exact": world["B"].pk})
    assert r.status_code == 200 and r.context["cl"].result_count == 0
    assert boss_client.get(users, {"memberships__platform__key": "other-school"}).status_code == 400
    r = boss_client.get(users, {"memberships__platform__id__exact": world["A"].pk})
    assert shared in r.context["cl"].result_list
    r = boss_client.get(url(Notification, "changelist"), {"platform__id__exact": world["B"].pk})
    assert r.context["cl"].result_count == 0
    # A to-many filter the page offers still works.
    channel = NotificationTemplate.objects.filter(platform=None).first().allowed_channels.first()
    r = boss_client.get(url(NotificationTemplate, "changelist"), {"allowed_channels__id__exact": channel.pk})
    assert r.status_code == 200 and r.context["cl"].result_count > 0


def test_inlines_follow_their_parent_page(boss_client, world):
    department = world["a_rows"][Department]
    r = boss_client.get(url(Department, "change", department.pk))
    [members] = r.context["inline_admin_formsets"]
    assert members.has_add_permission and members.formset.queryset.count() == 1
    offered = set(members.formset.empty_form.fields["user"].queryset.values_list("pk", flat=True))
    assert world["a_rows"][User].pk in offered and world["b_rows"][User].pk not in offered


def test_an_inline_row_cannot_be_pointed_at_another_platform(boss_client, world):
    department, b_member = world["a_rows"][Department], world["b_rows"][DepartmentMember]
    data = {
        "platform": world["A"].pk,
        "name": department.name,
        "description": "",
        "members-TOTAL_FORMS": 1,
        "members-INITIAL_FORMS": 1,
        "members-MIN_NUM_FORMS": 0,
        "members-MAX_NUM_FORMS": 1000,
        "members-0-id": b_member.pk,
        "members-0-department": department.pk,
        "members-0-user": world["a_rows"][User].pk,
        "members-0-is_active": "on",
    }
    boss_client.post(url(Department, "change", department.pk), data)
    b_member.refresh_from_db()
    assert (b_member.department, b_member.user) == (world["b_rows"][Department], world["b_rows"][User])
