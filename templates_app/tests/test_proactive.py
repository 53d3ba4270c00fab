"""IBL §9.3: periodic proactive learner notifications with pluggable recommendations."""

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from notifications import scheduler
from notifications.models import Notification
from templates_app.automation.periodic import periodic_claim
from templates_app.automation.schedule import next_execution
from templates_app.models import NotificationTemplate

from .conftest import BASE

pytestmark = pytest.mark.django_db
PROACTIVE = BASE + "PROACTIVE_LEARNER_NOTIFICATION/"
ACTIVITY = "/api/notification/v1/orgs/acme-learning/learner-activity/"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC) if "+" not in text else datetime.fromisoformat(text)


# --- when ---------------------------------------------------------------------------------


def test_first_run_is_the_next_execution_time_in_the_configs_timezone():
    config = {"frequency": "DAILY", "execution_time": "09:00", "timezone": "Africa/Addis_Ababa"}
    # 05:00 UTC is 08:00 in Addis Ababa: today at 09:00 local = 06:00 UTC
    assert next_execution(config, now=at("2026-04-10T05:00:00")) == at("2026-04-10T06:00:00")
    # 07:00 UTC is past 09:00 local: tomorrow
    assert next_execution(config, now=at("2026-04-10T07:00:00")) == at("2026-04-11T06:00:00")


@pytest.mark.parametrize(
    ("config", "previous", "expected"),
    [
        ({"frequency": "DAILY"}, "2026-04-10T09:00:00", "2026-04-11T09:00:00"),
        ({"frequency": "WEEKLY"}, "2026-04-10T09:00:00", "2026-04-17T09:00:00"),
        ({"frequency": "MONTHLY"}, "2026-01-31T09:00:00", "2026-02-28T09:00:00"),
        ({"frequency": "CUSTOM", "custom_interval_days": 3}, "2026-04-10T09:00:00", "2026-04-13T09:00:00"),
    ],
)
def test_next_run_is_one_period_later(config, previous, expected):
    config = {"execution_time": "09:00", "timezone": "UTC", **config}
    assert next_execution(config, now=at(previous), previous=at(previous)) == at(expected)


def test_missed_runs_are_skipped_not_sent_in_a_burst():
    config = {"frequency": "DAILY", "execution_time": "09:00", "timezone": "UTC"}
    assert next_execution(config, now=at("2026-04-20T12:00:00"), previous=at("2026-04-10T09:00:00")) == at(
        "2026-04-21T09:00:00"
    )


def test_daylight_saving_keeps_the_local_time():
    config = {"frequency": "DAILY", "execution_time": "09:00", "timezone": "Europe/Berlin"}
    # Berlin moves to summer time on 2026-03-29
    before = next_execution(config, now=at("2026-03-28T09:00:00"), previous=at("2026-03-28T08:00:00"))
    assert before == at("2026-03-29T07:00:00")


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("periodic_report_period_days", 0),
        ("periodic_report_period_days", 366),
        ("periodic_custom_interval_days", 0),
        ("periodic_custom_interval_days", 400),
        ("periodic_execution_time", "25:00"),
        ("periodic_execution_time", "9:00"),
        ("periodic_execution_time", "09:60"),
        ("periodic_timezone", "Mars/Olympus_Mons"),
        ("periodic_frequency", "HOURLY"),
        ("periodic_learner_scope", "SOME_LEARNERS"),
        ("periodic_mentors", [{"name": "no id"}]),
    ],
)
def test_periodic_fields_are_validated(admin_api, platform, field, value):
    r = admin_api.patch(PROACTIVE, {field: value}, format="json")
    assert r.status_code == 400 and field in r.json(), r.json()
    assert not NotificationTemplate.objects.filter(platform=platform).exists()


def test_custom_frequency_needs_an_interval(admin_api):
    r = admin_api.patch(PROACTIVE, {"periodic_frequency": "CUSTOM"}, format="json")
    assert r.status_code == 400 and "periodic_custom_interval_days" in r.json()
    r = admin_api.patch(PROACTIVE, {"periodic_frequency": "CUSTOM", "periodic_custom_interval_days": 10}, format="json")
    assert r.status_code == 200


def test_periodic_config_in_the_detail(admin_api):
    detail = admin_api.get(PROACTIVE).json()
    assert detail["periodic_config"] == {
        "learner_scope": "ACTIVE_LEARNERS",
        "report_period_days": 7,
        "frequency": "WEEKLY",
        "custom_interval_days": None,
        "execution_time": "09:00",
        "timezone": "UTC",
        "mentors": [],
        "last_execution_date": None,
        "next_execution_date": None,
    }
    assert detail["is_enabled"] is False  # optional, needs configuration
    r = admin_api.patch(
        PROACTIVE,
        {
            "periodic_frequency": "DAILY",
            "periodic_execution_time": "18:30",
            "periodic_timezone": "Africa/Addis_Ababa",
            "periodic_report_period_days": 14,
            "periodic_mentors": [{"unique_id": "study-buddy", "name": "Study Buddy", "prompt": "Be brief."}],
        },
        format="json",
    )
    config = r.json()["periodic_config"]
    assert config["frequency"] == "DAILY" and config["report_period_days"] == 14
    assert config["mentors"] == [{"unique_id": "study-buddy", "name": "Study Buddy", "prompt": "Be brief."}]
    upcoming = datetime.fromisoformat(config["next_execution_date"])
    assert upcoming > timezone.now() and upcoming - timezone.now() <= timedelta(days=1)
    assert upcoming.astimezone(__import__("zoneinfo").ZoneInfo("Africa/Addis_Ababa")).strftime("%H:%M") == "18:30"


# --- runs -----------------------------------------------------------------------------------------


@pytest.fixture
def configured(admin_api, learner, make_user):
    """Proactive notifications on, one mentor, due now; jane is active, bob is not."""
    make_user("bob", email="bob@example.com")
    admin_api.patch(
        PROACTIVE,
        {
            "periodic_frequency": "WEEKLY",
            "periodic_mentors": [{"unique_id": "study-buddy", "name": "Study Buddy", "prompt": "Be encouraging."}],
            "channel_ids": [3],
        },
        format="json",
    )
    admin_api.patch(PROACTIVE + "toggle/", {"allow_notification": True}, format="json")
    now = timezone.now()
    r = admin_api.post(
        ACTIVITY,
        {
            "activities": [
                {
                    "username": "jane.doe",
                    "kind": "time_spent",
                    "course_name": "Python Fundamentals",
                    "value": 150,
                    "occurred_at": (now - timedelta(days=2)).isoformat(),
                },
                {
                    "username": "jane.doe",
                    "kind": "video_watched",
                    "course_name": "Python Fundamentals",
                    "value": 4,
                    "occurred_at": (now - timedelta(days=2)).isoformat(),
                },
                {
                    "username": "jane.doe",
                    "kind": "course_progress",
                    "course_name": "Python Fundamentals",
                    "value": 80,
                    "occurred_at": (now - timedelta(days=1)).isoformat(),
                },
                {
                    "username": "jane.doe",
                    "kind": "credential_earned",
                    "course_name": "SQL Basics",
                    "occurred_at": (now - timedelta(days=1)).isoformat(),
                },
                {
                    "username": "bob",
                    "kind": "time_spent",
                    "course_name": "Old",
                    "value": 30,
                    "occurred_at": (now - timedelta(days=30)).isoformat(),
                },
            ]
        },
        format="json",
    )
    assert r.status_code == 201, r.json()
    template = NotificationTemplate.objects.get(platform__key="acme-learning", type="PROACTIVE_LEARNER_NOTIFICATION")
    template.next_execution_at = now - timedelta(minutes=1)
    template.save()
    return template


def test_a_due_config_runs_once_and_moves_on(configured, learner):
    scheduled = configured.next_execution_at
    counts = scheduler.sweep()
    assert counts["proactive_learner"] == 1
    [row] = Notification.objects.filter(notification_type="PROACTIVE_LEARNER_NOTIFICATION")
    assert row.user == learner and row.channel == "in_app"
    assert row.title == "Study Buddy has a suggestion for you"
    assert row.body.startswith("Hi jane.doe,\n\nIn the last 7 days you spent 2.5 hours learning and watched 4 videos")
    assert "You are 80% through Python Fundamentals" in row.body
    assert "Congratulations on earning SQL Basics!" in row.body
    assert row.context["ai_recommendation"] in row.body
    configured.refresh_from_db()
    assert configured.last_execution_at is not None and configured.claimed_until is None
    # a week after the run, at the configured 09:00
    assert configured.next_execution_at == (scheduled + timedelta(days=7)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    # nothing is due any more
    assert scheduler.sweep()["proactive_learner"] == 0
    assert Notification.objects.count() == 1


def test_all_learners_scope_reaches_inactive_learners_too(configured, admin_api):
    admin_api.patch(PROACTIVE, {"periodic_learner_scope": "ALL_LEARNERS"}, format="json")
    NotificationTemplate.objects.filter(pk=configured.pk).update(
        next_execution_at=timezone.now() - timedelta(seconds=5)
    )
    scheduler.sweep()
    rows = {r.user.username: r for r in Notification.objects.filter(notification_type="PROACTIVE_LEARNER_NOTIFICATION")}
    assert set(rows) == {"jane.doe", "bob"}  # admins are not learners
    assert "You have not recorded any learning activity in the last 7 days" in rows["bob"].body


def test_a_claimed_config_is_not_claimed_twice(configured):
    now = timezone.now()
    assert periodic_claim(now=now, limit=10, lease=timedelta(minutes=5)) == [configured.pk]
    assert periodic_claim(now=now, limit=10, lease=timedelta(minutes=5)) == []
    # a crashed worker's lease runs out
    assert periodic_claim(now=now + timedelta(minutes=6), limit=10, lease=timedelta(minutes=5)) == [configured.pk]


def test_a_rerun_of_the_same_run_sends_nothing_twice(configured):
    from templates_app.automation.periodic import proactive_send

    scheduled = configured.next_execution_at
    proactive_send(template=configured, scheduled=scheduled)
    proactive_send(template=configured, scheduled=scheduled)
    assert Notification.objects.filter(notification_type="PROACTIVE_LEARNER_NOTIFICATION").count() == 1


def test_disabled_type_advances_without_sending(configured, admin_api):
    admin_api.patch(PROACTIVE + "toggle/", {"allow_notification": False}, format="json")
    scheduler.sweep()
    assert not Notification.objects.exists()
    configured.refresh_from_db()
    assert configured.next_execution_at > timezone.now()


def test_a_template_over_its_budget_skips_the_run_and_sends_nothing(configured, settings, caplog):
    settings.NOTIFY_TEMPLATE_MAX_OUTPUT_CHARS = 1000
    NotificationTemplate.objects.filter(pk=configured.pk).update(
        message_body='{% with s="' + "x" * 100 + '" %}{{ s|make_list|join:s }}{% endwith %}'
    )
    assert scheduler.sweep()["proactive_learner"] == 1
    assert not Notification.objects.exists()
    assert "proactive template of acme-learning cannot render: message_body:" in caplog.text
    configured.refresh_from_db()
    assert configured.next_execution_at > timezone.now() and configured.claimed_until is None


class _ChatServer:
    """A local server answering like an OpenAI-compatible /v1/chat/completions endpoint."""

    def __init__(self, status=200, content="Finish module 4 of Python Fundamentals this week."):
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                payload = (
                    {
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                        ],
                    }
                    if status == 200
                    else {"error": {"message": "overloaded", "type": "server_error"}}
                )
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def _use_chat(settings, url):
    settings.NOTIFY_AI_RECOMMENDATION = {
        "BACKEND": "templates_app.automation.recommendations.OpenAIChatProvider",
        "OPTIONS": {"URL": url, "API_KEY": "sk-test", "MODEL": "tiny-model", "TIMEOUT": 5},
    }


def test_openai_compatible_provider(configured, settings):
    with _ChatServer() as server:
        _use_chat(settings, server.url)
        scheduler.sweep()
    [request] = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer sk-test"
    assert request["body"]["model"] == "tiny-model"
    assert request["body"]["messages"][0] == {"role": "system", "content": "Be encouraging."}
    assert "Python Fundamentals" in request["body"]["messages"][1]["content"]
    [row] = Notification.objects.filter(notification_type="PROACTIVE_LEARNER_NOTIFICATION")
    assert "Finish module 4 of Python Fundamentals this week." in row.body


def test_provider_failure_falls_back_to_the_summary(configured, settings, caplog):
    with _ChatServer(status=503) as server:
        _use_chat(settings, server.url)
        scheduler.sweep()
    [row] = Notification.objects.filter(notification_type="PROACTIVE_LEARNER_NOTIFICATION")
    assert "In the last 7 days you spent 2.5 hours learning" in row.body
    assert "recommendation provider failed" in caplog.text


def test_activity_api(admin_api, learner, api):
    r = admin_api.post(
        ACTIVITY,
        {"activities": [{"username": "ghost", "kind": "time_spent", "occurred_at": "2026-04-10T08:00:00Z"}]},
        format="json",
    )
    assert r.status_code == 400
    r = admin_api.post(
        ACTIVITY,
        {"activities": [{"username": "jane.doe", "kind": "video_watched", "occurred_at": "2026-04-10T08:00:00Z"}]},
        format="json",
    )
    assert r.status_code == 201 and r.json() == {"created": 1}
    page = admin_api.get(ACTIVITY, {"username": "jane.doe"}).json()
    assert page["count"] == 1 and page["results"][0]["kind"] == "video_watched"
    assert api(learner).get(ACTIVITY).status_code == 403
