"""Shipped defaults are data in code: synced, inherited, and compared with platform copies."""

import dataclasses

import pytest
from django.core.management import call_command

from templates_app import defaults
from templates_app.models import NotificationChannel, NotificationTemplate, Spa
from templates_app.services.templates import defaults_sync

from .conftest import BASE

pytestmark = pytest.mark.django_db
ENROLL = BASE + "USER_NOTIF_COURSE_ENROLLMENT/"


def test_the_23_types_of_section_6():
    assert len(defaults.TYPES) == 23
    assert NotificationTemplate.objects.filter(platform=None).count() == 23
    assert list(NotificationChannel.objects.values_list("id", "name")) == [
        (1, "email"),
        (2, "push_notification"),
        (3, "in_app"),
        (4, "sms"),
    ]
    assert list(Spa.objects.values_list("name", flat=True)) == ["admin", "skills", "mentor"]
    for td in defaults.TYPES:
        assert td.name and td.description and td.message_title and td.message_body, td.type
        assert td.short_message_body and td.email_subject and td.email_html_template, td.type
        assert td.channels and td.spas and td.available_context, td.type
        assert all(isinstance(v, str) and v for v in td.available_context.values())
    assert defaults.SYSTEM_MANAGED_TYPES <= set(defaults.BY_TYPE)


def test_sync_is_idempotent_and_the_command_reports(capsys):
    assert defaults_sync() == {"created": 0, "updated": 0, "unchanged": 23}
    call_command("sync_notification_defaults", verbosity=0)
    assert "23 unchanged" in capsys.readouterr().out


@pytest.fixture
def changed_default(monkeypatch):
    """The enrollment default as a later release ships it."""
    td = defaults.BY_TYPE["USER_NOTIF_COURSE_ENROLLMENT"]
    new = dataclasses.replace(td, message_title="Enrolled: {{ course_name }}")
    types = tuple(new if t.type == td.type else t for t in defaults.TYPES)
    monkeypatch.setattr(defaults, "TYPES", types)
    monkeypatch.setitem(defaults.BY_TYPE, td.type, new)
    return new


def test_a_changed_default_reaches_platforms_that_did_not_customise(admin_api, changed_default):
    assert defaults_sync()["updated"] == 1
    assert admin_api.get(ENROLL).json()["message_title"] == "Enrolled: {{ course_name }}"


def test_a_copy_learns_that_its_default_moved_on(admin_api, monkeypatch):
    admin_api.patch(ENROLL, {"message_body": "Mine: {{ course_name }}"}, format="json")
    assert admin_api.get(ENROLL).json()["default_changed_since_customized"] is False
    td = defaults.BY_TYPE["USER_NOTIF_COURSE_ENROLLMENT"]
    new = dataclasses.replace(td, message_title="Enrolled: {{ course_name }}")
    monkeypatch.setattr(defaults, "TYPES", tuple(new if t.type == td.type else t for t in defaults.TYPES))
    monkeypatch.setitem(defaults.BY_TYPE, td.type, new)
    defaults_sync()
    body = admin_api.get(ENROLL).json()
    assert body["message_title"] == "You have been enrolled in {{ course_name }}"  # the copy keeps its text
    assert body["default_changed_since_customized"] is True
    assert body["default_template"]["message_title"] == "Enrolled: {{ course_name }}"
    assert body["default_template"]["message_body"] == td.message_body
    listed = {t["type"]: t for t in admin_api.get(BASE).json()}["USER_NOTIF_COURSE_ENROLLMENT"]
    assert listed["default_changed_since_customized"] is True
    body = admin_api.patch(ENROLL, {"acknowledge_default_change": True}, format="json").json()
    assert body["default_changed_since_customized"] is False and body["default_template"] is None
