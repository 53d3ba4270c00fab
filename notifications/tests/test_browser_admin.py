"""The admin and the API docs in real headless Chromium, against the ASGI app over HTTP.

Static files come from WhiteNoise in the same process as in production (the
test settings let it find them in the apps instead of a collected STATIC_ROOT;
test_static_media.py covers the collected, hashed, compressed files).
"""

from __future__ import annotations

import re

import pytest

from notifications.backends import locmem
from notifications.models import ImmediateSend

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"


@pytest.fixture
def platform_admin(make_user):
    user = make_user("ops", role="ADMIN", admin=True, is_staff=True, first_name="Olga", last_name="Petrova")
    user.set_password(PASSWORD)
    user.save()
    return user


@pytest.fixture
def learners(make_user):
    return [make_user(f"learner{i}", role="STUDENT", first_name="Learner", last_name=str(i)) for i in range(3)]


class Watched:
    """A page whose failed requests, HTTP errors and script errors are collected."""

    def __init__(self, page):
        self.page = page
        self.problems: list[str] = []
        self.assets: list[str] = []
        page.on("requestfailed", lambda r: self.problems.append(f"failed {r.url}: {r.failure}"))
        page.on("response", self._response)
        page.on("pageerror", lambda e: self.problems.append(f"script error: {e}"))

    def _response(self, response):
        if response.status >= 400:
            self.problems.append(f"{response.status} {response.url}")
        if "/static/" in response.url:
            self.assets.append(response.url)


@pytest.fixture
def watched(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield Watched(page)
    context.close()


def login(watched: Watched, live_url: str, username: str = "ops") -> None:
    page = watched.page
    page.goto(f"{live_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_url}/admin/")


COMPOSE = "/admin/notifications/schedulednotification/compose/"


def test_login_and_compose_pages_load_their_css_and_js(live_url, watched, platform_admin, learners):
    page = watched.page
    page.goto(f"{live_url}/admin/login/")
    # The admin's stylesheet applied: the header has its colour, not the browser's default.
    header_bg = page.eval_on_selector("#header", "el => getComputedStyle(el).backgroundColor")
    assert header_bg not in ("rgba(0, 0, 0, 0)", "transparent")
    assert any(a.endswith("/static/admin/css/base.css") for a in watched.assets)

    login(watched, live_url)
    page.goto(f"{live_url}{COMPOSE}")
    # The admin's widgets ran: the user picker became two panes, the date field got its calendar link.
    page.wait_for_selector(".selector .selector-available")
    page.check("input[name=when][value=schedule]")
    page.wait_for_selector(".datetimeshortcuts a")
    assert any(a.endswith("/static/admin/js/SelectFilter2.js") for a in watched.assets)
    assert any(a.endswith("/static/admin/js/admin/DateTimeShortcuts.js") for a in watched.assets)
    assert any(a.endswith("/static/admin/css/forms.css") for a in watched.assets)
    assert watched.problems == []


def test_platform_admin_confirms_a_send_once_and_finds_it_in_the_history(live_url, watched, platform_admin, learners):
    page = watched.page
    login(watched, live_url)
    page.goto(f"{live_url}{COMPOSE}")
    page.select_option("#id_channel", "sms")
    page.fill("#id_message", "The library closes at 6 pm today.")
    page.select_option("#id_role", "STUDENT")
    page.click("input[type=submit][value='Review recipients']")

    # The confirmation names the audience's size; nothing has gone out yet.
    page.wait_for_selector("#recipient-count")
    assert re.search(r"This will reach\s+3\s+recipients", page.inner_text("#recipient-count"))
    assert not locmem.outbox["sms"] and not ImmediateSend.objects.exists()
    form = dict(page.eval_on_selector_all("#confirm-form input[type=hidden]", "els => els.map(e => [e.name, e.value])"))
    confirm_url = page.url

    # An impatient double click sends once.
    page.dblclick("#confirm-send")
    page.wait_for_url(re.compile(r"/admin/notifications/immediatesend/[0-9a-f-]+/change/$"))
    assert "Bulk SMS sent: 3 sent, 0 failed." in page.inner_text(".messagelist")
    assert "3 sent · 0 failed · 0 pending of 4" not in page.content()  # three recipients, not four
    assert "3 sent · 0 failed · 0 pending of 3" in page.content()
    assert "Learner 0 (learner0)" in page.content()
    assert len(locmem.outbox["sms"]) == 3 and ImmediateSend.objects.count() == 1
    record_url = page.url

    # The same form submitted again (a re-POST from the same session) sends nothing and shows the first result.
    again = page.request.post(confirm_url, form=form, headers={"Referer": confirm_url, "Origin": live_url})
    assert again.ok and again.url == record_url
    assert "already submitted; nothing was sent again" in again.text()
    assert len(locmem.outbox["sms"]) == 3 and ImmediateSend.objects.count() == 1

    # The send history lists it beside the scheduled jobs, with its counts and sender.
    page.goto(f"{live_url}/admin/notifications/immediatesend/")
    row = page.inner_text("#result_list tbody tr")
    assert "The library closes at 6 pm today." in row and "3 / 0 / 3" in row and "Olga Petrova (ops)" in row
    page.click("text=Scheduled jobs")
    page.wait_for_url(f"{live_url}/admin/notifications/schedulednotification/")
    assert watched.problems == []


def test_api_docs_render_the_operation_list(live_url, watched):
    page = watched.page
    page.goto(f"{live_url}/api/docs/")
    page.wait_for_selector(".opblock-summary-path")
    paths = page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.textContent)")
    assert len(paths) > 50
    assert any("/api/v1/notifications/bulk-sms" in p for p in paths)
    assert any("/alerts" in p for p in paths)
    assert "Errors" in page.inner_text(".information-container")
    assert watched.problems == []
