"""The Idempotency-Key store of the send endpoints."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone


class IdempotencyKey(models.Model):
    """The first response to a request carrying an `Idempotency-Key` header.

    Keys are per user; a replay within `expires_at` gets the stored response.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # SHA-256 of method, path and body: the same key with another request is a 422.
    fingerprint = models.CharField(max_length=64)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    # Null while the first request is still running (a replay then is a 409).
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="uniq_idempotency_key")]

    def __str__(self) -> str:
        return f"{self.key} ({self.method} {self.path})"

    @property
    def is_complete(self) -> bool:
        return self.response_status is not None

    @classmethod
    def claim(
        cls, *, user, key: str, fingerprint: str, method: str, path: str, ttl, stale_after
    ) -> tuple[IdempotencyKey | None, IdempotencyKey | None]:
        """Hold `key` for a new request: (the new row, None), or (None, the live row that holds it).

        An expired row, or one whose request has not finished within
        `stale_after` (its process died), is taken over. (None, None): the key
        changed hands under us three times in a row.
        """
        for _ in range(3):
            now = timezone.now()
            try:
                with transaction.atomic():
                    held = cls.objects.create(
                        user=user,
                        key=key,
                        fingerprint=fingerprint,
                        method=method,
                        path=path[:500],
                        expires_at=now + ttl,
                    )
                return held, None
            except IntegrityError:
                existing = cls.objects.filter(user=user, key=key).first()
            if existing is None:
                continue  # freed between our insert and our read
            expired = existing.expires_at <= now
            abandoned = not existing.is_complete and existing.created_at <= now - stale_after
            if expired or abandoned:
                cls.objects.filter(pk=existing.pk, created_at=existing.created_at).delete()
                continue
            return None, existing
        return None, None

    @classmethod
    def purge_expired(cls) -> int:
        """Delete the keys past `expires_at` (an hourly task); returns how many."""
        deleted, _ = cls.objects.filter(expires_at__lte=timezone.now()).delete()
        return deleted
