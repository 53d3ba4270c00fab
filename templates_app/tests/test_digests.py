"""Digests: rules over shipped defaults, buckets joined by one upsert, sent once by the sweep."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from notifications import lifecycle, scheduler
from notifications.backends import locmem
from notifications.models import DeliveryRule, DeliveryStatus, Notification
from notifications.pipeline import Message, Recipient
from notifications.pipeline.write import deliveries_write
from notifications.tests.factories import PlatformFactory
from templates_app import defaults
from templates_app.automation.events import event_notify
from templates_app.digests import buckets
from templates_app.digests.rules import DigestPlan, digest_plan, plan_from, rule_validate
from templates_app.messages import render_fields
from templates_app.models import DigestBucket, DigestCadence, DigestRule, DigestStatus, UserNotificationPreference

pytestmark = pytest.mark.django_db
ENROLL = "ADMIN_NOTIF_COURSE_ENROLLMENT"


@pytest.fixture
def announced():
    seen = []

    def listener(sender, platform_id, payload, **kwargs):
        seen.append(payload)

    lifecycle.digest_sent.connect(listener)
    yield seen
    lifecycle.digest_sent.disconnect(listener)


def enrollment(platform, admin, n, *, start=0):
    return [
        event_notify(
            platform=platform,
            notification_type=ENROLL,
            recipients=[admin.username],
            context={"course_name": f"Course {i}", "student_name": f"Student {i}", "student_email": f"s{i}@x.org"},
            event_id=f"enroll-{i}",
        )
        for i in range(start, start + n)
    ]


def sweep_after(bucket: DigestBucket) -> dict:
    return scheduler.sweep(now=bucket.window_end + timedelta(seconds=1))


def test_trailing_digest_collects_email_while_in_app_stays_live(platform, admin, announced):
    DigestRule.objects.create(platform=platform, notification_type=ENROLL)  # the shipped default: hourly, trailing
    results = enrollment(platform, admin, 3)

    first = results[0]
    assert first["digest"]["mode"] == "trailing" and first["digest"]["channels"] == ["email"]
    assert first["digest"]["joined"] == 1 and first["digest"]["sent_at_once"] == 0
    assert first["deliveries"]["in_app"]["sent"] == 1  # in-app is not digested: it stays live
    assert first["deliveries"]["email"] == {"sent": 0, "failed": 0, "pending": 0, "suppressed": 0, "opted_out": 0}
    assert Notification.objects.filter(user=admin, channel="email").count() == 0
    assert Notification.objects.filter(user=admin, channel="in_app").count() == 3

    bucket = DigestBucket.objects.get()
    assert (bucket.status, bucket.count, len(bucket.items)) == (DigestStatus.OPEN, 3, 3)
    assert first["digest"]["goes_out_at"] == bucket.window_end.isoformat().replace("+00:00", "Z")
    assert bucket.window_end.minute == 0 and bucket.window_end - bucket.window_start == timedelta(hours=1)

    assert scheduler.sweep(now=bucket.window_end - timedelta(seconds=1))["digests"] == 0  # not yet
    assert sweep_after(bucket)["digests"] == 1
    digest = Notification.objects.get(user=admin, channel="email")
    assert digest.source == f"digest:{bucket.pk}" and digest.rule == DeliveryRule.DIGEST
    assert digest.delivery_status == DeliveryStatus.SENT
    assert digest.title == "3 new enrollments on Acme Learning"
    assert "Student 0 (s0@x.org) enrolled in Course 0" in digest.body
    assert "Student 2 (s2@x.org) enrolled in Course 2" in digest.body
    assert digest.context == {"digest_id": str(bucket.pk), "count": 3}
    assert len(locmem.outbox["email"]) == 1
    bucket.refresh_from_db()
    assert bucket.status == DigestStatus.SENT and bucket.sent_at is not None
    assert [a["digest_id"] for a in announced] == [str(bucket.pk)]
    assert announced[0]["count"] == 3 and announced[0]["sent"] == 1

    # Sent once: another sweep finds nothing, and a later event opens the next window.
    assert sweep_after(bucket)["digests"] == 0
    assert len(locmem.outbox["email"]) == 1


def test_an_event_posted_again_joins_once(platform, admin):
    DigestRule.objects.create(platform=platform, notification_type=ENROLL)
    enrollment(platform, admin, 2)
    again = enrollment(platform, admin, 2)  # the same event ids
    bucket = DigestBucket.objects.get()
    assert bucket.count == 2 and len(bucket.items) == 2
    assert again[0]["digest"]["joined"] == 1


def test_leading_mode_sends_the_first_event_at_once_and_collects_the_rest(platform, admin, announced):
    DigestRule.objects.create(platform=platform, notification_type=ENROLL, mode="leading", window_minutes=15)
    results = enrollment(platform, admin, 3)
    assert results[0]["digest"]["sent_at_once"] == 1 and results[0]["deliveries"]["email"]["sent"] == 1
    assert results[1]["digest"]["joined"] == 1 and results[1]["deliveries"]["email"]["sent"] == 0
    emails = Notification.objects.filter(user=admin, channel="email")
    assert [n.title for n in emails] == ["New enrollment in Course 0"]

    bucket = DigestBucket.objects.get()
    assert bucket.count == 2 and len(bucket.items) == 3
    assert bucket.window_end - bucket.window_start == timedelta(minutes=15)
    sweep_after(bucket)
    digest = Notification.objects.get(user=admin, channel="email", source=bucket.source)
    assert digest.title == "2 new enrollments on Acme Learning"
    assert "enrolled in Course 1" in digest.body and "Course 0" not in digest.body
    assert len(announced) == 1


def test_a_leading_window_with_no_second_event_sends_no_digest(platform, admin, announced):
    DigestRule.objects.create(platform=platform, notification_type=ENROLL, mode="leading")
    enrollment(platform, admin, 1)
    bucket = DigestBucket.objects.get()
    sweep_after(bucket)
    bucket.refresh_from_db()
    assert bucket.status == DigestStatus.EMPTY
    assert Notification.objects.filter(source=bucket.source).count() == 0
    assert announced == []


def test_critical_types_are_never_digested(platform, learner):
    critical = "PLATFORM_INVITATION"
    assert critical in defaults.CRITICAL_TYPES
    with pytest.raises(ValidationError) as exc:
        rule_validate(DigestRule(platform=platform, notification_type=critical, window_minutes=10, channels=["email"]))
    assert "never digested" in str(exc.value)
    # Even a rule written around the validation is ignored.
    DigestRule.objects.create(platform=platform, notification_type=critical, window_minutes=10, channels=["email"])
    assert digest_plan(platform=platform, notification_type=critical) is None
    result = event_notify(
        platform=platform, notification_type=critical, recipients=["jane.doe"], context={"inviter_name": "Ann"}
    )
    assert result["digest"] is None and result["deliveries"]["email"]["sent"] == 1
    assert not DigestBucket.objects.exists()


def test_disabled_or_absent_rule_sends_live(platform, admin):
    DigestRule.objects.create(platform=platform, notification_type=ENROLL, enabled=False)
    result = enrollment(platform, admin, 1)[0]
    assert result["digest"] is None and result["deliveries"]["email"]["sent"] == 1
    assert not DigestBucket.objects.exists()


def test_a_platform_rule_overrides_the_shipped_default_field_by_field(platform):
    rule = DigestRule(
        platform=platform,
        notification_type=ENROLL,
        window_minutes=10,
        channels=["email", "in_app"],
        key_context="course_id",
        message_title="{{ count }} enrollments",
    )
    rule_validate(rule)
    plan = plan_from(rule)
    assert (plan.window_minutes, plan.daily_at, plan.mode) == (10, None, "trailing")
    assert plan.channels == ("email", "in_app") and plan.key_context == "course_id"
    assert plan.template["message_title"] == "{{ count }} enrollments"
    assert plan.template["email_subject"] == defaults.DIGEST_BY_TYPE[ENROLL].email_subject
    # A type without a shipped digest must say what its window and channels are.
    with pytest.raises(ValidationError):
        rule_validate(DigestRule(platform=platform, notification_type="USER_NOTIF_COURSE_COMPLETION"))


def test_a_context_value_splits_a_recipients_digests(platform, admin):
    DigestRule.objects.create(platform=platform, notification_type=ENROLL, key_context="course_id")
    for i, course in enumerate(["c1", "c2", "c1"]):
        event_notify(
            platform=platform,
            notification_type=ENROLL,
            recipients=[admin.username],
            context={"course_name": course, "student_name": "S", "student_email": "s@x.org", "course_id": course},
            event_id=f"e{i}",
        )
    counts = dict(DigestBucket.objects.values_list("digest_key", "count"))
    assert counts == {f"{ENROLL}|user:{admin.pk}|course_id=c1": 2, f"{ENROLL}|user:{admin.pk}|course_id=c2": 1}


def _plan(**kw) -> DigestPlan:
    base = dict(
        notification_type=ENROLL,
        window_minutes=None,
        daily_at=None,
        timezone="",
        mode="trailing",
        channels=("email",),
        key_context="",
        template=defaults.GENERIC_DIGEST_TEMPLATE,
    )
    return DigestPlan(**{**base, **kw})


def test_daily_windows_end_at_the_local_time_of_the_recipient():
    plan = _plan(daily_at=time(18, 0))
    # Addis Ababa is UTC+3: 18:00 there is 15:00 UTC.
    before = datetime(2026, 3, 1, 14, 0, tzinfo=UTC)
    after = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
    assert plan.window(at=before, recipient_timezone="Africa/Addis_Ababa") == (
        datetime(2026, 2, 28, 15, 0, tzinfo=UTC),
        datetime(2026, 3, 1, 15, 0, tzinfo=UTC),
    )
    assert plan.window(at=after, recipient_timezone="Africa/Addis_Ababa")[1] == datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    # New York springs forward on 2026-03-08: 18:00 local is 23:00 UTC before, 22:00 UTC after.
    ny = "America/New_York"
    start, end = plan.window(at=datetime(2026, 3, 8, 12, 0, tzinfo=UTC), recipient_timezone=ny)
    assert (start, end) == (datetime(2026, 3, 7, 23, 0, tzinfo=UTC), datetime(2026, 3, 8, 22, 0, tzinfo=UTC))
    assert plan.window_after(end, recipient_timezone=ny)[1] == datetime(2026, 3, 9, 22, 0, tzinfo=UTC)
    # A rule's own zone wins over the recipient's.
    fixed = _plan(daily_at=time(18, 0), timezone="UTC")
    assert fixed.window(at=before, recipient_timezone=ny)[1] == datetime(2026, 3, 1, 18, 0, tzinfo=UTC)
    # Minute windows are aligned to the clock.
    assert _plan(window_minutes=15).window(at=datetime(2026, 3, 1, 10, 7, tzinfo=UTC)) == (
        datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
        datetime(2026, 3, 1, 10, 15, tzinfo=UTC),
    )


def test_the_learners_zone_decides_the_daily_bucket(platform, make_user):
    DigestRule.objects.create(platform=platform, notification_type="USER_NOTIF_LEARNER_PROGRESS")  # daily 18:00
    addis = make_user("addis", timezone="Africa/Addis_Ababa")
    plan = digest_plan(platform=platform, notification_type="USER_NOTIF_LEARNER_PROGRESS")
    joined = buckets.digest_join(
        platform=platform,
        plan=plan,
        recipient=Recipient(user_id=addis.pk),
        recipient_timezone=addis.timezone,
        event_id="p1",
        context={"courses_taken": []},
        now=datetime(2026, 3, 1, 16, 0, tzinfo=UTC),
    )
    assert joined.window_end == datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def test_an_event_after_its_bucket_closed_opens_the_next_one(platform, admin):
    plan = digest_plan(platform=platform, notification_type=ENROLL) or plan_from(
        DigestRule.objects.create(platform=platform, notification_type=ENROLL)
    )
    now = datetime(2026, 3, 1, 10, 59, 59, tzinfo=UTC)
    args = dict(platform=platform, plan=plan, recipient=Recipient(user_id=admin.pk), recipient_timezone="", context={})
    first = buckets.digest_join(event_id="a", now=now, **args)
    # The sweep closes the bucket (on a clock a little ahead) before the next event of the same second lands.
    assert buckets.digests_due_claim(now=first.window_end, limit=10, lease=timedelta(minutes=5)) == [first.bucket_id]
    second = buckets.digest_join(event_id="b", now=now, **args)
    assert second.bucket_id != first.bucket_id
    assert second.window_end == first.window_end + timedelta(hours=1)
    assert DigestBucket.objects.get(pk=first.bucket_id).count == 1


def test_a_worker_that_died_while_sending_leaves_exactly_one_digest(platform, admin, announced):
    DigestRule.objects.create(platform=platform, notification_type=ENROLL, channels=["email", "in_app"])
    enrollment(platform, admin, 5)
    bucket = DigestBucket.objects.get()
    now = bucket.window_end + timedelta(seconds=1)
    lease = timedelta(minutes=5)
    # A worker claims the bucket, writes the digest's in-app row and dies before dispatching or marking it.
    assert buckets.digests_due_claim(now=now, limit=10, lease=lease) == [bucket.pk]
    deliveries_write(
        platform=platform,
        source=bucket.source,
        channels=["in_app"],
        recipients=[Recipient(user_id=admin.pk)],
        render=lambda r, c, u: Message(title="5 new enrollments", notification_type=ENROLL),
    )
    assert scheduler.sweep(now=now + timedelta(minutes=1))["digests"] == 0  # its lease still holds
    # The lease runs out: the next sweep claims the bucket again and finishes the send.
    assert scheduler.sweep(now=now + lease + timedelta(seconds=1))["digests"] == 1
    rows = Notification.objects.filter(source=bucket.source)
    assert sorted(rows.values_list("channel", flat=True)) == ["email", "in_app"]
    assert all(r.delivery_status == DeliveryStatus.SENT for r in rows)
    assert len(locmem.outbox["email"]) == 1
    assert len(announced) == 1
    # The same task delivered twice (a redelivered message) finds the bucket sent: nothing more.
    buckets.digests_run(item_id=bucket.pk)
    assert Notification.objects.filter(source=bucket.source).count() == 2
    assert len(locmem.outbox["email"]) == 1 and len(announced) == 1


def test_shipped_digest_templates_render(platform):
    from templates_app.messages import platform_globals

    for shipped in defaults.DIGESTS:
        default = defaults.BY_TYPE[shipped.type]
        assert not default.critical
        items = [default.sample_context] * 25
        rendered = render_fields(
            shipped.template(),
            {
                **platform_globals(platform),
                "username": "jane",
                "login_url": "https://x.org",
                "items": items,
                "count": 25,
            },
            fields=defaults.DIGEST_TEMPLATE_FIELDS,
        )
        assert "25" in rendered["message_title"] + rendered["message_body"] or shipped.type.endswith("INACTIVITY")
        if "items" in shipped.message_body:
            assert "…and 5 more." in rendered["message_body"]


def test_buckets_are_listed_per_platform(platform, admin, admin_api, api, make_user):
    other = PlatformFactory(key="other-school")
    DigestRule.objects.create(platform=platform, notification_type=ENROLL)
    enrollment(platform, admin, 2)
    DigestBucket.objects.create(
        platform=other,
        notification_type=ENROLL,
        digest_key="x",
        mode="trailing",
        window_start=timezone.now(),
        window_end=timezone.now() + timedelta(hours=1),
    )
    r = admin_api.get("/api/notification/v1/orgs/acme-learning/digests/")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["count"] == 1
    row = body["results"][0]
    assert row["type"] == ENROLL and row["count"] == 2 and row["status"] == "open"
    assert row["username"] == admin.username and row["channels"] == ["email"]
    assert row["goes_out_at"].endswith("Z")
    assert admin_api.get("/api/notification/v1/orgs/acme-learning/digests/?status=sent").json()["count"] == 0
    assert admin_api.get("/api/notification/v1/orgs/acme-learning/digests/?status=nope").status_code == 400
    learner_api = api(make_user("someone"))
    assert learner_api.get("/api/notification/v1/orgs/acme-learning/digests/").status_code == 403


def test_the_schema_documents_buckets_and_the_events_digest_field(tmp_path):
    import json

    from django.core.management import call_command

    out = tmp_path / "schema.json"
    call_command("spectacular", "--format", "openapi-json", "--file", str(out), "--validate")
    schema = json.loads(out.read_text())
    listing = schema["paths"]["/api/notification/v1/orgs/{org}/digests/"]["get"]
    assert {"200", "400", "401", "403", "404"} <= set(listing["responses"])
    assert "digest" in schema["components"]["schemas"]["EventOut"]["properties"]


PROGRESS = "USER_NOTIF_LEARNER_PROGRESS"
PREFS = "/api/notification/v1/orgs/acme-learning/users/{}/preferences/"


def test_weekly_windows_end_on_monday_at_the_local_time():
    plan = _plan(daily_at=time(18, 0), learner_cadences=("weekly", "hourly", "immediate"))
    weekly = plan.for_cadence("weekly")
    # Wednesday 2026-03-04 in Addis Ababa: the week's digest goes out Monday 2026-03-09 18:00 local.
    start, end = weekly.window(at=datetime(2026, 3, 4, 9, 0, tzinfo=UTC), recipient_timezone="Africa/Addis_Ababa")
    assert (start, end) == (datetime(2026, 3, 2, 15, 0, tzinfo=UTC), datetime(2026, 3, 9, 15, 0, tzinfo=UTC))
    assert plan.for_cadence("hourly").window_minutes == 60
    assert plan.for_cadence("immediate") is None
    assert plan.for_cadence("daily") is plan  # not offered: the rule's plan stands


def test_a_learners_cadence_overrides_the_rule_within_its_offer(platform, learner, make_user, api):
    DigestRule.objects.create(platform=platform, notification_type=PROGRESS, learner_cadences=["immediate", "weekly"])
    other = make_user("other")
    client = api(learner)
    r = client.patch(
        PREFS.format(learner.username), {"cadences": [{"type": PROGRESS, "cadence": "immediate"}]}, format="json"
    )
    assert r.status_code == 200, r.json()
    item = next(p for p in r.json()["preferences"] if p["type"] == PROGRESS)
    assert item["digest"] == {"cadence": "immediate", "cadences": ["immediate", "weekly"]}
    # Outside the platform's offer, or on a type that is not digested: refused, nothing written.
    for body in (
        {"cadences": [{"type": PROGRESS, "cadence": "hourly"}]},
        {"cadences": [{"type": "USER_NOTIF_COURSE_COMPLETION", "cadence": "weekly"}]},
        {"cadences": [{"type": "PLATFORM_INVITATION", "cadence": "weekly"}]},
        {
            "preferences": [{"type": PROGRESS, "channel": "email", "enabled": False}],
            "cadences": [{"type": PROGRESS, "cadence": "daily"}],
        },
    ):
        refused = client.patch(PREFS.format(learner.username), body, format="json")
        assert refused.status_code == 400, body
    assert not UserNotificationPreference.objects.filter(user=learner).exists()

    context = {"courses_taken": [{"name": "Python", "progress": 50}]}
    result = event_notify(
        platform=platform, notification_type=PROGRESS, recipients=[learner.username, other.username], context=context
    )
    # The learner who chose `immediate` gets it now; the other joins the platform's daily digest.
    assert result["digest"]["sent_at_once"] == 1 and result["digest"]["joined"] == 1
    assert Notification.objects.filter(user=learner, channel="email").count() == 1
    assert Notification.objects.filter(user=other, channel="email").count() == 0
    assert DigestBucket.objects.get().user == other

    client.patch(PREFS.format(learner.username), {"cadences": [{"type": PROGRESS, "cadence": "weekly"}]}, format="json")
    event_notify(platform=platform, notification_type=PROGRESS, recipients=[learner.username], context=context)
    weekly = DigestBucket.objects.get(user=learner)
    assert weekly.window_end - weekly.window_start == timedelta(days=7)
    assert weekly.window_end.astimezone(UTC).weekday() == 0  # Monday 18:00 UTC (the learner's zone)

    # Null follows the platform again; DELETE resets cadences with the preferences.
    client.patch(PREFS.format(learner.username), {"cadences": [{"type": PROGRESS, "cadence": None}]}, format="json")
    assert not DigestCadence.objects.filter(user=learner).exists()


def test_bulk_sends_naming_a_digest_key_join_one_digest(platform, api, make_user, announced):
    from notifications.tests.bulk_helpers import V1, envelope, error

    ops = make_user("ops", role="ADMIN", admin=True)
    students = [make_user(f"student{i}", role="STUDENT") for i in range(3)]
    client = api(ops)
    body = {"title": "Unit 1 posted", "message": "Read it", "role": "STUDENT", "digest_key": "course-101"}
    # Without a rule for the send's type the key is refused, and nothing is sent.
    refused = client.post(f"{V1}/bulk-in-app", body, format="json")
    assert "add a digest rule" in error(refused, 400, "Invalid digest_key")["error"]
    assert not Notification.objects.exists()

    DigestRule.objects.create(
        platform=platform, notification_type="system_alert", window_minutes=60, channels=["in_app", "email"]
    )
    for title in ("Unit 1 posted", "Unit 2 posted"):
        r = client.post(f"{V1}/bulk-in-app", {**body, "title": title}, format="json")
        data = envelope(r, 200, "Bulk in-app notification sent")
        assert data["sent"] == 0 and data["digest"]["joined"] == 3 and data["digest"]["mode"] == "trailing"
    # Another key is another digest; sms and scheduled sends cannot name one.
    client.post(f"{V1}/bulk-in-app", {**body, "digest_key": "course-202"}, format="json")
    assert client.post(f"{V1}/bulk-sms", {"message": "x", "role": "STUDENT", "digest_key": "k"}).status_code == 400
    scheduled = {**body, "scheduled_at": "2030-06-16T07:00:00Z"}
    assert client.post(f"{V1}/bulk-in-app", scheduled, format="json").status_code == 400
    bad = client.post(f"{V1}/bulk-in-app", {**body, "digest_key": "no spaces"}, format="json")
    assert bad.status_code == 400

    assert not Notification.objects.filter(user__in=students).exists()
    by_key = DigestBucket.objects.filter(digest_key__endswith="digest_key=course-101")
    assert by_key.count() == 3 and set(by_key.values_list("count", flat=True)) == {2}
    sweep_after(by_key.first())
    inbox = Notification.objects.get(user=students[0], channel="in_app", source=by_key.get(user=students[0]).source)
    assert inbox.title == "2 new notifications on Acme Learning"
    assert "Unit 1 posted" in inbox.body and "Unit 2 posted" in inbox.body
    assert Notification.objects.filter(channel="in_app", rule=DeliveryRule.DIGEST).count() == 6  # 3 users, 2 keys
    assert len(announced) == 6


def test_a_digest_template_that_cannot_render_fails_its_bucket_only(platform, admin, make_user, announced):
    DigestRule.objects.create(platform=platform, notification_type=ENROLL, message_title="{% if %}")
    DigestRule.objects.create(platform=platform, notification_type=PROGRESS)
    enrollment(platform, admin, 2)
    plan = digest_plan(platform=platform, notification_type=PROGRESS)
    good = buckets.digest_join(
        platform=platform,
        plan=plan,
        recipient=Recipient(user_id=admin.pk),
        recipient_timezone="",
        event_id="p",
        context={"courses_taken": []},
    )
    broken = DigestBucket.objects.get(notification_type=ENROLL)
    latest = max(broken.window_end, good.window_end)
    scheduler.sweep(now=latest + timedelta(seconds=1))
    broken.refresh_from_db()
    assert broken.status == DigestStatus.FAILED and "message_title" in broken.error
    assert not Notification.objects.filter(source=broken.source).exists()
    assert DigestBucket.objects.get(pk=good.bucket_id).status == DigestStatus.SENT
    assert [a["notification_type"] for a in announced] == [PROGRESS]
