"""The admin (filters, search, restore, upcoming events), retention and the schema."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from alerts import services
from alerts.models import Alert

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(admin_client):
    return admin_client


@pytest.fixture
def alerts(platform, alice, bob):
    now = timezone.now()

    def make(user, title, **fields):
        return services.alert_create(platform=platform, user=user, title=title, message=f"{title} body", **fields)

    made = {
        "low": make(alice, "Low stock", type="warning"),
        "overdue": make(bob, "Overdue loan", type="critical"),
        "audit": make(alice, "Audit", is_event=True, scheduled_at=now + timedelta(days=3)),
        "maintenance": make(bob, "Maintenance", is_event=True, scheduled_at=now + timedelta(days=1)),
        "past": make(alice, "Past event", is_event=True, scheduled_at=now - timedelta(days=1)),
        "gone": make(alice, "Deleted one"),
    }
    services.alert_delete(alert=made["gone"])
    return made


def _titles(response):
    return [a.title for a in response.context["cl"].result_list]


def test_admin_lists_filters_and_searches(staff, alerts):
    url = reverse("admin:alerts_alert_changelist")
    assert len(_titles(staff.get(url))) == 6  # deleted ones too
    assert _titles(staff.get(url, {"deleted": "yes"})) == ["Deleted one"]
    assert "Deleted one" not in _titles(staff.get(url, {"deleted": "no"}))
    assert _titles(staff.get(url, {"type__exact": "critical"})) == ["Overdue loan"]
    assert set(_titles(staff.get(url, {"is_event__exact": "1"}))) == {"Audit", "Maintenance", "Past event"}
    assert _titles(staff.get(url, {"q": "bob", "type__exact": "warning"})) == []
    assert set(_titles(staff.get(url, {"q": "bob"}))) == {"Overdue loan", "Maintenance"}
    assert staff.get(url, {"archived": "yes"}).status_code == 200
    assert staff.get(url, {"is_read__exact": "0"}).status_code == 200
    assert staff.get(reverse("admin:alerts_alert_change", args=[alerts["low"].pk])).status_code == 200


def test_admin_restore_action(staff, alerts, client):
    gone = alerts["gone"]
    response = staff.post(
        reverse("admin:alerts_alert_changelist"),
        {"action": "restore", "_selected_action": [gone.pk, alerts["low"].pk]},
        follow=True,
    )
    assert "Restored 1 alert(s)." in [str(m) for m in response.context["messages"]]
    assert Alert.objects.get(pk=gone.pk).deleted_at is None
    assert client.get(f"/alerts/{gone.pk}").status_code == 200
    staff.post(reverse("admin:alerts_alert_changelist"), {"action": "soft_delete", "_selected_action": [gone.pk]})
    assert client.get(f"/alerts/{gone.pk}").status_code == 404


def test_admin_upcoming_events(staff, alerts):
    response = staff.get(reverse("admin:alerts_upcomingevent_changelist"))
    assert response.status_code == 200
    assert _titles(response) == ["Maintenance", "Audit"]  # soonest first, past and deleted left out


def test_admin_edit_reschedules(staff, alerts):
    audit = alerts["audit"]
    new_time = timezone.now() + timedelta(days=2)
    url = reverse("admin:alerts_alert_change", args=[audit.pk])
    form = staff.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data.update(
        {
            "notify_at_0": new_time.strftime("%Y-%m-%d"),
            "notify_at_1": new_time.strftime("%H:%M:%S"),
            "scheduled_at_0": audit.scheduled_at.strftime("%Y-%m-%d"),
            "scheduled_at_1": audit.scheduled_at.strftime("%H:%M:%S"),
        }
    )
    data.pop("scheduled_at", None)
    data.pop("notify_at", None)
    response = staff.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    audit.refresh_from_db()
    assert audit.due_at == audit.notify_at == new_time.replace(microsecond=0)
    assert audit.notify_generation == 1
    # The model's own rules apply in the admin too.
    late = audit.scheduled_at + timedelta(hours=1)
    data.update({"notify_at_0": late.strftime("%Y-%m-%d"), "notify_at_1": late.strftime("%H:%M:%S")})
    response = staff.post(url, data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"notify_at": ["notifyAt must not be after scheduledAt."]}


def test_archive_command_and_task(alerts, alice):
    old = timezone.now() - timedelta(days=31)
    Alert.objects.filter(pk__in=[alerts["low"].pk, alerts["audit"].pk, alerts["gone"].pk]).update(created_at=old)
    services.alert_mark_read(alert=alerts["low"])
    services.alerts_mark_all_read(platform=alerts["low"].platform, user=alice)
    out = StringIO()
    call_command("archive_alerts", stdout=out, stderr=StringIO())
    # "audit" and "low" are read and old; "gone" is deleted and stays as it is.
    assert out.getvalue().strip() == "Archived 2 alert(s) read and older than 30 day(s)."
    assert set(Alert.objects.filter(archived_at__isnull=False).values_list("title", flat=True)) == {
        "Low stock",
        "Audit",
    }
    out = StringIO()
    call_command("archive_alerts", "--days", "0", stdout=out, stderr=StringIO())
    assert out.getvalue().strip() == "Archived 1 alert(s) read and older than 0 day(s)."  # "Past event"


def test_archive_in_batches(platform, alice):
    old = timezone.now() - timedelta(days=60)
    for i in range(7):
        services.alert_create(platform=platform, user=alice, title=f"a{i}", message="m", is_read=True)
    Alert.objects.update(created_at=old)
    batches = []
    assert services.alerts_archive(batch_size=3, progress=batches.append) == 7
    assert batches == [3, 3, 1]
    assert services.alerts_archive() == 0


def test_schema_documents_every_endpoint(staff):
    response = staff.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    assert set(paths["/alerts"]) >= {"get", "post"}
    assert set(paths["/alerts/{id}"]) >= {"get", "put", "patch", "delete"}
    assert set(paths["/alerts/{id}/read"]) == {"patch"}
    assert set(paths["/alerts/read-all"]) == {"patch"}
    listing = paths["/alerts"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {
        "page",
        "limit",
        "isRead",
        "type",
        "isEvent",
        "from",
        "to",
        "archived",
        "ordering",
    }
    # The view's own answers, plus the shared 4xx every operation may give (403, 404, 429, ...).
    assert set(listing["responses"]) >= {"200", "400", "401", "429"}
    assert set(paths["/alerts/{id}"]["delete"]["responses"]) >= {"200", "401", "404", "429"}
    alert = schema["components"]["schemas"]["Alert"]
    assert list(alert["properties"]) == [
        "id",
        "title",
        "message",
        "type",
        "createdAt",
        "isRead",
        "isEvent",
        "scheduledAt",
        "notifyAt",
    ]
    assert "userId" in schema["components"]["schemas"]["AlertCreateRequest"]["properties"]
