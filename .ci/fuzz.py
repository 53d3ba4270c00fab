"""CI fuzz gate: schemathesis over /api/schema/ against a live server.

    python .ci/fuzz.py            # what .ci/run calls after the tests

Steps: a fresh PostgreSQL database `<DATABASE_URL's name>_fuzz`, `migrate`,
`bootstrap` (the demo platform and its superuser admin), a token for that
admin, then two shards of the schema's operations, each with a uvicorn on a
free loopback port and an `st run` with that token and `X-Platform: demo`.
Every operation the schema holds at run time is fuzzed (positive and negative
data; .ci/schemathesis.toml names the demo platform in paths, and an alert, a
scheduled job, a mentor, a build and a webhook endpoint made through the API before the run give
the paths that name an object one that exists), with
deterministic generation and a cap on examples per operation (the coverage
phase adds its boundary cases). The gate fails on any 5xx and on any response
the schema does not describe (status code, content type, body).

The server runs the test settings (eager Celery, in-memory channel backends,
Django's locmem mail), and its process refuses every connection that leaves
loopback: operations that dial out (the platform SMTP test, a platform's own
SMTP server, AI recommendations) meet a refused host at once, and the SMTP
test's own public-address rule keeps it off loopback.

Environment: DATABASE_URL and REDIS_URL as for the tests; FUZZ_MAX_EXAMPLES
(default 10), FUZZ_MAX_SECONDS (default 600: a run that takes longer has hung
and fails). Reports and server logs land in .run/fuzz/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def _fuzz_database_url(url: str) -> tuple[str, str, str]:
    """(fuzz database URL, its name, the maintenance database URL)."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise SystemExit("fuzz gate: DATABASE_URL must point at PostgreSQL")
    name = (parts.path.lstrip("/") or "notify") + "_fuzz"
    fuzz = urlunsplit(parts._replace(path="/" + name))
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    return fuzz, name, maintenance


def _recreate_database(maintenance_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port: int) -> None:
    """The server process: refuse connections off loopback, then run uvicorn."""
    import ipaddress

    def _local(host) -> bool:
        if host in (None, "", "localhost"):
            return True
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False

    real_getaddrinfo = socket.getaddrinfo
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def _literal(host) -> bool:
        try:
            ipaddress.ip_address(str(host).split("%")[0])
        except ValueError:
            return False
        return True

    def getaddrinfo(host, *args, **kwargs):
        # An address literal resolves without DNS (the webhook seed's public
        # address passes the endpoint check); connecting to it is refused below.
        if not _local(host) and not _literal(host):
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: refused by the fuzz gate")
        return real_getaddrinfo(host, *args, **kwargs)

    def _check(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            raise ConnectionRefusedError(f"{address!r}: refused by the fuzz gate")

    def connect(sock, address):
        _check(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        _check(sock, address)
        return real_connect_ex(sock, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex

    import uvicorn

    uvicorn.run(
        "config.asgi:application", host="127.0.0.1", port=port, lifespan="off", log_level="warning", access_log=False
    )


def _env(database_url: str) -> dict[str, str]:
    env = os.environ.copy()
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": database_url,
            "CACHE_KEY_PREFIX": "fuzz",
            "CHANNELS_PREFIX": "fuzz",
            "PYTHONPATH": str(ROOT),
            # The fuzzer is one user sending thousands of requests a minute;
            # a 429 is documented, but throttles would only cut the run short.
            "THROTTLE_ANON_RATE": "100000/minute",
            "THROTTLE_USER_RATE": "100000/minute",
            "THROTTLE_PLATFORM_RATE": "100000/minute",
            "THROTTLE_TEMPLATE_TEST_RATE": "100000/minute",
            "SMTP_TEST_RATE": "100000/hour",
            "SMTP_TEST_CONNECT_TIMEOUT": "1",
            "SMTP_TEST_TOTAL_TIMEOUT": "2",
            "NOTIFY_AI_TIMEOUT": "1",
            "LOG_LEVEL": "ERROR",
        }
    )
    return env


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"fuzz gate: the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/api/schema/?format=json", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("fuzz gate: the server did not answer in time")


def _summary(report: Path) -> tuple[int, int, int]:
    """(operations tested, test cases generated, server errors) from the NDJSON event stream."""
    operations, cases, server_errors = set(), 0, 0
    if not report.exists():
        return 0, 0, 0
    for line in report.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        for kind, body in event.items():
            if kind == "ScenarioFinished" and isinstance(body, dict):
                label = body.get("label") or (body.get("recorder") or {}).get("label")
                if label:
                    operations.add(label)
                recorder = body.get("recorder") or {}
                cases += len(recorder.get("cases") or {})
                for interactions in (recorder.get("interactions") or {}).values():
                    status = ((interactions or {}).get("response") or {}).get("status_code")
                    if isinstance(status, int) and status >= 500:
                        server_errors += 1
    return len(operations), cases, server_errors


def _call(url: str, token: str, method: str, path: str, body: dict | None = None):
    request = urllib.request.Request(
        url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Token {token}", "X-Platform": "demo", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def _seed(url: str, token: str) -> dict[str, str]:
    """Objects for the paths that name one: their ids, as schemathesis path parameters.

    Without them every case of `/alerts/{id}`, `.../scheduled/{id}`, a build or
    a mentor stops at a 404. A seed the API refuses is left out (the gate still
    runs those operations, with generated ids).
    """
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 30 * 86400))
    seeds = {
        "id": ("POST", "/alerts", {"title": "Fuzz", "message": "Seed alert"}, lambda r: r["data"]["id"]),
        "unique_id": (
            "POST",
            "/api/notification/v1/orgs/demo/mentors/",
            {"unique_id": "fuzz-mentor", "name": "Fuzz mentor"},
            lambda r: "fuzz-mentor",
        ),
        "build_id": (
            "POST",
            "/api/notification/v1/orgs/demo/notification-builder/preview/",
            {
                "template_data": {"message_title": "Fuzz", "message_body": "Hello {{ username }}"},
                "channels": [channel_id for channel_id, _ in _channels(url, token)][:1],
                "sources": [{"type": "email", "data": "alice@example.com"}],
            },
            lambda r: r["build_id"],
        ),
    }
    # A public address literal: saving it needs no DNS, and the server's loopback guard refuses its deliveries.
    seeds["webhook_id"] = (
        "POST",
        "/api/notification/v1/platforms/demo/webhooks/",
        {"url": "https://8.8.8.8/fuzz", "event_types": ["build.completed"]},
        lambda r: r["id"],
    )
    values = {"notification_type": "USER_NOTIF_COURSE_ENROLLMENT"}
    # The scheduled job shares `{id}` with the alert; on a fresh database both are 1.
    try:
        _call(
            url,
            token,
            "POST",
            "/api/v1/notifications/bulk-in-app",
            {"title": "Fuzz", "message": "Seed job", "role": "STUDENT", "scheduled_at": future},
        )
    except (OSError, ValueError) as exc:
        print(f"fuzz gate: no seed scheduled job ({exc})")
    for name, (method, path, body, pick) in seeds.items():
        try:
            values[name] = str(pick(_call(url, token, method, path, body)))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"fuzz gate: no seed for {{{name}}} ({exc})")
    return values


def _channels(url: str, token: str) -> list[tuple[int, str]]:
    try:
        context = _call(url, token, "GET", "/api/notification/v1/orgs/demo/notification-builder/context/")
        channels = [(c["id"], c["name"]) for c in context["data"]["channels"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    # In-app first: the seed build needs no mail or push provider.
    return sorted(channels, key=lambda channel: channel[1] != "in_app")


def _config(report_dir: Path, values: dict[str, str]) -> Path:
    """.ci/schemathesis.toml plus the seeded path values."""
    lines = [(ROOT / ".ci" / "schemathesis.toml").read_text().rstrip()]
    lines += [
        f'"path.{name}" = {value if value.isdigit() else json.dumps(value)}' for name, value in sorted(values.items())
    ]
    config = report_dir / "schemathesis.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def main() -> int:
    if sys.argv[1:2] == ["--serve"]:
        serve(int(sys.argv[2]))
        return 0
    database_url, name, maintenance = _fuzz_database_url(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    )
    env = _env(database_url)
    _recreate_database(maintenance, name)
    manage = [PY, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)
    subprocess.run([*manage, "bootstrap"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    issued = subprocess.run(
        [*manage, "issue_token", "admin", "--name", "fuzz"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    token = issued.stdout.decode().strip()
    if not re.fullmatch(r"\S+", token):
        raise SystemExit("fuzz gate: no token")

    report_dir = ROOT / ".run" / "fuzz"
    shutil.rmtree(report_dir, ignore_errors=True)
    report_dir.mkdir(parents=True)
    shards = [_Shard(name, option, report_dir) for name, option in SHARDS]
    started = time.monotonic()
    try:
        for shard in shards:
            shard.serve(env)
        config = _config(report_dir, _seed(shards[0].url, token))
        for shard in shards:
            shard.fuzz(env, token, config)
        # A bound on examples, not on time: schemathesis's --max-time keeps
        # fuzzing until the time is spent, so the cases run would vary with
        # the machine's speed. This timeout only stops a run that hangs.
        deadline = started + int(os.environ.get("FUZZ_MAX_SECONDS", "600"))
        for shard in shards:
            shard.wait(deadline)
    finally:
        for shard in shards:
            shard.stop()
    elapsed = time.monotonic() - started
    returncode = 0
    totals = [0, 0, 0]
    for shard in shards:
        print(shard.log.read_text(errors="replace"))
        counts = _summary(shard.ndjson)
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        print(f"fuzz gate, {shard.name}: {counts[0]} operations, {counts[1]} test cases, {counts[2]} server errors")
        returncode = returncode or shard.returncode
    print(
        f"fuzz gate: {totals[0]} operations, {totals[1]} test cases, {totals[2]} server errors, "
        f"{elapsed:.0f} s; {'passed' if returncode == 0 else 'FAILED'}"
    )
    return returncode


# Two shards of the schema's operations, each with its own server process and
# schemathesis process, run side by side: one schemathesis run is one thread
# (see --workers below) and one uvicorn process is one core at most.
# About half of the generated cases each: IBL org paths and /alerts, then the rest.
FIRST_HALF = "^/(api/notification/v1/orgs/|alerts)"
SHARDS = [("orgs-alerts", ["--include-path-regex", FIRST_HALF]), ("rest", ["--exclude-path-regex", FIRST_HALF])]


class _Shard:
    def __init__(self, name: str, selection: list[str], report_dir: Path):
        self.name, self.selection = name, selection
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ndjson = report_dir / f"{name}.ndjson"
        self.log = report_dir / f"{name}.log"
        self.server_log = report_dir / f"{name}-server.log"
        self.server = self.run = None
        self.returncode = 1

    def serve(self, env: dict) -> None:
        with self.server_log.open("w") as log:
            self.server = subprocess.Popen(
                [PY, str(Path(__file__).resolve()), "--serve", str(self.port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_ready(self.url, self.server)

    def fuzz(self, env: dict, token: str, config: Path) -> None:
        st = Path(PY).with_name("st")
        command = [
            str(st) if st.exists() else "st",
            "--config-file",
            str(config),
            "run",
            f"{self.url}/api/schema/?format=json",
            "--url",
            self.url,
            *self.selection,
            "--checks",
            CHECKS,
            "--header",
            f"Authorization: Token {token}",
            "--header",
            "X-Platform: demo",
            "--mode",
            "all",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            os.environ.get("FUZZ_MAX_EXAMPLES", "10"),
            "--generation-deterministic",
            # One worker: hypothesis describes strategies by parsing lambda source,
            # and CPython 3.11's parser is not thread-safe ("AST constructor
            # recursion depth mismatch" from two workers at once).
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--no-color",
            "--report",
            "ndjson",
            "--report-ndjson-path",
            str(self.ndjson),
        ]
        with self.log.open("w") as log:
            self.run = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait(self, deadline: float) -> None:
        try:
            self.returncode = self.run.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"fuzz gate, {self.name}: schemathesis did not finish within FUZZ_MAX_SECONDS")
            self.returncode = 1

    def stop(self) -> None:
        for proc in (self.run, self.server):
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    sys.exit(main())
