"""Quiet hours that defer, never drop: time zones, midnight, daylight saving, critical messages, the API."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
from django.contrib.auth import get_user_model

from alerts import services as alert_services
from alerts.models import AlertType
from notifications import scheduler
from notifications.backends import locmem
from notifications.backends.in_app import _event
from notifications.channels import Channel
from notifications.models import DeliveryRule, Notification
from notifications.pipeline import Message, Recipient, notification_send, send_counts
from notifications.realtime import socket_frame
from notifications.zones import window_end
from templates_app.models import FrequencyCap, FrequencyCapCount, QuietHours

pytestmark = pytest.mark.django_db

PREFS = "/api/notification/v1/orgs/acme-learning/users/{}/preferences/"
NIGHT = (time(22, 0), time(7, 0))


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def night_platform(platform):
    platform.quiet_hours_start, platform.quiet_hours_end = NIGHT
    platform.save(update_fields=["quiet_hours_start", "quiet_hours_end"])
    return platform


def _member(make_user, name, zone):
    return make_user(name, timezone=zone)


def _sms(platform, users, source="bulk:night", message=None, channels=(Channel.SMS,)):
    return notification_send(
        platform=platform,
        source=source,
        channels=list(channels),
        recipients=[Recipient(user_id=u.pk) for u in users],
        message=message or Message(title="Reminder", body="Quiz tomorrow"),
    )


# -- the window arithmetic -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "now", "expected"),
    [
        # Addis Ababa is UTC+3: 23:00 local is inside 22:00-07:00, which ends 07:00 local = 04:00 UTC.
        ("Africa/Addis_Ababa", utc(2026, 3, 2, 20, 0), utc(2026, 3, 3, 4, 0)),
        # After midnight, the same night's window ends the same morning.
        ("Africa/Addis_Ababa", utc(2026, 3, 2, 23, 30), utc(2026, 3, 3, 4, 0)),
        # 15:00 in Lima: outside.
        ("America/Lima", utc(2026, 3, 2, 20, 0), None),
        # The end is exclusive: at 07:00 local the window is over.
        ("Africa/Addis_Ababa", utc(2026, 3, 3, 4, 0), None),
        # New York springs forward on 2026-03-08 (02:00 -> 03:00): 23:00 EST on the 7th, the window ends
        # 07:00 EDT = 11:00 UTC, not 12:00.
        ("America/New_York", utc(2026, 3, 8, 4, 0), utc(2026, 3, 8, 11, 0)),
        # And falls back on 2026-11-01: 00:00 EDT, the window ends 07:00 EST = 12:00 UTC.
        ("America/New_York", utc(2026, 11, 1, 4, 0), utc(2026, 11, 1, 12, 0)),
    ],
)
def test_window_end_across_zones_midnight_and_daylight_saving(zone, now, expected):
    assert window_end(start=NIGHT[0], end=NIGHT[1], zone_name=zone, now=now) == expected


def test_a_window_that_does_not_cross_midnight_and_an_empty_one():
    lunch = (time(12, 0), time(13, 30))
    assert window_end(start=lunch[0], end=lunch[1], zone_name="UTC", now=utc(2026, 1, 5, 12, 10)) == utc(
        2026, 1, 5, 13, 30
    )
    assert window_end(start=lunch[0], end=lunch[1], zone_name="UTC", now=utc(2026, 1, 5, 14, 0)) is None
    assert window_end(start=time(8, 0), end=time(8, 0), zone_name="UTC", now=utc(2026, 1, 5, 8, 0)) is None


def test_an_end_inside_the_spring_forward_gap_is_just_after_the_jump():
    # 02:30 does not exist in New York on 2026-03-08; the window ends when the clocks jump (07:00 UTC).
    ends = window_end(start=time(1, 0), end=time(2, 30), zone_name="America/New_York", now=utc(2026, 3, 8, 6, 30))
    assert ends == utc(2026, 3, 8, 7, 30)


# -- sends under a frozen clock ---------------------------------------------------------------


def test_sms_inside_quiet_hours_waits_for_the_window_end_in_the_recipients_zone(night_platform, make_user, clock):
    clock.set(utc(2026, 3, 2, 20, 0))
    addis = _member(make_user, "addis", "Africa/Addis_Ababa")
    lima = _member(make_user, "lima", "America/Lima")
    result = _sms(night_platform, [addis, lima])
    assert (result.sent, result.pending, result.suppressed) == (1, 1, 0)
    waiting = Notification.objects.get(user=addis)
    assert (waiting.delivery_status, waiting.rule, waiting.next_attempt_at) == (
        "pending",
        DeliveryRule.QUIET_HOURS,
        utc(2026, 3, 3, 4, 0),
    )
    assert [m["address"] for m in locmem.outbox["sms"]] == [lima.phone_number]

    clock.set(utc(2026, 3, 3, 3, 59))
    scheduler.sweep()
    assert len(locmem.outbox["sms"]) == 1
    clock.set(utc(2026, 3, 3, 4, 0))
    scheduler.sweep()
    scheduler.sweep()
    assert sorted(m["address"] for m in locmem.outbox["sms"]) == sorted([lima.phone_number, addis.phone_number])
    waiting.refresh_from_db()
    assert (waiting.delivery_status, waiting.rule) == ("sent", DeliveryRule.QUIET_HOURS)


def test_across_the_dst_change_the_sms_goes_at_seven_on_the_wall_clock(platform, make_user, clock):
    user = _member(make_user, "newyork", "America/New_York")
    QuietHours.objects.create(platform=platform, user=user, start=NIGHT[0], end=NIGHT[1])
    clock.set(utc(2026, 3, 8, 4, 0))  # 23:00 EST on the 7th
    _sms(platform, [user])
    row = Notification.objects.get(user=user)
    assert row.next_attempt_at == utc(2026, 3, 8, 11, 0)  # 07:00 EDT
    clock.set(utc(2026, 3, 8, 10, 59))
    scheduler.sweep()
    assert locmem.outbox["sms"] == []
    clock.set(utc(2026, 3, 8, 11, 0))
    scheduler.sweep()
    assert [m["address"] for m in locmem.outbox["sms"]] == [user.phone_number]


def test_own_quiet_hours_win_over_the_platform_default_and_an_empty_window_means_none(night_platform, make_user, clock):
    clock.set(utc(2026, 3, 2, 20, 0))  # 23:00 in Addis
    none = _member(make_user, "none", "Africa/Addis_Ababa")
    QuietHours.objects.create(platform=night_platform, user=none, start=time(0, 0), end=time(0, 0))
    late = _member(make_user, "late", "Africa/Addis_Ababa")
    QuietHours.objects.create(platform=night_platform, user=late, start=time(23, 30), end=time(6, 0))
    result = _sms(night_platform, [none, late])
    assert (result.sent, result.pending) == (2, 0)


def test_bare_addresses_use_the_platform_time_zone(night_platform, clock):
    night_platform.time_zone = "Africa/Addis_Ababa"
    night_platform.save(update_fields=["time_zone"])
    clock.set(utc(2026, 3, 2, 20, 0))
    result = notification_send(
        platform=night_platform,
        source="bulk:guests",
        channels=[Channel.SMS],
        recipients=[Recipient(address="+251911000099")],
        message=Message(title="Hi", body="Hi"),
    )
    assert result.pending == 1
    assert Notification.objects.get().next_attempt_at == utc(2026, 3, 3, 4, 0)


def test_push_and_email_wait_in_app_arrives_at_once_but_silently(night_platform, make_user, clock):
    clock.set(utc(2026, 3, 2, 20, 0))
    user = _member(make_user, "sleeper", "Africa/Addis_Ababa")
    result = _sms(night_platform, [user], channels=(Channel.IN_APP, Channel.EMAIL, Channel.PUSH))
    rows = {r.channel: r for r in Notification.objects.filter(user=user)}
    assert {c: (r.delivery_status, r.rule) for c, r in rows.items()} == {
        Channel.IN_APP: ("sent", DeliveryRule.QUIET_HOURS),
        Channel.EMAIL: ("pending", DeliveryRule.QUIET_HOURS),
        Channel.PUSH: ("pending", DeliveryRule.QUIET_HOURS),
    }
    assert (result.sent, result.pending) == (1, 2)
    assert '"silent": true' in socket_frame(_event(rows[Channel.IN_APP]))


def test_critical_types_and_critical_alerts_pass_through(night_platform, make_user, clock):
    clock.set(utc(2026, 3, 2, 20, 0))
    user = _member(make_user, "sleeper", "Africa/Addis_Ababa")
    # ROLE_CHANGE is flagged critical in the shipped defaults.
    result = _sms(
        night_platform, [user], source="event:role", message=Message(title="Role", notification_type="ROLE_CHANGE")
    )
    assert (result.sent, result.pending) == (1, 0)
    result = _sms(night_platform, [user], source="bulk:plain")
    assert (result.sent, result.pending) == (0, 1)


@pytest.mark.parametrize(("alert_type", "waits"), [(AlertType.INFO, True), (AlertType.CRITICAL, False)])
def test_alerts_through_the_front_door(night_platform, make_user, clock, settings, alert_type, waits):
    settings.ALERTS_CHANNELS_BY_TYPE = {t: ["in_app", "sms"] for t in ("info", "warning", "critical")}
    clock.set(utc(2026, 3, 2, 20, 0))
    user = _member(make_user, "sleeper", "Africa/Addis_Ababa")
    alert = alert_services.alert_create(
        platform=night_platform, user=user, title="Server down", message="m", type=alert_type
    )
    alert_services.alert_notify(alert_id=alert.pk)
    row = Notification.objects.get(user=user, channel="sms")
    assert row.delivery_status == ("pending" if waits else "sent")
    assert row.rule == (DeliveryRule.QUIET_HOURS if waits else "")


# -- the preferences API ----------------------------------------------------------------------


def test_preferences_api_sets_zone_and_quiet_hours(api, platform, make_user):
    jane = make_user("jane.doe")
    client = api(jane)
    r = client.patch(
        PREFS.format("jane.doe"),
        {"time_zone": "Africa/Addis_Ababa", "quiet_hours": {"start": "22:00", "end": "07:00"}},
        format="json",
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["time_zone"], body["quiet_hours"], body["platform_quiet_hours"]) == (
        "Africa/Addis_Ababa",
        {"start": "22:00", "end": "07:00"},
        None,
    )
    jane.refresh_from_db()
    assert jane.timezone == "Africa/Addis_Ababa"
    assert QuietHours.objects.filter(user=jane, start=time(22, 0), end=time(7, 0)).exists()
    r = client.patch(PREFS.format("jane.doe"), {"quiet_hours": None}, format="json")
    assert r.status_code == 200 and r.json()["quiet_hours"] is None
    assert not QuietHours.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"time_zone": "Mars/Olympus_Mons"},
        {"time_zone": "../../etc/passwd"},
        {"time_zone": ""},
        {"quiet_hours": {"start": "25:00", "end": "07:00"}},
        {"quiet_hours": {"start": "22:00"}},
        {"quiet_hours": "22:00-07:00"},
        {"quiet_hours": {"start": "22:00:00", "end": "7"}},
        {"time_zone": "Africa/Addis_Ababa", "quiet_hours": {"start": "x", "end": "07:00"}},
        {},
    ],
)
def test_hostile_zone_or_time_is_a_400_and_writes_nothing(api, platform, make_user, body):
    jane = make_user("jane.doe")
    r = api(jane).patch(PREFS.format("jane.doe"), body, format="json")
    assert r.status_code == 400, r.content
    jane.refresh_from_db()
    assert jane.timezone == "UTC" and not QuietHours.objects.exists()


# -- 10,000 recipients, two waves -----------------------------------------------------------


def test_ten_thousand_sms_half_in_quiet_hours_go_out_in_two_waves_each_once(
    night_platform, clock, settings, afromessage_server, loopback_only
):
    from notifications.tests.fakes import backend_settings

    settings.AFROMESSAGE = afromessage_server.settings
    settings.NOTIFICATION_BACKENDS = backend_settings(
        settings.NOTIFICATION_BACKENDS, sms="notifications.backends.sms.AfroMessageBackend"
    )
    User = get_user_model()
    User.objects.bulk_create(
        [
            User(
                username=f"bulk{i}",
                phone_number=f"+2519{20000000 + i:08d}",
                timezone="Africa/Addis_Ababa" if i % 2 else "America/Lima",
            )
            for i in range(10_000)
        ],
        batch_size=2000,
    )
    users = list(User.objects.filter(username__startswith="bulk").values_list("pk", "phone_number", "timezone"))
    asleep = {phone for _, phone, zone in users if zone == "Africa/Addis_Ababa"}
    awake = {phone for _, phone, zone in users if zone == "America/Lima"}

    def sent_numbers():
        numbers = []
        for call in afromessage_server.requests:
            to = call.params.get("to", [])
            numbers += [to] if isinstance(to, str) else list(to)
        return numbers

    clock.set(utc(2026, 3, 2, 20, 0))  # 23:00 in Addis Ababa, 15:00 in Lima
    result = notification_send(
        platform=night_platform,
        source="bulk:10k",
        channels=[Channel.SMS],
        recipients=[Recipient(user_id=pk) for pk, _, _ in users],
        message=Message(title="Exam", body="Your exam is tomorrow at 9:00."),
    )
    assert (result.total_recipients, result.sent, result.pending, result.failed) == (10_000, 5_000, 5_000, 0)
    first = sent_numbers()
    assert len(first) == len(set(first)) == 5_000 and set(first) == awake

    clock.set(utc(2026, 3, 3, 3, 59))
    scheduler.sweep()
    assert len(sent_numbers()) == 5_000  # nobody woken early
    clock.set(utc(2026, 3, 3, 4, 0))  # 07:00 in Addis Ababa
    # Each sweep claims up to 500 due rows (one queued item); the beat's sweeps go on until none is left.
    sweeps = 0
    while scheduler.sweep().get("deliveries", 0):
        sweeps += 1
        assert sweeps <= 20
    both = sent_numbers()
    assert len(both) == len(set(both)) == 10_000
    assert set(both[5_000:]) == asleep
    counts = send_counts(source="bulk:10k")
    assert (counts.sent, counts.pending, counts.failed) == (10_000, 0, 0)


# -- every send path goes through the rule (it lives in the front door) -------------------------

V1 = "/api/v1/notifications"
EVENTS = "/api/notification/v1/orgs/acme-learning/events/"


@pytest.fixture
def ops(make_user):
    return make_user("ops", role="ADMIN", admin=True, timezone="America/Lima")


def test_bulk_sms_now_waits_and_its_counts_show_it(night_platform, make_user, api, ops, clock):
    clock.set(utc(2026, 3, 2, 20, 0))
    _member(make_user, "sleeper", "Africa/Addis_Ababa")
    r = api(ops).post(f"{V1}/bulk-sms", {"message": "Quiz tomorrow", "role": "STUDENT"}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"] == {"total_recipients": 1, "sent": 0, "failed": 0, "pending": 1, "suppressed": 0}
    assert locmem.outbox["sms"] == []


def test_a_scheduled_job_falling_due_at_night_waits_too(night_platform, make_user, api, ops, clock):
    clock.set(utc(2026, 3, 2, 19, 0))
    sleeper = _member(make_user, "sleeper", "Africa/Addis_Ababa")
    r = api(ops).post(
        f"{V1}/bulk-sms",
        {"message": "Quiz tomorrow", "role": "STUDENT", "scheduled_at": "2026-03-02T20:30:00Z"},
        format="json",
    )
    assert r.status_code == 201, r.content
    job_id = r.json()["data"]["id"]
    clock.set(utc(2026, 3, 2, 20, 31))
    scheduler.sweep()
    row = Notification.objects.get(user=sleeper)
    assert (row.source, row.delivery_status, row.next_attempt_at) == (
        f"scheduled:{job_id}",
        "pending",
        utc(2026, 3, 3, 4, 0),
    )
    deliveries = api(ops).get(f"{V1}/scheduled/{job_id}/deliveries").json()["deliveries"]
    assert [(d["status"], d["rule"], d["next_attempt_at"]) for d in deliveries] == [
        ("pending", "quiet_hours", "2026-03-03T04:00:00.000Z")
    ]
    clock.set(utc(2026, 3, 3, 4, 0))
    scheduler.sweep()
    assert [m["address"] for m in locmem.outbox["sms"]] == [sleeper.phone_number]


def test_an_event_at_night_emails_in_the_morning_and_lists_in_app_silently(night_platform, make_user, api, ops, clock):
    clock.set(utc(2026, 3, 2, 20, 0))
    _member(make_user, "jane.doe", "Africa/Addis_Ababa")
    r = api(ops, keyword="Token").post(
        EVENTS,
        {"type": "USER_NOTIF_COURSE_ENROLLMENT", "recipients": ["jane.doe"], "context": {"course_name": "Data"}},
        format="json",
    )
    assert r.status_code == 200, r.content
    deliveries = r.json()["deliveries"]
    assert deliveries["email"]["pending"] == 1 and deliveries["in_app"]["sent"] == 1
    assert Notification.objects.get(channel="in_app").rule == DeliveryRule.QUIET_HOURS


BUILDER = "/api/notification/v1/orgs/acme-learning/notification-builder/"


def test_a_builder_run_at_night_texts_the_sleeper_once_in_the_morning(
    night_platform, make_user, api, ops, clock, django_capture_on_commit_callbacks
):
    from builder.models import Build, BuildRecipient

    clock.set(utc(2026, 3, 2, 20, 0))  # 23:00 in Addis Ababa, 15:00 in Lima
    # A cap the send stays under: its counter shows how often the sleeper was asked for.
    FrequencyCap.objects.create(platform=night_platform, channel=Channel.SMS, limit=5, window="day")
    sleeper = _member(make_user, "sleeper", "Africa/Addis_Ababa")
    awake = _member(make_user, "awake", "America/Lima")
    client = api(ops, keyword="Token")
    preview = client.post(
        BUILDER + "preview/",
        {
            "template_data": {"message_title": "Maintenance", "message_body": "Hi {{ username }}, back at 9:00."},
            "channels": [4],  # sms
            "sources": [{"type": "username", "data": "sleeper,awake"}],
            "context": {},
        },
        format="json",
    )
    assert preview.status_code == 200, preview.content
    build_id = preview.json()["build_id"]
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(BUILDER + "send/", {"build_id": build_id}, format="json")
    assert r.status_code == 200, r.content

    assert [m["address"] for m in locmem.outbox["sms"]] == [awake.phone_number]
    row = Notification.objects.get(source=f"build:{build_id}", user=sleeper)
    assert (row.delivery_status, row.rule, row.next_attempt_at) == (
        "pending",
        DeliveryRule.QUIET_HOURS,
        utc(2026, 3, 3, 4, 0),
    )
    # The build waits with its sleeper: neither sent nor failed, the build still sending.
    assert BuildRecipient.objects.get(build_id=build_id, user=sleeper).status == "pending"
    assert Build.objects.get(pk=build_id).status == "sending"
    detail = client.get(BUILDER + f"{build_id}/").json()
    assert detail["deliveries"]["sms"] == {"sent": 1, "failed": 0, "pending": 1, "suppressed": 0}

    # The build's run comes back at the end of each lease while its sleeper waits: it settles
    # the sleeper from the waiting delivery and never hands them to the front door again.
    for hour, minute in ((20, 6), (20, 12), (23, 30)):
        clock.set(utc(2026, 3, 2, hour, minute))
        scheduler.sweep()
    counted = FrequencyCapCount.objects.filter(recipient_key=f"user:{sleeper.pk}").values_list("count", flat=True)
    assert sum(counted) == 1
    assert BuildRecipient.objects.get(build_id=build_id, user=sleeper).status == "pending"

    clock.set(utc(2026, 3, 3, 3, 59))
    scheduler.sweep()
    assert len(locmem.outbox["sms"]) == 1  # nobody woken early
    clock.set(utc(2026, 3, 3, 4, 0))  # 07:00 in Addis Ababa
    scheduler.sweep()
    assert [m["address"] for m in locmem.outbox["sms"]] == [awake.phone_number, sleeper.phone_number]
    # The build's run comes back at the end of its lease (its 03:59 run found the SMS still waiting)
    # and settles its recipients from their deliveries.
    clock.set(utc(2026, 3, 3, 4, 5))
    scheduler.sweep()
    scheduler.sweep()
    assert len(locmem.outbox["sms"]) == 2
    assert locmem.outbox["sms"][1]["body"] == "Hi sleeper, back at 9:00."
    build = Build.objects.get(pk=build_id)
    assert (build.status, build.sent_count, build.failed_count) == ("completed", 2, 0)
    assert set(BuildRecipient.objects.filter(build_id=build_id).values_list("status", flat=True)) == {"sent"}
