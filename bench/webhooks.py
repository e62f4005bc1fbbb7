"""Webhook throughput: N queued events drained by two workers to a receiver answering in 50 ms.

    .venv/bin/python -m bench.webhooks              # 20,000 events, PostgreSQL, database backend
    .venv/bin/python -m bench.webhooks --events 100000
    .venv/bin/python -m bench.webhooks --backend rq # the broker backend (Redis db 3)
    .venv/bin/python -m bench.webhooks --db sqlite

What it does: rebuilds a database (``--pg-db``, default h_bench_webhooks; a
SQLite file under bench/results/ for ``--db sqlite``), writes N link events
pending in the audit trail (as N requests or an SIS import would leave
them), starts a receiver process on 127.0.0.1 that answers every post after
``--delay`` seconds over keep-alive HTTP/1.1, then starts ``--workers``
``manage.py run_worker`` processes and waits until every delivery is sent.

It reports the posts per second between the first and the last post, the
time to plan, the workers' memory (RSS at start, peak and end, sampled
every second) and checks exactly-once delivery: every webhook-id arrived
once, none twice; one post in 50 is verified with the standardwebhooks
library. Nothing here is a test: numbers go in docs/notifications.md.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
RESULTS = BASE_DIR / "bench" / "results"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


# The receiver (its own process) --------------------------------------------------------


def serve(port: int, delay: float) -> None:
    from standardwebhooks.webhooks import Webhook

    lock = threading.Lock()
    seen: dict[str, int] = {}
    stats = {"posts": 0, "first": None, "last": None, "verified": 0, "bad": 0}
    verifier = Webhook(SECRET)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(delay)
            now = time.time()
            message_id = self.headers.get("webhook-id", "")
            with lock:
                seen[message_id] = seen.get(message_id, 0) + 1
                stats["posts"] += 1
                stats["first"] = stats["first"] or now
                stats["last"] = now
                check = stats["posts"] % 50 == 1
            if check:
                try:
                    verifier.verify(body, dict(self.headers))
                    ok = True
                except Exception:
                    ok = False
                with lock:
                    stats["verified" if ok else "bad"] += 1
            self._answer(b'{"ok":true}')

        def do_GET(self):
            with lock:
                report = {
                    **stats,
                    "unique": len(seen),
                    "duplicates": sum(1 for count in seen.values() if count > 1),
                }
            self._answer(json.dumps(report).encode())

        def _answer(self, payload: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024  # listen backlog: every worker thread connects at once

    server = Server(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever(poll_interval=0.1)


# The run --------------------------------------------------------------------------------


def _env(args) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "observers_project.settings",
        "TASK_BACKEND": args.backend,
        "TASK_REDIS_URL": args.redis_url,
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
        "WEBHOOK_CONCURRENCY": str(args.concurrency),
        "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
        "LOG_LEVEL": "WARNING",
    }
    if args.db == "sqlite":
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / "webhooks.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        env["DATABASE_URL"] = f"sqlite:///{path}"
    else:
        env["DATABASE_URL"] = f"postgres://root@127.0.0.1:5432/{args.pg_db}"
    return env


def _python(env: dict, code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise SystemExit(result.stderr)
    return result.stdout.strip()


SEED = """
from django.db import connection
from django.utils import timezone
from linking.models import Account, AuditEvent, ObservationLink, User, WebhookEndpoint
from linking.services import webhooks

events = {events}
school = Account.objects.create(name="Bench School", domain="bench.test")
WebhookEndpoint.objects.create(
    root_account=school, url={url!r}, secret={secret!r}, events=["link.created"]
)
# Two observers per student, as families have; e-mail addresses on nobody, so
# the run measures webhooks (the planner still works out who would be e-mailed).
observers = User.objects.bulk_create(
    [User(name=f"Observer {{n}}") for n in range(events)], batch_size=5000
)
students = User.objects.bulk_create(
    [User(name=f"Student {{n}}") for n in range((events + 1) // 2)], batch_size=5000
)
pairs = [(observer, students[n // 2]) for n, observer in enumerate(observers)]
links = ObservationLink.objects.bulk_create(
    [ObservationLink(observer=o, student=s, root_account=school) for o, s in pairs],
    batch_size=2000,
)
AuditEvent.objects.bulk_create(
    [
        AuditEvent(
            action="link.created", source="sis", root_account=school, observer=link.observer,
            student=link.student, link=link, notifications_pending=True,
            snapshot=webhooks.snapshot_for(
                action="link.created", source="sis", actor_user=None, root_account=school,
                observer=link.observer, student=link.student, link=link, pairing_code=None,
            ),
        )
        for link in links
    ],
    batch_size=2000,
)
if connection.vendor == "postgresql":
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
print(len(links))
"""

COUNTS = (
    "SELECT (SELECT count(*) FROM linking_webhookdelivery WHERE status = 'sent'),"
    " (SELECT count(*) FROM linking_webhookdelivery),"
    " (SELECT count(*) FROM linking_auditevent WHERE notifications_pending)"
)


def _counts(env: dict) -> tuple[int, int, int]:
    """Sent, queued and pending counts, read without starting Django (cheap, once a second)."""
    url = env["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30) as connection:
            return connection.execute(COUNTS).fetchone()
    import psycopg

    with psycopg.connect(url.replace("postgres://", "postgresql://")) as connection:
        return connection.execute(COUNTS).fetchone()


def _rss_kb(pid: int) -> int:
    total = 0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for each in [pid, *map(int, children)]:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def _stats(port: int) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as response:
        return json.loads(response.read())


def run(args) -> dict:
    env = _env(args)
    if args.db == "postgres":
        subprocess.run(
            ["dropdb", "-h", "127.0.0.1", "-U", "root", "--if-exists", args.pg_db], check=True
        )
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "root", args.pg_db], check=True)
    manage = [sys.executable, str(BASE_DIR / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], cwd=BASE_DIR, env=env, check=True)
    if args.backend == "rq":
        import redis

        redis.Redis.from_url(args.redis_url).flushdb()

    receiver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.webhooks",
            "--serve",
            str(args.port),
            "--delay",
            str(args.delay),
        ],
        cwd=BASE_DIR,
    )
    workers: list[subprocess.Popen] = []
    try:
        url = f"http://127.0.0.1:{args.port}/hook"
        seeded_at = time.monotonic()
        created = int(_python(env, SEED.format(events=args.events, url=url, secret=SECRET)))
        print(
            f"seeded {created} pending events in {time.monotonic() - seeded_at:.1f} s", flush=True
        )

        started = time.monotonic()
        for _ in range(args.workers):
            workers.append(
                subprocess.Popen(
                    [*manage, "run_worker"], cwd=BASE_DIR, env=env, start_new_session=True
                )
            )
        memory: list[list[int]] = [[] for _ in workers]
        planned_after = None
        deadline = started + args.timeout
        while time.monotonic() < deadline:
            time.sleep(1)
            for index, worker in enumerate(workers):
                memory[index].append(_rss_kb(worker.pid))
            sent, queued, pending = _counts(env)
            if planned_after is None and pending == 0 and queued == created:
                planned_after = time.monotonic() - started
            print(
                f"  {time.monotonic() - started:6.1f} s: planned {queued}, sent {sent}", flush=True
            )
            if sent == created:
                break
        wall = time.monotonic() - started
        time.sleep(1)
        stats = _stats(args.port)
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(timeout=10)
    span = (stats["last"] or 0) - (stats["first"] or 0)
    return {
        "db": args.db,
        "backend": args.backend,
        "events": created,
        "workers": args.workers,
        "concurrency": args.concurrency,
        "delay_ms": int(args.delay * 1000),
        "posts": stats["posts"],
        "unique": stats["unique"],
        "duplicates": stats["duplicates"],
        "verified_sample": stats["verified"],
        "bad_signatures": stats["bad"],
        "posts_per_second": round(stats["posts"] / span, 1) if span else None,
        "planned_after_s": round(planned_after, 1) if planned_after else None,
        "wall_s": round(wall, 1),
        "worker_rss_mb": [
            {
                "start": round(samples[0] / 1024) if samples else None,
                "peak": round(max(samples) / 1024) if samples else None,
                "end": round(samples[-1] / 1024) if samples else None,
            }
            for samples in memory
        ],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.webhooks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--pg-db", default="h_bench_webhooks")
    parser.add_argument("--backend", choices=["database", "rq"], default="database")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/3")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32, help="posts in flight per task")
    parser.add_argument("--delay", type=float, default=0.05, help="receiver's answer time (s)")
    parser.add_argument("--port", type=int, default=18917)
    parser.add_argument("--timeout", type=int, default=1800, help="give up after this many seconds")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.delay)
        return 0
    result = run(args)
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"webhooks_{args.db}_{args.backend}_{result['events']}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    ok = (
        result["unique"] == result["events"]
        and result["duplicates"] == 0
        and not result["bad_signatures"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
