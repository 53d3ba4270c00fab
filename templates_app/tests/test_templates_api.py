"""IBL §7.2: every example request of the templates API, and the rules around them."""

import pytest

from notifications.backends import locmem
from templates_app.defaults import SYSTEM_TYPES
from templates_app.models import NotificationTemplate, NotificationToggle

from .conftest import BASE

pytestmark = pytest.mark.django_db
ENROLL = BASE + "USER_NOTIF_COURSE_ENROLLMENT/"


def test_list_returns_every_system_type_inherited(admin_api):
    r = admin_api.get(BASE)
    assert r.status_code == 200
    body = r.json()
    assert [t["type"] for t in body] == list(SYSTEM_TYPES)
    assert len(body) == 23
    enroll = body[2]
    assert enroll["type"] == "USER_NOTIF_COURSE_ENROLLMENT"
    assert enroll["name"] == "Course Enrollment"
    assert enroll["description"] == "Sent when a learner enrolls in a course"
    assert enroll["is_inherited"] is True
    assert enroll["source_platform"] == "main"
    assert enroll["is_enabled"] is True
    assert enroll["can_customize"] is True
    assert enroll["is_custom"] is False
    assert enroll["message_title"] == "You have been enrolled in {{ course_name }}"
    assert enroll["email_subject"] == "Welcome to {{ course_name }}"
    assert enroll["spas"] == ["skills"]
    assert enroll["allowed_channels"] == ["email", "push_notification", "in_app"]
    assert enroll["available_context"]["course_name"] == "Name of the course"
    assert set(enroll) >= {"id", "available_context", "spas", "allowed_channels"}


def test_detail_has_every_documented_field(admin_api):
    r = admin_api.get(ENROLL)
    assert r.status_code == 200
    body = r.json()
    for field in (
        "id",
        "type",
        "name",
        "description",
        "is_inherited",
        "source_platform",
        "is_enabled",
        "can_customize",
        "is_custom",
        "message_title",
        "email_subject",
        "spas",
        "allowed_channels",
        "available_context",
        "message_body",
        "short_message_body",
        "email_from_address",
        "email_html_template",
        "spas_detail",
        "allowed_channels_detail",
        "metadata",
        "periodic_config",
        "policy_config",
        "human_support_config",
        "created_at",
        "updated_at",
    ):
        assert field in body, field
    assert body["message_body"] == "Hi {{ username }},\nYou have been enrolled in {{ course_name }}."
    assert body["spas_detail"] == [{"id": 2, "name": "skills", "description": "Skills SPA"}]
    assert body["allowed_channels_detail"] == [
        {"id": 1, "name": "email"},
        {"id": 2, "name": "push_notification"},
        {"id": 3, "name": "in_app"},
    ]
    assert body["periodic_config"] is None and body["policy_config"] is None
    assert body["default_changed_since_customized"] is False and body["default_template"] is None


def test_patch_example_creates_a_copy_then_edits_it(admin_api, platform):
    # The document's example request, verbatim.
    r = admin_api.patch(
        ENROLL,
        {
            "email_subject": "Welcome to {{ course_name }} on Acme Learning",
            "message_title": "Enrollment confirmed: {{ course_name }}",
        },
        format="json",
    )
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["is_inherited"] is False
    assert body["source_platform"] == "acme-learning"
    assert body["email_subject"] == "Welcome to {{ course_name }} on Acme Learning"
    assert body["message_title"] == "Enrollment confirmed: {{ course_name }}"
    # untouched fields and channels were copied from the default
    assert body["message_body"] == "Hi {{ username }},\nYou have been enrolled in {{ course_name }}."
    assert body["allowed_channels"] == ["email", "push_notification", "in_app"]
    assert body["warnings"] == []
    copy = NotificationTemplate.objects.get(platform=platform, type="USER_NOTIF_COURSE_ENROLLMENT")
    assert body["id"] == str(copy.pk)
    default = NotificationTemplate.objects.get(platform=None, type="USER_NOTIF_COURSE_ENROLLMENT")
    assert default.email_subject == "Welcome to {{ course_name }}"  # the default is never touched

    r = admin_api.patch(ENROLL, {"name": "Enrollment"}, format="json")
    assert r.status_code == 200
    assert NotificationTemplate.objects.filter(platform=platform, type="USER_NOTIF_COURSE_ENROLLMENT").count() == 1
    assert r.json()["name"] == "Enrollment"
    assert r.json()["email_subject"] == "Welcome to {{ course_name }} on Acme Learning"
    listed = {t["type"]: t for t in admin_api.get(BASE).json()}["USER_NOTIF_COURSE_ENROLLMENT"]
    assert listed["is_inherited"] is False and listed["id"] == str(copy.pk)


def test_patch_channels_and_spas_by_id(admin_api):
    r = admin_api.patch(ENROLL, {"channel_ids": [1, 3], "spa_ids": [2, 1]}, format="json")
    assert r.status_code == 200
    assert r.json()["allowed_channels_detail"] == [{"id": 1, "name": "email"}, {"id": 3, "name": "in_app"}]
    assert [s["name"] for s in r.json()["spas_detail"]] == ["admin", "skills"]
    r = admin_api.patch(ENROLL, {"channel_ids": [1, 99]}, format="json")
    assert r.status_code == 400 and "channel_ids" in r.json()
    r = admin_api.patch(ENROLL, {"channel_ids": []}, format="json")
    assert r.status_code == 400 and "channel_ids" in r.json()


def test_patch_refuses_unknown_fields_and_writes_nothing(admin_api, platform):
    r = admin_api.patch(ENROLL, {"email_subjct": "typo", "name": "X"}, format="json")
    assert r.status_code == 400
    assert "email_subjct" in r.json()
    assert not NotificationTemplate.objects.filter(platform=platform).exists()


def test_syntax_error_is_a_400_naming_field_and_line(admin_api, platform):
    r = admin_api.patch(ENROLL, {"message_body": "Hello\n{{ username }}\n{% if x %}unclosed"}, format="json")
    assert r.status_code == 400
    message = r.json()["message_body"][0]
    assert "line 3" in message and "Template syntax error" in message
    assert not NotificationTemplate.objects.filter(platform=platform).exists()


def test_unknown_variables_come_back_as_warnings(admin_api):
    r = admin_api.patch(ENROLL, {"message_title": "Hi {{ username }}\n{{ coupon_code }}"}, format="json")
    assert r.status_code == 200
    assert r.json()["warnings"] == [
        {
            "field": "message_title",
            "variable": "coupon_code",
            "line": 2,
            "message": "'coupon_code' is not provided for this notification type and will render empty.",
        }
    ]


@pytest.mark.parametrize("field", ["message_body", "short_message_body", "email_html_template"])
@pytest.mark.parametrize("type_", ["PROACTIVE_LEARNER_NOTIFICATION", "POLICY_ASSIGNMENT", "HUMAN_SUPPORT_NOTIFICATION"])
def test_system_managed_bodies_are_read_only(admin_api, platform, field, type_):
    r = admin_api.patch(BASE + type_ + "/", {field: "Hello"}, format="json")
    assert r.status_code == 400
    assert field in r.json() and "read-only" in r.json()[field][0]
    assert not NotificationTemplate.objects.filter(platform=platform).exists()
    # configuration and other fields stay editable
    assert admin_api.patch(BASE + type_ + "/", {"email_subject": "Hi"}, format="json").status_code == 200


def test_toggle_example(admin_api, platform):
    r = admin_api.patch(ENROLL + "toggle/", {"allow_notification": False}, format="json")
    assert r.status_code == 200
    assert r.json() == {
        "type": "USER_NOTIF_COURSE_ENROLLMENT",
        "is_enabled": False,
        "platform": "acme-learning",
        "message": "Notification disabled successfully",
    }
    assert admin_api.get(ENROLL).json()["is_enabled"] is False
    # content untouched: still inherited, no copy
    assert admin_api.get(ENROLL).json()["is_inherited"] is True
    r = admin_api.patch(ENROLL + "toggle/", {"allow_notification": True}, format="json")
    assert r.json()["message"] == "Notification enabled successfully" and r.json()["is_enabled"] is True
    r = admin_api.patch(ENROLL + "toggle/", {}, format="json")
    assert r.status_code == 400 and r.json() == {"allow_notification": ["This field is required."]}


def test_reset_example_and_toggle_independence(admin_api, platform):
    admin_api.patch(ENROLL, {"message_title": "Mine"}, format="json")
    admin_api.patch(ENROLL + "toggle/", {"allow_notification": False}, format="json")
    r = admin_api.post(ENROLL + "reset/")
    assert r.status_code == 200
    assert r.json() == {"message": "Template reset to default. Platform will now use main template.", "deleted": True}
    detail = admin_api.get(ENROLL).json()
    assert detail["is_inherited"] is True
    assert detail["message_title"] == "You have been enrolled in {{ course_name }}"
    assert detail["is_enabled"] is False  # the toggle survived the reset
    assert NotificationToggle.objects.get(platform=platform, type="USER_NOTIF_COURSE_ENROLLMENT").enabled is False
    r = admin_api.post(ENROLL + "reset/")
    assert r.json() == {"message": "Template was already using default from main platform.", "deleted": False}


def test_test_send_example(admin_api):
    r = admin_api.post(
        ENROLL + "test/", {"context": {"course_name": "Introduction to Machine Learning"}}, format="json"
    )
    assert r.status_code == 200
    assert r.json() == {
        "success": True,
        "message": "Test notification sent successfully to admin@acme-learning.com",
        "recipient": "admin@acme-learning.com",
    }
    [mail] = locmem.outbox["email"]
    assert mail["address"] == "admin@acme-learning.com"
    assert mail["title"] == "Welcome to Introduction to Machine Learning"
    assert mail["body"] == "Hi admin,\nYou have been enrolled in Introduction to Machine Learning."
    assert "Introduction to Machine Learning" in mail["html"]


def test_test_send_default_context(admin_api):
    admin_api.patch(
        ENROLL, {"message_body": "{{ username }}|{{ site_name }}|{{ course_name }}|{{ platform_key }}"}, format="json"
    )
    assert admin_api.post(ENROLL + "test/", {}, format="json").status_code == 200
    assert locmem.outbox["email"][0]["body"] == "admin|Acme Learning|Sample Course|acme-learning"


def test_test_send_failure_is_the_documented_500(admin_api):
    locmem.fail_for["admin@acme-learning.com"] = "SMTP said no"
    r = admin_api.post(ENROLL + "test/", {}, format="json")
    assert r.status_code == 500
    assert r.json() == {"success": False, "message": "Failed to send test notification. Check email configuration."}


def test_test_send_over_the_render_budget_is_a_400_and_sends_nothing(admin_api, settings):
    settings.NOTIFY_TEMPLATE_MAX_OUTPUT_CHARS = 50
    r = admin_api.post(ENROLL + "test/", {"context": {"course_name": "x" * 100}}, format="json")
    assert r.status_code == 400
    assert r.json()["success"] is False
    assert r.json()["message"].startswith("Template failed to render: ")
    assert "exceeds 50 characters" in r.json()["message"]
    assert not locmem.outbox["email"]


def test_admins_only_and_foreign_platforms_are_404(api, make_user, admin_api):
    from notifications.tests.factories import PlatformFactory, make_member

    learner = api(make_user("learner"), keyword="Token")
    assert learner.get(BASE).status_code == 403
    assert learner.patch(ENROLL, {"name": "x"}, format="json").status_code == 403
    assert learner.post(ENROLL + "reset/").status_code == 403
    other = PlatformFactory(key="globex")
    stranger = api(make_member(platform=other, username="boss", admin=True), keyword="Token")
    assert stranger.get(BASE).status_code == 404
    assert stranger.patch(ENROLL + "toggle/", {"allow_notification": False}, format="json").status_code == 404
    assert admin_api.get("/api/notification/v1/platforms/globex/templates/").status_code == 404
    assert admin_api.get(BASE + "NOT_A_TYPE/").status_code == 404
    assert api().get(BASE).status_code == 401


def test_rbac_platforms_need_the_template_grants(api, make_user, platform):
    platform.rbac_enabled = True
    platform.save()
    # A platform admin whose role carries no grants.
    plain_admin = api(make_user("plainadmin", role="STUDENT", admin=True), keyword="Token")
    assert plain_admin.get(BASE).status_code == 403
    role_admin = api(make_user("roleadmin", role="ADMIN", admin=True), keyword="Token")
    assert role_admin.get(BASE).status_code == 200


def test_preview_renders_every_channel_without_sending(admin_api):
    r = admin_api.post(ENROLL + "preview/", {"context": {"course_name": "Data 101"}}, format="json")
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "USER_NOTIF_COURSE_ENROLLMENT" and body["warnings"] == []
    assert body["channels"]["email"]["title"] == "Welcome to Data 101"
    assert body["channels"]["in_app"]["body"] == "Hi admin,\nYou have been enrolled in Data 101."
    assert body["channels"]["push_notification"]["body"] == "You have been enrolled in Data 101."
    assert "<strong>Data 101</strong>" in body["channels"]["email"]["html"]
    assert locmem.outbox["email"] == []
    # unsaved edits, with their warnings
    r = admin_api.post(
        ENROLL + "preview/",
        {"template": {"message_title": "Hey {{ nickname }}"}, "channels": ["in_app"]},
        format="json",
    )
    assert r.json()["channels"]["in_app"]["title"] == "Hey "
    assert [w["variable"] for w in r.json()["warnings"]] == ["nickname"]
    assert not NotificationTemplate.objects.filter(platform__isnull=False).exists()
    r = admin_api.post(ENROLL + "preview/", {"template": {"message_title": "{% load x %}"}}, format="json")
    assert r.status_code == 400 and "line 1" in r.json()["message_title"][0]


def test_channel_and_spa_records(admin_api):
    assert admin_api.get("/api/notification/v1/platforms/acme-learning/notification-channels/").json() == [
        {"id": 1, "name": "email"},
        {"id": 2, "name": "push_notification"},
        {"id": 3, "name": "in_app"},
        {"id": 4, "name": "sms"},
    ]
    spas = admin_api.get("/api/notification/v1/platforms/acme-learning/spas/").json()
    assert {"id": 2, "name": "skills", "description": "Skills SPA"} in spas


def test_schema_documents_the_templates_surface(api):
    r = api().get("/api/schema/")
    assert r.status_code == 200
    for path in (
        b"/api/notification/v1/platforms/{platform_key}/templates/{notification_type}/toggle/",
        b"/api/notification/v1/orgs/{org}/events/",
        b"/api/notification/v1/orgs/{org}/users/{user_id}/preferences/",
    ):
        assert path in r.content
