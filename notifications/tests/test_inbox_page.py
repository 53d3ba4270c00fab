"""The /inbox/ page: session sign-in, its inbox tokens, sign-out, the admin's "View site", the script."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import Client

from notifications.models import AuthToken, TokenScope
from notifications.tests.factories import PlatformFactory, make_member

pytestmark = pytest.mark.django_db


def signed_in(username: str, **kwargs) -> Client:
    client = Client(**kwargs)
    client.get("/inbox/login/")
    csrf = client.cookies["csrftoken"].value
    r = client.post(
        "/inbox/login/", {"username": username, "password": "pw", "next": "/inbox/", "csrfmiddlewaretoken": csrf}
    )
    assert r.status_code == 302 and r["Location"] == "/inbox/"
    return client


def test_anonymous_visitors_are_sent_to_the_sign_in_form(make_user):
    r = Client().get("/inbox/")
    assert r.status_code == 302 and r["Location"] == "/inbox/login/?next=/inbox/"
    form = Client().get("/inbox/login/").content.decode()
    assert 'name="username"' in form and 'name="password"' in form
    make_user("jane")
    r = Client().post("/inbox/login/", {"username": "jane", "password": "wrong"})
    assert r.status_code == 200 and "did not match" in r.content.decode()


def test_the_page_embeds_the_component_and_gets_scoped_tokens(make_user, platform):
    jane = make_user("jane")
    client = signed_in("jane", enforce_csrf_checks=True)
    page = client.get("/inbox/").content.decode()
    assert "<notify-inbox" in page and "/static/notify/notify-inbox.js" in page
    csrf = client.cookies["csrftoken"].value
    # The token endpoint is a POST with the CSRF token: another site cannot mint one for the session.
    assert client.post(f"/inbox/token?platform={platform.key}").status_code == 403
    r = client.post(f"/inbox/token?platform={platform.key}", HTTP_X_CSRFTOKEN=csrf)
    assert r.status_code == 200
    body = r.json()
    assert (body["user_id"], body["platform"]) == (jane.pk, platform.key)
    token = AuthToken.objects.get(prefix=body["token"][:8])
    assert (token.scope, token.platform, token.user) == (TokenScope.INBOX, platform, jane)
    assert Client().post("/inbox/token").status_code == 403  # signed out


def test_several_platforms_choose_one(make_user, platform):
    other = PlatformFactory(key="second")
    make_user("jane")
    make_member(platform=other, username="jane")
    client = signed_in("jane")
    page = client.get("/inbox/").content.decode()
    assert "<notify-inbox" not in page and "?platform=second" in page
    assert "<notify-inbox" in client.get("/inbox/?platform=second").content.decode()
    assert client.get("/inbox/?platform=nope").status_code == 404
    assert client.post("/inbox/token").status_code == 404
    assert client.post("/inbox/token?platform=second").json()["platform"] == "second"
    # A platform the user does not belong to gives no token.
    PlatformFactory(key="foreign")
    assert client.post("/inbox/token?platform=foreign").status_code == 404


def test_signing_out_revokes_the_sessions_tokens_only(make_user, platform):
    jane = make_user("jane")
    client = signed_in("jane")
    raws = [client.post("/inbox/token").json()["token"] for _ in range(2)]
    _, elsewhere = AuthToken.issue(user=jane, name="phone")
    r = client.post("/inbox/logout/")
    assert r.status_code == 302 and r["Location"] == "/inbox/login/"
    for raw in raws:
        assert not AuthToken.objects.active().filter(prefix=raw[:8]).exists()
    assert AuthToken.objects.active().filter(prefix=elsewhere[:8]).exists()
    assert client.get("/inbox/").status_code == 302


def test_the_admins_view_site_link_leads_to_the_inbox():
    assert admin.site.site_url == "/inbox/"


def test_the_component_script_is_served(client):
    r = client.get("/static/notify/notify-inbox.js")
    assert r.status_code == 200 and r["Content-Type"].startswith(("text/javascript", "application/javascript"))
    body = b"".join(r.streaming_content)
    r.close()
    assert b'customElements.define("notify-inbox"' in body
    again = client.get("/static/notify/notify-inbox.js", HTTP_IF_NONE_MATCH=r["ETag"])
    assert again.status_code == 304
    assert client.get("/static/notify/../../settings.py").status_code in (400, 404)
    assert client.get("/static/notify/missing.js").status_code == 404
    assert client.post("/static/notify/notify-inbox.js").status_code == 405
