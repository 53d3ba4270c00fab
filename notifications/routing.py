from django.urls import path

from notifications.consumers import NotificationConsumer

websocket_urlpatterns = [
    path("api/v1/ws/connect", NotificationConsumer.as_asgi()),
]
