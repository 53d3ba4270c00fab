"""Outbound webhooks for a 100k in-app send: the send's own time, and the time until a receiver has every event.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_webhooks REDIS_URL=redis://127.0.0.1:6379/8 \\
        python -m bench.webhooks [--recipients 100000] [--repeat 3] [--concurrency 2]

1. The in-app send (`notification_send`, the fan-out benchmark's call) with no
   endpoint on the platform, `--repeat` times.
2. The same with one endpoint subscribed to `notification.created`, `--repeat`
   times, no worker running: the send's own time is what the send pays (its
   bulk announcements queued for the workers). The queued tasks of all runs
   but the last are purged.
3. A Celery worker (`--concurrency` processes) is started on the last run's
   queue; the time from the end of that send until the receiver (a threaded
   HTTP server on loopback in this process, verifying every request with the
   `standardwebhooks` library) has one verified request per message, and
   a check that every message is delivered and every `webhook-id` arrived.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class _Receiver:
    def __init__(self):
        from standardwebhooks.webhooks import Webhook, WebhookVerificationError

        self.secret = None
        self.ids: set[str] = set()
        self.requests = 0
        self.refused = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    Webhook(receiver.secret).verify(body, dict(self.headers.items()))
                    ok = True
                except WebhookVerificationError:
                    ok = False
                with receiver.lock:
                    receiver.requests += 1
                    if ok:
                        receiver.ids.add(self.headers["webhook-id"])
                    else:
                        receiver.refused += 1
                status = 200 if ok else 401
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _send(platform, user_ids, source) -> float:
    from notifications.pipeline import Message, Recipient, notification_send

    recipients = [Recipient(user_id=pk) for pk in user_ids]
    message = Message(title="Maintenance tonight", body="The app will be unavailable 11 PM-1 AM UTC.")
    start = time.perf_counter()
    result = notification_send(
        platform=platform, source=source, channels=["in_app"], recipients=recipients, message=message
    )
    elapsed = time.perf_counter() - start
    assert result.sent == len(user_ids), result
    return elapsed


def _reset():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE notifications_notification, notifications_inboxcounter, "
            "webhooks_webhookattempt, webhooks_webhookmessage, webhooks_webhookendpoint CASCADE"
        )
    from webhooks import subscriptions

    subscriptions.subscriptions_forget()


def _purge_queue():
    from config.celery import app

    return app.control.purge()


def _worker(concurrency: int) -> subprocess.Popen:
    env = {**os.environ, "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1", "CELERY_TASK_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            "celery",
            "-l",
            "WARNING",
            "--concurrency",
            str(concurrency),
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def run(*, recipients: int, repeat: int, concurrency: int, max_wait: float = 1800) -> dict:
    from bench import common
    from bench.fanout import _ensure_users
    from notifications.models import Platform
    from webhooks import services
    from webhooks.models import MessageStatus, WebhookMessage

    os.environ["WEBHOOK_ALLOWED_HOSTS"] = "127.0.0.1"
    from django.conf import settings

    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    platform, _ = Platform.objects.get_or_create(key="bench-webhooks", defaults={"name": "Bench webhooks"})
    ids = _ensure_users(recipients)
    receiver = _Receiver()
    result: dict = {"recipients": recipients, "worker_concurrency": concurrency}
    try:
        plain = []
        for attempt in range(repeat):
            _reset()
            seconds = _send(platform, ids, f"bench:webhooks:plain:{attempt}")
            plain.append(round(seconds, 3))
            print(f"send without endpoint: {seconds:.3f} s", flush=True)
        subscribed = []
        for attempt in range(repeat):
            _reset()
            _purge_queue()
            endpoint = services.endpoint_create(
                platform=platform, url=receiver.url, event_types=["notification.created"]
            )
            receiver.secret = endpoint.secret
            seconds = _send(platform, ids, f"bench:webhooks:subscribed:{attempt}")
            subscribed.append(round(seconds, 3))
            print(f"send with endpoint subscribed: {seconds:.3f} s", flush=True)
        sent_at = time.perf_counter()
        load_before = os.getloadavg()[0]
        worker = _worker(concurrency)
        try:
            deadline = time.monotonic() + max_wait
            last = -1
            while len(receiver.ids) < recipients and time.monotonic() < deadline:
                time.sleep(0.5)
                if len(receiver.ids) != last and int(time.monotonic()) % 10 == 0:
                    last = len(receiver.ids)
                    print(f"  receiver has {last}", flush=True)
            received_after = time.perf_counter() - sent_at
        finally:
            worker.terminate()
            worker.wait(timeout=60)
        messages = WebhookMessage.objects.filter(endpoint=endpoint)
        expected = {f"msg_{pk.hex}" for pk in messages.values_list("pk", flat=True)}
        result.update(
            {
                "send_without_endpoint": {"median_seconds": statistics.median(plain), "runs": plain},
                "send_with_endpoint": {"median_seconds": statistics.median(subscribed), "runs": subscribed},
                "send_slowdown_percent": round(100 * (statistics.median(subscribed) / statistics.median(plain) - 1), 1),
                "receiver_has_all_events_seconds_after_send": (
                    round(received_after, 1) if len(receiver.ids) >= recipients else None
                ),
                "seconds_waited": round(received_after, 1),
                "events_per_second": round(len(receiver.ids) / received_after),
                "messages": messages.count(),
                "messages_delivered": messages.filter(status=MessageStatus.DELIVERED).count(),
                "receiver_requests": receiver.requests,
                "receiver_distinct_ids": len(receiver.ids),
                "every_message_arrived": expected == receiver.ids,
                "signatures_refused": receiver.refused,
                "load_average_1m_at_worker_start": round(load_before, 2),
                "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            }
        )
    finally:
        receiver.close()
        _reset()
        _purge_queue()
    path = common.write("webhooks", result)
    print(result)
    print(f"wrote {path}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks")
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--max-wait", type=float, default=1800, help="seconds to wait for the receiver")
    args = parser.parse_args()
    from bench import common

    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_webhooks")
    common.setup()
    run(recipients=args.recipients, repeat=args.repeat, concurrency=args.concurrency, max_wait=args.max_wait)


if __name__ == "__main__":
    main()
