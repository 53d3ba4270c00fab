"""In-app: the row is the inbox entry; each recipient's open sockets get it live."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from notifications.api.v1_serializers import created_notification_payload
from notifications.backends.base import BaseBackend, Result
from notifications.realtime import created_notification_event, user_group


class InAppBackend(BaseBackend):
    batch_size = 500

    def send_batch(self, deliveries):
        layer = get_channel_layer()
        results = []
        for delivery in deliveries:
            if delivery.user_id is None:
                results.append(Result.failed("In-app notifications need a user account"))
                continue
            results.append(Result.sent(str(delivery.id)))
        messages = [
            (user_group(d.user_id), created_notification_event(created_notification_payload(d)))
            for d, r in zip(deliveries, results, strict=True)
            if r.ok
        ]
        if layer is not None and messages:
            async_to_sync(_group_send_all)(layer, messages)
        return results


async def _group_send_all(layer, messages):
    for group, message in messages:
        await layer.group_send(group, message)
