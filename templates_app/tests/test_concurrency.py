"""Copy-on-write under concurrent first edits, and events posted twice at once (PostgreSQL)."""

import threading

import pytest
from django.db import connection, connections

from notifications.models import Notification, Platform
from templates_app.automation.events import event_notify
from templates_app.models import NotificationTemplate
from templates_app.services.templates import template_customize

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL"),
]


def _race(n, work):
    barrier = threading.Barrier(n)
    errors = []

    def run(i):
        try:
            barrier.wait()
            work(i)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_concurrent_first_edits_make_one_copy(platform):
    def edit(i):
        template_customize(
            platform=Platform.objects.get(pk=platform.pk),
            notification_type="USER_NOTIF_COURSE_ENROLLMENT",
            changes={"name": f"Edit {i}"},
        )

    _race(6, edit)
    copies = NotificationTemplate.objects.filter(platform=platform, type="USER_NOTIF_COURSE_ENROLLMENT")
    assert copies.count() == 1
    assert copies.get().name.startswith("Edit ")


def test_the_same_event_posted_at_once_delivers_once(platform, make_user):
    make_user("jane.doe", email="jane@example.com")

    def post(_i):
        event_notify(
            platform=Platform.objects.get(pk=platform.pk),
            notification_type="USER_NOTIF_COURSE_ENROLLMENT",
            recipients=["jane.doe"],
            context={"course_name": "DS"},
            channels=["email", "in_app"],
            event_id="enroll-1",
        )

    _race(4, post)
    assert Notification.objects.filter(channel="email").count() == 1
    assert Notification.objects.filter(channel="in_app").count() == 1
