"""The contract every channel backend keeps, each over its own wire (STYLE.md item 8).

Given a batch of deliveries, `send` yields one `Result` per delivery, in the
order given, across as many internal batches as it needs; a failure is a
result with a reason, never an exception; and `open`/`close` are called once
each, even when the caller stops reading early.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from fcm_django.models import FCMDevice

from notifications.backends import locmem
from notifications.backends.base import BaseBackend, Result
from notifications.backends.console import ConsoleBackend
from notifications.backends.email import EmailBackend
from notifications.backends.in_app import InAppBackend
from notifications.backends.locmem import LocmemBackend
from notifications.backends.push import FCMBackend
from notifications.backends.sms import AfroMessageBackend
from notifications.models import Channel, Notification
from notifications.pipeline import Message, Recipient
from notifications.pipeline.write import deliveries_write

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("loopback_only")]


@dataclass
class Wire:
    make: Callable[[], BaseBackend]
    deliveries: list[Notification]
    # Which deliveries the wire is set up to accept.
    accepts: Callable[[Notification], bool]


def write(platform, source, channel, recipients) -> list[Notification]:
    deliveries_write(
        platform=platform,
        source=source,
        channels=[channel],
        recipients=recipients,
        message=Message(title="Contract", body="Same text for everyone"),
    )
    return list(Notification.objects.filter(source=source).select_related("user").order_by("address", "recipient_key"))


PHONES = ["+251911000001", "+251911000002", "+251911000003", "+251911000004", "12345"]


def console_wire(request, platform, make_user):
    stream = io.StringIO()
    deliveries = write(platform, "contract:console", Channel.SMS, [Recipient(address=p) for p in PHONES[:3]])
    return Wire(lambda: ConsoleBackend(stream=stream), deliveries, lambda d: True)


def locmem_wire(request, platform, make_user):
    locmem.fail_for["+251911000002"] = "refused by test"
    deliveries = write(platform, "contract:locmem", Channel.SMS, [Recipient(address=p) for p in PHONES[:3]])
    return Wire(LocmemBackend, deliveries, lambda d: d.address != "+251911000002")


def in_app_wire(request, platform, make_user):
    users = [make_user(f"inapp{i}") for i in range(3)]
    recipients = [Recipient(user_id=u.id) for u in users] + [Recipient(address="guest@example.org")]
    deliveries = write(platform, "contract:in_app", Channel.IN_APP, recipients)
    return Wire(InAppBackend, deliveries, lambda d: d.user_id is not None)


def email_wire(request, platform, make_user):
    server = request.getfixturevalue("smtp_server")
    settings = request.getfixturevalue("settings")
    for name, value in server.django_settings().items():
        setattr(settings, name, value)
    server.refuse("c@example.org")
    addresses = ["a@example.org", "b@example.org", "c@example.org", "not-an-address", "e@example.org"]
    deliveries = write(platform, "contract:email", Channel.EMAIL, [Recipient(address=a) for a in addresses])
    return Wire(EmailBackend, deliveries, lambda d: d.address in {"a@example.org", "b@example.org", "e@example.org"})


def sms_wire(request, platform, make_user):
    server = request.getfixturevalue("afromessage_server")
    server.reject["+251911000003"] = "+251911000003 is unverified contact number."
    deliveries = write(platform, "contract:sms", Channel.SMS, [Recipient(address=p) for p in PHONES])
    # BULK_MIN above the batch size: each number is its own call, so the
    # refusal of one cannot hide behind a campaign.
    return Wire(
        lambda: AfroMessageBackend(**server.settings, BULK_MIN=10),
        deliveries,
        lambda d: d.address not in {"+251911000003", "12345"},
    )


def push_wire(request, platform, make_user):
    server = request.getfixturevalue("fcm_server")
    with_device, dead_device, no_device, two_devices = (make_user(f"push{i}") for i in range(4))
    FCMDevice.objects.create(user=with_device, registration_id="tok-ok", type="android")
    FCMDevice.objects.create(user=dead_device, registration_id="tok-dead", type="android")
    FCMDevice.objects.create(user=two_devices, registration_id="tok-2a", type="ios")
    FCMDevice.objects.create(user=two_devices, registration_id="tok-2b", type="web")
    server.fail("tok-dead", "unregistered")
    users = [with_device, dead_device, no_device, two_devices]
    deliveries = write(platform, "contract:push", Channel.PUSH, [Recipient(user_id=u.id) for u in users])
    accepted = {with_device.id, two_devices.id}
    return Wire(lambda: FCMBackend(**server.settings), deliveries, lambda d: d.user_id in accepted)


WIRES = {
    "console": console_wire,
    "locmem": locmem_wire,
    "in_app": in_app_wire,
    "email": email_wire,
    "sms": sms_wire,
    "push": push_wire,
}


@pytest.fixture(params=sorted(WIRES))
def wire(request, platform, make_user) -> Wire:
    return WIRES[request.param](request, platform, make_user)


def counted(backend: BaseBackend) -> list[str]:
    """Record open/close calls on this instance."""
    calls: list[str] = []
    open_, close = backend.open, backend.close

    def _open():
        calls.append("open")
        open_()

    def _close():
        calls.append("close")
        close()

    backend.open, backend.close = _open, _close
    return calls


def test_one_result_per_delivery_in_order(wire):
    backend = wire.make()
    calls = counted(backend)
    # Smaller than the batch: the backend crosses batch boundaries.
    backend.batch_size = 2

    pairs = list(backend.send(wire.deliveries))

    assert [d.pk for d, _ in pairs] == [d.pk for d in wire.deliveries]
    assert all(isinstance(result, Result) for _, result in pairs)
    assert [result.ok for _, result in pairs] == [wire.accepts(d) for d in wire.deliveries]
    assert all(result.error for _, result in pairs if not result.ok)
    assert calls == ["open", "close"]


def test_open_and_close_stay_balanced_when_the_caller_stops_early(wire):
    backend = wire.make()
    calls = counted(backend)
    backend.batch_size = 2

    stream = backend.send(wire.deliveries)
    first_delivery, first_result = next(stream)
    stream.close()

    assert first_delivery.pk == wire.deliveries[0].pk
    assert first_result.ok == wire.accepts(wire.deliveries[0])
    assert calls == ["open", "close"]


def test_an_empty_send_opens_and_closes(wire):
    backend = wire.make()
    calls = counted(backend)
    assert list(backend.send([])) == []
    assert calls == ["open", "close"]
