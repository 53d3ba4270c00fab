"""POST send/, duplicate detection, force, statuses, the scheduler, cancel, and resuming."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from builder import runs
from builder.models import Build, BuildRecipient, BuildStatus, RecipientStatus
from builder.tests.conftest import BASE, custom
from notifications import scheduler
from notifications.backends import locmem
from notifications.models import DeliveryStatus, Notification

pytestmark = pytest.mark.django_db

EVERYONE = [{"type": "username", "data": "jane,john,mary"}, {"type": "email", "data": "guest@outside.org"}]


@pytest.fixture
def preview(client, people):
    def _preview(**extra):
        body = extra.pop("body", None) or custom(sources=extra.pop("sources", EVERYONE), **extra)
        r = client.post(BASE + "preview/", body, format="json")
        assert r.status_code == 200, r.json()
        return r.json()

    return _preview


@pytest.fixture
def send(client, django_capture_on_commit_callbacks):
    """POST send/ and run what it queued after commit (Celery is eager in tests)."""

    def _send(build_id, **extra):
        with django_capture_on_commit_callbacks(execute=True):
            r = client.post(BASE + "send/", {"build_id": build_id, **extra}, format="json")
        return r

    return _send


def emails():
    return sorted(m["address"] for m in locmem.outbox["email"])


def test_document_example(preview, send, client, people):
    build_id = preview()["build_id"]
    r = send(build_id)
    assert r.status_code == 200
    assert r.json() == {
        "status": "success",
        "notifications_sent": 4,
        "build_id": build_id,
        "message": "Notifications sent",
        "build_status": "sending",
    }
    assert emails() == ["guest@outside.org", "jane@example.com", "john@example.com", "mary@example.com"]
    # In-app reaches accounts only; the address-only recipient got email alone.
    in_app = Notification.objects.filter(source=f"build:{build_id}", channel="in_app")
    assert sorted(in_app.values_list("user__username", flat=True)) == ["jane", "john", "mary"]
    jane = Notification.objects.get(source=f"build:{build_id}", channel="email", user=people["jane"])
    assert (jane.title, jane.body) == (
        "Platform Maintenance Notice",
        "Hi jane, scheduled maintenance is planned for April 20.",
    )

    build = Build.objects.get(pk=build_id)
    assert build.status == BuildStatus.COMPLETED
    assert (build.sent_count, build.failed_count) == (4, 0)
    assert set(BuildRecipient.objects.filter(build=build).values_list("status", flat=True)) == {"sent"}

    detail = client.get(BASE + f"{build_id}/").json()
    assert detail["status"] == "completed"
    assert detail["progress"] == {"total": 4, "pending": 0, "sent": 4, "failed": 0, "percent": 100.0}
    assert detail["deliveries"] == {
        "email": {"sent": 4, "failed": 0, "pending": 0, "suppressed": 0},
        "in_app": {"sent": 3, "failed": 0, "pending": 0, "suppressed": 0},
    }
    listed = client.get(BASE + f"{build_id}/recipients/?search=guest").json()["results"]
    assert listed[0]["status"] == "sent"


def test_a_build_is_sent_at_most_once(preview, send):
    build_id = preview()["build_id"]
    assert send(build_id).json()["message"] == "Notifications sent"
    r = send(build_id)
    assert (r.status_code, r.json()) == (409, {"detail": "This build has already been sent."})
    assert len(locmem.outbox["email"]) == 4


def test_send_unknown_or_malformed_build(client, send, preview):
    assert send("9c1a2b3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d").status_code == 404
    assert send("not-a-uuid").json() == {"build_id": ["Must be a valid UUID."]}
    r = client.post(BASE + "send/", {}, format="json")
    assert r.json() == {"build_id": ["This field is required."]}


def test_failed_deliveries_are_counted_per_recipient(preview, send, client, people):
    locmem.fail_for["john@example.com"] = "550 mailbox unavailable"
    locmem.fail_for["guest@outside.org"] = "550 no such user"
    build_id = preview()["build_id"]
    send(build_id)
    rows = dict(BuildRecipient.objects.filter(build_id=build_id).values_list("email", "status"))
    # john still got the in-app notification; the guest had only email.
    assert rows == {
        "jane@example.com": "sent",
        "john@example.com": "sent",
        "mary@example.com": "sent",
        "guest@outside.org": "failed",
    }
    guest = BuildRecipient.objects.get(build_id=build_id, email="guest@outside.org")
    assert guest.error == "email: 550 no such user"
    john = BuildRecipient.objects.get(build_id=build_id, email="john@example.com")
    assert john.error == "email: 550 mailbox unavailable"
    detail = client.get(BASE + f"{build_id}/").json()
    assert detail["status"] == "completed"
    assert detail["progress"] == {"total": 4, "pending": 0, "sent": 3, "failed": 1, "percent": 100.0}
    assert detail["deliveries"]["email"] == {"sent": 2, "failed": 2, "pending": 0, "suppressed": 0}


def test_build_fails_when_nobody_can_be_reached(preview, send, client):
    locmem.fail_for["guest@outside.org"] = "550 no such user"
    build_id = preview(channels=[1], sources=[{"type": "email", "data": "guest@outside.org"}])["build_id"]
    send(build_id)
    detail = client.get(BASE + f"{build_id}/").json()
    assert (detail["status"], detail["error"]) == ("failed", "No recipient could be reached.")


# --- duplicate detection --------------------------------------------------------------------


def test_identical_build_within_24_hours_is_a_duplicate(preview, send):
    first = preview()["build_id"]
    send(first)
    # Same audience through different sources, in a different order.
    second = preview(
        sources=[
            {"type": "email", "data": "guest@outside.org,mary@example.com"},
            {"type": "username", "data": "john,jane"},
        ]
    )
    assert second["warning"].startswith(f"A similar notification (build {first}) went to the same 4 recipient(s)")
    assert second["warning"].endswith('by admin. Sending it again needs "force": true.')
    r = send(second["build_id"])
    assert r.status_code == 200
    assert r.json() == {
        "status": "success",
        "notifications_sent": 0,
        "build_id": second["build_id"],
        "message": "Similar notifications found",
        "build_status": "previewed",
        "warning": second["warning"],
        "similar_build_id": first,
    }
    assert len(locmem.outbox["email"]) == 4  # nothing more went out
    assert Build.objects.get(pk=second["build_id"]).status == BuildStatus.PREVIEWED


def test_force_sends_anyway_and_is_recorded(preview, send, admin):
    first = preview()["build_id"]
    send(first)
    second = preview()["build_id"]
    r = send(second, force=True)
    assert r.json()["message"] == "Notifications sent"
    assert r.json()["similar_build_id"] == first
    assert len(locmem.outbox["email"]) == 8
    build = Build.objects.get(pk=second)
    assert build.forced_by == admin
    assert build.forced_at is not None
    assert str(build.similar_build_id) == first


def test_force_without_a_duplicate_records_no_override(preview, send):
    build_id = preview()["build_id"]
    assert send(build_id, force=True).json()["message"] == "Notifications sent"
    build = Build.objects.get(pk=build_id)
    assert build.forced_by is None and build.forced_at is None


def test_identical_build_older_than_24_hours_is_not_a_duplicate(preview, send):
    first = preview()["build_id"]
    send(first)
    Build.objects.filter(pk=first).update(submitted_at=timezone.now() - timedelta(hours=24, minutes=1))
    second = preview()
    assert second["warning"] is None
    assert send(second["build_id"]).json()["message"] == "Notifications sent"


def test_duplicate_found_at_send_time_after_the_preview(preview, send):
    a = preview()["build_id"]
    b = preview()["build_id"]  # previewed before a was sent: no warning yet
    send(a)
    assert send(b).json()["message"] == "Similar notifications found"


@pytest.mark.parametrize(
    "change",
    [
        {"channels": [1]},
        {"sources": [{"type": "username", "data": "jane,john"}, {"type": "email", "data": "guest@outside.org"}]},
        {"context": {"course_name": "Python 101"}},
        {
            "body": {
                "template_data": {"message_title": "Other", "message_body": "Other"},
                "channels": [1, 3],
                "sources": EVERYONE,
            }
        },
    ],
)
def test_a_different_build_is_not_a_duplicate(preview, send, change):
    send(preview()["build_id"])
    assert preview(**change)["warning"] is None


def test_unsent_or_cancelled_builds_are_not_duplicates(preview, client):
    first = preview()["build_id"]
    assert preview()["warning"] is None  # previewed only
    client.post(BASE + f"{first}/cancel/")
    assert preview()["warning"] is None


# --- queued builds and the scheduler ------------------------------------------------------


def test_queued_build_is_sent_by_the_scheduler_at_process_on_exactly_once(preview, send, client):
    process_on = timezone.now() + timedelta(hours=1)
    build_id = preview(process_on=process_on.isoformat())["build_id"]
    r = send(build_id)
    assert r.json()["message"] == "Notifications queued"
    assert r.json()["notifications_sent"] == 0
    assert r.json()["build_status"] == "queued"
    assert Build.objects.get(pk=build_id).status == BuildStatus.QUEUED

    assert scheduler.sweep(now=process_on - timedelta(seconds=1)).get("builder.builds") == 0
    assert locmem.outbox["email"] == []

    assert scheduler.sweep(now=process_on).get("builder.builds") == 1
    assert len(locmem.outbox["email"]) == 4
    build = Build.objects.get(pk=build_id)
    assert build.status == BuildStatus.COMPLETED
    assert build.started_at == process_on

    for later in (process_on + timedelta(seconds=1), process_on + timedelta(hours=1)):
        assert scheduler.sweep(now=later).get("builder.builds") == 0
    assert len(locmem.outbox["email"]) == 4
    assert len(locmem.outbox["in_app"]) == 0  # in_app is delivered as rows, not through locmem
    assert Notification.objects.filter(source=f"build:{build_id}", channel="in_app").count() == 3
    assert client.get(BASE + f"{build_id}/").json()["progress"]["sent"] == 4


def test_queued_build_sent_early_when_its_time_passed_before_send(preview, send):
    build_id = preview(process_on=(timezone.now() + timedelta(hours=1)).isoformat())["build_id"]
    Build.objects.filter(pk=build_id).update(process_on=timezone.now() - timedelta(minutes=1))
    assert send(build_id).json()["message"] == "Notifications sent"


def test_cancel_a_queued_build_before_process_on(preview, send, client, admin):
    process_on = timezone.now() + timedelta(hours=1)
    build_id = preview(process_on=process_on.isoformat())["build_id"]
    send(build_id)
    r = client.post(BASE + f"{build_id}/cancel/")
    assert r.json() == {"status": "success", "build_id": build_id, "message": "Build cancelled"}
    build = Build.objects.get(pk=build_id)
    assert (build.status, build.cancelled_by) == (BuildStatus.CANCELLED, admin)
    assert scheduler.sweep(now=process_on + timedelta(minutes=1)).get("builder.builds") == 0
    assert locmem.outbox["email"] == []
    assert send(build_id).json() == {"detail": "This build was cancelled."}
    assert client.post(BASE + f"{build_id}/cancel/").json() == {"detail": "A cancelled build cannot be cancelled."}


def test_cannot_cancel_once_due_or_sent(preview, send, client):
    build_id = preview(process_on=(timezone.now() + timedelta(hours=1)).isoformat())["build_id"]
    send(build_id)
    Build.objects.filter(pk=build_id).update(process_on=timezone.now() - timedelta(seconds=1))
    r = client.post(BASE + f"{build_id}/cancel/")
    assert (r.status_code, r.json()) == (409, {"detail": "This build is due and can no longer be cancelled."})

    sent = preview(channels=[3], sources=[{"type": "username", "data": "jane"}])["build_id"]
    send(sent)
    r = client.post(BASE + f"{sent}/cancel/")
    assert (r.status_code, r.json()) == (409, {"detail": "A completed build cannot be cancelled."})


def test_cancel_a_previewed_build(preview, send, client):
    build_id = preview()["build_id"]
    assert client.post(BASE + f"{build_id}/cancel/").status_code == 200
    assert send(build_id).status_code == 409


# --- chunks, crashes, retries ---------------------------------------------------------------


def test_resumes_after_a_worker_dies_mid_build(preview, settings, client):
    settings.BUILDER_SEND_CHUNK = 2
    build_id = preview()["build_id"]
    build = Build.objects.get(pk=build_id)
    now = timezone.now()
    Build.objects.filter(pk=build_id).update(
        status=BuildStatus.SENDING, submitted_at=now, claimed_until=now + runs.LEASE
    )
    build.refresh_from_db()
    # A worker claims the first chunk, sends it, claims the second and dies before sending it.
    render = runs.templating.build_renderer(build=build)
    runs._chunk_send(build, runs._chunk_claim(build), render)
    assert len(runs._chunk_claim(build).rows) == 2
    assert len(locmem.outbox["email"]) == 2

    # While its leases hold, nobody takes the build over.
    assert scheduler.sweep(now=now + timedelta(minutes=1)).get("builder.builds") == 0
    # Once they run out, the sweep hands the build to another worker, which finishes it.
    later = now + runs.LEASE + timedelta(seconds=1)
    BuildRecipient.objects.filter(build=build).update(claimed_until=now - timedelta(seconds=1))
    assert scheduler.sweep(now=later).get("builder.builds") == 1
    assert emails() == ["guest@outside.org", "jane@example.com", "john@example.com", "mary@example.com"]
    build.refresh_from_db()
    assert build.status == BuildStatus.COMPLETED
    assert (build.sent_count, build.failed_count) == (4, 0)


def test_rerunning_a_finished_chunk_sends_nothing_twice(preview, send, settings):
    settings.BUILDER_SEND_CHUNK = 1
    build_id = preview()["build_id"]
    send(build_id)
    # Pretend the mirror never happened (a worker died between sending and recording; its lease has ended).
    BuildRecipient.objects.filter(build_id=build_id).update(
        status=RecipientStatus.PENDING, claimed_until=timezone.now() - timedelta(seconds=1)
    )
    Build.objects.filter(pk=build_id).update(status=BuildStatus.SENDING, sent_count=0, claimed_until=None)
    runs.build_run(build_id=build_id)
    assert len(locmem.outbox["email"]) == 4
    build = Build.objects.get(pk=build_id)
    assert (build.status, build.sent_count) == (BuildStatus.COMPLETED, 4)


def test_several_workers_share_one_build(preview, send, settings):
    settings.BUILDER_SEND_CHUNK = 1
    settings.BUILDER_SEND_WORKERS = 3
    build_id = preview()["build_id"]
    send(build_id)
    assert len(locmem.outbox["email"]) == 4
    assert Build.objects.get(pk=build_id).status == BuildStatus.COMPLETED


def test_deleted_account_is_a_failed_recipient(preview, send, people):
    build_id = preview()["build_id"]
    people["mary"].delete()
    send(build_id)
    mary = BuildRecipient.objects.get(build_id=build_id, email="mary@example.com")
    assert (mary.status, mary.error) == ("failed", "The user account no longer exists.")
    assert Build.objects.get(pk=build_id).failed_count == 1


def test_unexpected_errors_are_retried_then_fail_the_build(preview, send, settings):
    build_id = preview()["build_id"]
    settings.NOTIFICATION_BACKENDS = {
        **settings.NOTIFICATION_BACKENDS,
        "email": {"BACKEND": "notifications.backends.nowhere.Backend", "OPTIONS": {}},
    }
    send(build_id)
    build = Build.objects.get(pk=build_id)
    assert (build.status, build.attempts) == (BuildStatus.SENDING, 1)
    assert build.error.startswith("ImproperlyConfigured: NOTIFICATION_BACKENDS['email']")
    for attempt in (2, 3):
        assert scheduler.sweep(now=build.claimed_until + timedelta(seconds=1)).get("builder.builds") == 1
        build.refresh_from_db()
        assert build.attempts == attempt
    assert build.status == BuildStatus.FAILED
    assert Notification.objects.filter(source=f"build:{build_id}", delivery_status=DeliveryStatus.SENT).count() == 0


def test_a_failed_build_that_reached_nobody_is_no_duplicate(preview, send):
    sources = [{"type": "email", "data": "guest@outside.org"}]
    locmem.fail_for["guest@outside.org"] = "421 try later"
    first = preview(channels=[1], sources=sources)["build_id"]
    send(first)
    assert Build.objects.get(pk=first).status == BuildStatus.FAILED
    locmem.fail_for.clear()
    again = preview(channels=[1], sources=sources)
    assert again["warning"] is None
    assert send(again["build_id"]).json()["message"] == "Notifications sent"
    # A failed build that did reach somebody still counts.
    Build.objects.filter(pk=again["build_id"]).update(status=BuildStatus.FAILED)
    assert preview(channels=[1], sources=sources)["warning"] is not None


def test_an_email_refused_for_good_falls_back_by_the_platforms_policy(preview, send, client, people, platform):
    # The builder is one of the five send paths: the type's fallback (kept with its template) holds here too.
    from builder.templating import CUSTOM_TYPE
    from templates_app.models import NotificationTemplate

    NotificationTemplate.objects.create(
        platform=platform, type=CUSTOM_TYPE, name="Custom", delivery_policy={"fallback": {"email": "sms"}}
    )
    locmem.fail_for["john@example.com"] = "550 mailbox unavailable"
    build_id = preview()["build_id"]
    send(build_id)

    john = people["john"]
    fallback = Notification.objects.get(source=f"build:{build_id}", user=john, channel="sms")
    assert (fallback.rule, fallback.delivery_status) == ("fallback", DeliveryStatus.SENT)
    assert [m["address"] for m in locmem.outbox["sms"]] == [john.phone_number]
    assert BuildRecipient.objects.get(build_id=build_id, email="john@example.com").status == "sent"
