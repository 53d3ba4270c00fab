"""IBL §9: human support routing, policy assignment rules, and their configuration fields."""

import pytest

from notifications.backends import locmem
from notifications.models import Notification

from .conftest import BASE, EVENTS

pytestmark = pytest.mark.django_db
HUMAN = BASE + "HUMAN_SUPPORT_NOTIFICATION/"
POLICY = BASE + "POLICY_ASSIGNMENT/"
MENTORS = "/api/notification/v1/orgs/acme-learning/mentors/"
TICKET = {
    "ticket_subject": "Cannot submit my assignment",
    "ticket_description": "The upload button does nothing.",
    "user_name": "Jane Doe",
    "user_email": "jane@example.com",
    "session_id": "7f1c2f8e-4a57-4d3b-9a0e-2b5f1c9d8e11",
    "chat_link": "https://acme.example.com/chat/7f1c2f8e",
    "mentor_unique_id": "study-buddy",
}


@pytest.fixture
def mentor_owner(make_user):
    return make_user("owner", role="INSTRUCTOR", email="owner@acme.com")


@pytest.fixture
def mentor(admin_api, mentor_owner):
    r = admin_api.post(MENTORS, {"unique_id": "study-buddy", "name": "Study Buddy", "owner": "owner"}, format="json")
    assert r.status_code == 201, r.json()
    return r.json()


def support_event(client, **extra):
    return client.post(
        EVENTS,
        {"type": "HUMAN_SUPPORT_NOTIFICATION", "context": TICKET, "channels": ["in_app"], **extra},
        format="json",
    ).json()


def reached(event) -> set[str]:
    return set(Notification.objects.filter(source=f"event:{event['id']}").values_list("user__username", flat=True))


def test_mentor_records(admin_api, mentor, make_user):
    assert mentor["unique_id"] == "study-buddy" and mentor["owner"] == "owner"
    assert admin_api.get(MENTORS).json()[0]["name"] == "Study Buddy"
    make_user("other-owner")
    r = admin_api.patch(MENTORS + "study-buddy/", {"owner": "other-owner"}, format="json")
    assert r.json()["owner"] == "other-owner"
    r = admin_api.post(MENTORS, {"unique_id": "x", "name": "X", "owner": "ghost"}, format="json")
    assert r.status_code == 400 and "owner" in r.json()
    assert admin_api.delete(MENTORS + "study-buddy/").json() == {"message": "Mentor deleted successfully"}
    assert admin_api.get(MENTORS + "study-buddy/").status_code == 404


def test_default_mode_reaches_admins_and_the_mentor_owner(admin_api, mentor, make_user, learner):
    make_user("second-admin", admin=True)
    event = support_event(admin_api)
    assert event["status"] == "processed", event
    assert reached(event) == {"admin", "second-admin", "owner"}
    row = Notification.objects.filter(source=f"event:{event['id']}").first()
    assert row.title == "Support request: Cannot submit my assignment"
    assert "while chatting with Study Buddy" in row.body  # mentor_name filled from the mentor record
    assert "https://acme.example.com/chat/7f1c2f8e" in row.body


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("platform_admins_only", {"admin"}),
        ("mentor_owner_only", {"owner"}),
        ("platform_admins_and_mentor_owner", {"admin", "owner"}),
    ],
)
def test_recipient_modes(admin_api, mentor, mode, expected):
    r = admin_api.patch(HUMAN, {"human_support_recipient_mode": mode}, format="json")
    assert r.status_code == 200
    assert r.json()["human_support_config"] == {"recipient_mode": mode, "custom_recipients": []}
    assert reached(support_event(admin_api)) == expected


def test_a_deactivated_mentor_owner_hears_nothing(admin_api, mentor, mentor_owner):
    mentor_owner.is_active = False
    mentor_owner.save(update_fields=["is_active"])
    assert reached(support_event(admin_api)) == {"admin"}


def test_custom_recipients(admin_api, mentor, make_user):
    make_user("support-lead", email="lead@acme.com")
    r = admin_api.patch(HUMAN, {"human_support_recipient_mode": "custom"}, format="json")
    assert r.status_code == 400
    assert r.json() == {
        "human_support_custom_recipients": [
            "At least one recipient is required when human_support_recipient_mode is custom."
        ]
    }
    r = admin_api.patch(
        HUMAN,
        {
            "human_support_recipient_mode": "custom",
            "human_support_custom_recipients": ["support-lead", "helpdesk@acme.com"],
        },
        format="json",
    )
    assert r.status_code == 200
    event = admin_api.post(
        EVENTS, {"type": "HUMAN_SUPPORT_NOTIFICATION", "context": TICKET, "channels": ["email"]}, format="json"
    ).json()
    assert sorted(m["address"] for m in locmem.outbox["email"]) == ["helpdesk@acme.com", "lead@acme.com"]
    assert event["deliveries"]["email"]["sent"] == 2


def test_owner_only_without_an_owner_is_skipped(admin_api):
    admin_api.patch(HUMAN, {"human_support_recipient_mode": "mentor_owner_only"}, format="json")
    event = support_event(admin_api)
    assert event["status"] == "skipped" and event["reason"].startswith("No recipients")


def test_template_content_is_rendered_through_the_sandbox(admin_api, mentor):
    event = support_event(admin_api, context={**TICKET, "template_content": "Priority for {{ site_name }}: high"})
    row = Notification.objects.filter(source=f"event:{event['id']}").first()
    assert "Priority for Acme Learning: high" in row.body
    r = admin_api.post(
        EVENTS,
        {"type": "HUMAN_SUPPORT_NOTIFICATION", "context": {**TICKET, "template_content": "{% debug %}"}},
        format="json",
    )
    assert r.status_code == 400 and "template_content" in r.json()["context"][0]


def policy_event(client, **context):
    return client.post(
        EVENTS,
        {
            "type": "POLICY_ASSIGNMENT",
            "recipients": ["jane.doe"],
            "context": {"role_name": "Course Editor", "assigned": True, "resources": ["Python 101"], **context},
        },
        format="json",
    ).json()


def test_policy_assignment_defaults(admin_api, learner):
    event = policy_event(admin_api)
    assert event["status"] == "processed"
    assert locmem.outbox["email"][0]["title"] == "New role: Course Editor"
    assert "- Python 101" in locmem.outbox["email"][0]["body"]
    event = policy_event(admin_api, assigned=False)
    assert locmem.outbox["email"][1]["title"] == "Role removed: Course Editor"


def test_policy_config(admin_api, learner):
    r = admin_api.patch(
        POLICY,
        {
            "policy_enabled_policies": [
                {"role_name": "Course Editor", "enabled": True, "subject": "{{ role_name }} access on {{ site_name }}"},
                {"role_name": "Auditor", "enabled": False},
            ],
            "policy_notify_on_removal": False,
        },
        format="json",
    )
    assert r.status_code == 200, r.json()
    assert r.json()["policy_config"] == {
        "enabled_policies": [
            {"role_name": "Course Editor", "enabled": True, "subject": "{{ role_name }} access on {{ site_name }}"},
            {"role_name": "Auditor", "enabled": False, "subject": ""},
        ],
        "notify_on_assignment": True,
        "notify_on_removal": False,
    }
    policy_event(admin_api)
    assert locmem.outbox["email"][-1]["title"] == "Course Editor access on Acme Learning"
    skipped = policy_event(admin_api, assigned=False)
    assert skipped["status"] == "skipped" and "removal" in skipped["reason"]
    skipped = policy_event(admin_api, role_name="Auditor")
    assert skipped["status"] == "skipped" and "Auditor" in skipped["reason"]
    r = admin_api.patch(POLICY, {"policy_enabled_policies": [{"role_name": "X", "subject": "{% if %}"}]}, format="json")
    assert r.status_code == 400 and "policy_enabled_policies" in r.json()


def test_config_fields_belong_to_their_type(admin_api, platform):
    r = admin_api.patch(
        BASE + "USER_NOTIF_COURSE_ENROLLMENT/",
        {"periodic_frequency": "DAILY", "policy_notify_on_removal": True, "human_support_recipient_mode": "custom"},
        format="json",
    )
    assert r.status_code == 400
    assert r.json() == {
        "human_support_recipient_mode": ["human_support_recipient_mode only applies to HUMAN_SUPPORT_NOTIFICATION."],
        "periodic_frequency": ["periodic_frequency only applies to PROACTIVE_LEARNER_NOTIFICATION."],
        "policy_notify_on_removal": ["policy_notify_on_removal only applies to POLICY_ASSIGNMENT."],
    }
    r = admin_api.patch(POLICY, {"human_support_recipient_mode": "custom"}, format="json")
    assert r.status_code == 400


def test_report_completed_statuses(admin_api, learner):
    for status in ("completed", "error", "cancelled"):
        admin_api.post(
            EVENTS,
            {
                "type": "REPORT_COMPLETED",
                "recipients": ["jane.doe"],
                "channels": ["email"],
                "context": {"report_name": "Q1", "report_status": status, "download_url": "https://acme.com/r/1"},
            },
            format="json",
        )
    titles = [m["title"] for m in locmem.outbox["email"]]
    assert titles == ["Report Q1: Completed", "Report Q1: Error", "Report Q1: Cancelled"]
    assert "Download the report" in locmem.outbox["email"][0]["html"]
    assert "Download the report" not in locmem.outbox["email"][1]["html"]
