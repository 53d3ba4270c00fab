"""`Idempotency-Key` for send endpoints: a retried request never sends twice.

Decorate a view method with `@idempotent`. A request carrying the header is
fingerprinted (method, path, the platform it acts on, parsed body and uploaded
files); for 24 hours the same user with the same key gets:

- the first response again (header `Idempotent-Replayed: true`) when the body matches,
- 422 when the body differs, or the same key comes with another platform
  (`X-Platform`): a key never answers for two tenants,
- 409 while the first request is still running.

Only successful (2xx) responses are kept: a request rejected with a 4xx or that
crashed frees its key, so the client can fix the body and retry with it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from functools import wraps

from django.core.serializers.json import DjangoJSONEncoder
from rest_framework.response import Response

from notifications.api.errors import ApiError
from notifications.models import IdempotencyKey
from notifications.tenancy import platform_for_request

HEADER = "HTTP_IDEMPOTENCY_KEY"
TTL = timedelta(hours=24)
# A key whose first request never finished (its process died) is free again after this.
STALE_AFTER = timedelta(minutes=10)
KEY_MAX = 255


def _digest_file(upload) -> str:
    h = hashlib.sha256()
    for chunk in upload.chunks():
        h.update(chunk)
    upload.seek(0)
    return h.hexdigest()


def _platform_id(request) -> int:
    # Resolved by the permission check or the view when it ran first; the same answer either way.
    platform = getattr(request, "platform", None) or platform_for_request(request)
    return platform.pk


def request_fingerprint(request) -> str:
    """SHA-256 of what the request asks for, independent of key order and multipart boundaries."""
    data = request.data
    if hasattr(data, "lists"):
        body = {key: values for key, values in data.lists() if key not in request.FILES}
    else:
        body = data
    files = {key: [(f.name, f.size, _digest_file(f)) for f in request.FILES.getlist(key)] for key in request.FILES}
    canonical = json.dumps(
        {
            "method": request.method,
            "path": request.path,
            "platform": _platform_id(request),
            "body": body,
            "files": files,
        },
        sort_keys=True,
        separators=(",", ":"),
        cls=DjangoJSONEncoder,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _begin(*, user, key: str, fingerprint: str, request) -> tuple[IdempotencyKey | None, Response | None]:
    """Reserve `key` for this request, or answer from (or about) the request that holds it."""
    held, existing = IdempotencyKey.claim(
        user=user,
        key=key,
        fingerprint=fingerprint,
        method=request.method,
        path=request.path,
        ttl=TTL,
        stale_after=STALE_AFTER,
    )
    if held is not None:
        return held, None
    if existing is None:
        raise ApiError("Request with this Idempotency-Key is in progress", status=409)
    if existing.fingerprint != fingerprint:
        raise ApiError(
            "Idempotency-Key reused with a different request",
            status=422,
            error="This Idempotency-Key was first used with another body or endpoint; use a new key",
        )
    if not existing.is_complete:
        raise ApiError(
            "Request with this Idempotency-Key is in progress",
            status=409,
            error="The first request with this key has not finished; retry later",
        )
    return None, Response(
        existing.response_body, status=existing.response_status, headers={"Idempotent-Replayed": "true"}
    )


def idempotent(method):
    """Honour `Idempotency-Key` on a DRF view method (runs after authentication and permissions)."""

    @wraps(method)
    def wrapper(self, request, *args, **kwargs):
        key = request.META.get(HEADER, "").strip()
        if not key:
            return method(self, request, *args, **kwargs)
        if len(key) > KEY_MAX:
            raise ApiError("Invalid Idempotency-Key", error=f"Idempotency-Key may be at most {KEY_MAX} characters")
        record, replay = _begin(user=request.user, key=key, fingerprint=request_fingerprint(request), request=request)
        if replay is not None:
            return replay
        try:
            response = method(self, request, *args, **kwargs)
        except BaseException:
            record.delete()
            raise
        if 200 <= response.status_code < 300:
            record.response_status = response.status_code
            record.response_body = json.loads(json.dumps(response.data, cls=DjangoJSONEncoder))
            record.save(update_fields=["response_status", "response_body"])
        else:
            record.delete()
        return response

    wrapper.idempotent = True
    return wrapper
