from django.urls import path

import notifications.converters  # noqa: F401  (registers <id:...>)
from notifications.api import bulk_views, provider_callbacks, v1_views

urlpatterns = [
    path("notifications", v1_views.InboxListView.as_view(), name="v1-notifications"),
    path("notifications/unread", v1_views.UnreadCountView.as_view(), name="v1-notifications-unread"),
    path("notifications/read-all", v1_views.MarkAllReadView.as_view(), name="v1-notifications-read-all"),
    path("notifications/<uuid:notification_id>/read", v1_views.MarkReadView.as_view(), name="v1-notification-read"),
    path(
        "notifications/<uuid:notification_id>/dismiss", v1_views.DismissView.as_view(), name="v1-notification-dismiss"
    ),
    path("inbox-tokens", v1_views.InboxTokenView.as_view(), name="v1-inbox-tokens"),
    path(
        "providers/africastalking/delivery-reports",
        provider_callbacks.AfricasTalkingDeliveryReportView.as_view(),
        name="v1-africastalking-delivery-reports",
    ),
    path(
        "providers/afromessage/status-reports",
        provider_callbacks.AfroMessageStatusReportView.as_view(),
        name="v1-afromessage-status-reports",
    ),
    path("notifications/bulk-sms", bulk_views.BulkSmsView.as_view(), name="v1-bulk-sms"),
    path("notifications/bulk-email", bulk_views.BulkEmailView.as_view(), name="v1-bulk-email"),
    path("notifications/bulk-push", bulk_views.BulkPushView.as_view(), name="v1-bulk-push"),
    path("notifications/bulk-in-app", bulk_views.BulkInAppView.as_view(), name="v1-bulk-in-app"),
    path("notifications/scheduled", bulk_views.ScheduledListView.as_view(), name="v1-scheduled-list"),
    path("notifications/scheduled/<id:pk>", bulk_views.ScheduledDetailView.as_view(), name="v1-scheduled-detail"),
    path(
        "notifications/scheduled/<id:pk>/cancel", bulk_views.ScheduledCancelView.as_view(), name="v1-scheduled-cancel"
    ),
    path(
        "notifications/scheduled/<id:pk>/deliveries",
        bulk_views.ScheduledDeliveriesView.as_view(),
        name="v1-scheduled-deliveries",
    ),
]
