"""Push device tokens of IBL §7.3 on fcm-django's FCMDevice."""

from __future__ import annotations

import pytest
from fcm_django.models import FCMDevice

from notifications import selectors
from notifications.models import DeviceRegistration
from notifications.tests.factories import PlatformFactory, make_member

pytestmark = pytest.mark.django_db

URL = "/api/notification/v1/orgs/acme-learning/users/john.doe/register-fcm-token/"
OTHER_URL = "/api/notification/v1/orgs/other-org/users/john.doe/register-fcm-token/"
TOKEN = "eX3ampleFCMToken:APA91bHPRgkF..."
CREATED = {"success": True, "message": "Token created successfully"}
UPDATED = {"success": True, "message": "Token updated successfully"}
DELETED = {"success": True, "message": "Registration ID delete successfully"}
NOT_REGISTERED = {"success": False, "message": "Registration ID does not exist"}


@pytest.fixture
def john(make_user):
    return make_user("john.doe")


@pytest.fixture
def client(john, api):
    return api(john, keyword="Token")


def test_register_example(client, john, platform):
    r = client.post(URL, {"name": "John iPhone 15", "registration_id": TOKEN}, format="json")
    assert (r.status_code, r.json()) == (200, CREATED)
    device = FCMDevice.objects.get(registration_id=TOKEN)
    assert (device.user, device.name, device.active) == (john, "John iPhone 15", True)
    reg = DeviceRegistration.objects.get(device=device)
    assert (reg.platform, reg.cloud_message_type, reg.application_id) == (platform, "FCM", "ibl_fcm_app")


def test_remove_example(client, john):
    client.post(URL, {"name": "John iPhone 15", "registration_id": TOKEN}, format="json")
    r = client.delete(URL, {"registration_id": TOKEN}, format="json")
    assert (r.status_code, r.json()) == (200, DELETED)
    assert not FCMDevice.objects.filter(registration_id=TOKEN).exists()
    r = client.delete(URL, {"registration_id": TOKEN}, format="json")
    assert (r.status_code, r.json()) == (404, NOT_REGISTERED)


def test_all_fields(client):
    r = client.post(
        URL,
        {
            "name": "Web",
            "registration_id": TOKEN,
            "active": False,
            "cloud_message_type": "GCM",
            "application_id": "acme_mobile",
            "type": "web",
        },
        format="json",
    )
    assert r.status_code == 200
    device = FCMDevice.objects.get(registration_id=TOKEN)
    assert (device.active, device.type) == (False, "web")
    reg = device.registrations.get()
    assert (reg.cloud_message_type, reg.application_id) == ("GCM", "acme_mobile")


def test_registering_again_updates_the_one_row(client):
    client.post(URL, {"name": "Old name", "registration_id": TOKEN}, format="json")
    r = client.post(URL, {"name": "New name", "registration_id": TOKEN, "application_id": "v2"}, format="json")
    assert r.json() == UPDATED
    device = FCMDevice.objects.get(registration_id=TOKEN)
    assert device.name == "New name"
    assert list(device.registrations.values_list("application_id", flat=True)) == ["v2"]


def test_a_known_token_moves_to_the_new_owner(client, make_user, api, platform):
    client.post(URL, {"name": "Shared tablet", "registration_id": TOKEN}, format="json")
    other = PlatformFactory(key="other-org")
    make_member(platform=other, username="john.doe")
    client.post(OTHER_URL, {"name": "Shared tablet", "registration_id": TOKEN}, format="json")
    mary = make_user("mary.major")
    r = api(mary).post(
        "/api/notification/v1/orgs/acme-learning/users/mary.major/register-fcm-token/",
        {"name": "Shared tablet", "registration_id": TOKEN},
        format="json",
    )
    assert r.json() == CREATED  # new for Mary; John's token is not mentioned
    device = FCMDevice.objects.get(registration_id=TOKEN)
    assert device.user == mary
    # John's platforms did not come along with the token.
    assert list(device.registrations.values_list("platform__key", flat=True)) == ["acme-learning"]
    assert FCMDevice.objects.count() == 1
    r = client.delete(URL, {"registration_id": TOKEN}, format="json")
    assert (r.status_code, r.json()) == (404, NOT_REGISTERED)


def test_one_device_on_two_platforms(client, john, platform):
    other = PlatformFactory(key="other-org")
    make_member(platform=other, username="john.doe")
    client.post(URL, {"name": "Phone", "registration_id": TOKEN}, format="json")
    assert client.post(OTHER_URL, {"name": "Phone", "registration_id": TOKEN}, format="json").json() == CREATED
    device = FCMDevice.objects.get(registration_id=TOKEN)
    assert device.registrations.count() == 2
    assert list(selectors.push_devices_for(user=john, platform=other)) == [device]
    assert client.delete(OTHER_URL, {"registration_id": TOKEN}, format="json").json() == DELETED
    assert FCMDevice.objects.filter(pk=device.pk).exists()
    assert list(selectors.push_devices_for(user=john, platform=other)) == []
    assert list(selectors.push_devices_for(user=john, platform=platform)) == [device]
    assert client.delete(OTHER_URL, {"registration_id": TOKEN}, format="json").json() == NOT_REGISTERED
    assert client.delete(URL, {"registration_id": TOKEN}, format="json").json() == DELETED
    assert not FCMDevice.objects.exists()


def test_devices_without_registrations_serve_every_platform(john, platform):
    device = FCMDevice.objects.create(user=john, registration_id="admin-made", type="android")
    assert list(selectors.push_devices_for(user=john, platform=platform)) == [device]
    FCMDevice.objects.filter(pk=device.pk).update(active=False)
    assert list(selectors.push_devices_for(user=john, platform=platform)) == []


def test_users_register_only_for_themselves(make_user, api, john):
    mary = api(make_user("mary.major"))
    r = mary.post(URL, {"name": "Sneaky", "registration_id": TOKEN}, format="json")
    assert r.status_code == 404
    assert not FCMDevice.objects.exists()


def test_users_cannot_remove_someone_elses_token(client, make_user, api):
    client.post(URL, {"name": "Phone", "registration_id": TOKEN}, format="json")
    mary = make_user("mary.major")
    r = api(mary).delete(
        "/api/notification/v1/orgs/acme-learning/users/mary.major/register-fcm-token/",
        {"registration_id": TOKEN},
        format="json",
    )
    assert (r.status_code, r.json()) == (404, NOT_REGISTERED)
    assert FCMDevice.objects.filter(registration_id=TOKEN).exists()


def test_platform_admin_registers_for_a_member(make_user, api, john):
    admin = api(make_user("admin.user", role="ADMIN", admin=True))
    assert admin.post(URL, {"name": "Kiosk", "registration_id": TOKEN}, format="json").json() == CREATED
    assert FCMDevice.objects.get(registration_id=TOKEN).user == john
    assert admin.delete(URL, {"registration_id": TOKEN}, format="json").json() == DELETED
    r = admin.post(
        "/api/notification/v1/orgs/acme-learning/users/nobody/register-fcm-token/",
        {"name": "Kiosk", "registration_id": TOKEN},
        format="json",
    )
    assert r.status_code == 404


def test_outsiders_get_404(john, api):
    outsider = make_member(platform=PlatformFactory(key="other-org"), username="outsider", admin=True)
    r = api(outsider).post(URL, {"name": "x", "registration_id": TOKEN}, format="json")
    assert r.status_code == 404
    assert api().post(URL, {"name": "x", "registration_id": TOKEN}, format="json").status_code == 401


def test_push_disabled_platform(client, platform):
    platform.push_enabled = False
    platform.save()
    for method in ("post", "delete"):
        r = getattr(client, method)(URL, {"name": "Phone", "registration_id": TOKEN}, format="json")
        assert (r.status_code, r.json()) == (
            404,
            {"success": False, "message": "Push notifications are not enabled on this platform."},
        )
    assert not FCMDevice.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"registration_id": TOKEN}, "name"),
        ({"name": "Phone"}, "registration_id"),
        ({"name": "Phone", "registration_id": ""}, "registration_id"),
        ({"name": "Phone", "registration_id": TOKEN, "cloud_message_type": "APNS"}, "cloud_message_type"),
        ({"name": "Phone", "registration_id": TOKEN, "application_id": "has spaces"}, "application_id"),
        ({"name": "Phone", "registration_id": TOKEN, "type": "fridge"}, "type"),
        ({"name": "Phone", "registration_id": TOKEN, "active": "maybe"}, "active"),
    ],
)
def test_register_validation(client, payload, field):
    r = client.post(URL, payload, format="json")
    assert r.status_code == 400
    data = r.json()
    assert field in data and data["success"] is False and data["message"].startswith(field)
    assert not FCMDevice.objects.exists()


def test_remove_needs_a_registration_id(client):
    r = client.delete(URL, {}, format="json")
    assert r.status_code == 400 and "registration_id" in r.json()


def test_the_answer_does_not_tell_whether_the_token_existed_elsewhere(client, make_user, api):
    """Registering a token known to another account or platform answers exactly like a fresh token."""
    other = PlatformFactory(key="other-org")
    bob = make_member(platform=other, username="bob")
    api(bob).post(
        "/api/notification/v1/orgs/other-org/users/bob/register-fcm-token/",
        {"name": "Bob's phone", "registration_id": "known-elsewhere"},
        format="json",
    )
    known = client.post(URL, {"name": "Phone", "registration_id": "known-elsewhere"}, format="json")
    fresh = client.post(URL, {"name": "Phone", "registration_id": "never-seen"}, format="json")
    assert (known.status_code, known.json()) == (fresh.status_code, fresh.json()) == (200, CREATED)
    assert known.headers.keys() == fresh.headers.keys()
