"""Prometheus metrics at `/metrics`, shared by every process through Redis.

Deliveries are recorded by Celery workers, HTTP requests and WebSockets by
uvicorn workers, possibly on other hosts; a scrape reaches one web process.
prometheus-client's multiprocess mode shares one directory between the
processes of one host, which a worker on another host cannot reach. So events
are counted in each process's memory and added to Redis hashes by a
background thread about once a second (`METRICS_FLUSH_SECONDS`): the
per-delivery cost is a dict update, Redis sees one pipelined round trip per
process per second, and any web process answers a scrape with the totals of
all of them. A process killed before its next flush loses that last second
of counts.

Gauges are read at scrape time from where the truth is: retries waiting from
the delivery table, due-work lag from the due-work sources, the sweep's age
from the cache, open WebSockets from each ASGI process's own count (kept in
Redis with a heartbeat, so a crashed process's sockets drop out).

| metric | type | labels |
|---|---|---|
| `notify_deliveries_total` | counter | channel, outcome (sent, failed, retry) |
| `notify_delivery_rules_total` | counter | rule (fallback, escalation, ...), channel (the row's channel) |
| `notify_provider_latency_seconds` | histogram | channel, backend |
| `notify_provider_failovers_total` | counter | channel, from_provider, to_provider |
| `notify_circuit_opens_total` | counter | channel, provider |
| `notify_http_request_duration_seconds` | histogram | method, route, status |
| `notify_delivery_retries_waiting` | gauge | channel |
| `notify_due_work_oldest_seconds` | gauge | source |
| `notify_sweep_age_seconds` | gauge | |
| `notify_websocket_connections` | gauge | |
"""

from __future__ import annotations

import bisect
import hmac
import ipaddress
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from functools import cache, lru_cache

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The pipeline's row statuses as outcomes: a pending result is a retry scheduled.
OUTCOMES = {"sent": "sent", "failed": "failed", "pending": "retry", "suppressed": "suppressed"}

# Counters beyond deliveries: name -> (metric name without _total, help, labels).
COUNTERS = {
    "delivery_rules": (
        "notify_delivery_rules",
        "Deliveries a delivery rule wrote or changed (a fallback or escalation row written, ...).",
        ("rule", "channel"),
    ),
    "failovers": (
        "notify_provider_failovers",
        "Deliveries sent through another provider of their channel than the first configured one: the first "
        "refused them clearly, or its circuit was open.",
        ("channel", "from_provider", "to_provider"),
    ),
    "circuit_opens": (
        "notify_circuit_opens",
        "Times a provider's circuit breaker opened after a run of retryable failures (or a failed probe).",
        ("channel", "provider"),
    ),
}

HISTOGRAMS = {
    "provider_latency": (
        "notify_provider_latency_seconds",
        "Time the pipeline waited for each group of provider results (one SMTP message, one FCM user, "
        "one AfroMessage bulk call).",
        ("channel", "backend"),
    ),
    "http": (
        "notify_http_request_duration_seconds",
        "HTTP request latency by resolved URL route pattern.",
        ("method", "route", "status"),
    ),
}


@lru_cache(maxsize=256)
def _key_in(prefix: str, name: str) -> str:
    return f"{prefix}:{name}"


def _key(name: str) -> str:
    return _key_in(getattr(settings, "METRICS_KEY_PREFIX", "notify:metrics"), name)


# Label sets are few (channels, backends, routes): encode each once, not per event.
@lru_cache(maxsize=8192)
def _field(*labels) -> str:
    return json.dumps(labels, separators=(",", ":"))


# --- the process's buffer and its flusher ----------------------------------------------


class _State:
    def __init__(self):
        self.lock = threading.Lock()
        self.buffer: dict[tuple[str, str], float] = {}
        self.thread: threading.Thread | None = None
        self.websockets = 0
        self.websockets_used = False
        self.process = f"{socket.gethostname()}:{os.getpid()}:{time.time():.0f}"
        self.client = None
        self.warned_at = 0.0


_state = _State()


def _after_fork() -> None:
    # A forked child (a Celery pool process) starts empty: the parent flushes its own counts.
    global _state
    _state = _State()


os.register_at_fork(after_in_child=_after_fork)


def _add(items: Iterable[tuple[str, str, float]]) -> None:
    state = _state
    with state.lock:
        buffer = state.buffer
        for key, field, amount in items:
            buffer[(key, field)] = buffer.get((key, field), 0.0) + amount
        if state.thread is None:
            state.thread = threading.Thread(target=_flush_forever, name="notify-metrics", daemon=True)
            state.thread.start()


def _flush_forever() -> None:
    while True:
        time.sleep(float(getattr(settings, "METRICS_FLUSH_SECONDS", 1.0)))
        try:
            flush()
        except Exception:  # noqa: BLE001 - the flusher must outlive any one failure
            pass


def _redis():
    state = _state
    if state.client is None:
        from config import redis_topology

        state.client = redis_topology.client(
            settings.REDIS_URL, settings.REDIS_SENTINELS, socket_connect_timeout=2, socket_timeout=2
        )
    return state.client


def flush() -> None:
    """Add this process's counts to Redis (and renew its WebSocket count)."""
    state = _state
    with state.lock:
        taken, state.buffer = state.buffer, {}
        websockets = state.websockets if state.websockets_used else None
    if not taken and websockets is None:
        return
    try:
        pipe = _redis().pipeline(transaction=False)
        for (key, field), amount in taken.items():
            pipe.hincrbyfloat(key, field, amount)
        if websockets is not None:
            pipe.hset(_key("websockets"), state.process, websockets)
            pipe.hset(_key("websockets:seen"), state.process, time.time())
        pipe.execute()
    except Exception as exc:  # noqa: BLE001 - metrics never break a send or a request
        now = time.monotonic()
        if now - state.warned_at > 60:
            state.warned_at = now
            logger.warning("metrics could not be written to Redis (%s); these counts are lost", exc)


# --- recording ---------------------------------------------------------------------------


def deliveries_recorded(*, channel: str, statuses: Iterable[str]) -> None:
    """Results the pipeline recorded for one group of deliveries of one channel."""
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    deliveries_counted({(channel, status): n for status, n in counts.items()})


def deliveries_counted(counts: Mapping[tuple[str, str], int]) -> None:
    """Outcomes by (channel, row status); pending rows count only when they were a retry."""
    key = _key("deliveries")
    _add((key, _field(channel, OUTCOMES[status]), n) for (channel, status), n in counts.items() if n)


def delivery_rule_applied(*, rule: str, counts: Mapping[str, int]) -> None:
    """Rows a delivery rule wrote or changed, by the row's channel (a fallback's: the channel it fell back to)."""
    key = _key("delivery_rules")
    _add((key, _field(rule, channel), n) for channel, n in counts.items() if n)


def failovers(*, channel: str, from_provider: str, to_provider: str, count: int = 1) -> None:
    """Deliveries that went out (or were tried) on `to_provider` instead of the primary `from_provider`."""
    if count:
        _add(((_key("failovers"), _field(channel, from_provider, to_provider), count),))


def circuit_opened(*, channel: str, provider: str) -> None:
    _add(((_key("circuit_opens"), _field(channel, provider), 1),))


def _observe(kind: str, labels: tuple, seconds: float) -> None:
    name = HISTOGRAMS[kind][0]
    field = _field(*labels)
    bucket = bisect.bisect_left(LATENCY_BUCKETS, seconds)
    _add(
        (
            (_key(name + ":bucket"), _field(*labels, bucket), 1),
            (_key(name + ":sum"), field, seconds),
            (_key(name + ":count"), field, 1),
        )
    )


def provider_latency(*, channel: str, backend: str, seconds: float) -> None:
    _observe("provider_latency", (channel, backend), seconds)


def http_request(*, method: str, route: str, status: int, seconds: float) -> None:
    _observe("http", (method if method in HTTP_METHODS else "other", route, str(status)), seconds)


def websocket_opened() -> None:
    with _state.lock:
        _state.websockets += 1
        _state.websockets_used = True
    _add(())  # make sure the flusher runs: the count is a heartbeat


def websocket_closed() -> None:
    with _state.lock:
        _state.websockets = max(_state.websockets - 1, 0)


class HttpMetricsMiddleware:
    """Times every request, labelled by the URL pattern that served it (not the raw path).

    Sync and async capable, so under ASGI it adds no thread hop of its own.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.async_mode:
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        self._observe(request, response, started)
        return response

    async def _acall(self, request):
        started = time.perf_counter()
        response = await self.get_response(request)
        self._observe(request, response, started)
        return response

    @staticmethod
    def _observe(request, response, started: float) -> None:
        match = getattr(request, "resolver_match", None)
        route = "/" + match.route if match is not None else "<unmatched>"
        http_request(
            method=request.method, route=route, status=response.status_code, seconds=time.perf_counter() - started
        )


# --- the scrape ----------------------------------------------------------------------------


def _hash(client, name: str) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in client.hgetall(_key(name)).items()}


class _Collector:
    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        client = _redis()
        deliveries = CounterMetricFamily(
            "notify_deliveries",
            "Delivery outcomes recorded by the pipeline: sent, failed for good, or retry (scheduled again).",
            labels=("channel", "outcome"),
        )
        for field, value in sorted(_hash(client, "deliveries").items()):
            deliveries.add_metric(json.loads(field), value)
        yield deliveries

        for kind, (name, doc, labels) in COUNTERS.items():
            family = CounterMetricFamily(name, doc, labels=labels)
            for field, value in sorted(_hash(client, kind).items()):
                family.add_metric(json.loads(field), value)
            yield family

        for name, doc, labels in HISTOGRAMS.values():
            family = HistogramMetricFamily(name, doc, labels=labels)
            buckets = _hash(client, f"{name}:bucket")
            sums = _hash(client, f"{name}:sum")
            for field, count in sorted(_hash(client, f"{name}:count").items()):
                values = json.loads(field)
                per = [buckets.get(_field(*values, i), 0.0) for i in range(len(LATENCY_BUCKETS) + 1)]
                cumulative, total = [], 0.0
                for bound, n in zip((*LATENCY_BUCKETS, float("inf")), per, strict=True):
                    total += n
                    cumulative.append((floatToGoString(bound), total))
                cumulative[-1] = ("+Inf", count)
                family.add_metric(values, cumulative, sum_value=sums.get(field, 0.0))
            yield family

        yield from _gauges(client, GaugeMetricFamily)


def _gauges(client, GaugeMetricFamily):
    from django.db.models import Count

    from notifications.health import due_work_ages, sweep_age
    from notifications.models import DeliveryStatus, Notification

    retries = GaugeMetricFamily(
        "notify_delivery_retries_waiting",
        "Deliveries a provider refused for now, waiting for their next attempt.",
        labels=("channel",),
    )
    waiting = (
        Notification.objects.filter(delivery_status=DeliveryStatus.PENDING, attempts__gt=0)
        .values("channel")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in waiting:
        retries.add_metric((row["channel"],), row["n"])
    yield retries

    due = GaugeMetricFamily(
        "notify_due_work_oldest_seconds",
        "How long the oldest due item no sweep has claimed has waited, per due-work source (0: none).",
        labels=("source",),
    )
    for source, age in sorted(due_work_ages().items()):
        due.add_metric((source,), age)
    yield due

    age = sweep_age()
    yield GaugeMetricFamily(
        "notify_sweep_age_seconds",
        "Seconds since the last completed due-work sweep (+Inf: none recorded).",
        value=float("inf") if age is None else age,
    )

    stale_after = 3 * float(getattr(settings, "METRICS_FLUSH_SECONDS", 1.0)) + 10
    counts, seen = _hash(client, "websockets"), _hash(client, "websockets:seen")
    now, open_sockets, gone = time.time(), 0.0, []
    for process, count in counts.items():
        if now - seen.get(process, 0.0) > stale_after:
            gone.append(process)  # the process died without closing its sockets' count
        else:
            open_sockets += count
    if gone:
        client.hdel(_key("websockets"), *gone)
        client.hdel(_key("websockets:seen"), *gone)
    yield GaugeMetricFamily(
        "notify_websocket_connections", "Open WebSocket connections over all ASGI processes.", value=open_sockets
    )


def exposition() -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest

    flush()  # this process's own latest counts
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return generate_latest(registry)


# --- access ------------------------------------------------------------------------------


@cache
def _networks(values: tuple[str, ...]) -> tuple:
    try:
        return tuple(ipaddress.ip_network(value, strict=False) for value in values)
    except ValueError as exc:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {exc}") from exc


def scrape_allowed(request) -> bool:
    """The bearer of METRICS_TOKEN, or a direct connection from METRICS_ALLOWED_NETWORKS.

    A request that came through a proxy (it carries X-Forwarded-For or
    Forwarded) is not judged by its address: behind a reverse proxy on the
    same host every client would look like loopback.
    """
    token = getattr(settings, "METRICS_TOKEN", "")
    if token:
        scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode()):
            return True
    if "HTTP_X_FORWARDED_FOR" in request.META or "HTTP_FORWARDED" in request.META:
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in _networks(tuple(settings.METRICS_ALLOWED_NETWORKS)))


def metrics_view(request):
    from prometheus_client import CONTENT_TYPE_LATEST

    if not scrape_allowed(request):
        response = HttpResponse("Forbidden\n", status=403, content_type="text/plain")
        if getattr(settings, "METRICS_TOKEN", ""):
            response.status_code = 401
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
