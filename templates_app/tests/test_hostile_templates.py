"""Templates written to hurt: forged sanitiser placeholders, amplifying filters, values in error messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from templates_app import defaults
from templates_app.messages import recipient_context, render_fields
from templates_app.models import NotificationTemplate
from templates_app.rendering import RenderLimitExceeded, TemplateError, render

from .conftest import BASE

pytestmark = pytest.mark.django_db
ENROLL = BASE + "USER_NOTIF_COURSE_ENROLLMENT/"
AMPLIFIER = '{% with s="' + "x" * 40_000 + '" %}{{ s|make_list|join:s }}{% endwith %}'


def doubling(times: int) -> str:
    opening = '{% with a="xxxxxxxxxxxxxxxx" %}' + "{% with a=a|add:a %}" * times
    return opening + "{{ a }}" + "{% endwith %}" * (times + 1)


# --- cause #2: text that looks like a sanitiser placeholder -----------------------------


def test_placeholder_lookalikes_in_a_patch_are_just_text(admin_api):
    html = "<p>tplslot0x tplslot1x tplslot99x {{ course_name }} tplslot</p>"
    r = admin_api.patch(ENROLL, {"email_html_template": html, "message_body": "tplslot0x"}, format="json")
    assert r.status_code == 200, r.content
    stored = NotificationTemplate.objects.get(platform__key="acme-learning", type="USER_NOTIF_COURSE_ENROLLMENT")
    assert stored.email_html_template == html
    assert stored.message_body == "tplslot0x"


def test_placeholder_lookalikes_in_a_preview_and_a_custom_type(admin_api):
    r = admin_api.post(
        ENROLL + "preview/",
        {"template": {"email_html_template": "<b>tplslot0x</b>{{ course_name }}"}, "channels": ["email"]},
        format="json",
    )
    assert r.status_code == 200, r.content
    assert r.json()["channels"]["email"]["html"].startswith("<b>tplslot0x</b>")
    r = admin_api.post(
        BASE,
        {
            "type": "TPLSLOT_PROBE",
            "name": "Probe",
            "message_body": "tplslot0x",
            "email_html_template": "<p>tplslot0x{{ username }}tplslot7x</p>",
        },
        format="json",
    )
    assert r.status_code == 201, r.content
    assert r.json()["email_html_template"] == "<p>tplslot0x{{ username }}tplslot7x</p>"


# --- bounded renders ---------------------------------------------------------------------


def test_amplification_in_a_preview_is_a_400(admin_api):
    r = admin_api.post(ENROLL + "preview/", {"template": {"message_body": AMPLIFIER}}, format="json")
    assert r.status_code == 400
    # make_list of 40,000 characters is already more than one value may hold (an item costs 9).
    assert r.json()["message_body"] == [
        "message_body: line 1: The 'make_list' filter would build 360,000 characters; a render may build at "
        "most 200,000 characters in one value. It was stopped."
    ]
    # At 20,000 the list fits, and the join is refused before it is built.
    smaller = AMPLIFIER.replace("x" * 40_000, "x" * 20_000)
    r = admin_api.post(ENROLL + "preview/", {"template": {"message_body": smaller}}, format="json")
    assert r.status_code == 400
    assert "The 'join' filter would build 400,000,000 characters" in r.json()["message_body"][0]


def test_nested_doubling_is_a_400(admin_api):
    r = admin_api.post(ENROLL + "preview/", {"template": {"message_body": doubling(40)}}, format="json")
    assert r.status_code == 400
    assert "'add' filter would build" in r.json()["message_body"][0]
    # A few doublings that stay in budget still render.
    r = admin_api.post(
        ENROLL + "preview/", {"template": {"message_body": doubling(3)}, "channels": ["in_app"]}, format="json"
    )
    assert r.status_code == 200 and r.json()["channels"]["in_app"]["body"] == "x" * 128


def test_amplification_raises_peak_memory_by_less_than_100_mib(tmp_path):
    source = tmp_path / "amplifier.txt"
    source.write_text(AMPLIFIER, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "templates_app.tests.render_memory_probe", str(source)],
        cwd=Path(django_settings.BASE_DIR),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe["outcome"] == "refused", probe
    assert "filter would build" in probe["message"]
    assert probe["after_kib"] - probe["before_kib"] < 100 * 1024, probe


@pytest.mark.parametrize(
    ("source", "context"),
    [
        ("{{ s|make_list|join:s }}", {"s": "y" * 20_000}),
        ("{{ l|join:s }}", {"l": ["a"] * 10_000, "s": "z" * 1_000}),
        ("{{ s|add:s|add:s|add:s|add:s }}", {"s": "q" * 60_000}),
        ('{{ s|center:"300000" }}', {"s": "c"}),
        ('{{ s|rjust:"300000" }}', {"s": "c"}),
        ('{{ n|stringformat:"300000d" }}', {"n": 1}),
        ('{{ n|stringformat:".300000f" }}', {"n": 1.5}),
        ("{{ l|bullet_list:s }}", {"l": list(range(5_000)), "s": "b" * 100}),
        ("{{ d|as_date:f }}", {"d": "2026-01-01", "f": "r" * 10_000}),
        ("{% local_datetime d f %}", {"d": "2026-01-01T00:00:00Z", "f": "r" * 10_000}),
        ('{{ s|make_list|join:"" }}', {"s": "m" * 150_000}),
        # Many values in budget each, too much together.
        ("{% for i in l %}{% with t=s|add:s %}{% endwith %}{% endfor %}", {"l": list(range(20)), "s": "w" * 40_000}),
    ],
)
def test_filters_refuse_results_over_the_budget(source, context):
    with pytest.raises(RenderLimitExceeded):
        render(source, context)


def test_checked_filters_behave_like_djangos():
    ctx = {"l": ["<a>", "b"], "s": "ab", "n": 7, "x": 2.345}
    assert render('{{ l|join:", " }}', ctx, html=True) == "&lt;a&gt;, b"
    assert render('{{ l|join:", " }}', ctx) == "<a>, b"
    assert render("{{ s|make_list }}|{{ s|add:s }}|{{ n|add:3 }}|{{ l|add:l|length }}", ctx) == "['a', 'b']|abab|10|4"
    assert render('{{ s|center:"6" }}|{{ s|ljust:"4" }}|{{ s|rjust:"4" }}', ctx) == "  ab  |ab  |  ab"
    assert render('{{ n|stringformat:"03d" }}|{{ x|floatformat:2 }}|{{ n|add:"x" }}', ctx) == "007|2.35|"
    assert render("{{ l|bullet_list }}", ctx) == "- <a>\n- b"


def test_deep_nesting_is_refused_when_saved(admin_api):
    deep = "{% if 1 %}" * 1_000 + "x" + "{% endif %}" * 1_000
    r = admin_api.patch(ENROLL, {"message_body": deep}, format="json")
    assert r.status_code == 400
    assert "nested more than 50 deep" in r.json()["message_body"][0]
    fine = "{% if 1 %}" * 50 + "x" + "{% endif %}" * 50
    assert admin_api.patch(ENROLL, {"message_body": fine}, format="json").status_code == 200
    assert render(fine, {}) == "x"


def test_context_values_are_bounded(settings):
    settings.NOTIFY_TEMPLATE_MAX_CONTEXT_CHARS = 1_000
    with pytest.raises(RenderLimitExceeded, match="values given to the template exceed 1,000"):
        render("{{ a }}", {"a": ["x" * 100] * 20})
    assert render("{{ a|length }}", {"a": ["x" * 100] * 5}) == "5"


def test_an_amplifying_event_fails_that_event_only(admin_api, learner):
    admin_api.patch(ENROLL, {"message_body": "{{ course_name|make_list|join:course_name }}"}, format="json")
    r = admin_api.post(
        "/api/notification/v1/orgs/acme-learning/events/",
        {"type": "USER_NOTIF_COURSE_ENROLLMENT", "recipients": ["jane.doe"], "context": {"course_name": "c" * 2_000}},
        format="json",
    )
    assert r.status_code == 400
    assert "'join' filter would build" in r.json()["template"][0]
    r = admin_api.post(
        "/api/notification/v1/orgs/acme-learning/events/",
        {"type": "USER_NOTIF_COURSE_ENROLLMENT", "recipients": ["jane.doe"], "context": {"course_name": "Data"}},
        format="json",
    )
    assert r.status_code == 200, r.content


# --- render errors name the line and the name, never a value -----------------------------


def test_render_errors_carry_no_context_values(admin_api, settings):
    settings.PUBLIC_BASE_URL = "https://notify.example.com"
    body = "Hello {{ username }}\n{{ course_name|add:no_such_name }}"
    r = admin_api.post(
        ENROLL + "preview/",
        {"template": {"message_body": body}, "context": {"course_name": "Secret course 42"}},
        format="json",
    )
    assert r.status_code == 400
    message = r.json()["message_body"][0]
    assert message == (
        "message_body: line 2: 'no_such_name' is not defined; a filter argument or tag value must exist."
    )
    text = json.dumps(r.json())
    for value in ("Secret course 42", "admin", "unsubscribe", "notify.example.com", "acme"):
        assert value not in text


def test_errors_of_filters_do_not_quote_the_value():
    with pytest.raises(TemplateError) as info:
        render('line one\n{{ secret|wordwrap:"x" }}', {"secret": "the-recipient-secret"})
    assert str(info.value) == "line 2: A filter or tag could not handle its value (ValueError)."


# --- inline CSS email templates need, and saving only what changed ------------------------


def test_every_shipped_template_keeps_its_button_background(platform):
    platform.skills_url = "https://skills.acme.example"  # the button of two types links there
    for td in defaults.TYPES:
        if "background:" not in td.email_html_template:
            continue
        context = {**recipient_context(platform), **td.sample_context}
        html = render_fields({"email_html_template": td.email_html_template}, context, fields=["email_html_template"])
        out = html["email_html_template"]
        assert "background:#2563eb" in out, td.type
        assert "color:#ffffff" in out, td.type


def test_a_background_that_loads_an_image_is_dropped():
    from notifications.sanitize import sanitize_html

    assert sanitize_html('<a style="background:#111 url(https://t.example/p.gif);color:#fff">x</a>') == (
        '<a style="color:#fff" rel="noopener noreferrer">x</a>'
    )
    assert sanitize_html('<p style="background-color:rgb(1, 2, 3);border:1px solid #ccc">x</p>') == (
        '<p style="background-color:rgb(1, 2, 3);border:1px solid #ccc">x</p>'
    )


def test_patch_of_the_title_leaves_the_stored_html_alone(admin_api):
    stored = '<p style="background:#2563eb">{{ course_name }}</p><custom-tag>kept as stored</custom-tag>'
    admin_api.patch(ENROLL, {"message_title": "First"}, format="json")
    NotificationTemplate.objects.filter(platform__key="acme-learning").update(email_html_template=stored)
    r = admin_api.patch(ENROLL, {"message_title": "Second", "email_html_template": stored}, format="json")
    assert r.status_code == 200
    row = NotificationTemplate.objects.get(platform__key="acme-learning")
    assert (row.message_title, row.email_html_template) == ("Second", stored)
    r = admin_api.patch(ENROLL, {"email_html_template": stored + "<script>x</script>"}, format="json")
    row.refresh_from_db()
    assert row.email_html_template == '<p style="background:#2563eb">{{ course_name }}</p>kept as stored'


def test_admin_save_of_the_title_leaves_the_stored_html_alone(admin_client, admin_api):
    admin_api.patch(ENROLL, {"message_title": "First"}, format="json")
    row = NotificationTemplate.objects.get(platform__key="acme-learning")
    # Stored before the sanitiser kept `background`, or written by hand: the form must not rewrite it.
    stored = '<a href="{{ site_url }}" style="background:#2563eb;foo:bar">Go</a>\n<center>old</center>'
    NotificationTemplate.objects.filter(pk=row.pk).update(email_html_template=stored)
    url = f"/admin/templates_app/notificationtemplate/{row.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        if name in form.base_fields and not field.disabled:
            value = form.initial.get(name, field.initial)
            if value is None:
                continue
            if isinstance(value, (dict, list)) and name not in ("allowed_channels", "spas"):
                value = json.dumps(value)
            data[name] = value
    data["allowed_channels"] = [c.pk for c in row.allowed_channels.all()]
    data["spas"] = [s.pk for s in row.spas.all()]
    data["message_title"] = "Renamed"
    # What a browser sends for an untouched textarea: CRLF line ends.
    data["email_html_template"] = stored.replace("\n", "\r\n")
    r = admin_client.post(url, data)
    assert r.status_code == 302, r.context["adminform"].form.errors if r.context else r.content
    row.refresh_from_db()
    assert row.message_title == "Renamed"
    assert row.email_html_template == stored
