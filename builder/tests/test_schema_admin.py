"""The OpenAPI schema documents every builder endpoint; the admin pages render."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from builder.models import Department, DepartmentMember, UserGroup
from builder.tests.conftest import BASE, custom

pytestmark = pytest.mark.django_db

PATHS = {
    "/api/notification/v1/orgs/{platform_key}/notification-builder/": ["get"],
    "/api/notification/v1/orgs/{platform_key}/notification-builder/context/": ["get"],
    "/api/notification/v1/orgs/{platform_key}/notification-builder/validate_source/": ["post"],
    "/api/notification/v1/orgs/{platform_key}/notification-builder/preview/": ["post"],
    "/api/notification/v1/orgs/{platform_key}/notification-builder/send/": ["post"],
    "/api/notification/v1/orgs/{platform_key}/notification-builder/{build_id}/": ["get"],
    "/api/notification/v1/orgs/{platform_key}/notification-builder/{build_id}/recipients/": ["get"],
    "/api/notification/v1/orgs/{platform_key}/notification-builder/{build_id}/cancel/": ["post"],
}


def test_schema_documents_every_endpoint(tmp_path):
    out = tmp_path / "schema.json"
    call_command("spectacular", "--format", "openapi-json", "--file", str(out), "--validate")
    import json

    schema = json.loads(out.read_text())
    for path, methods in PATHS.items():
        assert path in schema["paths"], path
        for method in methods:
            operation = schema["paths"][path][method]
            assert "ibl notification builder" in operation["tags"]
            assert {"200", "401", "403", "404"} <= set(operation["responses"]), path
    send = schema["paths"]["/api/notification/v1/orgs/{platform_key}/notification-builder/send/"]["post"]
    assert "409" in send["responses"]
    preview = schema["paths"]["/api/notification/v1/orgs/{platform_key}/notification-builder/preview/"]["post"]
    assert set(preview["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert schema["components"]["schemas"]["BuildStatusEnum"]["enum"] == [
        "draft",
        "previewed",
        "queued",
        "sending",
        "completed",
        "failed",
        "cancelled",
    ]


@pytest.fixture
def staff_client(client, admin):
    from django.test import Client

    admin.is_staff = admin.is_superuser = True
    admin.save()
    c = Client()
    c.force_login(admin)
    return c


def test_admin_pages(staff_client, client, platform, people, django_capture_on_commit_callbacks):
    department = Department.objects.create(platform=platform, name="Engineering")
    DepartmentMember.objects.create(department=department, user=people["jane"], is_admin=True)
    UserGroup.objects.create(platform=platform, name="Cohort")
    build_id = client.post(
        BASE + "preview/", custom(sources=[{"type": "username", "data": "jane,john"}]), format="json"
    ).json()["build_id"]
    with django_capture_on_commit_callbacks(execute=True):
        client.post(BASE + "send/", {"build_id": build_id}, format="json")
    page = staff_client.get("/admin/builder/build/")
    assert page.status_code == 200
    assert b"2/2" in page.content  # the progress bar's caption
    assert staff_client.get(f"/admin/builder/build/{build_id}/change/").status_code == 200
    assert staff_client.get(f"/admin/builder/buildrecipient/?build__id__exact={build_id}").status_code == 200
    for model in (
        "department",
        "usergroup",
        "program",
        "pathway",
        "departmentmember",
        "usergroupmember",
        "programmember",
        "pathwaymember",
        "stagedentry",
    ):
        assert staff_client.get(f"/admin/builder/{model}/").status_code == 200, model
    assert staff_client.get(f"/admin/builder/department/{department.pk}/change/").status_code == 200
    assert staff_client.get("/admin/builder/department/add/").status_code == 200


def test_admin_cancel_action(staff_client, client, people, admin):
    from datetime import timedelta

    from django.utils import timezone

    from builder.models import Build, BuildStatus

    body = custom(
        sources=[{"type": "username", "data": "jane"}], process_on=(timezone.now() + timedelta(hours=1)).isoformat()
    )
    queued = client.post(BASE + "preview/", body, format="json").json()["build_id"]
    client.post(BASE + "send/", {"build_id": queued}, format="json")
    page = staff_client.post("/admin/builder/build/", {"action": "cancel", "_selected_action": [queued]}, follow=True)
    assert b"Cancelled 1 build(s)." in page.content
    build = Build.objects.get(pk=queued)
    assert (build.status, build.cancelled_by) == (BuildStatus.CANCELLED, admin)
