from django.urls import path

from notifications.api import v1_views

urlpatterns = [
    path("notifications", v1_views.InboxListView.as_view(), name="v1-notifications"),
    path("notifications/unread", v1_views.UnreadCountView.as_view(), name="v1-notifications-unread"),
]
