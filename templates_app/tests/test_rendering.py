"""The sandboxed engine, the tag library and the sanitiser."""

import pytest
from django.test import override_settings

from notifications.sanitize import sanitize_html
from templates_app import defaults
from templates_app.messages import platform_globals, recipient_context
from templates_app.rendering import RenderLimitExceeded, TemplateError, compile_template, render, template_check
from templates_app.sanitize import sanitize_template_source


def test_the_documented_rendering_example():
    source = (
        "Dear {{ username }}, You have earned a credential for completing {{ item_name }}. "
        "View your credential here: {{ credential_url }} © {{ current_year }} {{ platform_name }}"
    )
    context = {
        "username": "jsmith",
        "item_name": "Python Fundamentals",
        "credential_url": "https://skills.example.com/credentials/abc123",
        "current_year": 2026,
        "platform_name": "Acme Learning",
    }
    expected = (
        "Dear jsmith, You have earned a credential for completing Python Fundamentals. View your credential "
        "here: https://skills.example.com/credentials/abc123 © 2026 Acme Learning"
    )
    assert render(source, context) == expected
    # The shipped default of USER_NOTIF_CREDENTIALS is that very template.
    assert render(defaults.BY_TYPE["USER_NOTIF_CREDENTIALS"].message_body, context) == expected


def test_documented_syntax_examples():
    assert render(
        "Hello {{ username }}, you have been enrolled in {{ course_name }}.", {"username": "jane", "course_name": "DS"}
    ) == ("Hello jane, you have been enrolled in DS.")
    cond = (
        "{% if demoted %} Your role has been removed. {% else %} You have been granted the {{ role }} role. {% endif %}"
    )
    assert render(cond, {"demoted": True, "role": "x"}).strip() == "Your role has been removed."
    assert (
        render(cond, {"demoted": False, "role": "Instructor"}).strip() == "You have been granted the Instructor role."
    )
    loop = "{% for benefit in benefits %} - {{ benefit }} {% endfor %}"
    assert render(loop, {"benefits": ["a", "b"]}) == " - a  - b "


@pytest.mark.parametrize(
    "source",
    [
        "{% debug %}",
        "{% include 'admin/base.html' %}",
        "{% extends 'admin/base.html' %}",
        "{% load static %}",
        "{% load i18n %}{% trans 'x' %}",
        "{% load notification_template_tags %}",
        "{% ssi '/etc/passwd' %}",
        "{% url 'admin:index' %}",
        "{% lorem 100000 w %}",
        "{% csrf_token %}",
        "{% block x %}{% endblock %}",
    ],
)
def test_sandbox_refuses_dangerous_tags(source):
    with pytest.raises(TemplateError) as info:
        compile_template(source)
    assert info.value.line == 1


def test_refusal_names_the_tag_and_line():
    with pytest.raises(TemplateError) as info:
        compile_template("ok\nstill ok\n{% load static %}")
    assert info.value.line == 3 and "'load' tag is not allowed" in info.value.message


@pytest.mark.parametrize(
    "payload",
    [
        "{{ settings.SECRET_KEY }}",
        "{{ settings }}",
        "{{ request.META }}",
        "{{ user.password }}",
        "{{ platform.smtp_settings.password }}",
        "{{ site_name.__class__ }}",
        "{{ benefits.__class__.__mro__ }}",
        "{% for k, v in settings.items %}{{ k }}={{ v }}{% endfor %}",
        "{{ view.request }}",
        "{{ csrf_token }}{{ perms }}",
    ],
)
@override_settings(SECRET_KEY="super-secret-value-that-must-not-leak-0123456789")
def test_attribute_walks_leak_nothing(payload, platform):
    context = {**recipient_context(platform), "benefits": ["a"], "user": {"username": "x"}}
    try:
        output = render(payload, context)
    except TemplateError:
        return  # refused outright is fine too
    assert "super-secret" not in output
    assert "password" not in output.lower() and "META" not in output


def test_context_is_plain_values_only(platform, make_user):
    user = make_user("jane")

    class Sneaky:
        secret = "s3cret"

        def __str__(self):
            return "sneaky"

    out = render(
        "{{ obj }}|{{ obj.secret }}|{{ user.password }}|{{ when }}",
        {"obj": Sneaky(), "user": user, "when": __import__("datetime").date(2026, 4, 1)},
    )
    assert out == "sneaky|||2026-04-01"


def test_context_is_copied_per_render():
    context = {"items": [1, 2, 3]}
    render("{{ items.pop }}{{ items.clear }}", context)
    assert context == {"items": [1, 2, 3]}


def test_globals_come_from_the_platform(platform):
    platform.name = "acme learning"
    platform.site_name = ""
    platform.site_url = "https://learn.acme.com/home"
    platform.save()
    g = platform_globals(platform)
    assert g["site_name"] == "acme learning"
    assert g["platform_name"] == "Acme Learning"
    assert g["base_domain"] == "learn.acme.com"
    assert set(defaults.GLOBAL_VARIABLES) <= set(g)


@override_settings(NOTIFY_TEMPLATE_MAX_OUTPUT_CHARS=1000)
def test_output_size_is_limited():
    with pytest.raises(RenderLimitExceeded) as info:
        render("{% for a in l %}{% for b in l %}xxxxxxxxxx{% endfor %}{% endfor %}", {"l": list(range(100))})
    assert "1000 characters" in str(info.value)


@override_settings(NOTIFY_TEMPLATE_MAX_RENDER_SECONDS=0.05)
def test_render_time_is_limited():
    # A million empty iterations produce no output but burn time.
    with pytest.raises(RenderLimitExceeded) as info:
        render(
            "{% for a in l %}{% for b in l %}{% for c in l %}{% endfor %}{% endfor %}{% endfor %}",
            {"l": list(range(100))},
        )
    assert "longer than" in str(info.value)


def test_width_bombs_are_refused_before_they_allocate():
    for source in ('{{ x|center:"999999999" }}', '{{ x|ljust:"999999999" }}', '{{ x|stringformat:"0999999999d" }}'):
        with pytest.raises(RenderLimitExceeded, match="would build"):
            render(source, {"x": 1})
    assert render('{{ x|center:"7" }}|{{ x|stringformat:"05d" }}', {"x": 42}) == "   42  |00042"
    assert render('{{ x|floatformat:"999999999" }}', {"x": 1.5}) == "1.50000000000000000000"


def test_filters_given_the_wrong_shape_render_empty():
    # Values come from events; a filter that cannot apply yields "" rather than an error.
    assert render("{{ x|add:y }}", {"x": [1], "y": 2}) == ""


def test_warnings_know_loop_and_with_variables():
    source = (
        "{% for c in courses_taken %}{{ c.name }}{{ forloop.counter }}{% endfor %}"
        "{% with n=courses_taken|length %}{{ n }}{% endwith %}{{ ghost }}"
    )
    found = template_check(source, known=defaults.known_variables("USER_NOTIF_LEARNER_PROGRESS"))
    assert [w["variable"] for w in found] == ["ghost"]


def test_tag_library_is_autoloaded():
    context = {"site_url": "https://acme.example.com/", "recipient_timezone": "Africa/Addis_Ababa"}
    assert render("{% absolute_url '/courses/1' %}", context) == "https://acme.example.com/courses/1"
    assert render("{% absolute_url 'javascript:alert(1)' %}", context) == ""
    assert render("{% absolute_url 'https://x.org/a' %}", context) == "https://x.org/a"
    assert (
        render("{% plural 1 'day' 'days' %}/{% plural 3 'day' 'days' %}/{% plural '' 'day' %}", {})
        == "1 day/3 days/0 days"
    )
    assert render("{% local_datetime '2026-04-10T08:30:00Z' 'Y-m-d H:i' %}", context) == "2026-04-10 11:30"
    assert render("{% local_datetime 'not a date' %}", context) == "not a date"
    assert render("{{ l|join_and }}|{{ one|join_and }}", {"l": ["a", "b", "c"], "one": ["a"]}) == "a, b and c|a"
    assert render("{{ 0.8|percent }} {{ 80|percent }} {{ 'x'|percent }}", {}) == "80% 80% "
    assert render("{{ 1|hours }} {{ 2.5|hours }} {{ missing|hours }}", {}) == "1 hour 2.5 hours 0 hours"
    assert render("{{ l|bullet_list }}", {"l": ["a", {"name": "b"}]}) == "- a\n- b"
    assert render("{{ '2026-04-10'|as_date:'j M Y' }}", {}) == "10 Apr 2026"


def test_every_default_compiles_renders_and_uses_only_its_variables(platform):
    for td in defaults.TYPES:
        known = defaults.known_variables(td.type)
        context = {**recipient_context(platform), **td.sample_context}
        for field, is_html in defaults.TEMPLATE_FIELDS.items():
            source = getattr(td, field)
            assert template_check(source, known=known) == [], (td.type, field)
            out = render(source, context, html=is_html)
            assert out.strip(), (td.type, field)
            assert "{{" not in out and "{%" not in out
        # the default HTML survives the sanitiser unchanged in meaning: nothing but allowlisted markup
        assert sanitize_template_source(td.email_html_template).count("{%") == td.email_html_template.count("{%")
        assert set(td.available_context) >= set(td.sample_context), td.type


def test_learner_progress_renders_lists_sensibly():
    td = defaults.BY_TYPE["USER_NOTIF_LEARNER_PROGRESS"]
    out = render(td.message_body, {"username": "jane", **td.sample_context})
    assert "- Python Fundamentals (80%)" in out and "- Introduction to Data Science (35%)" in out
    assert "Time spent: 5.5 hours" in out and "- SQL Basics" in out
    plain = render(td.message_body, {"username": "jane", "courses_taken": ["Intro"], "credentials": []})
    assert "- Intro\n" in plain and "none yet" in plain
    html = render(td.email_html_template, {"username": "jane", **td.sample_context}, html=True)
    assert "<td>Python Fundamentals</td>" in html and "80%" in html


@pytest.mark.parametrize(
    ("status", "expected"),
    [("completed", "is ready"), ("error", "could not be generated"), ("cancelled", "was cancelled")],
)
def test_report_completed_reads_each_status(status, expected):
    td = defaults.BY_TYPE["REPORT_COMPLETED"]
    out = render(
        td.message_body,
        {"username": "jane", "report_name": "Q1", "report_status": status, "download_url": "https://x/y"},
    )
    assert expected in out
    assert ("https://x/y" in out) == (status == "completed")


XSS = [
    ("<script>alert(1)</script><p>ok</p>", "<p>ok</p>"),
    ('<img src=x onerror="alert(1)">', '<img src="x">'),
    ('<a href="javascript:alert(1)">x</a>', '<a rel="noopener noreferrer">x</a>'),
    ('<a href="JaVaScRiPt:alert(1)">x</a>', '<a rel="noopener noreferrer">x</a>'),
    ('<a href="  java&#x09;script:alert(1)">x</a>', '<a rel="noopener noreferrer">x</a>'),
    ('<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', '<a rel="noopener noreferrer">x</a>'),
    ('<a href="vbscript:msgbox(1)">x</a>', '<a rel="noopener noreferrer">x</a>'),
    ('<img src="javascript:alert(1)">', "<img>"),
    ('<svg onload="alert(1)"><circle></circle></svg>', ""),
    ('<iframe src="https://evil"></iframe>', ""),
    (
        '<p style="color:red;background-image:url(javascript:alert(1));position:fixed">t</p>',
        '<p style="color:red">t</p>',
    ),
    ('<div onclick="x()" class="c" id="i" title="t">d</div>', '<div class="c" id="i">d</div>'),
    ('<form action="/x"><input name="a"></form>', ""),
    (
        '<a href="https://ok.example" target="_top">ok</a>',
        '<a href="https://ok.example" rel="noopener noreferrer">ok</a>',
    ),
    (
        '<a href="mailto:help@acme.com" target="_blank">m</a>',
        '<a href="mailto:help@acme.com" target="_blank" rel="noopener noreferrer">m</a>',
    ),
    ("<!-- <script>x</script> --><b>b</b>", "<b>b</b>"),
    ("<style>*{}</style><main><footer>f</footer></main>", "<main><footer>f</footer></main>"),
    ('<math><mi xlink:href="javascript:alert(1)">x</mi></math>', ""),
]


@pytest.mark.parametrize(("dirty", "clean"), XSS)
def test_sanitiser_against_xss_vectors(dirty, clean):
    assert sanitize_html(dirty) == clean


def test_sanitising_a_template_keeps_its_syntax():
    source = (
        '<p>{% if a > b %}<a href="{{ url|default:"x" }}" onclick="x">{{ x }}</a>{% endif %}</p>'
        "<script>{{ y }}</script>"
    )
    assert (
        sanitize_template_source(source)
        == '<p>{% if a > b %}<a href="{{ url|default:"x" }}" rel="noopener noreferrer">{{ x }}</a>{% endif %}</p>'
    )


def test_values_cannot_inject_markup_into_email_html(platform):
    from templates_app.messages import render_fields

    out = render_fields(
        {"email_html_template": '<p>{{ name }}</p><a href="{{ link }}">go</a><p>{{ raw|safe }}</p>'},
        {"name": "<script>alert(1)</script>", "link": "javascript:alert(1)", "raw": "<img src=x onerror=alert(1)>"},
        fields=["email_html_template"],
    )["email_html_template"]
    assert "<script" not in out and "javascript:" not in out and "onerror" not in out
    assert "&lt;script&gt;" in out
