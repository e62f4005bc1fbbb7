"""Database-outage soak: PostgreSQL stops under load, the service answers 503, then recovers.

    .venv/bin/python -m bench.soak [--pg-db h_sec2_soak] [--outage 8] [--clients 4]

1. Rebuilds the PostgreSQL database ``--pg-db`` (migrate, cache table) and
   seeds one school: an admin with a token, students in two courses,
   parents to link by id, and redeemers holding one pairing code each.
2. Starts gunicorn (production settings, 3 sync workers, persistent
   connections with health checks) on 127.0.0.1.
3. A few client threads send mixed requests (GET observees, link PUT/DELETE
   as the admin, pairing-code redemption as a parent), one connection per
   request so they spread over the workers.
4. After a warm-up, stops PostgreSQL (``pg_ctlcluster ... stop -m fast``)
   for ``--outage`` seconds (at most 15): every request then must answer
   503 with a Canvas error body, ``/health`` 503, never a 500. PostgreSQL is
   started again in a ``finally`` block whatever happens.
5. Waits for ``/health`` to answer 200 (the time to recover), keeps the load
   on for a while: every request must succeed.
6. Checks the database: one row per link, each link's observer enrollments
   match its state, audit events alternate, every acknowledged (200) change
   is there, and a change whose answer was lost is either fully there or
   not at all; every acknowledged redemption left a redeemed code and a link.

Prints a summary and exits non-zero when a check fails. Other processes
using the same PostgreSQL server see it down for the outage (a few seconds).
"""

import argparse
import http.client
import itertools
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench import load

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
PG_BASE = os.environ.get("BENCH_PG_URL", "postgres://root@127.0.0.1:5432")
SECRET = "soak-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
DOMAIN = "soak.test"
WORKERS = 3
MAX_OUTAGE = 15
CANVAS_503 = "service_unavailable"


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


def pg_cluster(action: str) -> None:
    """Stop or start the local PostgreSQL cluster (Debian's pg_ctlcluster)."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action]
    if action == "stop":
        command += ["-m", "fast"]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


def pg_ready() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1"], capture_output=True).returncode == 0


def run_env(database_url: str) -> dict[str, str]:
    return load.run_env(
        database_url,
        secret=SECRET,
        domain=DOMAIN,
        LOG_LEVEL="CRITICAL",
        CACHE_URL="db://observers_cache",
    )


def fresh_database(name: str) -> str:
    import psycopg

    with psycopg.connect(f"{PG_BASE}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_BASE}/{name}"


def manage(env: dict, *args: str) -> None:
    proc = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if proc.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")


@dataclass
class Seed:
    admin_token: str
    pairs: list[tuple[int, int]]  # (observer, student) toggled by id, initially unlinked
    codes: list[dict]  # {"token", "code", "redeemer", "student", "code_id"}


def seed(args) -> Seed:
    """One school, through the services (runs in this process under the soak's settings)."""
    from linking.models import EnrollmentType
    from linking.services import accounts
    from linking.services.context import Actor
    from linking.services.enrollments import enroll_user
    from linking.services.pairing import issue_pairing_code
    from linking.services.tokens import issue_access_token

    system = Actor.system()
    school = accounts.create_root_account(name="Soak School", domain=DOMAIN)
    courses = [accounts.create_course(account=school, name=f"Course {n}") for n in (1, 2)]
    admin = accounts.create_user_with_login(
        name="Soak Admin", root_account=school, unique_id="admin@soak.test"
    )
    accounts.make_account_admin(user=admin, account=school)

    def person(kind: str, n: int, *, student: bool = False):
        user = accounts.create_user_with_login(
            name=f"{kind} {n}", root_account=school, unique_id=f"{kind.lower()}{n}@soak.test"
        )
        if student:
            for course in courses:
                enroll_user(user=user, course=course, type=EnrollmentType.STUDENT)
        return user

    students = [person("Student", n, student=True) for n in range(args.students)]
    parents = [person("Parent", n) for n in range(args.students)]
    pairs = [(p.pk, s.pk) for p, s in zip(parents, students, strict=True)]
    codes = []
    for n in range(args.codes):
        redeemer = person("Redeemer", n)
        student = students[n % len(students)]
        issued = issue_pairing_code(student=student, root_account=school, actor=system)
        codes.append(
            {
                "token": issue_access_token(user=redeemer, actor=system)[1],
                "code": issued.plaintext,
                "redeemer": redeemer.pk,
                "student": student.pk,
                "code_id": issued.pairing_code.pk,
            }
        )
    token = issue_access_token(user=admin, actor=system)[1]
    return Seed(admin_token=token, pairs=pairs, codes=codes)


def request(port: int, method: str, path: str, *, token: str | None = None, body=None):
    """(status, parsed JSON body or text); status 0 when the connection itself failed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    headers = {"Host": DOMAIN, "Connection": "close"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    payload = None
    if body is not None:
        payload = json.dumps(body)
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read().decode(errors="replace")
        retry_after = response.getheader("Retry-After")
    except OSError as error:
        return 0, repr(error), None
    finally:
        conn.close()
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = raw
    return response.status, parsed, retry_after


@dataclass
class Record:
    started: float
    ended: float
    op: str
    status: int
    canvas_503: bool


@dataclass
class ClientState:
    pairs: list[tuple[int, int]]
    codes: list[dict]
    linked: dict = field(default_factory=dict)  # pair -> last acknowledged state
    uncertain: dict = field(default_factory=dict)  # pair -> state a lost answer may have made
    redeemed: set = field(default_factory=set)  # code ids acknowledged
    unknown_codes: set = field(default_factory=set)  # code ids whose answer was lost
    # After a lost redemption answer, the next code waits for a success (one lost per outage).
    redeem_paused: bool = False


def is_canvas_503(status: int, body, retry_after) -> bool:
    return (
        status == 503
        and bool(retry_after)
        and isinstance(body, dict)
        and isinstance(body.get("errors"), list)
        and body["errors"][0].get("error_code") == CANVAS_503
        and bool(body["errors"][0].get("message"))
    )


def client_loop(port: int, seed_: Seed, state: ClientState, stop, records, lock, rng):
    while not stop.is_set():
        roll = rng.random()
        started = time.monotonic()
        if roll < 0.3:
            observer, _student = rng.choice(state.pairs)
            op = "GET observees"
            status, body, retry = request(
                port, "GET", f"/api/v1/users/{observer}/observees", token=seed_.admin_token
            )
        elif roll < 0.85 or not state.codes or state.redeem_paused:
            pair = rng.choice(state.pairs)
            path = f"/api/v1/users/{pair[0]}/observees/{pair[1]}"
            # A pair whose last answer was lost is settled with a PUT (200 either way).
            if pair in state.uncertain or not state.linked.get(pair, False):
                op, target = "PUT link", True
            else:
                op, target = "DELETE link", False
            status, body, retry = request(port, op.split()[0], path, token=seed_.admin_token)
            if status == 200:
                state.linked[pair] = target
                state.uncertain.pop(pair, None)
            else:
                state.uncertain[pair] = target
        else:
            code = state.codes.pop()
            op = "POST pairing code"
            status, body, retry = request(
                port,
                "POST",
                "/api/v1/users/self/observees",
                token=code["token"],
                body={"pairing_code": code["code"]},
            )
            if status == 200:
                state.redeemed.add(code["code_id"])
            else:
                state.unknown_codes.add(code["code_id"])
                state.redeem_paused = True
        if status == 200 and op != "POST pairing code":
            state.redeem_paused = False
        with lock:
            records.append(
                Record(started, time.monotonic(), op, status, is_canvas_503(status, body, retry))
            )


def verify(states: list[ClientState], seed_: Seed) -> tuple[list[str], int, int]:
    """Database checks after recovery; returns the problems found."""
    from django.db import connections
    from django.db.models import Count

    from linking.models import (
        AuditAction,
        AuditEvent,
        Enrollment,
        EnrollmentState,
        EnrollmentType,
        ObservationLink,
        PairingCode,
    )

    connections.close_all()
    problems = []
    duplicates = (
        ObservationLink.objects.values("observer_id", "student_id", "root_account_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    if duplicates.exists():
        problems.append(f"duplicate links: {list(duplicates)[:5]}")
    doubled = (
        Enrollment.objects.filter(type=EnrollmentType.OBSERVER)
        .values("user_id", "associated_user_id", "course_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    if doubled.exists():
        problems.append(f"duplicate observer enrollments: {list(doubled)[:5]}")
    added = {AuditAction.LINK_CREATED, AuditAction.LINK_RESTORED}
    for link in ObservationLink.objects.all():
        live = set(
            Enrollment.objects.filter(
                user_id=link.observer_id,
                associated_user_id=link.student_id,
                type=EnrollmentType.OBSERVER,
            )
            .exclude(workflow_state=EnrollmentState.DELETED)
            .values_list("course_id", flat=True)
        )
        if link.workflow_state == ObservationLink.State.ACTIVE:
            wanted = set(
                Enrollment.objects.mirrorable()
                .filter(user_id=link.student_id, type=EnrollmentType.STUDENT)
                .values_list("course_id", flat=True)
            )
        else:
            wanted = set()
        if live != wanted:
            problems.append(f"half-written link {link.pk}: enrollments {live} != {wanted}")
        actions = list(
            AuditEvent.objects.filter(link=link, action__in=[*added, AuditAction.LINK_DELETED])
            .order_by("id")
            .values_list("action", flat=True)
        )
        alternating = all((a in added) != (b in added) for a, b in itertools.pairwise(actions))
        if (
            not actions
            or not alternating
            or (actions[-1] in added) != (link.workflow_state == ObservationLink.State.ACTIVE)
        ):
            problems.append(f"audit trail of link {link.pk} does not match: {actions}")
    states_by_pair = {
        (link.observer_id, link.student_id): link.workflow_state == ObservationLink.State.ACTIVE
        for link in ObservationLink.objects.all()
    }
    acknowledged = 0
    for state in states:
        for pair, linked in state.linked.items():
            actual = states_by_pair.get(pair, False)
            if pair in state.uncertain:
                if actual not in (linked, state.uncertain[pair]):
                    problems.append(f"pair {pair}: {actual}, neither acknowledged nor attempted")
            else:
                acknowledged += 1
                if actual != linked:
                    problems.append(f"acknowledged change lost: pair {pair} should be {linked}")
    redeemed_ok = set().union(*(state.redeemed for state in states))
    unknown = set().union(*(state.unknown_codes for state in states))
    for code in seed_.codes:
        row = PairingCode.objects.get(pk=code["code_id"])
        has_link = states_by_pair.get((code["redeemer"], code["student"]), False)
        redeemed = row.workflow_state == PairingCode.State.REDEEMED
        if code["code_id"] in redeemed_ok and not (redeemed and has_link):
            problems.append(f"acknowledged redemption lost: code {row.pk}")
        elif code["code_id"] not in redeemed_ok and redeemed != has_link:
            problems.append(f"half-done redemption: code {row.pk}")
        elif code["code_id"] not in redeemed_ok | unknown and redeemed:
            problems.append(f"code {row.pk} redeemed although never sent")
    return problems, acknowledged, len(states_by_pair)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--pg-db", default="h_sec2_soak")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--codes", type=int, default=120)
    parser.add_argument("--warmup", type=float, default=6)
    parser.add_argument("--outage", type=float, default=4)
    parser.add_argument("--after", type=float, default=8)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    args.outage = min(args.outage, MAX_OUTAGE)
    if not pg_ready():
        log("PostgreSQL is not reachable on 127.0.0.1: nothing to do")
        return 2

    database_url = fresh_database(args.pg_db)
    env = run_env(database_url)
    manage(env, "migrate", "--no-input")
    manage(env, "createcachetable")
    os.environ.update(env)
    import django

    django.setup()
    seed_ = seed(args)
    log(f"seeded {len(seed_.pairs)} pairs and {len(seed_.codes)} pairing codes in {args.pg_db}")

    rng = random.Random(args.seed)
    states = [
        ClientState(pairs=seed_.pairs[i :: args.clients], codes=seed_.codes[i :: args.clients])
        for i in range(args.clients)
    ]
    records: list[Record] = []
    lock = threading.Lock()
    stop = threading.Event()
    health_during_outage: list[int] = []
    timeline: dict[str, float] = {}
    log_path = Path("/tmp") / f"soak-gunicorn-{os.getpid()}.log"
    with load.Gunicorn(
        env, WORKERS, host=DOMAIN, log_path=log_path, extra_args=("--timeout", "60")
    ) as server:
        clients = [
            threading.Thread(
                target=client_loop,
                args=(server.port, seed_, state, stop, records, lock, random.Random(rng.random())),
            )
            for state in states
        ]
        for client in clients:
            client.start()
        try:
            time.sleep(args.warmup)
            log(f"stopping PostgreSQL for {args.outage:.0f} s")
            timeline["stop_begin"] = time.monotonic()
            pg_cluster("stop")
            timeline["stopped"] = time.monotonic()
            deadline = timeline["stopped"] + args.outage
            while time.monotonic() < deadline:
                health_during_outage.append(request(server.port, "GET", "/health")[0])
                time.sleep(0.5)
        finally:
            timeline["start_begin"] = time.monotonic()
            pg_cluster("start")
            timeline["started"] = time.monotonic()
            log("PostgreSQL started again")
        recovered_at = None
        wait_until = time.monotonic() + 60
        while time.monotonic() < wait_until:
            if request(server.port, "GET", "/health")[0] == 200:
                recovered_at = time.monotonic()
                break
            time.sleep(0.1)
        timeline["recovered"] = recovered_at or time.monotonic()
        time.sleep(args.after)
        stop.set()
        for client in clients:
            client.join(timeout=60)
        # The settling pass: every pair once more (PUT, GET), all must succeed now.
        settle = []
        for state in states:
            for pair in state.pairs:
                path = f"/api/v1/users/{pair[0]}/observees/{pair[1]}"
                status = request(server.port, "PUT", path, token=seed_.admin_token)[0]
                settle.append(status)
                if status == 200:
                    state.linked[pair] = True
                    state.uncertain.pop(pair, None)
                settle.append(
                    request(
                        server.port,
                        "GET",
                        f"/api/v1/users/{pair[0]}/observees",
                        token=seed_.admin_token,
                    )[0]
                )
        first_success = min(
            (r.ended for r in records if r.status == 200 and r.started >= timeline["started"]),
            default=None,
        )

    ready = pg_ready()
    problems, acknowledged, link_rows = verify(states, seed_)
    counts = Counter(
        "2xx" if 200 <= r.status < 300 else str(r.status) if r.status else "no answer"
        for r in records
    )
    before = [r for r in records if r.ended < timeline["stop_begin"]]
    outage = [
        r
        for r in records
        if r.started >= timeline["stopped"] and r.ended <= timeline["start_begin"]
    ]
    after = [r for r in records if r.started >= timeline["recovered"]]
    if any(r.status == 500 for r in records):
        problems.append(f"{sum(r.status == 500 for r in records)} requests answered 500")
    if any(r.status != 200 for r in before):
        problems.append(f"failures before the outage: {Counter(r.status for r in before)}")
    if not outage or any(not r.canvas_503 for r in outage):
        problems.append(
            f"during the outage not all 503 + Canvas body: {[r.status for r in outage]}"
        )
    if not health_during_outage or any(status != 503 for status in health_during_outage):
        problems.append(f"/health during the outage: {Counter(health_during_outage)}")
    if recovered_at is None:
        problems.append("/health did not answer 200 within 60 s of restarting PostgreSQL")
    if not after or any(r.status != 200 for r in after):
        problems.append(f"failures after recovery: {Counter(r.status for r in after)}")
    if any(status != 200 for status in settle):
        problems.append(f"settling pass failures: {Counter(settle)}")
    if not ready:
        problems.append("pg_isready fails at the end")

    down = timeline["started"] - timeline["stop_begin"]
    summary = {
        "requests": len(records),
        "by status": dict(counts),
        "by operation": dict(Counter(r.op for r in records)),
        "before outage": len(before),
        "during outage (all 503 + Canvas body)": len(outage),
        "/health during outage": dict(Counter(health_during_outage)),
        "after recovery": len(after),
        "database down (s)": round(down, 1),
        "stop took (s)": round(timeline["stopped"] - timeline["stop_begin"], 1),
        "start took (s)": round(timeline["started"] - timeline["start_begin"], 1),
        "recovery after PostgreSQL start (s)": (
            round(recovered_at - timeline["started"], 2) if recovered_at else None
        ),
        "first API 200 after start (s)": (
            round(first_success - timeline["started"], 2) if first_success else None
        ),
        "settling pass": f"{sum(s == 200 for s in settle)}/{len(settle)} 200",
        "acknowledged redemptions": sum(len(s.redeemed) for s in states),
        "redemptions with lost answers": sum(len(s.unknown_codes) for s in states),
        "link rows checked": link_rows,
        "acknowledged link states checked": acknowledged,
        "pg_isready at the end": ready,
        "problems": problems,
    }
    print(json.dumps(summary, indent=2, default=str))
    log("PASS" if not problems else f"FAIL ({len(problems)} problems); gunicorn log: {log_path}")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
