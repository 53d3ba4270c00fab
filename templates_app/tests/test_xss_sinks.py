"""The XSS corpus through every HTML sink: what is stored and what is sent obeys the sanitiser's rules.

Sinks: the v1 bulk-email `html` (stored job, sent email, inbox body), a
template's `email_html_template` (stored source, sent email), event context
placed into HTML (sent email, inbox body), and learner-written support-ticket
fields in the admins' inbox. The last test renders the outputs in Chromium and
counts script that runs, against the raw vectors as a control.
"""

from __future__ import annotations

import json

import pytest
from django.core import mail

from notifications.models import Notification, ScheduledNotification
from notifications.tests.fakes import backend_settings
from templates_app.models import NotificationTemplate

from .conftest import BASE, EVENTS
from .xss_corpus import VECTORS, html_problems

pytestmark = pytest.mark.django_db
ENROLL = BASE + "USER_NOTIF_COURSE_ENROLLMENT/"
V1 = "/api/v1/notifications"
INBOX = "/api/notification/v1/orgs/acme-learning/users/{}/notifications/?page_size=100"


@pytest.fixture(autouse=True)
def real_email_backend(settings):
    # The project's email backend builds the MIME message; Django's locmem mail
    # backend keeps what would have gone over SMTP in `mail.outbox`.
    settings.NOTIFICATION_BACKENDS = backend_settings(
        settings.NOTIFICATION_BACKENDS, email="notifications.backends.email.EmailBackend"
    )
    settings.PUBLIC_BASE_URL = "https://notify.example.com"


def sent_html(message) -> str:
    return next((content for content, mimetype in message.alternatives if mimetype == "text/html"), "")


def inbox_bodies(client, username: str) -> list[str]:
    r = client.get(INBOX.format(username))
    assert r.status_code == 200, r.content
    return [n["body"] for n in r.json()["results"]]


def assert_safe(outputs: dict[str, str]) -> None:
    bad = {where: problems for where, html in outputs.items() if (problems := html_problems(html))}
    assert not bad, json.dumps(bad, indent=1)


def test_the_corpus_is_large_enough():
    assert len(VECTORS) >= 50


def test_bulk_email_html(api, make_user, learner):
    client = api(make_user("ops", role="ADMIN", admin=True))
    learner_client = api(learner, keyword="Token")
    outputs: dict[str, str] = {}
    for i, vector in enumerate(VECTORS):
        mail.outbox.clear()
        r = client.post(
            f"{V1}/bulk-email",
            {"subject": f"Vector {i}", "html": vector, "user_ids": json.dumps([learner.pk])},
            format="multipart",
        )
        if r.status_code == 400:
            # Nothing was left to send once sanitised; the answer says so and nothing was written.
            assert "Message is required" in json.dumps(r.json()), (vector, r.json())
            assert not Notification.objects.filter(title=f"Vector {i}").exists()
            continue
        assert r.status_code == 200, (vector, r.content)
        assert len(mail.outbox) == 1, vector
        outputs[f"sent {i}"] = sent_html(mail.outbox[0])
        row = Notification.objects.get(title=f"Vector {i}")
        outputs[f"stored {i}"] = row.html
        r = client.post(
            f"{V1}/bulk-email",
            {
                "subject": f"Later {i}",
                "html": vector,
                "user_ids": json.dumps([learner.pk]),
                "scheduled_at": "2030-06-15T09:00:00Z",
            },
            format="multipart",
        )
        assert r.status_code == 201, (vector, r.content)
        outputs[f"scheduled answer {i}"] = r.json()["data"]["html"]
        outputs[f"scheduled stored {i}"] = ScheduledNotification.objects.get(title=f"Later {i}").html
    for j, body in enumerate(inbox_bodies(learner_client, "jane.doe")):
        outputs[f"inbox {j}"] = body
    assert len(outputs) > 3 * 40
    assert_safe(outputs)


def test_a_stored_job_of_an_older_version_is_answered_sanitised(api, make_user):
    client = api(make_user("ops", role="ADMIN", admin=True))
    r = client.post(
        f"{V1}/bulk-email",
        {"subject": "Old", "message": "m", "emails": '["a@example.com"]', "scheduled_at": "2030-06-15T09:00:00Z"},
        format="multipart",
    )
    job_id = r.json()["data"]["id"]
    ScheduledNotification.objects.filter(pk=job_id).update(html='<img src=x onerror="alert(1)"><b>kept</b>')
    r = client.get(f"{V1}/scheduled/{job_id}")
    assert r.json()["data"]["html"] == '<img src="x"><b>kept</b>'


def test_template_html_and_event_context(admin_api, learner):
    outputs: dict[str, str] = {}
    learner_client = admin_api  # the admin may read a member's inbox on its own platform
    for i, vector in enumerate(VECTORS):
        template = f"<div>{{{{ course_name }}}}</div>{vector}<p>{i}</p>"
        r = admin_api.patch(ENROLL, {"email_html_template": template}, format="json")
        assert r.status_code == 200, (vector, r.content)
        outputs[f"stored {i}"] = NotificationTemplate.objects.get(platform__key="acme-learning").email_html_template
        mail.outbox.clear()
        r = admin_api.post(
            EVENTS,
            {
                "type": "USER_NOTIF_COURSE_ENROLLMENT",
                "recipients": ["jane.doe"],
                "context": {"course_name": vector},
                "channels": ["email", "in_app"],
            },
            format="json",
        )
        assert r.status_code == 200, (vector, r.content)
        assert len(mail.outbox) == 1
        html = sent_html(mail.outbox[0])
        outputs[f"sent {i}"] = html
        # The event's value is text placed in HTML: escaped, so it reads as typed.
        if "<" in vector:
            assert "&lt;" in html, (vector, html)
    for j, body in enumerate(inbox_bodies(learner_client, "jane.doe")):
        outputs[f"inbox {j}"] = body
    assert_safe(outputs)


def test_support_ticket_fields_in_the_admins_inbox(admin_api, admin, learner):
    outputs: dict[str, str] = {}
    for i, vector in enumerate(VECTORS):
        mail.outbox.clear()
        ticket = {
            "ticket_subject": vector,
            "ticket_description": f"{vector} ({i})",
            "user_name": vector,
            "user_email": "jane@example.com",
            "session_id": "7f1c2f8e-4a57-4d3b-9a0e-2b5f1c9d8e11",
            "chat_link": "javascript:alert(1)" if i % 2 else "https://acme.example.com/chat/1",
        }
        r = admin_api.post(
            EVENTS,
            {"type": "HUMAN_SUPPORT_NOTIFICATION", "context": ticket, "channels": ["in_app", "email"]},
            format="json",
        )
        assert r.status_code == 200, (vector, r.content)
        outputs[f"sent {i}"] = sent_html(mail.outbox[0])
    for j, body in enumerate(inbox_bodies(admin_api, admin.username)):
        outputs[f"inbox {j}"] = body
    assert len([k for k in outputs if k.startswith("inbox")]) >= len(VECTORS) // 2
    assert_safe(outputs)


# A function: Playwright calls a function it is given (a bare script whose last value is one, too).
CATCHER = """() => {
  window.__ran = 0;
  for (const name of ["alert", "confirm", "prompt"]) { window[name] = () => { window.__ran += 1; }; }
}"""


def _ran_in_chromium(browser, fragments: list[str]) -> int:
    page = browser.new_page()
    try:
        page.set_content("<!doctype html><html><body><div id=sink></div></body></html>")
        page.evaluate(CATCHER)
        for fragment in fragments:
            # The way an inbox shows a body that "may contain HTML".
            page.evaluate(
                "(html) => { const d = document.createElement('div'); d.innerHTML = html; "
                "document.getElementById('sink').appendChild(d); }",
                fragment,
            )
        page.wait_for_timeout(500)
        page.focus("body")
        page.mouse.move(5, 5)
        page.wait_for_timeout(200)
        return page.evaluate("window.__ran")
    finally:
        page.close()


def test_no_vector_runs_in_chromium(request, api, make_user, learner, admin_api):
    client = api(make_user("ops", role="ADMIN", admin=True))
    for i, vector in enumerate(VECTORS):
        client.post(
            f"{V1}/bulk-email",
            {"subject": f"Vector {i}", "html": vector, "user_ids": json.dumps([learner.pk])},
            format="multipart",
        )
        admin_api.post(
            EVENTS,
            {
                "type": "HUMAN_SUPPORT_NOTIFICATION",
                "context": {"ticket_subject": vector, "ticket_description": vector, "user_name": vector},
                "channels": ["in_app"],
            },
            format="json",
        )
    bodies = inbox_bodies(api(learner, keyword="Token"), "jane.doe") + inbox_bodies(admin_api, "admin")
    assert len(bodies) > len(VECTORS)
    # Started only now: Playwright's event loop would stop the in-app announce above.
    browser = request.getfixturevalue("browser")
    # Control: the raw vectors do run in this harness, so a zero below means something.
    assert _ran_in_chromium(browser, VECTORS) > 0
    assert _ran_in_chromium(browser, bodies) == 0


def test_the_schema_says_which_fields_are_html_and_which_text(api):
    import yaml

    schema = yaml.safe_load(api().get("/api/schema/").content)
    components = schema["components"]["schemas"]

    def description(component: str, field: str) -> str:
        return components[component]["properties"][field].get("description", "")

    assert description("PatchedTemplatePatchInRequest", "email_html_template").startswith("HTML template")
    for field in ("message_title", "message_body", "short_message_body", "email_subject"):
        assert description("PatchedTemplatePatchInRequest", field).startswith("Text template"), field
    assert description("IBLNotification", "body").startswith("HTML")
    assert "HTML" in description("BulkEmailRequestRequest", "html")
    assert description("BulkEmailRequestRequest", "message").startswith("Plain-text")
    assert "plain text" in description("V1Notification", "payload")
    assert description("TemplateDetailOut", "email_html_template").startswith("HTML template")
    assert description("ScheduledNotification", "html").startswith("Sanitised HTML")
