"""Outbound webhooks end to end over real HTTP on loopback.

Endpoints are registered through the API; events come from the real send and
inbox paths; a receiver verifies every request with the `standardwebhooks`
library. Retries are brought forward by sweeping with a later `now` (the
sweep runs the due-work sources as beat would).
"""

from __future__ import annotations

import socket
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import inbox, lifecycle, scheduler, smtp
from notifications.models import InboxStatus, Notification
from notifications.pipeline import Message, Recipient, notification_send
from notifications.tests.factories import PlatformFactory, make_member
from webhooks import delivery, events
from webhooks.models import MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage
from webhooks.tests.receiver import WebhookReceiver

BASE = "/api/notification/v1/platforms/acme-learning/webhooks/"


@pytest.fixture
def loopback_allowed(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.WEBHOOK_TIMEOUT_SECONDS = 2
    return settings


@pytest.fixture
def admin(make_user):
    return make_user("web.admin", role="ADMIN", admin=True)


@pytest.fixture
def client(admin, api):
    return api(admin, keyword="Token")


@pytest.fixture
def learners(platform):
    return [make_member(platform=platform, username=f"learner{i}") for i in range(3)]


def register(client, url: str, event_types: list[str]) -> dict:
    response = client.post(BASE, {"url": url, "event_types": event_types}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret"].startswith("whsec_")
    return body


def send(platform, users, source="course:42") -> None:
    notification_send(
        platform=platform,
        source=source,
        channels=["in_app"],
        recipients=[Recipient(user_id=u.pk) for u in users],
        message=Message(title="Welcome", body="Your course starts today."),
    )


def sweep_later(hours: float = 1) -> None:
    """What beat's sweeps do once the retries fall due."""
    scheduler.sweep(now=timezone.now() + timedelta(hours=hours))


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.mark.django_db(transaction=True)
def test_every_event_arrives_signed_through_failures(loopback_allowed, client, platform, learners):
    with WebhookReceiver(fail_first=3) as receiver:
        endpoint = register(
            client, receiver.url + "/hooks?tenant=acme", ["notification.created", "delivery.sent", "notification.read"]
        )
        receiver.secret = endpoint["secret"]
        send(platform, learners)
        # Three attempts answered 500: those messages wait for their retry.
        messages = WebhookMessage.objects.filter(endpoint_id=endpoint["id"])
        assert messages.count() == 6  # created + sent (in-app is sent on write) per learner
        assert messages.filter(status=MessageStatus.PENDING, attempts=1, last_status_code=500).count() == 3
        note = Notification.objects.filter(user=learners[0]).get()
        inbox.inbox_status_set(user=learners[0], platform=platform, ids=[note.pk], status=InboxStatus.READ)
        sweep_later()
        assert set(messages.values_list("status", flat=True)) == {MessageStatus.DELIVERED}
        assert receiver.refused_signatures == 0
        # Every event arrived once per webhook-id, whatever was retried.
        assert set(receiver.accepted) == {m.webhook_id for m in WebhookMessage.objects.all()}
        created = receiver.events("notification.created")
        assert sorted(e["data"]["user_id"] for e in created) == sorted(str(u.pk) for u in learners)
        assert {e["data"]["notification_id"] for e in created} == {
            str(pk) for pk in Notification.objects.values_list("pk", flat=True)
        }
        (read,) = receiver.events("notification.read")
        assert read["data"] == {"notification_id": str(note.pk), "user_id": str(learners[0].pk)}
        assert len(receiver.events("delivery.sent")) == 3
        assert all(r.path == "/hooks" and r.query == {"tenant": "acme"} for r in receiver.requests)
    # Each attempt is logged with its answer: three 500s, then a 200 per message.
    codes = sorted(WebhookAttempt.objects.values_list("status_code", flat=True))
    assert codes == [200] * 7 + [500] * 3
    retried = WebhookMessage.objects.filter(attempts=2)
    assert retried.count() == 3
    listed = client.get(f"{BASE}{endpoint['id']}/messages/", {"status": "delivered"}).json()
    assert listed["count"] == 7
    detail = client.get(f"{BASE}{endpoint['id']}/messages/{retried.first().pk}/").json()
    assert [a["status_code"] for a in detail["attempt_log"]] == [200, 500]
    assert detail["webhook_id"] == retried.first().webhook_id


@pytest.mark.django_db(transaction=True)
def test_a_receiver_down_leaves_events_retrying_and_replayable(loopback_allowed, client, platform, learners):
    endpoint = register(client, f"http://127.0.0.1:{closed_port()}/hooks", ["notification.created"])
    send(platform, learners)
    messages = WebhookMessage.objects.filter(endpoint_id=endpoint["id"])
    assert messages.count() == 3
    sweep_later(hours=1)
    sweep_later(hours=3)
    for message in messages:
        assert message.status == MessageStatus.PENDING
        assert message.attempts >= 2 and message.next_attempt_at > timezone.now()
        assert message.last_status_code is None and message.last_error.startswith("Connection failed")
    assert not WebhookAttempt.objects.exclude(status_code=None).exists()
    failing = client.get(f"{BASE}{endpoint['id']}/").json()
    assert failing["failing_since"] is not None and failing["is_active"] is True

    with WebhookReceiver() as receiver:
        receiver.secret = client.get(f"{BASE}{endpoint['id']}/secret/").json()["secret"]
        assert receiver.secret == endpoint["secret"]
        # The receiver is back at another address: point the endpoint there and replay.
        moved = client.patch(f"{BASE}{endpoint['id']}/", {"url": receiver.url + "/hooks"}, format="json")
        assert moved.status_code == 200
        one = messages.order_by("created_at").first()
        replayed = client.post(f"{BASE}{endpoint['id']}/messages/{one.pk}/replay/")
        assert replayed.status_code == 202 and replayed.json()["status"] == MessageStatus.DELIVERED
        assert set(receiver.accepted) == {one.webhook_id}
        response = client.post(f"{BASE}{endpoint['id']}/replay-failed/")
        assert response.status_code == 202 and response.json() == {"replayed": 2}
        assert set(receiver.accepted) == {m.webhook_id for m in messages}
    assert set(messages.values_list("status", flat=True)) == {MessageStatus.DELIVERED}
    assert WebhookEndpoint.objects.get(pk=endpoint["id"]).failing_since is None


@pytest.mark.django_db(transaction=True)
def test_an_endpoint_failing_for_days_is_disabled_and_its_admins_told(
    loopback_allowed, client, admin, platform, learners
):
    endpoint = register(client, f"http://127.0.0.1:{closed_port()}/hooks", ["notification.created"])
    WebhookEndpoint.objects.filter(pk=endpoint["id"]).update(failing_since=timezone.now() - timedelta(days=6))
    send(platform, learners[:2])
    disabled = WebhookEndpoint.objects.get(pk=endpoint["id"])
    assert disabled.is_active is False and "failed for 6.0 days" in disabled.disabled_reason
    assert set(WebhookMessage.objects.values_list("status", flat=True)) == {MessageStatus.FAILED}
    told = Notification.objects.filter(user=admin, source__startswith="webhooks:disabled:")
    assert told.filter(channel="in_app").get().title == "A webhook endpoint was disabled"
    # Disabled: later events owe it nothing.
    send(platform, learners[2:], source="course:43")
    assert WebhookMessage.objects.count() == 2
    # Enabled again: the failed messages are replayable.
    with WebhookReceiver() as receiver:
        receiver.secret = endpoint["secret"]
        patch = {"url": receiver.url, "is_active": True}
        assert client.patch(f"{BASE}{endpoint['id']}/", patch, format="json").json()["failing_since"] is None
        assert client.post(f"{BASE}{endpoint['id']}/replay-failed/").json() == {"replayed": 2}
        assert len(receiver.accepted) == 2


@pytest.mark.django_db(transaction=True)
def test_no_subscription_writes_no_events(loopback_allowed, client, platform, learners):
    register(client, "http://127.0.0.1:9/hooks", ["build.completed"])
    assert not lifecycle.wanted(lifecycle.notification_created, platform_id=platform.pk)
    other = PlatformFactory(key="other-school")
    assert not lifecycle.wanted(lifecycle.build_completed, platform_id=other.pk)
    send(platform, learners)
    assert WebhookMessage.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.0.0.5/hook",
        "http://[::1]/hook",
        "http://[::ffff:192.168.0.1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433/hook",
        "ftp://example.com/hook",
        "http://user:pw@203.0.113.9/hook",
        "not a url",
    ],
)
def test_private_and_malformed_urls_are_refused(client, url):
    response = client.post(BASE, {"url": url, "event_types": ["notification.created"]}, format="json")
    assert response.status_code == 400, url
    assert response.json()["url"], response.json()
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_a_name_resolving_to_a_private_address_is_refused(client, monkeypatch):
    def resolves_private(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))]

    monkeypatch.setattr(smtp, "_getaddrinfo", resolves_private)
    response = client.post(
        BASE, {"url": "https://hooks.example.com/in", "event_types": ["delivery.sent"]}, format="json"
    )
    assert response.status_code == 400 and "public address" in response.json()["url"][0]


@pytest.mark.django_db(transaction=True)
def test_delivery_checks_the_address_again(loopback_allowed, client, platform, learners, settings):
    with WebhookReceiver() as receiver:
        endpoint = register(client, receiver.url, ["notification.created"])
        receiver.secret = endpoint["secret"]
        settings.WEBHOOK_ALLOWED_HOSTS = []  # loopback is no longer allowed when the attempt is made
        send(platform, learners[:1])
        assert receiver.requests == []
    message = WebhookMessage.objects.get()
    assert message.status == MessageStatus.PENDING and "public address" in message.last_error


@pytest.mark.django_db
def test_another_platforms_endpoint_is_not_found(client, loopback_allowed):
    other = PlatformFactory(key="other-school")
    theirs = WebhookEndpoint(platform=other, url="https://hooks.example.com/", event_types=["delivery.sent"])
    theirs.secret_set("whsec_" + "A" * 44)
    theirs.save()
    for path in ("", "secret/", "messages/", "replay-failed/"):
        method = client.post if path == "replay-failed/" else client.get
        assert method(f"{BASE}{theirs.pk}/{path}").status_code == 404, path
    assert client.patch(f"{BASE}{theirs.pk}/", {"description": "x"}, format="json").status_code == 404
    assert client.delete(f"{BASE}{theirs.pk}/").status_code == 404
    # Their platform's own path: this admin is not a member there.
    assert client.get(f"/api/notification/v1/platforms/other-school/webhooks/{theirs.pk}/").status_code == 404
    assert client.get(BASE).json() == []
    assert WebhookEndpoint.objects.filter(pk=theirs.pk, description="").exists()


@pytest.mark.django_db
def test_endpoint_crud_and_secret_rotation(client, loopback_allowed):
    created = register(client, "http://127.0.0.1:9/in", ["notification.created", "delivery.failed"])
    assert created["event_types"] == ["notification.created", "delivery.failed"]
    assert "secret" not in client.get(f"{BASE}{created['id']}/").json()
    rotated = client.post(f"{BASE}{created['id']}/secret/").json()["secret"]
    assert rotated.startswith("whsec_") and rotated != created["secret"]
    assert client.get(f"{BASE}{created['id']}/secret/").json() == {"secret": rotated}
    bad = client.patch(f"{BASE}{created['id']}/", {"event_types": ["nope"]}, format="json")
    assert bad.status_code == 400 and "event_types" in bad.json()
    assert client.delete(f"{BASE}{created['id']}/").status_code == 204
    assert not WebhookEndpoint.objects.exists()


def test_backoff_spans_about_three_days():
    delays = [delivery.WEBHOOKS.delay(n) / (1 + delivery.WEBHOOKS.jitter) for n in range(1, 16)]
    total = sum(min(d, delivery.WEBHOOKS.cap_seconds) for d in delays)
    assert delivery.WEBHOOKS.attempts() == 16
    assert 2.5 * 86400 <= total <= 3.6 * 86400
    assert set(events.EVENT_TYPES) == {s.name for s in lifecycle.ALL}


class SlowPeer:
    """A TCP peer on loopback that accepts and then answers nothing, or a byte at a time."""

    def __init__(self, *, trickle: bool):
        self.trickle = trickle
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        self.sock.settimeout(0.1)
        peers = []
        while not self.stopped.is_set():
            try:
                peer, _ = self.sock.accept()
                peers.append(peer)
            except TimeoutError:
                pass
            for peer in peers:
                if self.trickle:
                    try:
                        peer.send(b"H")
                    except OSError:
                        pass
        for peer in peers:
            peer.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join()
        self.sock.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("trickle", [False, True], ids=["silent", "trickling"])
def test_a_slow_receiver_times_out(loopback_allowed, client, platform, learners, trickle):
    loopback_allowed.WEBHOOK_TIMEOUT_SECONDS = 0.3
    with SlowPeer(trickle=trickle) as peer:
        register(client, f"http://127.0.0.1:{peer.port}/hooks", ["notification.created"])
        send(platform, learners[:1])
    message = WebhookMessage.objects.get()
    assert message.status == MessageStatus.PENDING and message.attempts == 1
    assert message.last_status_code is None and message.last_error, message.last_error
    assert message.next_attempt_at > timezone.now()
