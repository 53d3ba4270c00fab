"""A webhook receiver on loopback that checks every request as a customer's would.

It verifies each request with the `standardwebhooks` library (signature,
timestamp, headers) against the endpoint's secret, keeps what it accepted by
`webhook-id` (a receiver de-duplicates on it), and answers 500 to the first
`fail_first` requests, then 200 (after `delay` seconds: a slow receiver).
"""

from __future__ import annotations

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from notifications.tests.fakes import FakeHTTPServer, RecordedRequest, Reply


class WebhookReceiver(FakeHTTPServer):
    def __init__(self, *, fail_first: int = 0, delay: float = 0.0):
        super().__init__()
        self.delay = delay
        self.secret: str | None = None
        self.fail_first = fail_first
        self.accepted: dict[str, dict] = {}  # webhook-id -> the verified body
        self.deliveries = 0  # 2xx answers, duplicates included
        self.refused_signatures = 0

    def respond(self, request: RecordedRequest) -> Reply:
        try:
            body = Webhook(self.secret).verify(request.body, request.headers)
        except WebhookVerificationError:
            self.refused_signatures += 1
            return Reply(401, {"error": "bad signature"})
        if self.fail_first > 0:
            self.fail_first -= 1
            return Reply(500, {"error": "not now"})
        self.accepted[request.headers["webhook-id"]] = body
        self.deliveries += 1
        return Reply(200, {"ok": True}, delay=self.delay)

    def events(self, event_type: str) -> list[dict]:
        return [body for body in self.accepted.values() if body["type"] == event_type]
