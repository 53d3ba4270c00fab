"""Models of the core app, one module per concern.

The channel enums live in `notifications.channels` and are exported here too.
"""

from notifications.channels import DELIVERY_CHANNEL, Channel, ScheduledChannel  # noqa: F401
from notifications.models.bulk_scheduled import (  # noqa: F401
    ImmediateSend,
    ScheduledNotification,
    ScheduledStatus,
)
from notifications.models.core import (  # noqa: F401
    Attachment,
    AuthToken,
    DeliveryRule,
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
from notifications.models.plans import DeliveryPlan  # noqa: F401
from notifications.models.providers import PlatformProviderCredentials, SMSProvider  # noqa: F401
from notifications.models.receipts import (  # noqa: F401
    DeliveryReceipt,
    ProviderStatus,
    Suppression,
    SuppressionReason,
)
from notifications.models.smtp import PlatformSMTPSettings  # noqa: F401
