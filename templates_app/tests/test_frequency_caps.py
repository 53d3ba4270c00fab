"""Frequency caps: at most N non-critical deliveries per recipient, channel and window; the rest wait or go."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time

import pytest
from django.db import connection

from notifications import metrics, scheduler
from notifications.backends import locmem
from notifications.channels import Channel
from notifications.models import DeliveryRule, Notification
from notifications.pipeline import Message, Recipient, notification_send, send_counts
from notifications.tests.factories import PlatformFactory, make_member
from templates_app.models import FrequencyCap, FrequencyCapCount
from templates_app.services.frequency_caps import MAX_WINDOWS_AHEAD, cap_window

pytestmark = pytest.mark.django_db

ADDIS = "Africa/Addis_Ababa"  # UTC+3, no daylight saving: midnight is 21:00 UTC
V1 = "/api/v1/notifications"
CAPS = "/api/notification/v1/platforms/{}/config/frequency-caps/"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def addis(platform):
    platform.time_zone = ADDIS
    platform.save(update_fields=["time_zone"])
    return platform


def _cap(platform, channel=Channel.SMS, limit=3, window="day", over_limit="defer"):
    return FrequencyCap.objects.create(
        platform=platform, channel=channel, limit=limit, window=window, over_limit=over_limit
    )


def _send(platform, recipients, source, channels=(Channel.SMS,), message=None):
    return notification_send(
        platform=platform,
        source=source,
        channels=list(channels),
        recipients=recipients,
        message=message or Message(title="Reminder", body="Quiz tomorrow"),
    )


def _to(users):
    return [Recipient(user_id=u.pk) for u in users]


def _sms_to():
    return [m["address"] for m in locmem.outbox["sms"]]


# -- windows ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "zone", "at", "expected"),
    [
        ("hour", "UTC", utc(2026, 3, 2, 9, 59), (utc(2026, 3, 2, 9), utc(2026, 3, 2, 10))),
        # Kolkata is UTC+5:30: its hours begin at half past on the UTC clock.
        ("hour", "Asia/Kolkata", utc(2026, 3, 2, 9, 10), (utc(2026, 3, 2, 8, 30), utc(2026, 3, 2, 9, 30))),
        ("day", ADDIS, utc(2026, 3, 2, 20, 59), (utc(2026, 3, 1, 21), utc(2026, 3, 2, 21))),
        ("day", ADDIS, utc(2026, 3, 2, 21, 0), (utc(2026, 3, 2, 21), utc(2026, 3, 3, 21))),
        # 2026-03-04 is a Wednesday; the week began Monday 00:00 in Addis Ababa.
        ("week", ADDIS, utc(2026, 3, 4, 12), (utc(2026, 3, 1, 21), utc(2026, 3, 8, 21))),
        # New York springs forward on 2026-03-08: that day has 23 hours.
        ("day", "America/New_York", utc(2026, 3, 8, 12), (utc(2026, 3, 8, 5), utc(2026, 3, 9, 4))),
    ],
)
def test_windows_follow_the_platforms_clock(window, zone, at, expected):
    assert cap_window(window=window, zone_name=zone, at=at) == expected


# -- defer ---------------------------------------------------------------------------------------------


def test_three_sms_a_day_the_fourth_and_fifth_wait_for_tomorrow_and_go_once(addis, make_user, clock):
    clock.set(utc(2026, 3, 2, 9, 0))  # 12:00 in Addis Ababa
    _cap(addis, limit=3)
    user = make_user("learner")
    results = [_send(addis, _to([user]), f"bulk:{i}") for i in range(5)]
    assert [(r.sent, r.pending, r.suppressed) for r in results] == [(1, 0, 0)] * 3 + [(0, 1, 0)] * 2
    waiting = Notification.objects.filter(delivery_status="pending")
    assert {(r.source, r.rule, r.next_attempt_at) for r in waiting} == {
        (f"bulk:{i}", DeliveryRule.FREQUENCY_CAP, utc(2026, 3, 2, 21)) for i in (3, 4)
    }
    assert _sms_to() == [user.phone_number] * 3
    # Counted in the window each goes out in: three today, two tomorrow.
    assert dict(FrequencyCapCount.objects.values_list("window_start", "count")) == {
        utc(2026, 3, 1, 21): 5,  # asked for; two of them went to tomorrow
        utc(2026, 3, 2, 21): 2,
    }

    clock.set(utc(2026, 3, 2, 20, 59))
    scheduler.sweep()
    assert len(_sms_to()) == 3
    clock.set(utc(2026, 3, 2, 21, 0))
    scheduler.sweep()
    scheduler.sweep()
    assert _sms_to() == [user.phone_number] * 5
    assert (send_counts(source="bulk:4").sent, send_counts(source="bulk:4").pending) == (1, 0)
    assert Notification.objects.get(source="bulk:4").rule == DeliveryRule.FREQUENCY_CAP

    # Tomorrow holds two already: one more goes now, the next waits for the day after.
    clock.set(utc(2026, 3, 3, 6, 0))
    results = [_send(addis, _to([user]), f"bulk:tomorrow:{i}") for i in range(2)]
    assert [(r.sent, r.pending) for r in results] == [(1, 0), (0, 1)]
    assert Notification.objects.get(source="bulk:tomorrow:1").next_attempt_at == utc(2026, 3, 3, 21)


def test_a_full_next_window_sends_the_row_to_the_one_after(addis, make_user, clock):
    clock.set(utc(2026, 3, 2, 9, 0))
    _cap(addis, limit=1)
    user = make_user("learner")
    results = [_send(addis, _to([user]), f"bulk:{s}") for s in "abc"]
    assert [(r.sent, r.pending) for r in results] == [(1, 0), (0, 1), (0, 1)]
    assert [Notification.objects.get(source=s).next_attempt_at for s in ("bulk:b", "bulk:c")] == [
        utc(2026, 3, 2, 21),
        utc(2026, 3, 3, 21),
    ]


def test_past_the_bound_of_windows_ahead_a_row_is_suppressed_not_lost(addis, make_user, clock):
    clock.set(utc(2026, 3, 2, 9, 0))
    _cap(addis, limit=1, window="hour")
    user = make_user("learner")
    results = [_send(addis, _to([user]), f"bulk:{i}") for i in range(MAX_WINDOWS_AHEAD + 2)]
    assert sum(r.sent for r in results) == 1
    assert sum(r.pending for r in results) == MAX_WINDOWS_AHEAD
    assert sum(r.suppressed for r in results) == 1
    last = Notification.objects.get(source=f"bulk:{MAX_WINDOWS_AHEAD + 1}")
    assert (last.delivery_status, last.rule) == ("suppressed", DeliveryRule.FREQUENCY_CAP)


def test_a_deferred_sms_does_not_wake_the_recipient_at_midnight(addis, make_user, clock):
    addis.quiet_hours_start, addis.quiet_hours_end = time(22, 0), time(7, 0)
    addis.save(update_fields=["quiet_hours_start", "quiet_hours_end"])
    _cap(addis, limit=1)
    user = make_user("sleeper", timezone=ADDIS)
    clock.set(utc(2026, 3, 2, 9, 0))
    _send(addis, _to([user]), "bulk:a")
    _send(addis, _to([user]), "bulk:b")
    row = Notification.objects.get(source="bulk:b")
    # Tomorrow starts at midnight, inside the night: the SMS goes at 07:00.
    assert (row.delivery_status, row.rule, row.next_attempt_at) == (
        "pending",
        DeliveryRule.FREQUENCY_CAP,
        utc(2026, 3, 3, 4),
    )


def test_a_row_quiet_hours_hold_counts_in_the_morning_it_goes_out(addis, make_user, clock):
    addis.quiet_hours_start, addis.quiet_hours_end = time(22, 0), time(7, 0)
    addis.save(update_fields=["quiet_hours_start", "quiet_hours_end"])
    _cap(addis, limit=1)
    user = make_user("sleeper", timezone=ADDIS)
    clock.set(utc(2026, 3, 2, 20, 0))  # 23:00 in Addis Ababa: the SMS waits for 07:00 on the 3rd
    _send(addis, _to([user]), "bulk:night")
    night = Notification.objects.get(source="bulk:night")
    assert (night.rule, night.next_attempt_at) == (DeliveryRule.QUIET_HOURS, utc(2026, 3, 3, 4))
    # 08:00 on the 3rd: the day's one SMS is the one from last night.
    clock.set(utc(2026, 3, 3, 5, 0))
    _send(addis, _to([user]), "bulk:morning")
    morning = Notification.objects.get(source="bulk:morning")
    assert (morning.rule, morning.next_attempt_at) == (DeliveryRule.FREQUENCY_CAP, utc(2026, 3, 4, 4))


# -- suppress ------------------------------------------------------------------------------------------


@pytest.fixture
def ops(make_user):
    return make_user("ops", role="ADMIN", admin=True)


def test_suppress_mode_writes_the_rest_suppressed_and_the_bulk_answer_counts_them(addis, make_user, api, ops, clock):
    clock.set(utc(2026, 3, 2, 9, 0))
    _cap(addis, limit=3, over_limit="suppress")
    make_user("learner")
    answers = []
    for _ in range(5):
        r = api(ops).post(f"{V1}/bulk-sms", {"message": "Quiz tomorrow", "role": "STUDENT"}, format="json")
        assert r.status_code == 200, r.content
        answers.append(r.json()["data"])
    assert [(a["sent"], a["pending"], a["suppressed"]) for a in answers] == [(1, 0, 0)] * 3 + [(0, 0, 1)] * 2
    held = Notification.objects.filter(delivery_status="suppressed")
    assert held.count() == 2 and {r.rule for r in held} == {DeliveryRule.FREQUENCY_CAP}
    assert len(_sms_to()) == 3


def test_the_rule_is_counted_in_the_metrics(addis, make_user, clock, django_capture_on_commit_callbacks):
    from prometheus_client.parser import text_string_to_metric_families

    def held() -> float:
        metrics.flush()
        families = text_string_to_metric_families(metrics.exposition().decode())
        return sum(
            s.value
            for f in families
            if f.name == "notify_delivery_rules"
            for s in f.samples
            if s.labels.get("rule") == "frequency_cap" and s.labels.get("channel") == "sms"
        )

    clock.set(utc(2026, 3, 2, 9, 0))
    _cap(addis, limit=1)
    user = make_user("learner")
    before = held()
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(3):
            _send(addis, _to([user]), f"bulk:{i}")
    assert held() == before + 2


# -- who is capped ---------------------------------------------------------------------------------


def test_critical_types_pass_uncounted(addis, make_user, clock):
    clock.set(utc(2026, 3, 2, 9, 0))
    _cap(addis, limit=1)
    user = make_user("learner")
    assert _send(addis, _to([user]), "bulk:a").sent == 1
    # ROLE_CHANGE is flagged critical in the shipped defaults; a critical message likewise.
    role = _send(addis, _to([user]), "event:role", message=Message(title="Role", notification_type="ROLE_CHANGE"))
    alert = _send(addis, _to([user]), "alert:1", message=Message(title="Down", critical=True))
    assert (role.sent, alert.sent) == (1, 1)
    assert FrequencyCapCount.objects.get().count == 1


def test_each_channel_has_its_own_cap_and_in_app_none(addis, make_user, clock):
    clock.set(utc(2026, 3, 2, 9, 0))
    _cap(addis, channel=Channel.SMS, limit=1)
    _cap(addis, channel=Channel.EMAIL, limit=2)
    user = make_user("learner")
    for i in range(3):
        _send(addis, _to([user]), f"bulk:{i}", channels=(Channel.SMS, Channel.EMAIL, Channel.IN_APP))
    by_channel = {
        channel: sorted(Notification.objects.filter(channel=channel).values_list("delivery_status", flat=True))
        for channel in (Channel.SMS, Channel.EMAIL, Channel.IN_APP)
    }
    assert by_channel == {
        Channel.SMS: ["pending", "pending", "sent"],
        Channel.EMAIL: ["pending", "sent", "sent"],
        Channel.IN_APP: ["sent", "sent", "sent"],
    }


def test_recipients_known_only_by_address_are_capped_by_address(addis, clock):
    clock.set(utc(2026, 3, 2, 9, 0))
    _cap(addis, limit=1)
    guest, other = Recipient(address="+251911000099"), Recipient(address="+251911000098")
    first = _send(addis, [guest, other], "bulk:a")
    second = _send(addis, [guest], "bulk:b")
    assert (first.sent, second.sent, second.pending) == (2, 0, 1)
    assert set(FrequencyCapCount.objects.values_list("recipient_key", flat=True)) == {
        "phone:+251911000099",
        "phone:+251911000098",
    }


def test_a_platform_without_caps_writes_no_counters(platform, make_user, clock):
    other = PlatformFactory(key="other-platform")
    _cap(other, limit=1)  # caps elsewhere do not touch this platform's sends
    users = [make_user(f"u{i}") for i in range(3)]
    for i in range(3):
        result = _send(platform, _to(users), f"bulk:{i}")
        assert result.sent == 3
    assert not FrequencyCapCount.objects.exists()


def test_a_bulk_send_caps_each_recipient_in_one_pass(addis, make_user, clock):
    clock.set(utc(2026, 3, 2, 9, 0))
    _cap(addis, limit=2)
    users = [make_user(f"u{i}") for i in range(50)]
    for i in range(3):
        _send(addis, _to(users), f"bulk:{i}")
    assert send_counts(source="bulk:1").sent == 50
    assert (send_counts(source="bulk:2").sent, send_counts(source="bulk:2").pending) == (0, 50)


# -- concurrency (PostgreSQL) ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_racing_sends_never_exceed_the_cap(platform, make_user):
    if connection.vendor != "postgresql":
        pytest.skip("row locks of the counter upsert: PostgreSQL")
    _cap(platform, limit=3)
    user = make_user("learner")
    start = threading.Barrier(6)
    errors = []

    def send(n):
        try:
            start.wait()
            for i in range(2):
                _send(platform, _to([user]), f"race:{n}:{i}")
        except Exception as exc:  # noqa: BLE001 - any failure in a thread is asserted on below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = Notification.objects.filter(user=user)
    assert rows.count() == 12
    assert rows.filter(delivery_status="sent").count() == 3
    assert rows.filter(delivery_status="pending", rule=DeliveryRule.FREQUENCY_CAP).count() == 9


# -- the API ---------------------------------------------------------------------------------------


def test_admin_sets_reads_and_removes_a_cap(api, platform, ops):
    client = api(ops)
    url = CAPS.format(platform.key)
    assert client.get(url).json() == {"platform": platform.key, "time_zone": platform.time_zone, "caps": []}
    r = client.put(url + "sms/", {"limit": 3, "window": "day", "over_limit": "suppress"}, format="json")
    assert r.status_code == 200, r.content
    assert {k: r.json()[k] for k in ("channel", "limit", "window", "over_limit")} == {
        "channel": "sms",
        "limit": 3,
        "window": "day",
        "over_limit": "suppress",
    }
    r = client.put(url + "email/", {"limit": 10}, format="json")
    assert (r.json()["window"], r.json()["over_limit"]) == ("day", "defer")
    assert [c["channel"] for c in client.get(url).json()["caps"]] == ["email", "sms"]
    assert client.get(url + "sms/").json()["limit"] == 3
    assert client.delete(url + "sms/").json() == {"message": "Cap removed.", "deleted": True}
    assert client.get(url + "sms/").status_code == 404
    assert client.delete(url + "sms/").json()["deleted"] is False


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"limit": 0},
        {"limit": -1},
        {"limit": "three"},
        {"limit": 10**12},
        {"limit": 3, "window": "month"},
        {"limit": 3, "over_limit": "drop"},
        {"limit": 3, "windw": "day"},
        ["limit", 3],
        "3",
    ],
)
def test_hostile_input_is_a_400_and_saves_nothing(api, platform, ops, body):
    r = api(ops).put(CAPS.format(platform.key) + "sms/", body, format="json")
    assert r.status_code == 400, r.content
    assert not FrequencyCap.objects.exists()


@pytest.mark.parametrize("channel", ["in_app", "fax", "..", "SMS"])
def test_an_unknown_or_uncapped_channel_is_a_404(api, platform, ops, channel):
    r = api(ops).put(CAPS.format(platform.key) + f"{channel}/", {"limit": 3}, format="json")
    assert r.status_code == 404, r.content
    assert not FrequencyCap.objects.exists()


def test_another_tenant_can_neither_read_nor_change_the_caps(api, platform, make_user):
    _cap(platform, limit=3)
    other = PlatformFactory(key="other-platform")
    stranger = make_member(platform=other, username="stranger", role="ADMIN", admin=True)
    client = api(stranger)
    url = CAPS.format(platform.key)
    assert client.get(url).status_code == 404
    assert client.get(url + "sms/").status_code == 404
    assert client.put(url + "sms/", {"limit": 100}, format="json").status_code == 404
    assert client.delete(url + "sms/").status_code == 404
    assert FrequencyCap.objects.get().limit == 3


def test_a_learner_may_not_change_the_caps(api, platform, make_user):
    learner = make_user("learner")
    assert api(learner).put(CAPS.format(platform.key) + "sms/", {"limit": 100}, format="json").status_code == 403


# -- every send path is capped (the rule lives in the front door) ---------------------------------

EVENTS = "/api/notification/v1/orgs/acme-learning/events/"


def test_a_scheduled_job_falling_due_is_capped(addis, make_user, api, ops, clock):
    clock.set(utc(2026, 3, 2, 8, 0))
    _cap(addis, limit=1)
    learner = make_user("learner")
    _send(addis, _to([learner]), "bulk:first")
    r = api(ops).post(
        f"{V1}/bulk-sms",
        {"message": "Quiz tomorrow", "role": "STUDENT", "scheduled_at": "2026-03-02T09:00:00Z"},
        format="json",
    )
    assert r.status_code == 201, r.content
    job_id = r.json()["data"]["id"]
    clock.set(utc(2026, 3, 2, 9, 1))
    scheduler.sweep()
    deliveries = api(ops).get(f"{V1}/scheduled/{job_id}/deliveries").json()["deliveries"]
    assert [(d["status"], d["rule"], d["next_attempt_at"]) for d in deliveries] == [
        ("pending", "frequency_cap", "2026-03-02T21:00:00.000Z")
    ]


def test_an_event_is_capped_on_email(addis, make_user, api, ops, clock):
    clock.set(utc(2026, 3, 2, 9, 0))
    _cap(addis, channel=Channel.EMAIL, limit=1)
    make_user("jane.doe")
    answers = []
    for course in ("Data", "Maths"):
        r = api(ops, keyword="Token").post(
            EVENTS,
            {"type": "USER_NOTIF_COURSE_ENROLLMENT", "recipients": ["jane.doe"], "context": {"course_name": course}},
            format="json",
        )
        assert r.status_code == 200, r.content
        answers.append(r.json()["deliveries"])
    assert [(a["email"]["sent"], a["email"]["pending"]) for a in answers] == [(1, 0), (0, 1)]
    assert [a["in_app"]["sent"] for a in answers] == [1, 1]


@pytest.mark.parametrize(("alert_type", "capped"), [("info", True), ("critical", False)])
def test_alerts_are_capped_unless_critical(addis, make_user, clock, settings, alert_type, capped):
    from alerts import services as alert_services

    settings.ALERTS_CHANNELS_BY_TYPE = {t: ["sms"] for t in ("info", "warning", "critical")}
    clock.set(utc(2026, 3, 2, 9, 0))
    _cap(addis, limit=1)
    user = make_user("learner")
    _send(addis, _to([user]), "bulk:first")
    alert = alert_services.alert_create(platform=addis, user=user, title="Server down", message="m", type=alert_type)
    alert_services.alert_notify(alert_id=alert.pk)
    row = Notification.objects.get(user=user, channel="sms", source__startswith="alert")
    assert (row.delivery_status, row.rule) == (("pending", "frequency_cap") if capped else ("sent", ""))
