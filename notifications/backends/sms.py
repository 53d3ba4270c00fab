"""SMS through AfroMessage's HTTP API.

Two calls, both authenticated with `Authorization: Bearer <token>`:

- `{BASE_URL}/send`: one recipient. GET with query parameters or POST with a
  JSON body: `to`, `message`, `from` (the identifier id of a short code),
  `sender` (a verified sender name), optional `callback`.
- `{BASE_URL}/bulk_send`: POST JSON with `to` as a list of numbers, one
  `message`, `from`, `sender` and a `campaign` name. We use it when several
  recipients of a batch get the very same text.

AfroMessage answers HTTP 200 even when it refuses; `acknowledge` tells:
`{"acknowledge": "success", "response": {"status": ..., "message_id": ..., "message": ..., "to": ...}}`
(bulk: `"response": {"message": ..., "campaign_id": ...}`), or
`{"acknowledge": "error", "response": {"errors": ["..."], "relatedObject": ...}}`.

Settings: `settings.AFROMESSAGE` (BASE_URL, TOKEN, SENDER_ID, SENDER_NAME,
TIMEOUT), each overridable by the backend's OPTIONS; OPTIONS may also set
METHOD ("POST" or "GET" for single sends), BULK (use bulk_send, default on),
BULK_MIN (fewest recipients of one text worth a bulk call, default 2) and
CALLBACK (a fixed status callback URL passed on single sends). With
`AFROMESSAGE["CALLBACK_BASE_URL"]` (our public origin) set, each single send
passes instead its own signed URL of our status-report endpoint
(`notifications.callback_urls`), so AfroMessage's reports become receipts;
bulk_send calls carry none (their recipients share one campaign id). A
platform with its own active AfroMessage credentials
(`PlatformProviderCredentials`) sends on its own token and sender.

Only a clear refusal is marked `definite` (HTTP 429 or 503, connection
refused): with several SMS providers configured, just those deliveries may go
out through the next one. A timeout or any other answer leaves the delivery
with AfroMessage.
"""

from __future__ import annotations

from collections import defaultdict

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from notifications.backends.accounts import Account, platform_accounts
from notifications.backends.base import BaseBackend, Result
from notifications.backends.httputil import (
    REFUSED_STATUS,
    RETRYABLE_STATUS,
    excerpt,
    refused_before_sending,
    retry_after,
)
from notifications.callback_urls import afromessage_callback_url
from notifications.phones import normalize

PROVIDER = "afromessage"


class AfroMessageBackend(BaseBackend):
    batch_size = 100

    @classmethod
    def describe(cls) -> dict:
        return {"backend": PROVIDER, "real": cls.real}

    def __init__(self, **options):
        super().__init__(**options)
        conf = {**getattr(settings, "AFROMESSAGE", {}), **{k.upper(): v for k, v in options.items()}}
        self.base_url = str(conf.get("BASE_URL") or "").rstrip("/")
        self.token = conf.get("TOKEN") or ""
        if not self.base_url or not self.token:
            raise ImproperlyConfigured("AfroMessageBackend needs AFROMESSAGE['BASE_URL'] and AFROMESSAGE['TOKEN']")
        self.project = Account(
            secret=self.token, sender_id=conf.get("SENDER_ID") or "", sender_name=conf.get("SENDER_NAME") or ""
        )
        self._accounts: dict[int, Account] = {}
        self.timeout = float(conf.get("TIMEOUT") or 10)
        self.method = str(conf.get("METHOD") or "POST").upper()
        if self.method not in ("GET", "POST"):
            raise ImproperlyConfigured(f"AfroMessageBackend METHOD must be GET or POST, not {self.method!r}")
        self.use_bulk = bool(conf.get("BULK", True))
        self.bulk_min = max(int(conf.get("BULK_MIN", 2)), 2)
        self.callback = conf.get("CALLBACK") or ""
        self.callback_base = str(conf.get("CALLBACK_BASE_URL") or "").rstrip("/")
        self.session: requests.Session | None = None

    def open(self) -> None:
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json"})
        self._accounts = {}

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def send_batch(self, deliveries):
        missing = {d.platform_id for d in deliveries} - self._accounts.keys()
        if missing:
            found = platform_accounts(provider=PROVIDER, platform_ids=missing)
            self._accounts.update({pid: found.get(pid, self.project) for pid in missing})
        known: dict[int, Result] = {}
        numbers: dict[int, tuple[str, str]] = {}
        # Recipients with a valid number, grouped by account and the exact text they get.
        by_text: dict[tuple[Account, str], list[int]] = defaultdict(list)
        for i, delivery in enumerate(deliveries):
            text = delivery.body or delivery.short_message or delivery.title
            account = self._accounts[delivery.platform_id]
            if account.broken:
                known[i] = Result.failed(account.broken)
            elif not delivery.address:
                known[i] = Result.failed("No phone number")
            elif (phone := normalize(delivery.address)) is None:
                known[i] = Result.failed(f"Invalid phone number: {delivery.address!r}")
            elif not text.strip():
                known[i] = Result.failed("The SMS has no text")
            else:
                numbers[i] = (phone, text)
                by_text[(account, text)].append(i)
        calls = sum(1 if self._bulk(group) else len(group) for group in by_text.values())
        results = self._results(deliveries, known, numbers, by_text)
        # One call (or none) decides the whole batch: its results are recorded
        # together. Otherwise they are yielded in order as soon as each is
        # known, so the pipeline records each send before the next call goes out.
        return list(results) if calls <= 1 else results

    def _bulk(self, group: list[int]) -> bool:
        return self.use_bulk and len(group) >= self.bulk_min

    def _results(self, deliveries, known, numbers, by_text):
        for i, delivery in enumerate(deliveries):
            if i not in known:
                phone, text = numbers[i]
                account = self._accounts[delivery.platform_id]
                group = by_text[(account, text)]
                if self._bulk(group):
                    result = self._bulk_send(account, [numbers[j][0] for j in group], text, campaign=delivery.source)
                    known.update(dict.fromkeys(group, result))
                else:
                    known[i] = self._send(account, phone, text, callback=self._callback(delivery))
            yield known.pop(i)

    # -- the two calls --------------------------------------------------------------

    @staticmethod
    def _identity(account: Account) -> dict[str, str]:
        params = {}
        if account.sender_id:
            params["from"] = account.sender_id
        if account.sender_name:
            params["sender"] = account.sender_name
        return params

    def _callback(self, delivery) -> str:
        if self.callback_base:
            return afromessage_callback_url(base_url=self.callback_base, notification_id=delivery.pk)
        return self.callback

    def _send(self, account: Account, phone: str, text: str, *, callback: str = "") -> Result:
        params = {"to": phone, "message": text, **self._identity(account)}
        if callback:
            params["callback"] = callback
        url = f"{self.base_url}/send"
        if self.method == "GET":
            return self._call(account, "GET", url, params=params)
        return self._call(account, "POST", url, json=params)

    def _bulk_send(self, account: Account, phones: list[str], text: str, *, campaign: str) -> Result:
        # bulk_send only creates a campaign; AfroMessage reports per-number
        # outcomes later (to a status callback), so every recipient of the call
        # shares its answer and its campaign id.
        body = {"to": phones, "message": text, **self._identity(account), "campaign": campaign}
        return self._call(account, "POST", f"{self.base_url}/bulk_send", json=body)

    def _call(self, account: Account, method: str, url: str, **kwargs) -> Result:
        headers = {"Authorization": f"Bearer {account.secret}"}
        try:
            response = self.session.request(method, url, timeout=self.timeout, headers=headers, **kwargs)
        except requests.Timeout as exc:
            # A connect timeout never reached AfroMessage; a read timeout may have sent.
            return Result.failed(
                f"AfroMessage timed out: {exc}", retryable=True, definite=isinstance(exc, requests.ConnectTimeout)
            )
        except requests.RequestException as exc:
            return Result.failed(
                f"AfroMessage unreachable: {exc}", retryable=True, definite=refused_before_sending(exc)
            )
        return self._read(response)

    @staticmethod
    def _read(response: requests.Response) -> Result:
        status = response.status_code
        if status in RETRYABLE_STATUS:
            return Result.failed(
                f"AfroMessage HTTP {status}: {excerpt(response.text)}",
                retryable=True,
                retry_after=retry_after(response.headers.get("Retry-After")),
                definite=status in REFUSED_STATUS,
            )
        if status != 200:
            return Result.failed(f"AfroMessage HTTP {status}: {excerpt(response.text)}")
        try:
            data = response.json()
        except ValueError:
            # It may or may not have sent; trying again could send twice.
            return Result.failed(f"AfroMessage answered something that is not JSON: {excerpt(response.text)}")
        answer = data.get("response") if isinstance(data, dict) else None
        if isinstance(data, dict) and str(data.get("acknowledge", "")).lower() == "success":
            answer = answer if isinstance(answer, dict) else {}
            return Result.sent(str(answer.get("message_id") or answer.get("campaign_id") or ""))
        return Result.failed(f"AfroMessage refused: {_errors(data, answer)}")


def _errors(data, answer) -> str:
    if isinstance(answer, dict):
        errors = answer.get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(str(e) for e in errors)
        if errors:
            return str(errors)
        if answer.get("message"):
            return str(answer["message"])
    if isinstance(answer, str) and answer:
        return answer
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return excerpt(str(data))
