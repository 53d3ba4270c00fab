"""Models of the core app, one module per concern."""

from notifications.models.bulk_scheduled import (  # noqa: F401
    DELIVERY_CHANNEL,
    ImmediateSend,
    ScheduledChannel,
    ScheduledNotification,
    ScheduledStatus,
)
from notifications.models.core import (  # noqa: F401
    Attachment,
    AuthToken,
    Channel,
    DeliveryStatus,
    InboxCounter,
    InboxStatus,
    Level,
    Membership,
    Notification,
    Platform,
    Role,
    TokenScope,
    User,
    hash_token,
    normalize_origin,
)
from notifications.models.devices import DeviceRegistration  # noqa: F401
from notifications.models.idempotency import IdempotencyKey  # noqa: F401
from notifications.models.smtp import PlatformSMTPSettings  # noqa: F401
