"""Group names and messages of the in-app WebSocket."""

from __future__ import annotations


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def created_notification_event(payload: dict) -> dict:
    """The channel-layer message a consumer turns into CREATED_NOTIFICATION."""
    return {"type": "notification.created", "recipient_id": payload["recipient_id"], "payload": payload}
