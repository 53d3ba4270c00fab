"""Shared pieces of the bulk and scheduled tests."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import Permission
from django.utils import timezone

from notifications.models import Membership
from notifications.permissions import REGISTRY

V1 = "/api/v1/notifications"
ENVELOPE_KEYS = {"message", "data", "success", "status_code", "metadata"}
JOB_KEYS = {
    "id",
    "channel",
    "title",
    "message",
    "html",
    "scheduled_at",
    "status",
    "target_user_ids",
    "target_role",
    "target_raw",
    "attempt_count",
    "last_error",
    "processing_started_at",
    "sent_at",
    "cancelled_at",
    "created_by",
    "created_at",
    "updated_at",
}
# The smallest valid PNG: 1x1, transparent.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def envelope(response, status: int, message: str):
    """The document's success envelope; returns its `data`."""
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == ENVELOPE_KEYS
    assert body["message"] == message
    assert body["success"] is True and body["status_code"] == status and body["metadata"] is None
    return body["data"]


def error(response, status: int, message: str) -> dict:
    """The document's error body `{"message", "error"}` with the exact message."""
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"message", "error"}
    assert body["message"] == message, body
    return body


def future(days: int = 30) -> str:
    return (timezone.now() + timedelta(days=days)).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def grant(user, *keys: str, platform=None) -> None:
    """Give `user` these permission keys on top of their role's, on `platform` (default: their only one)."""
    membership = Membership.objects.get(user=user, platform=platform) if platform else Membership.objects.get(user=user)
    for key in keys:
        app_label, codename = REGISTRY[key].perm.split(".", 1)
        membership.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
