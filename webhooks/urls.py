"""`/api/notification/v1/platforms/{platform_key}/webhooks/...` (mounted by config.urls)."""

from django.urls import path

from webhooks.api import views

BASE = "platforms/<str:platform_key>/webhooks/"
ONE = BASE + "<int:webhook_id>/"

urlpatterns = [
    path(BASE, views.WebhooksView.as_view(), name="ibl-webhooks"),
    path(ONE, views.WebhookView.as_view(), name="ibl-webhook"),
    path(ONE + "secret/", views.WebhookSecretView.as_view(), name="ibl-webhook-secret"),
    path(ONE + "messages/", views.WebhookMessagesView.as_view(), name="ibl-webhook-messages"),
    path(ONE + "messages/<uuid:message_id>/", views.WebhookMessageView.as_view(), name="ibl-webhook-message"),
    path(
        ONE + "messages/<uuid:message_id>/replay/",
        views.WebhookMessageReplayView.as_view(),
        name="ibl-webhook-message-replay",
    ),
    path(ONE + "replay-failed/", views.WebhookReplayFailedView.as_view(), name="ibl-webhook-replay-failed"),
]
