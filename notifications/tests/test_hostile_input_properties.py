"""Property tests: arbitrary JSON, hostile strings, huge numbers and deep nesting at every surface's parsers.

Whatever the body or query, the answer is never a 5xx, and a 4xx writes nothing.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.models import Alert
from builder.models import Build
from notifications.models import IdempotencyKey, Notification, ScheduledNotification
from templates_app.models import NotificationEvent

pytestmark = pytest.mark.django_db

ORG = "/api/notification/v1/orgs/acme-learning"
PROPERTY = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Strings PostgreSQL or UTF-8 cannot hold, beside ordinary and odd ones.
hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfffy", "\ud83d", "\u202e", "\ufeff", "", " ", "9" * 30]),
    st.text(alphabet=st.characters(codec=None, categories=["Cs", "Cc"]), min_size=1, max_size=5),
)
huge_numbers = st.one_of(
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**70),
    st.integers(min_value=-(2**70), max_value=-(2**63) + 2),
    st.just(10**300),
    st.floats(allow_nan=False, allow_infinity=False),
)
scalars = st.one_of(st.none(), st.booleans(), huge_numbers, hostile_text)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4),
    max_leaves=12,
)
hostile_times = st.one_of(
    st.sampled_from(
        [
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00+14:00",
            "9000-01-01T00:00:00Z",
            "2026-13-45T99:99:99Z",
            "2030-06-15T08:00:00Z",
            "2030-06-15T08:00:00",
            "2030-06-15",
        ]
    ),
    hostile_text,
    huge_numbers,
)


def bodies(fields: dict[str, st.SearchStrategy]) -> st.SearchStrategy[str]:
    """Raw JSON text: the endpoint's own fields with hostile values, any JSON at all, or deep nesting."""
    optional = {name: st.one_of(strategy, json_values) for name, strategy in fields.items()}
    shaped = st.fixed_dictionaries({}, optional=optional)
    nested = st.integers(min_value=30, max_value=3000).map(lambda n: '{"a": ' + "[" * n + "]" * n + "}")
    return st.one_of(
        shaped.map(json.dumps),
        json_values.map(json.dumps),
        nested,
        st.binary(max_size=30).map(lambda b: b.decode("latin-1")),
    )


def writes() -> tuple[int, ...]:
    return (
        ScheduledNotification.objects.count(),
        Notification.objects.count(),
        Alert.objects.count(),
        NotificationEvent.objects.count(),
        Build.objects.count(),
        IdempotencyKey.objects.count(),
    )


@pytest.fixture
def admin(make_user):
    return make_user("ops", role="ADMIN", admin=True, email="ops@example.com")


@pytest.fixture
def client(api, admin, make_user):
    make_user("jane.doe", email="jane@example.com", phone_number="+251911000009")
    return api(admin)


def check(response) -> None:
    assert response.status_code < 500, (response.status_code, response.content[:300])


def check_post(client, method: str, path: str, body: str) -> None:
    before = writes()
    response = client.generic(method, path, body.encode("utf-8", "surrogatepass"), content_type="application/json")
    check(response)
    if response.status_code >= 400:
        assert writes() == before, (path, body[:200], response.content[:300])


TEXT = st.one_of(hostile_text, json_values)
ENDPOINTS = {
    "alerts": (
        "POST",
        "/alerts",
        {
            "title": TEXT,
            "message": TEXT,
            "type": TEXT,
            "isEvent": st.booleans(),
            "scheduledAt": hostile_times,
            "notifyAt": hostile_times,
            "userId": huge_numbers,
        },
    ),
    "v1-bulk-sms": (
        "POST",
        "/api/v1/notifications/bulk-sms",
        {
            "message": TEXT,
            "role": st.sampled_from(["STUDENT", "student", "nobody"]),
            "user_ids": st.lists(huge_numbers, max_size=3) | json_values,
            "phone_numbers": st.lists(hostile_text, max_size=3),
            "scheduled_at": hostile_times,
        },
    ),
    "v1-bulk-in-app": (
        "POST",
        "/api/v1/notifications/bulk-in-app",
        {
            "title": TEXT,
            "message": TEXT,
            "type": TEXT,
            "level": TEXT,
            "role": st.just("STUDENT"),
            "scheduled_at": hostile_times,
        },
    ),
    "ibl-events": (
        "POST",
        f"{ORG}/events/",
        {
            "type": st.sampled_from(["USER_NOTIF_COURSE_ENROLLMENT", "NOPE"]) | hostile_text,
            "recipients": st.lists(hostile_text | huge_numbers, max_size=3),
            "context": st.dictionaries(hostile_text, json_values, max_size=3),
            "channels": st.lists(hostile_text, max_size=3),
        },
    ),
    "ibl-preferences": (
        "PATCH",
        f"{ORG}/users/jane.doe/preferences/",
        {"preferences": json_values, "USER_NOTIF_COURSE_ENROLLMENT": json_values},
    ),
    "ibl-mark-all-read": ("POST", f"{ORG}/mark-all-as-read", {"user_id": TEXT, "status": TEXT}),
    "builder-preview": (
        "POST",
        f"{ORG}/notification-builder/preview/",
        {
            "template_data": st.fixed_dictionaries({"message_title": TEXT, "message_body": TEXT}) | json_values,
            "channels": st.lists(huge_numbers, max_size=3),
            "sources": st.lists(json_values, max_size=3),
            "context": json_values,
            "process_on": hostile_times,
        },
    ),
}


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_bodies_never_answer_5xx_and_4xx_writes_nothing(client, name):
    method, path, fields = ENDPOINTS[name]

    @PROPERTY
    @given(body=bodies(fields))
    def run(body):
        check_post(client, method, path, body)

    run()


def _sendable(text: str) -> bool:
    """A URL or form can carry any text but lone surrogates (not UTF-8)."""
    return text.encode("utf-8", "surrogatepass") == text.encode("utf-8", "replace")


QUERY_VALUES = st.one_of(
    hostile_text.filter(_sendable),
    huge_numbers.map(str),
    st.sampled_from(["99999999999999999999", "9223372036854775807", "-1", "1e9", "0x10", "9999-12-31T23:59:59-14:00"]),
)
QUERIES = {
    "/alerts": ["page", "limit", "from", "to", "type", "isRead", "ordering"],
    "/api/v1/notifications": ["offset", "limit"],
    "/api/v1/notifications/scheduled": ["page", "limit", "after", "before", "status"],
    f"{ORG}/users/jane.doe/notifications/": ["page", "page_size", "start_date", "end_date", "status"],
}


@pytest.mark.parametrize("path", sorted(QUERIES))
def test_query_strings_never_answer_5xx(client, path):
    @PROPERTY
    @given(params=st.dictionaries(st.sampled_from(QUERIES[path]), QUERY_VALUES, max_size=4))
    def run(params):
        check(client.get(path, params))

    run()


@PROPERTY
@given(
    fields=st.dictionaries(
        st.sampled_from(["subject", "message", "html", "role", "user_ids", "emails", "scheduled_at"]),
        hostile_text.filter(_sendable),
        max_size=6,
    )
)
def test_multipart_bulk_email_never_answers_5xx(client, fields):
    # Forms carry text only; lone surrogates cannot be sent as UTF-8 and are left to the JSON tests.
    before = writes()
    response = client.post("/api/v1/notifications/bulk-email", fields, format="multipart")
    check(response)
    if response.status_code >= 400:
        assert writes() == before
