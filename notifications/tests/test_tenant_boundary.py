"""Rights are per platform: an admin of A who is a plain member of B is a plain member on B.

The attack of issue 12: with a global role and global Django permissions, a
user who administered platform A acted as B's admin on every endpoint that
checked "holds the permission" plus "is a member". Each call below succeeded
before roles moved onto memberships.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from notifications.models import Membership, Role, ScheduledNotification, ScheduledStatus
from notifications.permissions import (
    MEMBER,
    PLATFORM_ADMIN,
    keys_for_role,
    platform_permissions,
)
from notifications.tests.bulk_helpers import V1, future, grant
from notifications.tests.factories import PlatformFactory, make_member
from templates_app.models import LearnerActivity, Mentor

pytestmark = pytest.mark.django_db


@pytest.fixture
def a():
    return PlatformFactory(key="platform-a")


@pytest.fixture
def b():
    return PlatformFactory(key="platform-b")


@pytest.fixture
def attacker(a, b):
    """ADMIN and platform admin of A, a STUDENT of B."""
    user = make_member(platform=a, username="a-admin", role=Role.ADMIN, admin=True)
    Membership.objects.create(user=user, platform=b, role=Role.STUDENT)
    return user


@pytest.fixture
def b_students(b):
    return [make_member(platform=b, username=f"b-student{i}", role=Role.STUDENT) for i in range(2)]


@pytest.fixture
def b_job(b):
    owner = make_member(platform=b, username="b-admin", role=Role.ADMIN, admin=True)
    return ScheduledNotification.objects.create(
        platform=b,
        channel="in_app",
        title="B's job",
        message="For B's students",
        target_role=Role.STUDENT,
        scheduled_at=future(),
        due_at=future(),
        created_by=owner,
    )


def test_an_admin_of_a_holds_nothing_of_an_admin_on_b(attacker, a, b):
    on_a, on_b = platform_permissions(attacker, a), platform_permissions(attacker, b)
    assert "notifications.bulk_in_app" in on_a and PLATFORM_ADMIN in on_a
    assert on_b == keys_for_role(Role.STUDENT) | {MEMBER}
    assert "notifications.bulk_in_app" not in on_b and PLATFORM_ADMIN not in on_b


def test_the_attack_on_every_surface_is_refused(api, attacker, b, b_students, b_job):
    client = api(attacker)
    headers = {"HTTP_X_PLATFORM": b.key}

    r = client.post(f"{V1}/bulk-in-app", {"title": "T", "message": "M", "role": "STUDENT"}, format="json", **headers)
    assert (r.status_code, r.json()) == (
        403,
        {"message": "Forbidden", "error": "Missing permission: notifications.bulk_in_app"},
    )
    assert client.get(f"{V1}/scheduled/{b_job.pk}", **headers).status_code == 403
    assert client.post(f"{V1}/scheduled/{b_job.pk}/cancel", **headers).status_code == 403
    b_job.refresh_from_db()
    assert b_job.status == ScheduledStatus.PENDING

    ibl = f"/api/notification/v1/orgs/{b.key}"
    r = client.post(f"{ibl}/events/", {"type": "ROLE_CHANGE", "recipients": ["b-student0"]}, format="json")
    assert r.status_code == 403
    Mentor.objects.create(platform=b, unique_id="m1", name="B's mentor")
    assert client.get(f"{ibl}/mentors/").status_code == 403
    assert client.patch(f"{ibl}/mentors/m1/", {"name": "renamed"}, format="json").status_code == 403
    assert Mentor.objects.get(platform=b, unique_id="m1").name == "B's mentor"
    assert client.get(f"{ibl}/learner-activity/").status_code == 403
    r = client.post(
        f"{ibl}/learner-activity/",
        {"activities": [{"username": "b-student0", "kind": "time_spent", "value": 5}]},
        format="json",
    )
    assert r.status_code == 403 and not LearnerActivity.objects.exists()
    # Another member's inbox on B stays out of reach (404, as for a stranger).
    assert client.get(f"{ibl}/users/b-student0/notifications/").status_code == 404
    # The same user still administers A.
    r = client.post(
        f"{V1}/bulk-in-app",
        {"title": "T", "message": "M", "role": "STUDENT"},
        format="json",
        HTTP_X_PLATFORM="platform-a",
    )
    assert r.status_code == 400  # allowed; A has no students to reach


def test_a_role_targets_the_members_holding_it_on_this_platform(api, a, b):
    """`role` in a send means the role held on the sending platform, not anywhere."""
    sender = make_member(platform=a, username="a-sender", role=Role.ADMIN, admin=True)
    both = make_member(platform=a, username="both", role=Role.INSTRUCTOR)
    Membership.objects.create(user=both, platform=b, role=Role.STUDENT)
    a_student = make_member(platform=a, username="a-student", role=Role.STUDENT)
    r = api(sender).post(f"{V1}/bulk-in-app", {"title": "T", "message": "M", "role": "STUDENT"}, format="json")
    assert r.status_code == 200 and r.json()["data"]["total_recipients"] == 1
    assert a_student.notifications.count() == 1 and both.notifications.count() == 0


def test_grants_are_per_platform_and_global_permissions_grant_nothing(api, attacker, a, b, b_students):
    client = api(attacker)
    body = {"title": "T", "message": "M", "role": "STUDENT"}
    # A global grant (the Django user permission) counts for nothing.
    attacker.user_permissions.add(Permission.objects.get(codename="bulk_in_app"))
    assert client.post(f"{V1}/bulk-in-app", body, format="json", HTTP_X_PLATFORM=b.key).status_code == 403
    # A grant on A's membership counts on A only; on B's membership, on B.
    grant(attacker, "notifications.bulk_sms", platform=a)
    assert "notifications.bulk_sms" not in platform_permissions(attacker, b)
    grant(attacker, "notifications.bulk_in_app", platform=b)
    assert client.post(f"{V1}/bulk-in-app", body, format="json", HTTP_X_PLATFORM=b.key).status_code == 200


def test_several_platforms_without_the_header_is_the_clear_400(api, attacker):
    r = api(attacker).get(f"{V1}")
    assert r.status_code == 400
    assert r.json() == {
        "message": "Platform is ambiguous",
        "error": "This user belongs to several platforms; name one in the X-Platform header",
    }
    r = api(attacker).get("/alerts")
    assert r.status_code == 400 and r.json()["error"]["message"] == "Platform is ambiguous"


def test_a_deactivated_membership_grants_nothing(api, attacker, a):
    Membership.objects.filter(user=attacker, platform=a).update(is_active=False)
    assert platform_permissions(attacker, a) == frozenset()
    r = api(attacker).post(
        f"{V1}/bulk-in-app", {"title": "T", "message": "M", "role": "STUDENT"}, format="json", HTTP_X_PLATFORM=a.key
    )
    assert r.status_code == 404


def test_superusers_hold_every_key_everywhere(a, b):
    root = make_member(platform=a, username="root", is_superuser=True)
    assert PLATFORM_ADMIN in platform_permissions(root, b)
    assert "notifications.bulk_in_app" in platform_permissions(root, b)


def test_the_schema_documents_x_platform_on_every_alerts_and_v1_operation(api):
    import yaml

    schema = yaml.safe_load(api().get("/api/schema/").content)
    checked = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            headers = [p for p in operation.get("parameters", []) if p["in"] == "header" and p["name"] == "X-Platform"]
            if path.startswith("/api/v1/providers/"):
                # A provider's callback acts on no caller's platform.
                assert headers == [], (method, path)
            elif path.startswith(("/alerts", "/api/v1/")):
                assert len(headers) == 1, (method, path)
                assert "400" in headers[0]["description"] and not headers[0]["required"]
                checked += 1
            else:
                assert not headers, (method, path)  # IBL paths name the platform themselves
    assert checked >= 15
