"""Local stand-ins for the providers outside this machine, speaking their wire formats.

- `SMTPServer`: a real aiosmtpd server on loopback that records every mail it
  accepts, can require AUTH (LOGIN/PLAIN) and can refuse chosen recipients.
- `AfroMessageServer`: an HTTP server answering AfroMessage's `/api/send` and
  `/api/bulk_send` the way AfroMessage does (HTTP 200 with `acknowledge`).
- `AfricasTalkingServer`: Africa's Talking's `/version1/messaging` (form body,
  `apiKey` header, HTTP 201 with `SMSMessageData.Recipients`).
- `PostmarkServer`: Postmark's send API (`POST /email`) as django-anymail's
  Postmark backend calls it: a MessageID per accepted message, 422 with
  ErrorCode 406 for inactive (suppressed) recipients and ErrorCode 300
  ("Invalid 'To' address") for addresses it calls invalid.
- `FCMServer`: an HTTP server for Google's OAuth2 token exchange (verifies the
  service account's signed JWT) and FCM HTTP v1 `messages:send`, including its
  error bodies (UNREGISTERED, INVALID_ARGUMENT, QUOTA_EXCEEDED, ...).

Every server binds 127.0.0.1 on a free port. The pytest fixtures that start
them live in the project's root `conftest.py` (`smtp_server`,
`smtp_server_auth`, `afromessage_server`, `fcm_server`).
"""

from __future__ import annotations

import email
import email.policy
import itertools
import json
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

# -- helpers for tests ------------------------------------------------------------


def backend_settings(base: dict, **channels: str) -> dict:
    """NOTIFICATION_BACKENDS with the given channels switched to real backends.

    `backend_settings(settings.NOTIFICATION_BACKENDS, sms="notifications.backends.sms.AfroMessageBackend")`
    """
    merged = {name: dict(conf) for name, conf in base.items()}
    for channel, path in channels.items():
        merged[channel] = {"BACKEND": path, "OPTIONS": {}}
    return merged


# -- SMTP ---------------------------------------------------------------------------


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    # The AUTH login the client used on this connection, if any.
    login: str | None
    # The client's (host, port): one value per SMTP connection.
    peer: tuple

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


class _RecordingHandler:
    def __init__(self, server: SMTPServer):
        self.server = server

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.server.credentials and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.server.refusals.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        self.server.mails.append(
            ReceivedMail(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                data=envelope.original_content or envelope.content,
                login=login,
                peer=tuple(session.peer),
            )
        )
        return "250 2.0.0 Message accepted for delivery"


class _LoopbackController(Controller):
    """aiosmtpd's Controller on port 0: learn the port the OS picked before the first connection."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SMTPServer:
    """A real SMTP server on loopback that keeps what it receives in `mails`."""

    def __init__(self, *, credentials: tuple[str, str] | None = None, mechanisms: tuple[str, ...] = ()):
        self.credentials = credentials
        self.mails: list[ReceivedMail] = []
        self.refusals: dict[str, str] = {}
        # (login, mechanism, client peer, accepted) per AUTH attempt.
        self.auth_attempts: list[tuple[str, str, tuple, bool]] = []
        kwargs = {}
        if credentials:
            # No TLS on loopback tests; AUTH is still offered and enforced by
            # handle_MAIL (aiosmtpd's auth_required would warn about plain text).
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
            if mechanisms:
                kwargs["auth_exclude_mechanism"] = [m for m in ("LOGIN", "PLAIN") if m not in mechanisms]
        self._controller = _LoopbackController(_RecordingHandler(self), hostname="127.0.0.1", port=0, **kwargs)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and (
                auth_data.login.decode(),
                auth_data.password.decode(),
            )
            == self.credentials
        )
        login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else ""
        self.auth_attempts.append((login, mechanism, tuple(session.peer), ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def start(self) -> SMTPServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return self._controller.port

    def refuse(self, address: str, reply: str = "550 5.1.1 No such user here") -> None:
        self.refusals[address.lower()] = reply

    def django_settings(self) -> dict:
        """Django EMAIL_* settings that make this server the project's mail server."""
        user, password = self.credentials or ("", "")
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": self.host,
            "EMAIL_PORT": self.port,
            "EMAIL_HOST_USER": user,
            "EMAIL_HOST_PASSWORD": password,
            "EMAIL_USE_TLS": False,
            "EMAIL_USE_SSL": False,
            "EMAIL_TIMEOUT": 5,
        }

    def connections(self) -> int:
        """How many SMTP connections delivered mail."""
        return len({mail.peer for mail in self.mails})


# -- HTTP ---------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: object = None
    form: dict[str, str] = field(default_factory=dict)

    @property
    def params(self) -> dict:
        """What the client sent: the JSON body, the form, or the query string."""
        if isinstance(self.json, dict):
            return self.json
        return self.form or self.query


@dataclass
class Reply:
    status: int = 200
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds to stall before answering (a slow provider, a client timeout).
    delay: float = 0.0
    # Only for requests whose path ends with this (None: the next request).
    path: str | None = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real providers
    timeout = 10

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def _dispatch(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        request = RecordedRequest(
            method=self.command,
            path=url.path,
            query={k: v[-1] for k, v in parse_qs(url.query).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        content_type = request.headers.get("content-type", "")
        if "json" in content_type and body:
            request.json = json.loads(body)
        elif "x-www-form-urlencoded" in content_type:
            request.form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
        reply = self.server.fake.dispatch(request)
        if reply.delay:
            time.sleep(reply.delay)
        raw = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        headers = {"Content-Type": "application/json", **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format, *args):
        # Quiet: tests read `requests`, not the access log.
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that gave up (timed out) leaves a broken pipe behind; that is
        # the scenario under test, not a server fault worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeHTTPServer:
    """A threaded HTTP server on loopback; subclasses answer in a provider's format."""

    def __init__(self):
        self.requests: list[RecordedRequest] = []
        self._next: deque[Reply] = deque()
        # Answer every request with this (an outage), after any reply_next.
        self.always: Reply | None = None
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        # A short poll so that stop() (shutdown) returns quickly between tests.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def reply_next(
        self,
        status: int,
        body: object = None,
        headers: dict | None = None,
        *,
        delay: float = 0.0,
        path: str | None = None,
    ) -> None:
        """Answer the next call (to a path ending with `path`, if given) with this, whatever it asks."""
        self._next.append(Reply(status, body if body is not None else {}, headers or {}, delay, path))

    def reply_always(
        self, status: int, body: object = None, headers: dict | None = None, *, delay: float = 0.0
    ) -> None:
        """Answer every call with this from now on (an outage); set `always = None` to end it."""
        self.always = Reply(status, body if body is not None else {}, headers or {}, delay)

    def dispatch(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            for reply in self._next:
                if reply.path is None or request.path.endswith(reply.path):
                    self._next.remove(reply)
                    return reply
            if self.always is not None:
                return self.always
            return self.respond(request)

    def respond(self, request: RecordedRequest) -> Reply:
        raise NotImplementedError

    def requests_to(self, suffix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith(suffix)]


# -- AfroMessage ----------------------------------------------------------------------


class AfroMessageServer(FakeHTTPServer):
    """AfroMessage's `/api/send` and `/api/bulk_send`, as documented and as observed.

    Success: `{"acknowledge": "success", "response": {"status": "Send", "message_id": ..., "message": ..., "to": ...}}`
    (bulk: `"response": {"message": ..., "campaign_id": ...}`). Refusals come with
    HTTP 200 too: `{"acknowledge": "error", "response": {"errors": [...], "relatedObject": "/api/send"}}`.
    """

    token = "afromessage-test-token"
    sender_id = "e80ad9d8-adf3-463f-80f4-7c4b39f7f164"
    sender_name = "AcmeLearn"

    def __init__(self):
        super().__init__()
        # Numbers AfroMessage refuses, with its reason.
        self.reject: dict[str, str] = {}
        # message_id -> the `callback` URL its single send gave (when it gave one).
        self.callbacks: dict[str, str] = {}

    @property
    def base_url(self) -> str:
        return f"{self.url}/api"

    @property
    def settings(self) -> dict:
        return {
            "BASE_URL": self.base_url,
            "TOKEN": self.token,
            "SENDER_ID": self.sender_id,
            "SENDER_NAME": self.sender_name,
            "TIMEOUT": 5,
        }

    @staticmethod
    def _error(errors: list[str], path: str) -> Reply:
        return Reply(200, {"acknowledge": "error", "response": {"errors": errors, "relatedObject": path}})

    def respond(self, request: RecordedRequest) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(401, {"acknowledge": "error", "response": {"errors": ["Unauthorized access"]}})
        params = request.params
        if request.path == "/api/send":
            to, message = str(params.get("to", "")), str(params.get("message", ""))
            if not to or not message:
                return self._error(["'to' and 'message' are required"], request.path)
            if to in self.reject:
                return self._error([self.reject[to]], request.path)
            message_id = str(uuid.uuid4())
            if params.get("callback"):
                self.callbacks[message_id] = str(params["callback"])
            return Reply(
                200,
                {
                    "acknowledge": "success",
                    "response": {"status": "Send", "message_id": message_id, "message": message, "to": to},
                },
            )
        if request.path == "/api/bulk_send" and request.method == "POST":
            to = params.get("to")
            numbers = to if isinstance(to, list) else [n.strip() for n in str(to or "").split(",") if n.strip()]
            if not numbers or not params.get("message"):
                return self._error(["'to' and 'message' are required"], request.path)
            refused = [self.reject[n] for n in numbers if n in self.reject]
            if refused:
                return self._error(refused, request.path)
            return Reply(
                200,
                {
                    "acknowledge": "success",
                    "response": {"message": "Campaign created successfully", "campaign_id": str(uuid.uuid4())},
                },
            )
        return Reply(404, {"acknowledge": "error", "response": {"errors": ["Not found"]}})

    def status_report(self, message_id: str, *, status: str, to: str, method: str = "POST"):
        """Call the `callback` URL the send of `message_id` gave, with a status report; returns the response.

        AfroMessage documents the `callback` parameter, not the report it sends
        there: this one is the README's assumption, the fields of its send answer
        (`message_id`, `status`, `to`), as a JSON body or (GET) a query string.
        """
        import requests

        fields = {"message_id": message_id, "status": status, "to": to}
        url = self.callbacks[message_id]
        if method == "GET":
            return requests.get(url, params=fields, timeout=10)
        return requests.post(url, json=fields, timeout=10)


# -- Africa's Talking ---------------------------------------------------------------------


class AfricasTalkingServer(FakeHTTPServer):
    """Africa's Talking's `POST /version1/messaging`, as documented.

    Form-encoded `username`, `to` (comma-separated), `message`, optional
    `from`; the `apiKey` header. Success is HTTP 201 with
    `{"SMSMessageData": {"Message": "Sent to n/m Total Cost: ...", "Recipients": [...]}}`,
    each recipient `{"statusCode", "number", "status", "cost", "messageId"}`.
    A wrong key is HTTP 401 with a plain-text body.
    """

    username = "acmelearn"
    api_key = "atsk_test_key"
    sender_id = "ACMELEARN"

    def __init__(self):
        super().__init__()
        # Per number: (statusCode, status) to answer instead of 101 Success.
        self.statuses: dict[str, tuple[int, str]] = {}
        # Every number Africa's Talking accepted, in order (one entry per acceptance).
        self.accepted: list[str] = []
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        return f"{self.url}/version1"

    @property
    def settings(self) -> dict:
        return {
            "BASE_URL": self.base_url,
            "USERNAME": self.username,
            "API_KEY": self.api_key,
            "SENDER_ID": self.sender_id,
            "TIMEOUT": 5,
        }

    def respond(self, request: RecordedRequest) -> Reply:
        if request.path != "/version1/messaging" or request.method != "POST":
            return Reply(404, b"Not Found", {"Content-Type": "text/plain"})
        if request.headers.get("apikey") != self.api_key:
            return Reply(401, b"The supplied authentication is invalid", {"Content-Type": "text/plain"})
        form = request.form
        if form.get("username") != self.username:
            return Reply(401, b"The supplied authentication is invalid", {"Content-Type": "text/plain"})
        numbers = [n.strip() for n in form.get("to", "").split(",") if n.strip()]
        if not numbers or not form.get("message"):
            return Reply(400, b"Request is missing required form field 'to'", {"Content-Type": "text/plain"})
        recipients = []
        for number in numbers:
            code, status = self.statuses.get(number, (101, "Success"))
            accepted = code in (100, 101, 102)
            if accepted:
                self.accepted.append(number)
            recipients.append(
                {
                    "statusCode": code,
                    "number": number,
                    "status": status,
                    "cost": "KES 0.8000" if accepted else "0",
                    "messageId": f"ATXid_{next(self._ids):08x}" if accepted else "None",
                }
            )
        sent = sum(1 for r in recipients if r["statusCode"] in (100, 101, 102))
        message = f"Sent to {sent}/{len(numbers)} Total Cost: KES {0.8 * sent:.4f}"
        return Reply(201, {"SMSMessageData": {"Message": message, "Recipients": recipients}})

    @staticmethod
    def delivery_report(
        callback_url: str, *, message_id: str, status: str, phone: str, failure_reason: str = "", network: str = "63902"
    ):
        """POST a delivery report to `callback_url` as Africa's Talking does: a url-encoded form, no signature.

        `failureReason` only comes with Rejected and Failed. Returns the `requests` response.
        """
        import requests

        form = {"id": message_id, "status": status, "phoneNumber": phone, "networkCode": network}
        if failure_reason:
            form["failureReason"] = failure_reason
        return requests.post(callback_url, data=form, timeout=10)


# -- FCM ----------------------------------------------------------------------------------

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
# google-auth addresses its JWT assertion to Google's token endpoint whatever
# the key's token_uri says, and Google checks exactly that audience.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"

# What FCM v1 answers for each kind of trouble: (HTTP status, google.rpc status,
# FCM errorCode, message, extra details).
FCM_ERRORS = {
    "unregistered": (404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.", []),
    "invalid_token": (
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
        [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "message.token", "description": "Invalid registration token"}],
            }
        ],
    ),
    "invalid_payload": (
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "Invalid value at 'message.data[0].value' (TYPE_STRING)",
        [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "message.data[0].value", "description": "Invalid value"}],
            }
        ],
    ),
    "sender_mismatch": (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch", []),
    "quota": (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded for message sending.", []),
    "unavailable": (503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable.", []),
    "internal": (500, "INTERNAL", "INTERNAL", "Internal error encountered.", []),
}


def fcm_error_body(kind: str) -> tuple[int, dict]:
    status, rpc_status, code, message, details = FCM_ERRORS[kind]
    body = {
        "error": {
            "code": status,
            "message": message,
            "status": rpc_status,
            "details": [{"@type": FCM_ERROR_TYPE, "errorCode": code}, *details],
        }
    }
    return status, body


class FCMServer(FakeHTTPServer):
    """Google's OAuth2 token endpoint and FCM HTTP v1, for one service account.

    The token endpoint verifies the JWT assertion with the service account's
    public key, as Google does, and hands out a bearer token that
    `messages:send` then requires.
    """

    project_id = "notify-test-project"
    client_email = "notify@notify-test-project.iam.gserviceaccount.com"

    def __init__(self, *, private_key_pem: str, public_key_pem: str):
        super().__init__()
        self.private_key_pem = private_key_pem
        self.public_key_pem = public_key_pem
        self.issued: set[str] = set()
        # Device tokens whose message FCM accepted (HTTP 200), in order.
        self.accepted: list[str] = []
        # Per device token: a kind of FCM_ERRORS, optionally with a Retry-After.
        self.failures: dict[str, tuple[str, str | None]] = {}
        self._ids = itertools.count(1000)

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    @property
    def service_account_info(self) -> dict:
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": "test-key-1",
            "private_key": self.private_key_pem,
            "client_email": self.client_email,
            "client_id": "100000000000000000001",
            "auth_uri": f"{self.url}/auth",
            "token_uri": self.token_uri,
        }

    @property
    def settings(self) -> dict:
        return {"SERVICE_ACCOUNT_KEY": json.dumps(self.service_account_info), "ENDPOINT": self.url, "TIMEOUT": 5}

    def revoke_access_tokens(self) -> None:
        """Forget every access token issued so far, as Google does when a key is rotated."""
        self.issued.clear()

    def fail(self, token: str, kind: str, *, retry_after: str | None = None) -> None:
        self.failures[token] = (kind, retry_after)

    @property
    def messages(self) -> list[dict]:
        """The `message` objects FCM accepted or refused, in arrival order."""
        return [r.json["message"] for r in self.requests if r.path.endswith(":send") and isinstance(r.json, dict)]

    def tokens_sent_to(self) -> list[str]:
        return [m.get("token") for m in self.messages]

    def respond(self, request: RecordedRequest) -> Reply:
        if request.path == "/token" and request.method == "POST":
            return self._token(request)
        if request.path == f"/v1/projects/{self.project_id}/messages:send" and request.method == "POST":
            return self._send(request)
        return Reply(404, {"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}})

    def _token(self, request: RecordedRequest) -> Reply:
        from google.auth import jwt

        if request.form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return Reply(400, {"error": "unsupported_grant_type"})
        try:
            claims = jwt.decode(
                request.form.get("assertion", ""), certs=self.public_key_pem, audience=GOOGLE_TOKEN_AUDIENCE
            )
        except ValueError as exc:
            return Reply(400, {"error": "invalid_grant", "error_description": str(exc)})
        if claims.get("iss") != self.client_email or "firebase.messaging" not in claims.get("scope", ""):
            return Reply(400, {"error": "invalid_scope", "error_description": "Bad issuer or scope"})
        token = f"ya29.test-{uuid.uuid4().hex}"
        self.issued.add(token)
        return Reply(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    def _send(self, request: RecordedRequest) -> Reply:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.issued:
            return Reply(
                401,
                {
                    "error": {
                        "code": 401,
                        "message": "Request had invalid authentication credentials.",
                        "status": "UNAUTHENTICATED",
                    }
                },
            )
        message = (request.json or {}).get("message") if isinstance(request.json, dict) else None
        if not isinstance(message, dict) or not message.get("token"):
            status, body = fcm_error_body("invalid_payload")
            return Reply(status, body)
        data = message.get("data") or {}
        if not all(isinstance(v, str) for v in data.values()):
            status, body = fcm_error_body("invalid_payload")
            return Reply(status, body)
        failure = self.failures.get(message["token"])
        if failure:
            kind, wait = failure
            status, body = fcm_error_body(kind)
            return Reply(status, body, {"Retry-After": wait} if wait else {})
        self.accepted.append(message["token"])
        return Reply(200, {"name": f"projects/{self.project_id}/messages/{next(self._ids)}"})


# -- Postmark (an email provider behind django-anymail) ------------------------------


class PostmarkServer(FakeHTTPServer):
    """Postmark's `POST /email`: `X-Postmark-Server-Token` auth, a JSON message, a JSON answer.

    Accepted: `{"To": ..., "SubmittedAt": ..., "MessageID": <uuid>, "ErrorCode": 0, "Message": "OK"}`.
    An inactive recipient (one Postmark saw bounce or complain): HTTP 422 with
    ErrorCode 406 and the addresses in the message, as Postmark words it. An
    address in `invalid`: HTTP 422 with ErrorCode 300, "Invalid 'To' address: '...'."
    """

    token = "postmark-server-token"

    def __init__(self):
        super().__init__()
        self.inactive: set[str] = set()
        self.invalid: set[str] = set()
        # (MessageID, the message's JSON) of every accepted message.
        self.accepted: list[tuple[str, dict]] = []

    @property
    def anymail_settings(self) -> dict:
        return {"POSTMARK_SERVER_TOKEN": self.token, "POSTMARK_API_URL": f"{self.url}/"}

    def respond(self, request: RecordedRequest) -> Reply:
        if request.headers.get("x-postmark-server-token") != self.token:
            return Reply(401, {"ErrorCode": 10, "Message": "No Account or Server API tokens were supplied."})
        if request.path != "/email" or request.method != "POST" or not isinstance(request.json, dict):
            return Reply(404, {"ErrorCode": 404, "Message": "Not found"})
        to = str(request.json.get("To", ""))
        if not to or not request.json.get("From"):
            return Reply(422, {"ErrorCode": 300, "Message": "Invalid email request"})
        if to.lower() in self.invalid:
            return Reply(422, {"ErrorCode": 300, "Message": f"Invalid 'To' address: '{to}'."})
        if to.lower() in self.inactive:
            return Reply(
                422,
                {
                    "ErrorCode": 406,
                    "Message": "You tried to send to recipient(s) that have been marked as inactive. "
                    f"Found inactive addresses: {to.lower()}. Inactive recipients are ones that have generated "
                    "a hard bounce, a spam complaint, or a manual suppression.",
                },
            )
        message_id = str(uuid.uuid4())
        self.accepted.append((message_id, request.json))
        return Reply(
            200,
            {
                "To": to,
                "SubmittedAt": "2026-12-07T01:00:00.0000000Z",
                "MessageID": message_id,
                "ErrorCode": 0,
                "Message": "OK",
            },
        )
