"""Push through Firebase Cloud Messaging (HTTP v1) to the user's fcm-django devices.

One delivery is one user; FCM takes one message per device token
(`POST {ENDPOINT}/v1/projects/{project_id}/messages:send`), so the backend
fans each delivery out to the user's active `FCMDevice` rows registered on the
delivery's platform (`selectors.push_devices_for`) and counts device
tokens (`units_sent` / `units_failed`). The delivery is sent when at least one
device took it.

Why not firebase-admin's `messaging.send_each`: its endpoint is a hard-coded
class attribute (`_MessagingService.FCM_URL`), so a self-hosted deployment or
a test server can only be reached by patching private state; and its HTTP
adapter retries 500/503 itself, up to four times with backoff and sleeping
through `Retry-After`, which holds a worker and hides the provider's wait from
our pipeline. The wire format is small and stable, so we speak FCM v1
directly, with google-auth's service-account credentials for the OAuth2 token
(a JWT assertion exchanged at the key's `token_uri`).

Why a plain `requests.Session` rather than google-auth's `AuthorizedSession`:
recent google-auth releases (2.62 here) start a background "regional access
boundary" lookup at iamcredentials.googleapis.com from `AuthorizedSession`'s
first request on. FCM does not need it, and an installation whose egress allows only the OAuth
and FCM hosts should not need a third one. We refresh the token ourselves
(`credentials.refresh`) under a lock and send it as a Bearer header, which is
all `AuthorizedSession` would do for this API.

Settings: `settings.FCM` with SERVICE_ACCOUNT_KEY (a path to the JSON key or
the JSON itself), ENDPOINT, TIMEOUT; OPTIONS may override them and set
PROJECT_ID (default: the key's `project_id`) and CONCURRENCY (parallel
requests per batch, default 8).
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from fcm_django.models import FCMDevice
from fcm_django.settings import FCM_DJANGO_SETTINGS
from google.auth import exceptions as google_exceptions
from google.auth.transport.requests import Request as GoogleRequest
from google.oauth2 import service_account
from requests.adapters import HTTPAdapter

from notifications.backends.base import BaseBackend, Result
from notifications.backends.httputil import RETRYABLE_STATUS, excerpt, retry_after
from notifications.selectors import push_devices_by_recipient

logger = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
# FCM rejects data keys that are reserved words or start with these prefixes.
RESERVED_DATA_KEYS = frozenset({"from", "message_type", "notification"})
RESERVED_DATA_PREFIXES = ("google", "gcm")
# FCM caps a message at 4 KB; a push is a preview, the inbox has the full text.
BODY_LIMIT = 1000


class _Credentials:
    """Service-account credentials whose token is shared by every backend instance."""

    def __init__(self, info: dict):
        self.credentials = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
        self._lock = threading.Lock()

    def token(self, session: requests.Session, timeout: float) -> str:
        with self._lock:
            if not self.credentials.valid:
                self.credentials.refresh(_TimeoutRequest(session, timeout))
            return self.credentials.token

    def invalidate(self, token: str) -> None:
        """Forget `token` (FCM refused it), unless another thread already replaced it."""
        with self._lock:
            if self.credentials.token == token:
                self.credentials.token = None


class _TimeoutRequest(GoogleRequest):
    def __init__(self, session, timeout):
        super().__init__(session)
        self._timeout = timeout

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        return super().__call__(url, method=method, body=body, headers=headers, timeout=self._timeout, **kwargs)


@lru_cache(maxsize=8)
def _credentials_for(key: str) -> tuple[_Credentials, dict]:
    # Cached per key so a worker exchanges one OAuth token per hour, not one
    # per dispatch.
    text = key.strip()
    if not text.startswith("{"):
        try:
            text = Path(text).read_text()
        except OSError as exc:
            raise ImproperlyConfigured(f"FCM['SERVICE_ACCOUNT_KEY'] cannot be read: {exc}") from exc
    try:
        info = json.loads(text)
    except ValueError as exc:
        raise ImproperlyConfigured(f"FCM['SERVICE_ACCOUNT_KEY'] is not JSON: {exc}") from exc
    try:
        return _Credentials(info), info
    except (ValueError, KeyError) as exc:
        raise ImproperlyConfigured(f"FCM['SERVICE_ACCOUNT_KEY'] is not a service-account key: {exc}") from exc


def active_devices(deliveries) -> dict[tuple[int, int], list[FCMDevice]]:
    """The active devices of the deliveries' users that serve each delivery's platform.

    Keyed by (user id, platform id), by the rule of `selectors.push_devices_for`
    (tenants never reach each other's apps). Every push backend, the console one
    included, sends to these, so a user without a device counts as nobody reached.
    """
    return push_devices_by_recipient(
        recipients={(d.user_id, d.platform_id) for d in deliveries if d.user_id is not None}
    )


def no_device() -> Result:
    """A push to a user without an active device: failed, zero device tokens reached."""
    return Result.failed("No active push device", units=0)


@dataclass
class _DeviceOutcome:
    device_id: int
    ok: bool
    name: str = ""
    error: str = ""
    retryable: bool = False
    retry_after: float | None = None
    # The token is dead (app uninstalled, token rotated, another project's).
    drop_device: bool = False
    # FCM refused our OAuth access token, not the device.
    stale_access_token: bool = False


def _data_payload(delivery) -> dict[str, str]:
    data = {}
    for key, value in (delivery.data or {}).items():
        key = str(key)
        if key in RESERVED_DATA_KEYS or key.startswith(RESERVED_DATA_PREFIXES):
            logger.warning("push data key %r is reserved by FCM; left out of notification %s", key, delivery.id)
            continue
        # FCM data is a map of strings; structured values travel as JSON.
        data[key] = value if isinstance(value, str) else json.dumps(value)
    data["notification_id"] = str(delivery.id)
    return data


def _message(delivery, token: str) -> dict:
    body = delivery.short_message or delivery.body
    if len(body) > BODY_LIMIT:
        body = body[: BODY_LIMIT - 1] + "…"
    notification = {key: value for key, value in (("title", delivery.title), ("body", body)) if value}
    message: dict = {"token": token, "notification": notification, "data": _data_payload(delivery)}
    if delivery.image_url:
        notification["image"] = delivery.image_url
        # iOS shows the image only through a notification service extension,
        # which runs for mutable-content messages.
        message["apns"] = {"payload": {"aps": {"mutable-content": 1}}, "fcm_options": {"image": delivery.image_url}}
    return {"message": message}


def _about_token(error: dict) -> bool:
    """Whether an INVALID_ARGUMENT error is about the registration token itself."""
    for detail in error.get("details") or []:
        for violation in detail.get("fieldViolations") or []:
            if violation.get("field") == "message.token":
                return True
    return "registration token" in str(error.get("message", "")).lower()


def _auth_error(exc: Exception) -> tuple[str, bool]:
    """The reason and retryability of a failed OAuth token exchange."""
    if isinstance(exc, google_exceptions.TransportError):
        return f"OAuth token endpoint unreachable: {exc}", True
    # RefreshError says whether the token endpoint's answer is worth retrying.
    return f"FCM credentials rejected: {exc}", bool(getattr(exc, "retryable", False))


def _read_error(device_id: int, response: requests.Response) -> _DeviceOutcome:
    status = response.status_code
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    if not isinstance(error, dict):
        error = {}
    codes = [
        d.get("errorCode")
        for d in error.get("details") or []
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.firebase.fcm.v1.FcmError")
    ]
    code = next((c for c in codes if c), None) or error.get("status") or f"HTTP {status}"
    text = f"{code}: {error.get('message') or excerpt(response.text)}"
    # Only an explicit verdict on the token retires a device: a bare 404 could
    # as well be a wrong project id, which must not wipe every device.
    drop = code in ("UNREGISTERED", "SENDER_ID_MISMATCH") or (code == "INVALID_ARGUMENT" and _about_token(error))
    if drop:
        return _DeviceOutcome(device_id, ok=False, error=f"{text} (device deactivated)", drop_device=True)
    if status == 401 and code == "UNAUTHENTICATED":
        # Our access token (THIRD_PARTY_AUTH_ERROR, also a 401, is the APNs/web
        # push credential configured in Firebase, and final).
        return _DeviceOutcome(device_id, ok=False, error=text, stale_access_token=True)
    if status in RETRYABLE_STATUS or code in ("QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"):
        return _DeviceOutcome(
            device_id,
            ok=False,
            error=text,
            retryable=True,
            retry_after=retry_after(response.headers.get("Retry-After")),
        )
    return _DeviceOutcome(device_id, ok=False, error=text)


class FCMBackend(BaseBackend):
    batch_size = 100

    def __init__(self, **options):
        super().__init__(**options)
        conf = {**getattr(settings, "FCM", {}), **{k.upper(): v for k, v in options.items()}}
        key = conf.get("SERVICE_ACCOUNT_KEY") or ""
        if not key:
            raise ImproperlyConfigured("FCMBackend needs FCM['SERVICE_ACCOUNT_KEY'] (FCM_SERVICE_ACCOUNT_KEY)")
        self._credentials, info = _credentials_for(key)
        project_id = conf.get("PROJECT_ID") or info.get("project_id")
        if not project_id:
            raise ImproperlyConfigured("FCMBackend needs a project id: FCM['PROJECT_ID'] or the key's project_id")
        endpoint = str(conf.get("ENDPOINT") or "https://fcm.googleapis.com").rstrip("/")
        self.url = f"{endpoint}/v1/projects/{project_id}/messages:send"
        self.timeout = float(conf.get("TIMEOUT") or 10)
        self.concurrency = max(int(conf.get("CONCURRENCY", 8)), 1)
        self.session: requests.Session | None = None
        self._pool: ThreadPoolExecutor | None = None

    def open(self) -> None:
        self.session = requests.Session()
        # One pooled connection per worker thread, kept alive across the batch.
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.concurrency)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="fcm")

    def close(self) -> None:
        if self._pool is not None:
            # Messages not yet on the wire stay unsent when the caller stopped
            # reading; their deliveries stay pending for the next dispatch.
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self.session is not None:
            self.session.close()
            self.session = None

    def send_batch(self, deliveries):
        devices = active_devices(deliveries)
        if any(devices.values()):
            # One token exchange up front: bad credentials fail the batch once,
            # not once per device.
            try:
                self._credentials.token(self.session, self.timeout)
            except google_exceptions.GoogleAuthError as exc:
                yield from self._all_failed(deliveries, devices, _auth_error(exc))
                return
        # Every device's message goes out on the pool at once; results come
        # back per delivery, in order, as soon as that user's devices answered.
        futures = [
            [
                self._pool.submit(self._post, device.id, _message(delivery, device.registration_id))
                for device in devices.get((delivery.user_id, delivery.platform_id), [])
            ]
            for delivery in deliveries
        ]
        try:
            for per_delivery in futures:
                outcomes = [future.result() for future in per_delivery]
                self._deactivate([o for o in outcomes if o.drop_device])
                yield self._result(outcomes)
        finally:
            # The caller stopped early: do not send what it will not record.
            for per_delivery in futures:
                for future in per_delivery:
                    future.cancel()

    def _post(self, device_id: int, payload: dict) -> _DeviceOutcome:
        outcome = None
        for _ in range(2):
            try:
                token = self._credentials.token(self.session, self.timeout)
            except google_exceptions.GoogleAuthError as exc:
                error, retryable = _auth_error(exc)
                return _DeviceOutcome(device_id, ok=False, error=error, retryable=retryable)
            outcome = self._post_once(device_id, payload, token)
            if not outcome.stale_access_token:
                return outcome
            # FCM no longer takes our access token (revoked, or expired before
            # its time): nothing was delivered, so fetch a new one and send once more.
            self._credentials.invalidate(token)
        return outcome

    def _post_once(self, device_id: int, payload: dict, token: str) -> _DeviceOutcome:
        try:
            response = self.session.post(
                self.url, json=payload, timeout=self.timeout, headers={"Authorization": f"Bearer {token}"}
            )
        except requests.Timeout as exc:
            return _DeviceOutcome(device_id, ok=False, error=f"FCM timed out: {exc}", retryable=True)
        except requests.RequestException as exc:
            return _DeviceOutcome(device_id, ok=False, error=f"FCM unreachable: {exc}", retryable=True)
        if response.status_code == 200:
            try:
                name = str(response.json().get("name", ""))
            except (ValueError, AttributeError):
                name = ""
            return _DeviceOutcome(device_id, ok=True, name=name)
        return _read_error(device_id, response)

    def _all_failed(self, deliveries, devices, error: tuple[str, bool]):
        message, retryable = error
        for delivery in deliveries:
            count = len(devices.get((delivery.user_id, delivery.platform_id), []))
            yield Result.failed(message, retryable=retryable, units=count) if count else no_device()

    @staticmethod
    def _result(outcomes: list[_DeviceOutcome]) -> Result:
        if not outcomes:
            return no_device()
        ok = [o for o in outcomes if o.ok]
        failed = [o for o in outcomes if not o.ok]
        errors = "; ".join(f"device {o.device_id}: {o.error}" for o in failed)
        if ok:
            # Sent: retrying would repeat it on the devices that already have it.
            return Result(
                ok=True, provider_message_id=ok[0].name, units_sent=len(ok), units_failed=len(failed), error=errors
            )
        retryable = [o for o in failed if o.retryable]
        waits = [o.retry_after for o in retryable if o.retry_after is not None]
        return Result(
            ok=False,
            error=errors,
            retryable=bool(retryable),
            retry_after=max(waits) if waits else None,
            units_failed=len(failed),
        )

    @staticmethod
    def _deactivate(dropped: list[_DeviceOutcome]) -> None:
        if not dropped:
            return
        ids = [o.device_id for o in dropped]
        # fcm-django's own deactivate(): same flag and same device_deactivated
        # signal as when fcm-django itself meets a dead token.
        tokens = FCMDevice.objects.filter(id__in=ids).deactivate(
            reason="firebase_error",
            source="notifications.backends.push",
            metadata={"errors": {o.device_id: o.error for o in dropped}},
        )
        if FCM_DJANGO_SETTINGS["DELETE_INACTIVE_DEVICES"]:
            FCMDevice.objects.filter(registration_id__in=tokens).delete()
        logger.info("deactivated %d push device(s) FCM no longer knows", len(tokens))
