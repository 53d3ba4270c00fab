"""SMS through Africa's Talking's messaging API.

One call: `POST {BASE_URL}/messaging` (live
https://api.africastalking.com/version1, sandbox
https://api.sandbox.africastalking.com/version1), form-encoded, with the
`apiKey` header and `Accept: application/json`. The body carries `username`
(the application's), `to` (comma-separated numbers), `message` and, when set,
`from` (a registered short code or alphanumeric sender id). All recipients of
a batch who get the very same text share one call.

The answer is HTTP 201 with
`{"SMSMessageData": {"Message": "Sent to 2/2 Total Cost: ...", "Recipients":
[{"statusCode": 101, "number": "+2547...", "status": "Success", "cost": "...",
"messageId": "ATXid_..."}]}}`, one entry per number. Per-number status codes:
100 Processed, 101 Sent, 102 Queued (accepted); 401 RiskHold, 402
InvalidSenderId, 403 InvalidPhoneNumber, 404 UnsupportedNumberType, 405
InsufficientBalance, 406 UserInBlacklist, 407 CouldNotRoute, 409
DoNotDisturbRejection, 502 RejectedByGateway (refused for good); 500
InternalServerError and 501 GatewayError (refused for now: retried, and, as
a clear refusal, another provider may take them). 403 and 406 refuse the
number itself (`Result.address_refused`): dispatch lists it on the platform's
suppression list (`invalid_number`), as a delivery report saying so does.
Africa's Talking later posts delivery reports to the callback URL set in its
dashboard (`/api/v1/providers/africastalking/delivery-reports/`, see
`notifications/api/provider_callbacks.py`).

Settings: `settings.AFRICASTALKING` (BASE_URL, USERNAME, API_KEY, SENDER_ID,
TIMEOUT), each overridable by the backend's OPTIONS. A platform with its own
active Africa's Talking credentials sends on its own account.
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
from notifications.phones import normalize

PROVIDER = "africastalking"
ACCEPTED = frozenset({100, 101, 102})
# Africa's Talking's own trouble with one number: not sent, worth trying again.
REFUSED_FOR_NOW = frozenset({500, 501})
# The number itself is refused for good: 403 InvalidPhoneNumber, 406 UserInBlacklist (the
# subscriber blocked our messages). Like the delivery report's reasons of the same names.
NUMBER_REFUSED = frozenset({403, 406})


class AfricasTalkingBackend(BaseBackend):
    batch_size = 100

    @classmethod
    def describe(cls) -> dict:
        return {"backend": PROVIDER, "real": cls.real}

    def __init__(self, **options):
        super().__init__(**options)
        conf = {**getattr(settings, "AFRICASTALKING", {}), **{k.upper(): v for k, v in options.items()}}
        self.base_url = str(conf.get("BASE_URL") or "").rstrip("/")
        self.project = Account(
            secret=conf.get("API_KEY") or "", username=conf.get("USERNAME") or "", sender_id=conf.get("SENDER_ID") or ""
        )
        if not self.base_url or not self.project.secret or not self.project.username:
            raise ImproperlyConfigured(
                "AfricasTalkingBackend needs AFRICASTALKING['BASE_URL'], ['USERNAME'] and ['API_KEY']"
            )
        self.timeout = float(conf.get("TIMEOUT") or 10)
        self.session: requests.Session | None = None
        self._accounts: dict[int, Account] = {}

    def open(self) -> None:
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json"})
        self._accounts = {}

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def _account(self, platform_id: int) -> Account:
        return self._accounts.get(platform_id, self.project)

    def send_batch(self, deliveries):
        missing = {d.platform_id for d in deliveries} - self._accounts.keys()
        if missing:
            found = platform_accounts(provider=PROVIDER, platform_ids=missing)
            self._accounts.update({pid: found.get(pid, self.project) for pid in missing})
        known: dict[int, Result] = {}
        # Recipients with a valid number, grouped by account and the exact text they get.
        groups: dict[tuple[Account, str], list[tuple[int, str]]] = defaultdict(list)
        for i, delivery in enumerate(deliveries):
            text = delivery.body or delivery.short_message or delivery.title
            account = self._account(delivery.platform_id)
            if account.broken:
                known[i] = Result.failed(account.broken)
            elif not delivery.address:
                known[i] = Result.failed("No phone number")
            elif (phone := normalize(delivery.address)) is None:
                known[i] = Result.failed(f"Invalid phone number: {delivery.address!r}")
            elif not text.strip():
                known[i] = Result.failed("The SMS has no text")
            else:
                groups[(account, text)].append((i, phone))
        results = self._results(len(deliveries), known, groups)
        # One call (or none) decides the whole batch: its results are recorded together.
        return list(results) if len(groups) <= 1 else results

    def _results(self, size, known, groups):
        pending = {i: key for key, members in groups.items() for i, _ in members}
        for i in range(size):
            if i not in known:
                account, text = key = pending[i]
                members = groups[key]
                known.update(self._send(account, text, members))
            yield known.pop(i)

    def _send(self, account: Account, text: str, members: list[tuple[int, str]]) -> dict[int, Result]:
        body = {"username": account.username, "to": ",".join(dict.fromkeys(p for _, p in members)), "message": text}
        if account.sender_id:
            body["from"] = account.sender_id
        try:
            response = self.session.post(
                f"{self.base_url}/messaging", data=body, headers={"apiKey": account.secret}, timeout=self.timeout
            )
        except requests.RequestException as exc:
            refused = refused_before_sending(exc)
            what = "unreachable" if refused else ("timed out" if isinstance(exc, requests.Timeout) else "failed")
            result = Result.failed(f"Africa's Talking {what}: {exc}", retryable=True, definite=refused)
            return dict.fromkeys((i for i, _ in members), result)
        return self._read(response, members)

    @staticmethod
    def _read(response: requests.Response, members: list[tuple[int, str]]) -> dict[int, Result]:
        status = response.status_code
        everyone = [i for i, _ in members]
        if status in RETRYABLE_STATUS:
            result = Result.failed(
                f"Africa's Talking HTTP {status}: {excerpt(response.text)}",
                retryable=True,
                retry_after=retry_after(response.headers.get("Retry-After")),
                definite=status in REFUSED_STATUS,
            )
            return dict.fromkeys(everyone, result)
        if status not in (200, 201):
            # 401 "The supplied authentication is invalid", 400 bad request, ...: nothing was sent.
            return dict.fromkeys(everyone, Result.failed(f"Africa's Talking HTTP {status}: {excerpt(response.text)}"))
        try:
            data = response.json()
            recipients = data["SMSMessageData"]["Recipients"]
            if not isinstance(recipients, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            # It may or may not have sent; trying again could send twice.
            result = Result.failed(f"Africa's Talking answered something unexpected: {excerpt(response.text)}")
            return dict.fromkeys(everyone, result)
        by_number = {}
        for entry in recipients:
            if isinstance(entry, dict) and entry.get("number"):
                by_number.setdefault(str(entry["number"]), entry)
        results = {}
        for i, phone in members:
            entry = by_number.get(phone)
            results[i] = _recipient_result(entry) if entry is not None else _missing(data)
        return results


def _recipient_result(entry: dict) -> Result:
    try:
        code = int(entry.get("statusCode"))
    except (TypeError, ValueError):
        code = None
    label = str(entry.get("status") or "")
    if code in ACCEPTED:
        return Result.sent(str(entry.get("messageId") or ""))
    if code in REFUSED_FOR_NOW:
        return Result.failed(f"Africa's Talking refused for now: {code} {label}".strip(), retryable=True, definite=True)
    return Result.failed(f"Africa's Talking refused: {code} {label}".strip(), address_refused=code in NUMBER_REFUSED)


def _missing(data) -> Result:
    # Not in the answer: whether it went out is unknown, so it is not tried again.
    message = data.get("SMSMessageData", {}).get("Message", "") if isinstance(data, dict) else ""
    return Result.failed(f"Africa's Talking did not report this number: {excerpt(str(message))}")
