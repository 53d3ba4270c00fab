"""The admin reads as a product: people by name, records without Save, one delete action, plural names."""

from __future__ import annotations

import pytest
from django.urls import reverse

from alerts.models import Alert
from builder.models import Build, BuildStatus
from notifications.models import Notification

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(client, make_user):
    user = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def test_internal_names_read_as_english(client, root):
    html = client.get(reverse("admin:index")).content.decode()
    assert "Staged entries" in html and "Staged entrys" not in html


def test_alerts_offer_one_delete_action(client, root, platform):
    Alert.objects.create(platform=platform, user=root, title="T", message="M")
    html = client.get(reverse("admin:alerts_alert_changelist")).content.decode()
    assert html.count("Delete selected alerts") == 1 and "soft: kept for audit" in html


def test_a_completed_build_is_a_record_without_save(client, root, platform):
    build = Build.objects.create(platform=platform, status=BuildStatus.COMPLETED, channels=["email"])
    r = client.get(reverse("admin:builder_build_change", args=[build.pk]))
    assert r.status_code == 200 and 'name="_save"' not in r.content.decode()
    r = client.post(reverse("admin:builder_build_change", args=[build.pk]), {"status": "queued"})
    assert r.status_code == 403
    build.refresh_from_db()
    assert build.status == BuildStatus.COMPLETED


def test_deliveries_name_their_recipient(client, root, platform, make_user):
    learner = make_user("amina", first_name="Amina", last_name="Tesfaye", email="amina@example.com")
    Notification.objects.create(
        platform=platform,
        user=learner,
        recipient_key=f"user:{learner.pk}",
        channel="email",
        source="bulk:test",
        title="Hello",
    )
    html = client.get(reverse("admin:notifications_notification_changelist")).content.decode()
    assert "Amina Tesfaye (amina) · amina@example.com" in html and f"user:{learner.pk}" not in html


def test_people_are_named_in_related_lists(client, root, platform, make_user):
    make_user("amina", first_name="Amina", last_name="Tesfaye")
    html = client.get(reverse("admin:notifications_membership_changelist")).content.decode()
    assert "Amina Tesfaye (amina)" in html
