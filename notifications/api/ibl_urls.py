"""`/api/notification/v1/`: the IBL inbox, push devices, platform SMTP and SMS provider accounts, the suppression list.

Paths are the document's, trailing slashes included; `mark-all-as-read` has
none there and none here (APPEND_SLASH is off, so neither form redirects).
"""

from django.urls import path

from notifications.api import ibl_devices, ibl_inbox, ibl_providers, ibl_smtp, ibl_suppressions

USER = "orgs/<str:org>/users/<str:user_id>/"

urlpatterns = [
    path("orgs/<str:org>/notifications/", ibl_inbox.OrgNotificationsView.as_view(), name="ibl-org-notifications"),
    path(
        "orgs/<str:org>/notifications/bulk-update/",
        ibl_inbox.OrgNotificationsBulkView.as_view(),
        name="ibl-org-notifications-bulk",
    ),
    path("orgs/<str:platform_key>/mark-all-as-read", ibl_inbox.MarkAllReadView.as_view(), name="ibl-mark-all-read"),
    path(USER + "notifications/", ibl_inbox.UserNotificationsView.as_view(), name="ibl-user-notifications"),
    path(
        USER + "notifications/bulk-update/",
        ibl_inbox.UserNotificationsBulkView.as_view(),
        name="ibl-user-notifications-bulk",
    ),
    path(
        USER + "notifications/<str:notification_id>/",
        ibl_inbox.UserNotificationDetailView.as_view(),
        name="ibl-user-notification",
    ),
    path(
        USER + "notifications-count/",
        ibl_inbox.UserNotificationsCountView.as_view(),
        name="ibl-user-notifications-count",
    ),
    path(USER + "register-fcm-token/", ibl_devices.RegisterFCMTokenView.as_view(), name="ibl-register-fcm-token"),
    path("platforms/<str:platform_key>/config/smtp/", ibl_smtp.SMTPSettingsView.as_view(), name="ibl-smtp-settings"),
    path("platforms/<str:platform_key>/config/test-smtp/", ibl_smtp.SMTPTestView.as_view(), name="ibl-smtp-test"),
    path(
        "platforms/<str:platform_key>/config/sms-providers/<str:provider>/",
        ibl_providers.ProviderCredentialsView.as_view(),
        name="ibl-sms-provider-credentials",
    ),
    path(
        "platforms/<str:platform_key>/suppressions/",
        ibl_suppressions.SuppressionListView.as_view(),
        name="ibl-suppressions",
    ),
    path(
        "platforms/<str:platform_key>/suppressions/<int:suppression_id>/",
        ibl_suppressions.SuppressionDetailView.as_view(),
        name="ibl-suppression",
    ),
]
