"""`renderer_for`: the one door from a template, template text or a finished message to the pipeline's renderer."""

from __future__ import annotations

import pytest

from notifications.models import Channel
from notifications.pipeline import Message, Recipient
from templates_app import selectors
from templates_app.messages import FieldRenderError, rendered_ahead, renderer_for
from templates_app.rendering import TemplateError
from templates_app.services.templates import template_customize

pytestmark = pytest.mark.django_db
TYPE = "USER_NOTIF_COURSE_ENROLLMENT"


class Refused(Exception):
    pass


def template_of(platform, notification_type=TYPE):
    return selectors.template_for_type(platform=platform, notification_type=notification_type).template


def test_a_template_renders_per_recipient_and_channel(platform, make_user):
    jane = make_user("jane", email="jane@example.com", timezone="Africa/Addis_Ababa")
    template = template_of(platform)
    template.message_title = "Hi {{ username }}"
    template.message_body = "{{ course_name }} starts; times in {{ recipient_timezone }}."
    template.short_message_body = "{{ course_name }}!"
    template.email_subject = "Enrolled: {{ course_name }}"
    template.email_html_template = "<p onclick='x()'>{{ course_name }}</p><script>alert(1)</script>"
    template.email_from_address = "courses@acme.example"
    render = renderer_for(
        platform=platform,
        channels=[Channel.EMAIL, Channel.SMS, Channel.PUSH, Channel.IN_APP],
        template=template,
        context={"course_name": "Python <101>"},
    )
    recipient = Recipient(user_id=jane.pk, context={"course_name": "Go 101"})

    email = render(recipient, Channel.EMAIL, jane)
    assert (email.title, email.notification_type) == ("Enrolled: Go 101", TYPE)
    assert email.html == "<p>Go 101</p>"  # escaped, then sanitised: no handler, no script
    assert email.data == {"from_email": "courses@acme.example"}
    # The recipient's own context wins over the send's, and is what the row keeps.
    assert email.context == {"course_name": "Go 101", "username": "jane"}
    in_app = render(recipient, Channel.IN_APP, jane)
    assert (in_app.title, in_app.body) == ("Hi jane", "Go 101 starts; times in Africa/Addis_Ababa.")
    assert render(recipient, Channel.PUSH, jane).body == "Go 101!"
    sms = render(recipient, Channel.SMS, jane)
    assert (sms.title, sms.body) == ("", "Go 101!")
    # A bare address has no account: its username comes from the address.
    assert render(Recipient(address="sam@example.org"), Channel.EMAIL, None).context["username"] == "sam"


def test_the_platform_copy_wins_over_the_inherited_default(platform, make_user):
    jane = make_user("jane")
    inherited = template_of(platform)
    assert inherited.platform_id is None
    before = renderer_for(platform=platform, channels=[Channel.IN_APP], template=inherited)
    template_customize(platform=platform, notification_type=TYPE, changes={"message_title": "Ours, {{ username }}"})
    copy = template_of(platform)
    assert copy.platform_id == platform.pk
    after = renderer_for(platform=platform, channels=[Channel.IN_APP], template=copy)
    assert before(Recipient(user_id=jane.pk), Channel.IN_APP, jane).title != "Ours, jane"
    assert after(Recipient(user_id=jane.pk), Channel.IN_APP, jane).title == "Ours, jane"


def test_only_the_fields_the_channels_need_are_rendered(platform, make_user):
    jane = make_user("jane")
    template = template_of(platform)
    template.message_body = "Body"
    template.short_message_body = "Short"
    template.email_subject = "{{ username|add:not_given }}"  # fails when rendered
    sms_only = renderer_for(platform=platform, channels=[Channel.SMS], template=template)
    assert sms_only(Recipient(user_id=jane.pk), Channel.SMS, jane).body == "Short"
    with_email = renderer_for(platform=platform, channels=[Channel.SMS, Channel.EMAIL], template=template)
    with pytest.raises(FieldRenderError) as caught:
        with_email(Recipient(user_id=jane.pk), Channel.SMS, jane)
    assert caught.value.field == "email_subject"


def test_content_replaces_the_template_fields_it_names(platform, make_user):
    jane = make_user("jane")
    template = template_of(platform)
    render = renderer_for(
        platform=platform,
        channels=[Channel.EMAIL],
        template=template,
        content={"email_subject": "Policy for {{ username }}"},
    )
    message = render(Recipient(user_id=jane.pk), Channel.EMAIL, jane)
    assert message.title == "Policy for jane"
    assert message.body  # the template's own body is still there


def test_custom_content_without_a_template(platform, make_user):
    jane = make_user("jane")
    render = renderer_for(
        platform=platform,
        channels=[Channel.EMAIL, Channel.IN_APP],
        content={"message_title": "Hello {{ username }}", "message_body": "About {{ topic }}"},
        notification_type="CUSTOM_NOTIFICATION",
        context={"topic": "exams"},
    )
    email = render(Recipient(user_id=jane.pk), Channel.EMAIL, jane)
    assert (email.title, email.body, email.html, email.data) == ("Hello jane", "About exams", "", {})
    assert email.notification_type == "CUSTOM_NOTIFICATION"
    with pytest.raises(ValueError, match="notification_type"):
        renderer_for(platform=platform, channels=[Channel.EMAIL], content={"message_body": "x"})


def test_a_finished_message_goes_to_everyone_as_it_is(platform):
    message = Message(title="Server maintenance", body="Tonight at 22:00.", notification_type="alert")
    render = renderer_for(platform=platform, channels=[Channel.IN_APP, Channel.EMAIL], message=message)
    assert render(Recipient(user_id=1), Channel.IN_APP, None) is message
    assert render(Recipient(address="a@example.org"), Channel.EMAIL, None) is message
    with pytest.raises(ValueError):
        renderer_for(platform=platform, channels=[Channel.EMAIL], message=message, content={"message_body": "x"})
    with pytest.raises(ValueError):
        renderer_for(platform=platform, channels=[Channel.EMAIL])


def test_a_render_over_budget_surfaces_as_the_callers_error(platform, make_user, settings):
    settings.NOTIFY_TEMPLATE_MAX_OUTPUT_CHARS = 1000
    jane = make_user("jane")
    content = {
        "message_title": "Hi",
        "message_body": '{% with s="' + "x" * 100 + '" %}{{ s|make_list|join:s }}{% endwith %}',
    }
    common = {"platform": platform, "channels": [Channel.IN_APP], "content": content, "notification_type": "CUSTOM"}
    with pytest.raises(FieldRenderError) as caught:
        renderer_for(**common)(Recipient(user_id=jane.pk), Channel.IN_APP, jane)
    assert caught.value.field == "message_body"
    assert "'join' filter would build" in str(caught.value)

    def refused(exc: TemplateError) -> Exception:
        return Refused(f"cannot render: {exc}")

    with pytest.raises(Refused, match=r"cannot render: message_body: .*'join' filter would build"):
        renderer_for(**common, error=refused)(Recipient(user_id=jane.pk), Channel.IN_APP, jane)
    # Out of time (a budget already spent before the first node) is the caller's error too.
    settings.NOTIFY_TEMPLATE_MAX_RENDER_SECONDS = -1
    slow = {**common, "content": {"message_title": "{% for i in 'abc' %}{{ i }}{% endfor %}"}}
    with pytest.raises(Refused, match=r"message_title: .*took longer than -1 s"):
        renderer_for(**slow, error=refused)(Recipient(user_id=jane.pk), Channel.IN_APP, jane)


def test_a_recipient_is_rendered_once_for_all_its_channels(platform, make_user, monkeypatch):
    jane, john = make_user("jane"), make_user("john")
    from templates_app import messages

    calls = []
    real = messages.render_fields
    monkeypatch.setattr(messages, "render_fields", lambda *a, **k: calls.append(k["fields"]) or real(*a, **k))
    render = renderer_for(platform=platform, channels=[Channel.EMAIL, Channel.IN_APP], template=template_of(platform))
    for recipient, user in ((Recipient(user_id=jane.pk), jane), (Recipient(user_id=john.pk), john)):
        for channel in (Channel.EMAIL, Channel.IN_APP):
            render(recipient, channel, user)
    # Once for the fields every recipient shares, then once per recipient for all its channels.
    common, *per_recipient = calls
    assert per_recipient == [render.per_recipient] * 2 and set(common) | set(render.per_recipient) == set(render.fields)
    # The same account with another context (a second mentor's run) is rendered again, every field.
    other = render(Recipient(user_id=john.pk, context={"course_name": "Other"}), Channel.IN_APP, john)
    assert calls[-1] == render.fields and len(calls) == 4 and other.context["course_name"] == "Other"


def test_only_what_differs_is_rendered_per_recipient(platform, make_user, monkeypatch):
    from templates_app import messages, rendering

    jane = make_user("jane", timezone="Africa/Addis_Ababa")
    john = make_user("john", timezone="Europe/Oslo")
    rendered = []
    real = messages.render

    def counting(source, context, **kwargs):
        rendered.append(source)
        return real(source, context, **kwargs)

    monkeypatch.setattr(messages, "render", counting)
    monkeypatch.setattr(rendering, "render", counting)
    content = {
        "message_title": "Maintenance on {{ site_name }}",
        "message_body": "Hi {{ username }}, {{ note }}",
        "short_message_body": "{% local_datetime when %}",  # reads recipient_timezone by itself
        "email_subject": "{{ unsubscribe_url|default:'none' }} {{ site_name }}",
    }
    render = renderer_for(
        platform=platform,
        channels=[Channel.EMAIL, Channel.IN_APP],
        content=content,
        notification_type="CUSTOM",
        context={"note": "back at 02:00", "when": "2026-01-01T12:00:00+00:00"},
    )
    first = render(Recipient(user_id=jane.pk), Channel.EMAIL, jane)
    second = render(Recipient(user_id=john.pk), Channel.EMAIL, john)
    # Once for everyone; once with a hole for the username; in full for each recipient
    # where a tag or a filter uses their variables.
    assert rendered.count(content["message_title"]) == 1
    assert rendered.count(content["message_body"]) == 1
    for per_recipient in ("short_message_body", "email_subject"):
        assert rendered.count(content[per_recipient]) == 2
    assert (first.body, second.body) == ("Hi jane, back at 02:00", "Hi john, back at 02:00")
    assert first.short_message.endswith("15:00 EAT") and second.short_message.endswith("13:00 CET")
    in_app = render(Recipient(user_id=john.pk), Channel.IN_APP, john)
    assert in_app.title == f"Maintenance on {platform.site_name or platform.name}"
    # The send's own variables win over a recipient's, as in one context.
    named = renderer_for(
        platform=platform,
        channels=[Channel.IN_APP],
        content={"message_title": "{{ username }}"},
        notification_type="CUSTOM",
        context={"username": "everyone"},
    )
    message = named(Recipient(user_id=jane.pk), Channel.IN_APP, jane)
    assert (message.title, message.context["username"]) == ("everyone", "everyone")


def test_rendered_ahead_renders_everything_first_and_stops_at_the_first_failure(platform, make_user):
    jane, john = make_user("jane"), make_user("john")
    channels = [Channel.EMAIL, Channel.IN_APP]
    render = renderer_for(platform=platform, channels=channels, template=template_of(platform))
    audience = [(Recipient(user_id=jane.pk), jane), (Recipient(address="sam@example.org"), None)]
    ahead = rendered_ahead(render=render, audience=audience, channels=channels)
    assert ahead.recipients == [r for r, _ in audience]
    assert set(ahead.messages) == {(k, c) for k in (f"user:{jane.pk}", "email:sam@example.org") for c in channels}
    assert ahead(Recipient(address="sam@example.org"), Channel.EMAIL, None).context["username"] == "sam"

    prepared = []

    def lazily():
        for user in (jane, john):
            prepared.append(user.username)
            yield Recipient(user_id=user.pk), user

    broken = renderer_for(
        platform=platform,
        channels=channels,
        content={"message_body": "{{ username|add:not_given }}"},
        notification_type="CUSTOM",
    )
    with pytest.raises(FieldRenderError):
        rendered_ahead(render=broken, audience=lazily(), channels=channels)
    assert prepared == ["jane"]  # john's context was never prepared


def test_a_recipients_value_goes_into_its_hole_as_django_would_put_it(platform, make_user):
    from templates_app.rendering import render

    odd = make_user("<b>&amp;x", timezone="Europe/Oslo")
    source = "<p>{{ site_name }}: {{ username }} ({{ recipient_timezone }}) {{ username }}</p>"
    render_ = renderer_for(
        platform=platform,
        channels=[Channel.EMAIL],
        content={"message_title": "{{ username }}", "email_html_template": source},
        notification_type="CUSTOM",
    )
    email = render_(Recipient(user_id=odd.pk), Channel.EMAIL, odd)
    variables = {
        "site_name": platform.site_name or platform.name,
        "username": odd.username,
        "recipient_timezone": "Europe/Oslo",
    }
    assert email.html == render(source, variables, html=True)  # escaped in HTML
    assert "&lt;b&gt;&amp;amp;x" in email.html and email.title == "<b>&amp;x"  # as it is in text
    # A bare address has no time zone of its own: the platform default fills the hole.
    sam = render_(Recipient(address="sam@example.org"), Channel.EMAIL, None)
    assert "sam (UTC) sam" in sam.html
