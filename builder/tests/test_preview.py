"""POST preview/ and GET {build_id}/recipients/: merging, de-duplication, invalid input."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from builder.models import Build, BuildRecipient, BuildStatus, StagedEntry, UserGroup, UserGroupMember
from builder.tests.conftest import BASE, custom

pytestmark = pytest.mark.django_db

URL = BASE + "preview/"


@pytest.fixture
def cohort(platform, make_user):
    """User group 12 of the document's example: 47 members, jane.doe and john.smith first."""
    group = UserGroup.objects.create(pk=12, platform=platform, name="Group 12")
    names = ["jane.doe", "john.smith"] + [f"learner{i:02d}" for i in range(45)]
    for name in names:
        email = {"jane.doe": "jane@example.com", "john.smith": "john@example.com"}.get(name, f"{name}@example.com")
        UserGroupMember.objects.create(group=group, user=make_user(name, email=email))
    return group


def test_document_example(client, cohort):
    r = client.post(
        URL,
        {
            "template_data": {
                "message_title": "Platform Maintenance Notice",
                "message_body": "Hi {{ username }}, scheduled maintenance is planned for April 20.",
            },
            "channels": [1, 3],
            "sources": [{"type": "usergroup", "data": "12"}, {"type": "email", "data": "external-user@example.com"}],
            "context": {},
        },
        format="json",
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"status", "build_id", "count", "warning", "recipients"}
    assert body["status"] == "success"
    assert body["count"] == 48
    assert body["warning"] is None
    assert len(body["recipients"]) == 10
    assert body["recipients"][:2] == [
        {
            "username": "jane.doe",
            "email": "jane@example.com",
            "status": "pending",
            "has_account": True,
            "channels": ["email", "in_app"],
            "error": "",
        },
        {
            "username": "john.smith",
            "email": "john@example.com",
            "status": "pending",
            "has_account": True,
            "channels": ["email", "in_app"],
            "error": "",
        },
    ]
    build = Build.objects.get(pk=body["build_id"])
    assert build.status == BuildStatus.PREVIEWED
    assert build.recipient_count == 48
    assert build.channels == ["email", "in_app"]
    assert len(build.content_hash) == 64
    external = BuildRecipient.objects.get(build=build, email="external-user@example.com")
    assert (external.user_id, external.recipient_key) == (None, "email:external-user@example.com")


def test_recipients_document_example(client, cohort):
    build_id = client.post(
        URL,
        custom(sources=[{"type": "usergroup", "data": "12"}, {"type": "email", "data": "external-user@example.com"}]),
        format="json",
    ).json()["build_id"]
    r = client.get(BASE + f"{build_id}/recipients/?page=1&page_size=20")
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 48
    assert body["next"] == f"http://testserver{BASE}{build_id}/recipients/?page=2&page_size=20"
    assert body["previous"] is None
    assert len(body["results"]) == 20
    assert body["results"][0]["username"] == "jane.doe"
    assert body["results"][0]["status"] == "pending"

    last = client.get(BASE + f"{build_id}/recipients/?page=3&page_size=20").json()
    assert len(last["results"]) == 8 and last["next"] is None
    assert last["previous"] == f"http://testserver{BASE}{build_id}/recipients/?page=2&page_size=20"
    assert last["results"][-1] == {
        "username": None,
        "email": "external-user@example.com",
        "status": "pending",
        "has_account": False,
        "channels": ["email"],
        "error": "",
    }

    default = client.get(BASE + f"{build_id}/recipients/").json()
    assert len(default["results"]) == 10  # default page size

    found = client.get(BASE + f"{build_id}/recipients/?search=JOHN.S").json()
    assert [r["username"] for r in found["results"]] == ["john.smith"]
    by_email = client.get(BASE + f"{build_id}/recipients/?search=External-User@").json()
    assert [r["email"] for r in by_email["results"]] == ["external-user@example.com"]
    assert client.get(BASE + f"{build_id}/recipients/?page=9").status_code == 404


def test_deduplicates_across_overlapping_sources(client, people, group, department, program, pathway, admin):
    sources = [
        {"type": "usergroup", "data": group.pk},  # jane, john
        {"type": "department", "data": department.pk},  # john, mary
        {"type": "program", "data": "prog-data-101"},  # jane
        {"type": "pathway", "data": "path-ml"},  # mary, paul
        {"type": "username", "data": "jane,paul"},
        {"type": "email", "data": "JANE@example.com,john@example.com,guest@outside.org,Guest@Outside.org"},
    ]
    body = client.post(URL, custom(sources=sources), format="json").json()
    assert body["count"] == 5  # jane, john, mary, paul, guest@outside.org
    keys = set(BuildRecipient.objects.filter(build_id=body["build_id"]).values_list("recipient_key", flat=True))
    assert keys == {
        *(f"user:{people[n].pk}" for n in ("jane", "john", "mary", "paul")),
        "email:guest@outside.org",
    }
    # The whole platform on top adds only the admin.
    body = client.post(URL, custom(sources=[*sources, {"type": "platform", "data": "acme-learning"}]), format="json")
    assert body.json()["count"] == 6
    assert not StagedEntry.objects.exists()


def test_first_ten_recipients_only(client, platform, make_user):
    for i in range(15):
        make_user(f"u{i:02d}")
    body = client.post(URL, custom(sources=[{"type": "platform", "data": "acme-learning"}]), format="json").json()
    assert body["count"] == 16
    assert len(body["recipients"]) == 10


def test_csv_source_in_a_multipart_preview(client, people):
    upload = SimpleUploadedFile("list.csv", b"email,name\njane@example.com,Jane\nnew@outside.org,New\nbad,Bad\n")
    r = client.post(
        URL,
        {
            "template_data": json.dumps({"message_title": "Hello", "message_body": "Hi {{ username }}"}),
            "channels": "[1]",
            "sources": json.dumps([{"type": "csv"}, {"type": "username", "data": "john"}]),
            "file_0": upload,
        },
        format="multipart",
    )
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["count"] == 3
    assert {(x["username"], x["email"]) for x in body["recipients"]} == {
        ("jane", "jane@example.com"),
        (None, "new@outside.org"),
        ("john", "john@example.com"),
    }
    build = Build.objects.get(pk=body["build_id"])
    assert build.sources[0] == {"type": "csv", "data": "file_0", "filename": "list.csv"}


def test_second_csv_source_reads_file_1(client, people):
    r = client.post(
        URL,
        {
            "template_data": json.dumps({"message_title": "Hello", "message_body": "Hi"}),
            "channels": ["1", "3"],
            "sources": json.dumps([{"type": "csv"}, {"type": "csv"}]),
            "file_0": SimpleUploadedFile("a.csv", b"email\njane@example.com\n"),
            "file_1": SimpleUploadedFile("b.csv", b"email\njohn@example.com\n"),
        },
        format="multipart",
    )
    assert r.status_code == 200, r.json()
    assert r.json()["count"] == 2


def test_address_only_recipients_need_the_email_channel(client, people):
    r = client.post(
        URL, custom(channels=[3], sources=[{"type": "email", "data": "a@outside.org,jane@example.com"}]), format="json"
    )
    assert r.status_code == 400
    assert r.json() == {
        "detail": "1 recipient(s) have no account on this platform and can only be reached by email: "
        "add the email channel or remove them."
    }
    assert not Build.objects.exists()


def test_context_and_process_on_are_kept(client, people):
    when = timezone.now() + timedelta(hours=2)
    body = client.post(
        URL,
        custom(
            sources=[{"type": "username", "data": "jane"}],
            context={"course_name": "Python 101"},
            process_on=when.isoformat(),
        ),
        format="json",
    ).json()
    build = Build.objects.get(pk=body["build_id"])
    assert build.context == {"course_name": "Python 101"}
    assert build.process_on == when


TEMPLATE = {"message_title": "T", "message_body": "B"}
USERNAME = [{"type": "username", "data": "jane"}]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {
                "template_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                "template_data": TEMPLATE,
                "channels": [1],
                "sources": USERNAME,
            },
            {"non_field_errors": ["Provide either template_id or template_data, not both."]},
        ),
        (
            {"channels": [1], "sources": USERNAME},
            {"non_field_errors": ["Provide either template_id or template_data, not both."]},
        ),
        ({"template_data": TEMPLATE, "sources": USERNAME}, {"channels": ["This field is required."]}),
        (
            {"template_data": TEMPLATE, "channels": [], "sources": USERNAME},
            {"channels": ["This list may not be empty."]},
        ),
        (
            {"template_data": TEMPLATE, "channels": [9], "sources": USERNAME},
            {"channels": ["Unknown channel id 9; the context endpoint lists the channels."]},
        ),
        (
            {"template_data": TEMPLATE, "channels": ["email"], "sources": USERNAME},
            {"channels": {"0": ["A valid integer is required."]}},
        ),
        ({"template_data": TEMPLATE, "channels": [1]}, {"sources": ["This field is required."]}),
        ({"template_data": TEMPLATE, "channels": [1], "sources": []}, {"sources": ["This list may not be empty."]}),
        (
            {"template_data": TEMPLATE, "channels": [1], "sources": USERNAME, "process_on": "2020-01-01T00:00:00Z"},
            {"process_on": ["process_on must be in the future."]},
        ),
        (
            {"template_data": TEMPLATE, "channels": [1], "sources": USERNAME, "process_on": "next tuesday"},
            {
                "process_on": [
                    "Datetime has wrong format. Use one of these formats instead: "
                    "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
                ]
            },
        ),
        (
            {"template_data": {"message_title": "T"}, "channels": [1], "sources": USERNAME},
            {"template_data": {"message_body": ["This field is required."]}},
        ),
        (
            {"template_data": TEMPLATE, "channels": [1], "sources": USERNAME, "context": "x"},
            {"context": ['Expected a dictionary of items but got type "str".']},
        ),
        (
            {"template_data": TEMPLATE, "channels": [1], "sources": [{"type": "sms", "data": "1"}]},
            {
                "detail": "Source 1: unknown type 'sms'; expected one of "
                "email, username, platform, csv, department, pathway, program, usergroup."
            },
        ),
        (
            {"template_data": TEMPLATE, "channels": [1], "sources": ["jane"]},
            {"detail": "Source 1 must be an object with 'type' and 'data'."},
        ),
        (
            {"template_data": TEMPLATE, "channels": [1], "sources": [{"type": "username", "data": "ghost"}]},
            {"detail": "The sources resolve to no recipients."},
        ),
        (
            {
                "template_data": {"message_title": "T", "message_body": "Hi {% if %}"},
                "channels": [1],
                "sources": USERNAME,
            },
            None,
        ),
    ],
)
def test_invalid_input(client, people, body, expected):
    r = client.post(URL, body, format="json")
    assert r.status_code == 400, r.json()
    if expected is not None:
        assert r.json() == expected
    else:
        assert r.json()["detail"].startswith("template_data.message_body:")
    assert not Build.objects.exists()
    assert not BuildRecipient.objects.exists()
    assert not StagedEntry.objects.exists()


def test_unknown_template_id(client, people):
    r = client.post(
        URL,
        {"template_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "channels": [1], "sources": USERNAME},
        format="json",
    )
    assert r.status_code == 400
    assert r.json() == {"detail": "Template '3fa85f64-5717-4562-b3fc-2c963f66afa6' not found."}


def test_source_failing_after_others_leaves_nothing_behind(client, people, group):
    sources = [
        {"type": "usergroup", "data": group.pk},
        {"type": "email", "data": "a@b.org"},
        {"type": "department", "data": 424242},
    ]
    r = client.post(URL, custom(sources=sources), format="json")
    assert r.status_code == 400
    assert not Build.objects.exists() and not BuildRecipient.objects.exists() and not StagedEntry.objects.exists()


def test_push_channel_refused_when_push_is_off(client, people, platform):
    platform.push_enabled = False
    platform.save()
    r = client.post(URL, custom(channels=[2], sources=USERNAME), format="json")
    assert r.json() == {"channels": ["Push notifications are disabled on this platform."]}


def test_multipart_with_broken_json(client):
    r = client.post(URL, {"sources": "[{", "channels": "[1]"}, format="multipart")
    assert (r.status_code, r.json()) == (400, {"sources": ["Not valid JSON."]})


def test_a_queued_build_tells_the_sweep_when_it_falls_due(client, people, django_capture_on_commit_callbacks):
    from builder.runs import builds_next_due

    when = timezone.now() + timedelta(milliseconds=800)
    body = client.post(
        URL, custom(sources=[{"type": "username", "data": "jane"}], process_on=when.isoformat()), format="json"
    ).json()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(BASE + "send/", {"build_id": body["build_id"]}, format="json").status_code == 200
    assert Build.objects.get(pk=body["build_id"]).status == "queued"
    now = timezone.now()
    assert builds_next_due(after=now - timedelta(seconds=1), until=now + timedelta(seconds=1)) == when
    assert builds_next_due(after=when, until=when + timedelta(seconds=1)) is None
