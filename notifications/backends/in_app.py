"""In-app: the row is the inbox entry; each recipient's open sockets get it live.

Writing the row *is* the delivery, so the pipeline writes in-app rows directly
as `sent` (in bulk, see `notification_send`) and calls `announce` after they
are committed; no claim/send/record round trip per row. The WebSocket message
is best effort on top: a user without an open socket, or one whose message was
lost to a crash between commit and announce, still finds the notification in
the inbox (`GET /api/v1/notifications`), as the bulk document describes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from notifications.backends.base import BaseBackend, Result
from notifications.models import DeliveryRule
from notifications.realtime import created_notification_event, groups_send_each_sync, user_group
from notifications.realtime_payload import created_notification_payload

logger = logging.getLogger(__name__)
QUIET_HOURS = str(DeliveryRule.QUIET_HOURS.value)


def _event(delivery) -> dict:
    # A row written inside the recipient's quiet hours goes to the inbox at
    # once but arrives silently: no sound, no screen-reader announcement.
    return created_notification_event(
        created_notification_payload(delivery),
        platform_id=delivery.platform_id,
        silent=getattr(delivery, "rule", "") == QUIET_HOURS,
    )


class InAppBackend(BaseBackend):
    channel = "in_app"
    batch_size = 5000
    # The pipeline inserts rows of this channel as sent and calls `announce`.
    delivered_on_write = True

    def announce(self, deliveries: Iterable) -> int:
        """Send CREATED_NOTIFICATION to every open socket of each delivery's user.

        `deliveries` are committed rows (or row-like objects with the fields
        `created_notification_payload` reads). Never raises: the rows are the
        delivery, the socket message is a courtesy.
        """
        # The pipeline's rows (`sql.RowViews`) give their user ids as a column:
        # a view is made only for a user with an open socket.
        if hasattr(deliveries, "user_ids"):
            rows, user_ids = deliveries, deliveries.user_ids
        else:
            rows = list(deliveries)
            user_ids = [d.user_id for d in rows]
        present = [i for i, user_id in enumerate(user_ids) if user_id is not None]
        groups = [user_group(user_ids[i]) for i in present]
        try:
            # Payloads are built only for users with an open socket.
            return groups_send_each_sync(groups, lambda j: _event(rows[present[j]]))
        except Exception:  # a Redis outage must not undo committed deliveries
            logger.exception("in-app WebSocket announce of %s notifications failed", len(groups))
            return 0

    def send_batch(self, deliveries):
        # Pending in-app rows (written by a pipeline configured without the
        # direct path) are announced here and recorded sent by the pipeline.
        no_account = Result.failed("In-app notifications need a user account")
        results = [Result.sent(str(d.id)) if d.user_id is not None else no_account for d in deliveries]
        self.announce([d for d, r in zip(deliveries, results, strict=True) if r.ok])
        return results
