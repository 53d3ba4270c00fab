"""What happened to notifications and deliveries, announced for whoever listens.

The core and the apps send these Django signals at the moment something
happened (after commit where the change is transactional); listeners such as
outbound webhooks and metrics connect to them in their `AppConfig.ready()`, so
the code that makes a change never imports the code that reports it.

Every signal is sent with keyword arguments `platform_id` (int) and `payload`
(a JSON-serialisable dict describing the event, ids as strings); the event's
name is the signal's `name` attribute below.
"""

from __future__ import annotations

from django.dispatch import Signal


class LifecycleSignal(Signal):
    def __init__(self, name: str):
        super().__init__()
        self.name = name


notification_created = LifecycleSignal("notification.created")
notification_read = LifecycleSignal("notification.read")
delivery_sent = LifecycleSignal("delivery.sent")
delivery_failed = LifecycleSignal("delivery.failed")
delivery_delivered = LifecycleSignal("delivery.delivered")
delivery_bounced = LifecycleSignal("delivery.bounced")
delivery_opened = LifecycleSignal("delivery.opened")
scheduled_job_finished = LifecycleSignal("scheduled_job.finished")
build_completed = LifecycleSignal("build.completed")
digest_sent = LifecycleSignal("digest.sent")

ALL = (
    notification_created,
    notification_read,
    delivery_sent,
    delivery_failed,
    delivery_delivered,
    delivery_bounced,
    delivery_opened,
    scheduled_job_finished,
    build_completed,
    digest_sent,
)


def announce(signal: LifecycleSignal, *, platform_id: int, payload: dict) -> None:
    """Send `signal` now; a listener's failure is logged, never the sender's problem."""
    signal.send_robust(sender=signal.name, platform_id=platform_id, payload=payload)
