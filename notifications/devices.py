"""Writes of push devices (IBL §7.3) on fcm-django's `FCMDevice`.

A registration token belongs to one app install, so it has one row and one
owner: registering a token that is already known moves it to the new owner
(the phone changed hands, or another account signed in) instead of adding a
second row that would deliver one user's pushes to another. The platforms it
was registered on live in `DeviceRegistration`.
"""

from __future__ import annotations

import swapper
from django.db import transaction

from notifications.models import DeviceRegistration, Platform


class DeviceNotFound(Exception):
    pass


def _device_model():
    return swapper.load_model("fcm_django", "FCMDevice")


def push_device_register(
    *,
    user,
    platform: Platform,
    name: str,
    registration_id: str,
    active: bool = True,
    cloud_message_type: str = DeviceRegistration.CloudMessageType.FCM,
    application_id: str = "ibl_fcm_app",
    device_type: str = "",
):
    """Register (or re-register) a token for `user` on `platform`.

    Returns (device, created): `created` is False only when this user had
    already registered the token on this platform. Whether the token was known
    to another account or platform never shows: the caller would learn of
    other tenants' devices from the answer.
    """
    FCMDevice = _device_model()
    with transaction.atomic():
        # get_or_create survives two first registrations of one token racing
        # each other; the row lock then serialises the updates.
        device, created = FCMDevice.objects.get_or_create(
            registration_id=registration_id,
            defaults={"user": user, "name": name, "active": active, "type": device_type},
        )
        if not created:
            device = FCMDevice.objects.select_for_update().get(pk=device.pk)
            if device.user_id != user.id:
                # A new owner: the old owner's platforms do not come along.
                DeviceRegistration.objects.filter(device=device).delete()
                device.user = user
            device.name = name
            device.active = active
            if device_type:
                device.type = device_type
            device.save()
        _, registered = DeviceRegistration.objects.update_or_create(
            device=device,
            platform=platform,
            defaults={"cloud_message_type": cloud_message_type, "application_id": application_id},
        )
    # An owner change dropped the old registrations above, so `registered` is about this user alone.
    return device, registered


def push_device_remove(*, user, platform: Platform, registration_id: str) -> None:
    """Remove `user`'s token from `platform`; the device goes when no platform is left.

    Raises DeviceNotFound when the user has no such token on this platform.
    A token registered only on other platforms is not found here.
    """
    FCMDevice = _device_model()
    with transaction.atomic():
        device = FCMDevice.objects.select_for_update().filter(user=user, registration_id=registration_id).first()
        if device is None:
            raise DeviceNotFound()
        registrations = DeviceRegistration.objects.filter(device=device)
        if registrations.exists():
            removed, _ = registrations.filter(platform=platform).delete()
            if not removed:
                raise DeviceNotFound()
            if registrations.exists():
                return
        device.delete()
