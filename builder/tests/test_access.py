"""Who may use the builder: context, tenancy, department admins, RBAC, build visibility."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from builder.models import Build, Department, DepartmentMember
from builder.tests.conftest import BASE, custom
from notifications.backends import locmem
from notifications.tests.factories import PlatformFactory

pytestmark = pytest.mark.django_db

ALL_SOURCES = ["email", "username", "platform", "csv", "department", "pathway", "program", "usergroup"]


def test_context_document_example(client):
    r = client.get(BASE + "context/")
    assert r.status_code == 200
    assert r.json() == {
        "status": "success",
        "data": {
            "templates": r.json()["data"]["templates"],
            "channels": [
                {"id": 1, "name": "email"},
                {"id": 2, "name": "push_notification"},
                {"id": 3, "name": "in_app"},
                {"id": 4, "name": "sms"},
            ],
            "sources": ALL_SOURCES,
        },
    }
    for template in r.json()["data"]["templates"]:
        assert set(template) == {"id", "name", "type"}


def test_context_without_push(client, platform):
    platform.push_enabled = False
    platform.save()
    names = [c["name"] for c in client.get(BASE + "context/").json()["data"]["channels"]]
    assert names == ["email", "in_app", "sms"]


def test_bearer_keyword_works_too(api, admin):
    assert api(admin, keyword="Bearer").get(BASE + "context/").status_code == 200


def test_anonymous_is_401(api):
    r = api().get(BASE + "context/")
    assert (r.status_code, r.json()) == (401, {"detail": "Authentication credentials were not provided."})


def test_learners_are_403(api, make_user):
    r = api(make_user("learner")).post(
        BASE + "preview/", custom(sources=[{"type": "platform", "data": "acme-learning"}]), format="json"
    )
    assert (r.status_code, r.json()) == (
        403,
        {"detail": "Only platform admins and department admins can send direct notifications."},
    )


def test_other_platforms_are_404(api, admin, make_user):
    other = PlatformFactory(key="globex")
    outsider_admin = make_user("globex-admin", admin=True, plat=other)
    assert api(outsider_admin).get(BASE + "context/").status_code == 404
    assert api(admin).get("/api/notification/v1/orgs/globex/notification-builder/context/").status_code == 404
    assert api(admin).get("/api/notification/v1/orgs/nowhere/notification-builder/context/").status_code == 404


def test_builds_of_another_platform_are_404(client, api, make_user, people):
    other = PlatformFactory(key="globex")
    their_admin = make_user("globex-admin", admin=True, plat=other)
    make_user("g1", plat=other)
    theirs = api(their_admin).post(
        "/api/notification/v1/orgs/globex/notification-builder/preview/",
        custom(sources=[{"type": "platform", "data": "globex"}]),
        format="json",
    )
    assert theirs.status_code == 200
    build_id = theirs.json()["build_id"]
    assert client.get(BASE + f"{build_id}/").status_code == 404
    assert client.get(BASE + f"{build_id}/recipients/").status_code == 404
    assert client.post(BASE + "send/", {"build_id": build_id}, format="json").status_code == 404
    assert client.post(BASE + f"{build_id}/cancel/").status_code == 404


def test_rbac_requires_the_builder_grant(api, make_user, platform):
    platform.rbac_enabled = True
    platform.save()
    # A platform admin whose role carries no grants.
    admin = make_user("plain-admin", role="STUDENT", admin=True)
    r = api(admin).get(BASE + "context/")
    assert (r.status_code, r.json()) == (
        403,
        {"detail": "Missing permission: Ibl.Notifications/NotificationBuilder/action"},
    )
    admin.memberships.get().permissions.add(
        Permission.objects.get(codename="direct_send", content_type__app_label="builder")
    )
    assert api(admin).get(BASE + "context/").status_code == 200


def test_admin_role_holds_the_builder_grant(api, make_user, platform):
    platform.rbac_enabled = True
    platform.save()
    assert api(make_user("boss", role="ADMIN", admin=True)).get(BASE + "context/").status_code == 200


# --- department admins --------------------------------------------------------------------


@pytest.fixture
def head(make_user, department):
    """A learner who administers the Engineering department."""
    user = make_user("head")
    DepartmentMember.objects.create(department=department, user=user, is_admin=True)
    return user


@pytest.fixture
def head_client(api, head):
    return api(head, keyword="Token")


def test_department_admin_context_offers_department_sources(head_client):
    assert head_client.get(BASE + "context/").json()["data"]["sources"] == ["department"]


def test_department_admin_reaches_their_department(head_client, department, django_capture_on_commit_callbacks):
    r = head_client.post(BASE + "validate_source/", {"type": "department", "data": department.pk}, format="json")
    assert r.json()["valid_count"] == 3  # john, mary and the head themself
    body = head_client.post(
        BASE + "preview/", custom(sources=[{"type": "department", "data": str(department.pk)}]), format="json"
    ).json()
    assert body["count"] == 3
    with django_capture_on_commit_callbacks(execute=True):
        r = head_client.post(BASE + "send/", {"build_id": body["build_id"]}, format="json")
    assert r.json()["message"] == "Notifications sent"
    assert sorted(m["address"] for m in locmem.outbox["email"]) == [
        "head@example.com",
        "john@example.com",
        "mary@example.com",
    ]


@pytest.mark.parametrize(
    ("source", "detail"),
    [
        (
            {"type": "email", "data": "jane@example.com"},
            "Department admins may only send to their own departments; source 2 (email) is not allowed.",
        ),
        (
            {"type": "platform", "data": "acme-learning"},
            "Department admins may only send to their own departments; source 2 (platform) is not allowed.",
        ),
        (
            {"type": "usergroup", "data": "1"},
            "Department admins may only send to their own departments; source 2 (usergroup) is not allowed.",
        ),
        (
            {"type": "username", "data": "john"},
            "Department admins may only send to their own departments; source 2 (username) is not allowed.",
        ),
    ],
)
def test_department_admin_other_sources_are_403(head_client, department, source, detail):
    r = head_client.post(
        BASE + "preview/", custom(sources=[{"type": "department", "data": department.pk}, source]), format="json"
    )
    assert (r.status_code, r.json()) == (403, {"detail": detail})
    assert not Build.objects.exists()


def test_department_admin_other_departments_are_403(head_client, platform, department):
    sales = Department.objects.create(platform=platform, name="Sales")
    for url, body in (
        ("validate_source/", {"type": "department", "data": sales.pk}),
        ("preview/", custom(sources=[{"type": "department", "data": sales.pk}])),
    ):
        r = head_client.post(BASE + url, body, format="json")
        assert (r.status_code, r.json()) == (
            403,
            {"detail": f"You are not an admin of department {sales.pk}; source 1 (department) is not allowed."},
        )


def test_inactive_department_admin_is_no_admin(api, head, department):
    DepartmentMember.objects.filter(user=head).update(is_active=False)
    assert api(head).get(BASE + "context/").status_code == 403


def test_department_admin_of_another_platform_only(api, make_user, platform):
    other = PlatformFactory(key="globex")
    user = make_user("both")
    make_user("both", plat=other)
    DepartmentMember.objects.create(
        department=Department.objects.create(platform=other, name="Ops"), user=user, is_admin=True
    )
    assert api(user).get(BASE + "context/").status_code == 403


def test_department_admin_sees_only_their_builds(head_client, client, department, people):
    own = head_client.post(
        BASE + "preview/", custom(sources=[{"type": "department", "data": department.pk}]), format="json"
    ).json()
    other = client.post(BASE + "preview/", custom(sources=[{"type": "username", "data": "jane"}]), format="json").json()
    assert head_client.get(BASE + f"{other['build_id']}/").status_code == 404
    assert head_client.get(BASE + f"{other['build_id']}/recipients/").status_code == 404
    listed = head_client.get(BASE).json()
    assert [b["build_id"] for b in listed["results"]] == [own["build_id"]]
    # The platform admin sees every build of the platform.
    assert {b["build_id"] for b in client.get(BASE).json()["results"]} == {own["build_id"], other["build_id"]}


def test_build_list_filters_by_status(client, people):
    client.post(BASE + "preview/", custom(sources=[{"type": "username", "data": "jane"}]), format="json")
    assert client.get(BASE + "?status=previewed").json()["count"] == 1
    assert client.get(BASE + "?status=queued").json()["count"] == 0
    r = client.get(BASE + "?status=sent")
    assert r.status_code == 400
    assert r.json()["detail"].startswith("Unknown status 'sent'")
