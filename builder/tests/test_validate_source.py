"""POST validate_source/: every source type, its invalid entries, and bad input."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from builder.models import StagedEntry
from builder.tests.conftest import BASE
from notifications.models import Membership

pytestmark = pytest.mark.django_db

URL = BASE + "validate_source/"
ALL_TYPES = "email, username, platform, csv, department, pathway, program, usergroup."


def csv_file(text: str | bytes, name: str = "people.csv") -> SimpleUploadedFile:
    data = text.encode() if isinstance(text, str) else text
    return SimpleUploadedFile(name, data, content_type="text/csv")


def test_document_example(client, make_user):
    make_user("jane.doe", email="jane@example.com")
    make_user("john.smith", email="john@example.com")
    r = client.post(URL, {"type": "email", "data": "jane@example.com,john@example.com,invalid-address"}, format="json")
    assert r.status_code == 200
    assert r.json() == {
        "status": "success",
        "valid_count": 2,
        "invalid_entries": ["invalid-address"],
        "invalid_count": 1,
        "sample_recipients": [
            {"username": "jane.doe", "email": "jane@example.com"},
            {"username": "john.smith", "email": "john@example.com"},
        ],
    }
    assert not StagedEntry.objects.exists()  # scratch rows never outlive the request


def test_email_addresses_without_account_and_duplicates(client, people):
    r = client.post(
        URL, {"type": "email", "data": "Jane@Example.com, jane@example.com,\nnew@outside.org"}, format="json"
    )
    body = r.json()
    assert body["valid_count"] == 2
    assert body["invalid_entries"] == []
    assert body["sample_recipients"] == [
        {"username": "jane", "email": "jane@example.com"},
        {"username": None, "email": "new@outside.org"},
    ]


def test_email_of_an_account_on_another_platform_is_only_an_address(client, make_user):
    from notifications.tests.factories import PlatformFactory

    make_user("outsider", email="outsider@example.com", plat=PlatformFactory(key="other"))
    body = client.post(URL, {"type": "email", "data": "outsider@example.com"}, format="json").json()
    assert body["sample_recipients"] == [{"username": None, "email": "outsider@example.com"}]


def test_usernames(client, people, make_user, platform):
    from notifications.tests.factories import PlatformFactory

    make_user("elsewhere", plat=PlatformFactory(key="other"))
    Membership.objects.filter(user=people["paul"], platform=platform).update(is_active=False)
    body = client.post(URL, {"type": "username", "data": "jane, john,ghost,elsewhere,paul"}, format="json").json()
    assert body["valid_count"] == 2
    assert body["invalid_entries"] == ["ghost", "elsewhere", "paul"]
    assert [s["username"] for s in body["sample_recipients"]] == ["jane", "john"]


def test_platform_is_every_active_member(client, people, platform, admin):
    people["paul"].is_active = False
    people["paul"].save()
    Membership.objects.filter(user=people["mary"], platform=platform).update(is_active=False)
    body = client.post(URL, {"type": "platform", "data": "acme-learning"}, format="json").json()
    assert body["valid_count"] == 3  # admin, jane, john
    assert {s["username"] for s in body["sample_recipients"]} == {"admin", "jane", "john"}


def test_platform_must_be_this_one(client):
    r = client.post(URL, {"type": "platform", "data": "other-platform"}, format="json")
    assert r.status_code == 400
    assert r.json() == {"detail": "source 1 (platform): 'other-platform' is not this platform ('acme-learning')."}


def test_department_usergroup_program_pathway(client, department, group, program, pathway):
    def names(kind, data):
        body = client.post(URL, {"type": kind, "data": data}, format="json").json()
        return body["valid_count"], sorted(s["username"] for s in body["sample_recipients"])

    assert names("department", department.pk) == (2, ["john", "mary"])  # integer id
    assert names("department", str(department.pk)) == (2, ["john", "mary"])  # or its string
    assert names("usergroup", str(group.pk)) == (2, ["jane", "john"])
    assert names("program", "prog-data-101") == (1, ["jane"])  # suggested members only
    assert names("pathway", "path-ml") == (2, ["mary", "paul"])


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"type": "department", "data": "engineering"},
            "source 1 (department): 'data' must be an integer id, not 'engineering'.",
        ),
        ({"type": "usergroup", "data": "1.5"}, "source 1 (usergroup): 'data' must be an integer id, not '1.5'."),
        (
            {"type": "department", "data": 999999},
            "source 1 (department): department '999999' does not exist on this platform.",
        ),
        ({"type": "program", "data": "nope"}, "source 1 (program): program 'nope' does not exist on this platform."),
        ({"type": "pathway", "data": "nope"}, "source 1 (pathway): pathway 'nope' does not exist on this platform."),
        (
            {"type": "usergroup", "data": 999999},
            "source 1 (usergroup): usergroup '999999' does not exist on this platform.",
        ),
        ({"type": "email"}, "source 1 (email): 'data' is required."),
        ({"type": "username", "data": "  "}, "source 1 (username): 'data' is required."),
        (
            {"type": "fax", "data": "1"},
            "Source 1: unknown type 'fax'; expected one of " + ALL_TYPES,
        ),
        (
            {"data": "x"},
            "Source 1: unknown type None; expected one of " + ALL_TYPES,
        ),
        ({"type": "email", "data": ["a@example.com"]}, "source 1 (email): 'data' must be a string."),
        ({"type": "csv"}, "source 1 (csv): upload the CSV file as multipart form data in the 'file_0' field."),
    ],
)
def test_invalid_sources(client, body, detail):
    r = client.post(URL, body, format="json")
    assert (r.status_code, r.json()) == (400, {"detail": detail})


def test_department_of_another_platform_does_not_exist_here(client):
    from builder.models import Department
    from notifications.tests.factories import PlatformFactory

    foreign = Department.objects.create(platform=PlatformFactory(key="other"), name="Theirs")
    r = client.post(URL, {"type": "department", "data": foreign.pk}, format="json")
    assert r.status_code == 400
    assert "does not exist on this platform" in r.json()["detail"]


def test_csv_upload(client, people):
    text = (
        "\ufeffName,Email,Team\n"  # a spreadsheet's byte-order mark and a capitalised header
        "Jane,JANE@example.com,a\n"
        "Someone,someone@outside.org,b\n"
        "\n"
        "Bad,not-an-email,c\n"
        "Nobody,,d\n"
        "Short\n"
        "Jane again,jane@example.com,a\n"
    )
    r = client.post(URL, {"type": "csv", "file_0": csv_file(text)}, format="multipart")
    assert r.status_code == 200
    body = r.json()
    assert body["valid_count"] == 2
    assert body["invalid_entries"] == ["not-an-email", "row 6: no email", "row 7: no email"]
    assert body["invalid_count"] == 3
    assert body["sample_recipients"] == [
        {"username": "jane", "email": "jane@example.com"},
        {"username": None, "email": "someone@outside.org"},
    ]
    assert not StagedEntry.objects.exists()


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (
            "jane@example.com\njohn@example.com\n",
            "source 1 (csv): the CSV file must start with a header row that has an 'email' column.",
        ),
        (
            "name,team\nJane,a\n",
            "source 1 (csv): the CSV file must start with a header row that has an 'email' column.",
        ),
        ("", "source 1 (csv): the CSV file is empty."),
        (
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\xfd",
            "source 1 (csv): the file is not a CSV file (it is not UTF-8 text).",
        ),
        ("email\njane@example.com\x00\n", "source 1 (csv): the file is not a CSV file (line contains NUL)."),
    ],
)
def test_csv_not_usable(client, content, detail):
    r = client.post(URL, {"type": "csv", "file_0": csv_file(content)}, format="multipart")
    assert (r.status_code, r.json()) == (400, {"detail": detail})
    assert not StagedEntry.objects.exists()


def test_large_csv_is_streamed_into_the_database(client, people):
    rows = io.StringIO()
    rows.write("email\n")
    for i in range(5000):
        rows.write(f"person{i}@example.org\n")
    rows.write("jane@example.com\nbroken@\n")
    r = client.post(URL, {"type": "csv", "file_0": csv_file(rows.getvalue())}, format="multipart")
    body = r.json()
    assert body["valid_count"] == 5001
    assert body["invalid_entries"] == ["broken@"]
    assert len(body["sample_recipients"]) == 10
