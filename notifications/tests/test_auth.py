from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from notifications.credentials import tokens_revoke
from notifications.models import AuthToken, Membership
from notifications.permissions import MEMBER, PLATFORM_ADMIN, keys_for_role, platform_permissions

pytestmark = pytest.mark.django_db

INBOX = "/api/v1/notifications"


@pytest.mark.parametrize("keyword", ["Token", "Bearer", "token", "bearer"])
def test_both_header_keywords_authenticate(make_user, api, keyword):
    user = make_user("jane")
    response = api(user, keyword=keyword).get(INBOX)
    assert response.status_code == 200, response.content


def test_missing_token_is_401(api):
    response = api().get(INBOX)
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized", "error": "Authentication credentials were not provided."}
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_unknown_token_is_401(api):
    client = api()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert client.get(INBOX).status_code == 401


def test_expired_token_is_401(make_user, api):
    user = make_user("jane")
    client = api(user)
    AuthToken.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get(INBOX)
    assert response.status_code == 401
    assert response.json()["error"] == "Invalid, expired or revoked token."


def test_revoked_token_is_401_and_others_keep_working(make_user, api):
    user = make_user("jane")
    phone, laptop = api(user), api(user)
    tokens_revoke(tokens=AuthToken.objects.filter(key_hash__isnull=False, user=user, prefix=phone.raw_token[:8]))
    assert phone.get(INBOX).status_code == 401
    assert laptop.get(INBOX).status_code == 200


def test_revoke_all_tokens_command(make_user, api):
    user = make_user("jane")
    a, b = api(user), api(user)
    call_command("revoke_tokens", "jane")
    assert a.get(INBOX).status_code == 401
    assert b.get(INBOX).status_code == 401


def test_tokens_are_stored_hashed(make_user):
    user = make_user("jane")
    token, raw = AuthToken.issue(user=user, name="phone")
    assert raw not in token.key_hash and len(token.key_hash) == 64
    assert token.prefix == raw[:8]


def test_token_endpoint_exchanges_password(make_user, api):
    make_user("jane", password="s3cret-pass")
    response = api().post("/api/auth/token/", {"username": "jane", "password": "s3cret-pass", "name": "phone"})
    assert response.status_code == 200
    raw = response.json()["token"]
    client = api()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    assert client.get(INBOX).status_code == 200


def test_token_endpoint_rejects_bad_password(make_user, api):
    make_user("jane", password="s3cret-pass")
    response = api().post("/api/auth/token/", {"username": "jane", "password": "nope"})
    assert response.status_code == 400


def test_issue_token_command_prints_working_token(make_user, api, capsys):
    make_user("jane")
    call_command("issue_token", "jane")
    raw = capsys.readouterr().out.strip()
    client = api()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get(INBOX).status_code == 200


def test_missing_permission_is_403(make_user, api):
    user = make_user("jane")
    response = api(user).get(INBOX + "/scheduled")
    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden", "error": "Missing permission: notifications_scheduled.list"}


ADMIN_KEYS = {
    "notifications.inbox_token",
    "notifications.bulk_sms",
    "notifications.bulk_email",
    "notifications.bulk_push",
    "notifications.bulk_in_app",
    "notifications_scheduled.list",
    "notifications_scheduled.get",
    "notifications_scheduled.cancel",
    "Ibl.Notifications/Notification/list",
    "Ibl.Notifications/Notification/write",
    "Ibl.Notifications/Notification/delete",
    "Ibl.Notifications/SMTP/action",
}
LEARNER_KEYS = {
    "notifications.ws_connect",
    "notifications.list_mine",
    "notifications.count_unread",
    "notifications.update_mine",
}


def _keys(user, platform) -> set[str]:
    return set(platform_permissions(user, platform)) - {MEMBER, PLATFORM_ADMIN}


@pytest.mark.parametrize("role", ["STUDENT", "OPEN_LEARNER", "INSTRUCTOR", "SUPPORT"])
def test_learner_roles_hold_exactly_the_learner_bundle(make_user, platform, role):
    user = make_user("u1", role=role)
    assert _keys(user, platform) == LEARNER_KEYS == keys_for_role(role)


@pytest.mark.parametrize("role", ["ADMIN", "SUPER_ADMIN"])
def test_admin_roles_hold_admin_and_learner_bundles(make_user, platform, role):
    user = make_user("u1", role=role)
    held = _keys(user, platform)
    assert ADMIN_KEYS | LEARNER_KEYS <= held
    assert held == keys_for_role(role)


def test_changing_the_membership_role_changes_the_keys_on_that_platform(make_user, platform):
    user = make_user("u1", role="STUDENT")
    assert "notifications.bulk_sms" not in platform_permissions(user, platform)
    Membership.objects.filter(user=user, platform=platform).update(role="ADMIN")
    assert "notifications.bulk_sms" in platform_permissions(user, platform)


def test_single_permission_granted_by_admin(make_user, platform):
    from django.contrib.auth.models import Permission

    user = make_user("u1")
    Membership.objects.get(user=user, platform=platform).permissions.add(Permission.objects.get(codename="bulk_sms"))
    assert "notifications.bulk_sms" in platform_permissions(user, platform)
