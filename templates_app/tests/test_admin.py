"""The Django admin of templates: preview, actions, the customisation overview."""

import pytest
from django.urls import reverse

from notifications.backends import locmem
from templates_app.models import NotificationTemplate, NotificationToggle

from .conftest import BASE

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, make_user):
    user = make_user("root", is_staff=True, is_superuser=True, email="root@acme.com")
    client.force_login(user)
    return client


@pytest.fixture
def copy(admin_api, platform):
    admin_api.patch(BASE + "USER_NOTIF_COURSE_ENROLLMENT/", {"message_title": "Acme: {{ course_name }}"}, format="json")
    return NotificationTemplate.objects.get(platform=platform, type="USER_NOTIF_COURSE_ENROLLMENT")


def test_changelist_and_filters(staff, copy):
    url = reverse("admin:templates_app_notificationtemplate_changelist")
    r = staff.get(url)
    assert r.status_code == 200 and b"Customised per platform" in r.content
    assert staff.get(url, {"kind": "copy"}).context["cl"].result_count == 1
    assert staff.get(url, {"kind": "default"}).context["cl"].result_count == 23
    assert staff.get(url, {"q": "ENROLLMENT"}).status_code == 200


def test_change_page_shows_a_rendered_preview(staff, copy):
    r = staff.get(reverse("admin:templates_app_notificationtemplate_change", args=[copy.pk]))
    assert r.status_code == 200
    assert b"Acme: Introduction to Data Science" in r.content  # the sample context, rendered
    # Addressed to a sample learner, not to a blank username ("Hi ,").
    assert b"Hi amina.tesfaye," in r.content and b"Hi ," not in r.content
    default = NotificationTemplate.objects.get(platform=None, type="USER_NOTIF_CREDENTIALS")
    r = staff.get(reverse("admin:templates_app_notificationtemplate_change", args=[default.pk]))
    assert b"Python Fundamentals" in r.content


def test_editing_refuses_syntax_errors_with_the_line(staff, copy):
    url = reverse("admin:templates_app_notificationtemplate_change", args=[copy.pk])
    form = staff.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k not in ("spas", "allowed_channels")}
    data.update(
        {
            "message_body": "ok\n{% for x in %}",
            "allowed_channels": [c.pk for c in copy.allowed_channels.all()],
            "spas": [s.pk for s in copy.spas.all()],
            "available_context": "{}",
            "metadata": "{}",
            "periodic_config": "null",
            "policy_config": "null",
            "human_support_config": "null",
        }
    )
    r = staff.post(url, data)
    assert r.status_code == 200
    assert "line 2" in str(r.context["adminform"].form.errors["message_body"])
    data["message_body"] = "Hello {{ username }} {{ mystery }}"
    r = staff.post(url, data, follow=True)
    copy.refresh_from_db()
    assert copy.message_body == "Hello {{ username }} {{ mystery }}"
    assert any("mystery" in str(m) for m in r.context["messages"])


def test_reset_toggle_and_test_send_actions(staff, copy, platform):
    url = reverse("admin:templates_app_notificationtemplate_changelist")
    staff.post(url, {"action": "disable_types", "_selected_action": [copy.pk]})
    assert NotificationToggle.objects.get(platform=platform, type=copy.type).enabled is False
    staff.post(url, {"action": "test_send", "_selected_action": [copy.pk]})
    assert locmem.outbox["email"][0]["address"] == "root@acme.com"
    staff.post(url, {"action": "reset_to_default", "_selected_action": [copy.pk]})
    assert not NotificationTemplate.objects.filter(pk=copy.pk).exists()
    assert NotificationToggle.objects.get(platform=platform, type=copy.type).enabled is False


def test_customisation_overview(staff, copy):
    r = staff.get(reverse("admin:templates_app_customisation"))
    assert r.status_code == 200
    assert b"acme-learning" in r.content
    assert reverse("admin:templates_app_notificationtemplate_change", args=[copy.pk]).encode() in r.content


def test_every_model_has_a_working_changelist(staff, copy):
    for model in (
        "notificationtoggle",
        "notificationchannel",
        "spa",
        "usernotificationpreference",
        "mentor",
        "learneractivity",
        "notificationevent",
    ):
        assert staff.get(reverse(f"admin:templates_app_{model}_changelist")).status_code == 200, model
