"""A build whose template cannot render fails with an error that names the line, never a recipient's data."""

from __future__ import annotations

import pytest

from builder.models import Build, BuildStatus
from builder.tests.conftest import BASE, custom
from notifications.models import Notification

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent_build(client, people, django_capture_on_commit_callbacks):
    def _run(message_body: str, **extra) -> Build:
        body = custom(sources=[{"type": "username", "data": "jane,john"}], **extra)
        body["template_data"]["message_body"] = message_body
        r = client.post(BASE + "preview/", body, format="json")
        assert r.status_code == 200, r.json()
        build_id = r.json()["build_id"]
        with django_capture_on_commit_callbacks(execute=True):
            r = client.post(BASE + "send/", {"build_id": build_id}, format="json")
        assert r.status_code == 200, r.json()
        return Build.objects.get(pk=build_id)

    return _run


def test_a_missing_name_fails_the_build_without_printing_the_context(sent_build, settings):
    settings.PUBLIC_BASE_URL = "https://notify.example.com"
    build = sent_build("Hi {{ username }},\n{{ username|add:not_given }}", context={"secret_code": "s3cr3t-v4lue"})
    assert build.status == BuildStatus.FAILED
    assert build.error == (
        "The template failed to render: message_body: line 2: 'not_given' is not defined; "
        "a filter argument or tag value must exist."
    )
    for value in ("jane", "john", "unsubscribe", "notify.example.com", "s3cr3t-v4lue", "example.com"):
        assert value not in build.error
    assert not Notification.objects.filter(source__contains=str(build.pk)).exists()


def test_an_amplifying_template_fails_that_build_only(sent_build, client):
    build = sent_build('{% with s="' + "x" * 19_000 + '" %}{{ s|make_list|join:s }}{% endwith %}')
    assert build.status == BuildStatus.FAILED
    assert "'join' filter would build 361,000,000 characters" in build.error
    # The next build of the same platform goes out as usual.
    ok = sent_build("Hi {{ username }}")
    assert ok.status == BuildStatus.COMPLETED, ok.error
