"""The load run: generate a tenant, start gunicorn, drive it with wrk, print a table.

For each database (SQLite, PostgreSQL) and each tier (number of links) it
builds a fresh database with ``manage.py generate_load_data``, starts gunicorn
with production settings on 127.0.0.1, runs wrk against every endpoint for a
bounded time, records requests/s, p50/p99 latency, non-2xx responses and the
ratio to ``/health`` in the same run, samples the workers' peak RSS (VmHWM)
and stops everything. Results go to ``bench/results/`` (git-ignored).
"""

import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable
SECRET = "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
DOMAIN = "bench.test"
# Server for the PostgreSQL runs (trust auth); the database itself is --pg-db.
PG_BASE = os.environ.get("BENCH_PG_URL", "postgres://root@127.0.0.1:5432")

LUA = r"""
-- args: requests file, number of threads, "cycle" or "once", host
local lines = {}
local counter = 0
local threads = {}
local nthreads = 0
function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  table.insert(threads, thread)
end
function init(args)
  local n = tonumber(args[2])
  mode = args[3]
  host = args[4]
  local i = 0
  for line in io.lines(args[1]) do
    if mode == "cycle" or i % n == tid - 1 then table.insert(lines, line) end
    i = i + 1
  end
  bad = 0; s5 = 0; exhausted = 0; sample = ""
end
local function split(line)
  local parts = {}
  for part in (line .. "\t"):gmatch("([^\t]*)\t") do table.insert(parts, part) end
  return parts
end
function request()
  counter = counter + 1
  if counter > #lines then
    if mode == "cycle" then counter = 1 else
      exhausted = 1
      wrk.thread:stop()
      return wrk.format("GET", "/health", {Host = host})
    end
  end
  local p = split(lines[counter])
  local headers = {Host = host}
  if p[3] ~= "" then headers["Authorization"] = "Bearer " .. p[3] end
  local body = nil
  if p[4] ~= nil and p[4] ~= "" then
    body = p[4]
    headers["Content-Type"] = "application/json"
  end
  return wrk.format(p[1], p[2], headers, body)
end
function response(status, headers, body)
  if status >= 300 then
    bad = bad + 1
    if sample == "" then sample = status .. " " .. string.sub(body or "", 1, 200) end
  end
  if status >= 500 then s5 = s5 + 1 end
end
function done(summary, latency, requests)
  local b, f, ex, smp = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    b = b + t:get("bad"); f = f + t:get("s5"); ex = ex + t:get("exhausted")
    local s = t:get("sample")
    if smp == "" and s ~= nil then smp = s end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"non2xx": %d, "s5xx": %d, "socket_errors": %d, "timeouts": %d, "exhausted": %d, ' ..
    '"sample": %q}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    b, f, e.connect + e.read + e.write, e.timeout, ex, smp))
end
"""


@dataclass
class Tier:
    links: int

    @property
    def users(self) -> int:
        return max(2000, self.links)

    @property
    def codes(self) -> int:
        return min(50_000, max(4000, self.links // 20))

    @property
    def courses(self) -> int:
        return max(50, self.links // 200)


@dataclass
class Result:
    db: str
    tier: int
    endpoint: str
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    non2xx: int = 0
    s5xx: int = 0
    socket_errors: int = 0
    requests: int = 0
    exhausted: bool = False
    sample: str = ""
    ratio: float | None = None


@dataclass
class TierRun:
    db: str
    tier: int
    generate_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    api: bool = False
    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def log(msg: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {msg}", flush=True)


def preflight() -> None:
    """wrk comes from Debian's packages; install it when missing."""
    if shutil.which("wrk"):
        return
    log("installing wrk (apt-get install -y wrk)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    if subprocess.run([*sudo, "apt-get", "install", "-y", "wrk"], check=False).returncode:
        subprocess.run([*sudo, "apt-get", "update"], check=True)
        subprocess.run([*sudo, "apt-get", "install", "-y", "wrk"], check=True)


BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def cache_url(choice: str) -> str:
    """CACHE_URL for the server: Redis, as in production, when asked or when it answers."""
    if choice == "db":
        return "db://observers_cache"
    if choice == "auto":
        try:
            import redis

            redis.Redis.from_url(BENCH_REDIS_URL, socket_timeout=2).ping()
        except Exception:
            return "db://observers_cache"
    return BENCH_REDIS_URL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_env(
    database_url: str, *, secret: str = SECRET, domain: str = DOMAIN, **overrides: str
) -> dict[str, str]:
    """The environment of a production-settings server (gunicorn) or command for a run."""
    env = dict(os.environ)
    env.update(
        {
            "OBSERVERS_ENV": "production",
            "SECRET_KEY": secret,
            "HASH_KEY": secret,
            "ALLOWED_HOSTS": f"{domain},127.0.0.1,localhost",
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",
            "DATABASE_URL": database_url,
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "observers_project.settings",
            **overrides,
        }
    )
    return env


def manage(env: dict, *args: str) -> str:
    proc = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if proc.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def dbtask(env: dict, task: str, data_path: Path) -> str:
    proc = subprocess.run(
        [PYTHON, "-m", "bench.dbtasks", task, str(data_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise RuntimeError(f"dbtasks {task} failed:\n{proc.stderr}")
    return proc.stdout


def fresh_database(db: str, tier: Tier, pg_name: str) -> str:
    if db == "sqlite":
        path = RESULTS / f"load_{tier.links}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    import psycopg

    with psycopg.connect(f"{PG_BASE}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{pg_name}"')
    return f"{PG_BASE}/{pg_name}"


class Gunicorn:
    """gunicorn with production settings on a free 127.0.0.1 port (a context manager).

    Ready when /health answers 200 (sent as ``host``) and every worker is up.
    """

    def __init__(
        self,
        env: dict,
        workers: int,
        *,
        host: str = DOMAIN,
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ):
        self.port = free_port()
        self.env = env
        self.workers = workers
        self.host = host
        self.log_path = log_path or RESULTS / "gunicorn.log"
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Gunicorn":
        gunicorn = str(Path(PYTHON).with_name("gunicorn"))
        self.proc = subprocess.Popen(
            [
                gunicorn,
                "observers_project.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--worker-class",
                "sync",
                "--backlog",
                "256",
                "--log-level",
                "warning",
                *self.extra_args,
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log_path.open("a"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.get("/health")[0] == 200 and len(self.worker_pids()) >= self.workers:
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        self.__exit__(None, None, None)
        raise RuntimeError(f"gunicorn did not answer /health within 30 s; see {self.log_path}")

    def get(self, path: str, token: str | None = None) -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        request.add_header("Host", self.host)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def worker_pids(self) -> list[int]:
        if self.proc is None:
            return []
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def peak_rss_mb(self) -> float:
        peak = 0
        for pid in [*self.worker_pids(), self.proc.pid if self.proc else 0]:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
            except OSError:
                continue
        return round(peak / 1024, 1)

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_wrk(port: int, name: str, lines: list[str], *, cycle: bool, duration: int, args) -> dict:
    req_file = RESULTS / f"requests_{name}.tsv"
    req_file.write_text("\n".join(lines) + "\n")
    lua = RESULTS / "bench.lua"
    lua.write_text(LUA)
    cmd = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(lua),
        f"http://127.0.0.1:{port}/",
        "--",
        str(req_file),
        str(args.threads),
        "cycle" if cycle else "once",
        DOMAIN,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line.removeprefix("BENCH_JSON "))
    raise RuntimeError(f"wrk gave no result for {name}:\n{proc.stdout}\n{proc.stderr}")


def endpoints(data: dict, env: dict, data_path: Path, rng: random.Random):
    """(name, request lines, cycle?) in run order; write endpoints last."""
    t, u = data["tokens"], data["users"]
    yield "health", ["GET\t/health\t\t"], True
    yield "observees, parent of 2", [f"GET\t/api/v1/users/self/observees\t{t['parent2']}\t"], True
    yield (
        "observees, observer of 100 (per_page=100, avatar_url)",
        [
            f"GET\t/api/v1/users/self/observees?per_page=100&include%5B%5D=avatar_url\t"
            f"{t['observer100']}\t"
        ],
        True,
    )
    yield (
        "observers of a student",
        [f"GET\t/api/v1/users/self/observers\t{t['observed_student']}\t"],
        True,
    )
    yield (
        "observer enrollments, parent of 2",
        [f"GET\t/api/v1/users/self/enrollments\t{t['parent2']}\t"],
        True,
    )
    yield (
        "observer enrollments + observed_users, parent of 2",
        [f"GET\t/api/v1/users/self/enrollments?include%5B%5D=observed_users\t{t['parent2']}\t"],
        True,
    )
    yield (
        "courses, parent of 2",
        [f"GET\t/api/v1/courses\t{t['parent2']}\t"],
        True,
    )
    yield (
        "show observee",
        [f"GET\t/api/v1/users/self/observees/{u['children'][0]}\t{t['parent2']}\t"],
        True,
    )
    yield (
        "create pairing code",
        [f"POST\t/api/v1/users/self/observer_pairing_codes\t{t['code_student']}\t"],
        True,
    )
    yield (
        "redeem pairing code",
        [
            f"POST\t/api/v1/users/self/observees\t{t[f'redeemer{r}']}\t"
            + json.dumps({"pairing_code": code})
            for r, code in data["redeem"]
        ],
        False,
    )
    low, high = u["student_ids"]
    pairs = set()
    while len(pairs) < 20000:
        pairs.add((rng.choice(u["fresh_parents"]), rng.randint(low, high)))
    yield (
        "PUT link (admin)",
        [f"PUT\t/api/v1/users/{o}/observees/{s}\t{t['admin']}\t" for o, s in pairs],
        False,
    )
    active = json.loads(dbtask(env, "active_links", data_path))
    yield (
        "DELETE link (admin)",
        [f"DELETE\t/api/v1/users/{o}/observees/{s}\t{t['admin']}\t" for o, s in active],
        False,
    )


def measure(server, db, tier, name, lines, cycle, duration, args) -> Result:
    raw = run_wrk(server.port, name.split()[0], lines, cycle=cycle, duration=duration, args=args)
    seconds = raw["duration_us"] / 1e6
    return Result(
        db=db,
        tier=tier.links,
        endpoint=name,
        rps=round(raw["requests"] / seconds, 1) if seconds else 0.0,
        p50_ms=round(raw["p50_us"] / 1000, 2),
        p99_ms=round(raw["p99_us"] / 1000, 2),
        non2xx=raw["non2xx"],
        s5xx=raw["s5xx"],
        socket_errors=raw["socket_errors"] + raw["timeouts"],
        requests=raw["requests"],
        exhausted=bool(raw["exhausted"]),
        sample=raw["sample"],
    )


def median_round(rounds: list[Result]) -> Result:
    """The round with the median req/s, carrying the errors of every round."""
    ordered = sorted(rounds, key=lambda r: r.rps)
    chosen = ordered[(len(ordered) - 1) // 2]
    chosen.non2xx = sum(r.non2xx for r in rounds)
    chosen.s5xx = sum(r.s5xx for r in rounds)
    chosen.socket_errors = sum(r.socket_errors for r in rounds)
    chosen.requests = sum(r.requests for r in rounds)
    chosen.sample = next((r.sample for r in rounds if r.sample), "")
    chosen.exhausted = any(r.exhausted for r in rounds)
    return chosen


@dataclass
class Prepared:
    """A tier's database, filled and settled, ready for its server."""

    run: TierRun
    tier: Tier
    env: dict
    data_path: Path
    data: dict
    server: "Gunicorn | None" = None


def prepare_tier(db: str, tier: Tier, args) -> Prepared | None:
    run = TierRun(db=db, tier=tier.links)
    try:
        pg_name = args.pg_db if len(args.tier_list) == 1 else f"{args.pg_db}_{tier.links}"
        url = fresh_database(db, tier, pg_name)
    except Exception as exc:  # PostgreSQL not reachable: report it, keep the other runs
        reason = " ".join(str(exc).split())
        run.notes.append(f"skipped: cannot create the database ({reason})")
        log(run.notes[-1])
        args.runs.append(run)
        return None
    env = run_env(url, CACHE_URL=args.cache_url)
    log(f"{db} / {tier.links} links: migrating")
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "createcachetable")
    data_path = RESULTS / f"load_data_{db}_{tier.links}.json"
    log(f"{db} / {tier.links} links: generating {tier.users} users, {tier.codes} codes")
    started = time.monotonic()
    manage(
        env,
        "generate_load_data",
        f"--users={tier.users}",
        f"--links={tier.links}",
        f"--codes={tier.codes}",
        f"--courses={tier.courses}",
        f"--domain={DOMAIN}",
        f"--output={data_path}",
    )
    run.generate_seconds = round(time.monotonic() - started, 1)
    log(f"{db} / {tier.links} links: vacuum and checkpoint before measuring")
    dbtask(env, "settle", data_path)
    args.runs.append(run)
    return Prepared(run, tier, env, data_path, json.loads(data_path.read_text()))


def run_database(db: str, args) -> None:
    """Every tier of one database, measured side by side.

    All tiers are built first and each gets its own server; then every round
    visits every tier in turn, so a slow stretch of a shared machine touches
    the 1,000-link and the 1,000,000-link numbers alike and their ratio is
    not an accident of which ran first. Each endpoint keeps its median round.
    """
    tiers = [prepare_tier(db, Tier(links), args) for links in args.tier_list]
    tiers = [t for t in tiers if t is not None]
    if args.cache_url.startswith("redis://"):
        import redis

        redis.Redis.from_url(args.cache_url).flushdb()  # no counters from an earlier run
    with contextlib.ExitStack() as stack:
        for t in tiers:
            t.server = stack.enter_context(Gunicorn(t.env, args.workers))
            status, body = t.server.get("/api/v1/users/self/observees", t.data["tokens"]["parent2"])
            t.run.api = status == 200
            if not t.run.api:
                t.run.notes.append(f"API not available (GET self/observees answered {status})")
                log(t.run.notes[-1] + f": {body[:200]}")
            # Warm every worker up (imports, connections) before measuring.
            run_wrk(t.server.port, "warmup", ["GET\t/health\t\t"], cycle=True, duration=2,
                    args=args)  # fmt: skip
        # Reads go round-robin over tiers and endpoints. Writes consume their
        # data: each round gets its own share of the request list, and each
        # tier's list is read lazily from its generator, so DELETE's targets
        # are the links active after that tier's PUTs.
        rounds: dict[tuple[int, str], list[Result]] = {}
        planned = {id(t): endpoints(t.data, t.env, t.data_path, random.Random(7)) for t in tiers}
        reads = {id(t): [] for t in tiers}
        first_write = {}
        for t in tiers:
            for item in planned[id(t)]:
                if not item[2]:
                    first_write[id(t)] = item
                    break
                reads[id(t)].append(item)
        for round_number in range(args.repeat):
            for t in tiers:
                for name, lines, cycle in reads[id(t)]:
                    if name != "health" and not t.run.api:
                        continue
                    log(f"{db} / {t.tier.links}: {name} (round {round_number + 1} of "
                        f"{args.repeat})")  # fmt: skip
                    rounds.setdefault((id(t), name), []).append(
                        measure(t.server, db, t.tier, name, lines, cycle, args.duration, args)
                    )
        writers = [t for t in tiers if t.run.api]
        streams = {
            id(t): itertools.chain([first_write[id(t)]] if id(t) in first_write else [],
                                   planned[id(t)])
            for t in writers
        }  # fmt: skip
        while True:
            step = [(t, next(streams[id(t)], None)) for t in writers]
            step = [(t, item) for t, item in step if item is not None]
            if not step:
                break
            for round_number in range(args.repeat):
                for t, (name, lines, cycle) in step:
                    if not lines:
                        if round_number == 0:
                            t.run.notes.append(f"{name}: nothing to request")
                        continue
                    share = lines if cycle else lines[round_number :: args.repeat]
                    log(f"{db} / {t.tier.links}: {name} (round {round_number + 1} of "
                        f"{args.repeat}, {len(share)} distinct requests)")  # fmt: skip
                    rounds.setdefault((id(t), name), []).append(
                        measure(t.server, db, t.tier, name, share, cycle,
                                args.write_duration, args)
                    )  # fmt: skip
        for t in tiers:
            results = [median_round(found) for (key, _), found in rounds.items() if key == id(t)]
            health_rps = next((r.rps for r in results if r.endpoint == "health"), None)
            for result in results:
                if health_rps:
                    result.ratio = round(result.rps / health_rps, 3)
                t.run.results.append(result)
                if result.exhausted:
                    t.run.notes.append(
                        f"{result.endpoint}: request list exhausted; req/s understated"
                    )
                if result.non2xx:
                    t.run.notes.append(f"{result.endpoint}: first non-2xx: {result.sample}")
            t.run.peak_rss_mb = t.server.peak_rss_mb()
    for t in tiers:
        finish_tier(db, t, args)


def finish_tier(db: str, t: Prepared, args) -> None:
    run, tier = t.run, t.tier
    if run.api:
        check = json.loads(dbtask(t.env, "verify_redeem", t.data_path))
        run.notes.append(
            f"redemption: {check['codes']} codes redeemed, {check['links']} links made "
            + ("(one link per code)" if check["codes"] == check["links"] else "(MISMATCH)")
        )
    if args.explain and (db == "postgres" or args.explain_all):
        plans = dbtask(t.env, "explain", t.data_path)
        (RESULTS / f"explain_{db}_{tier.links}.md").write_text(plans)
        run.notes.append(f"query plans in bench/results/explain_{db}_{tier.links}.md")
        if tier.links >= 1_000_000 or args.print_plans:
            print(plans)


def markdown(runs: list[TierRun], args) -> str:
    out = [
        f"`python -m bench --tiers {args.tiers} --db {args.db}` — "
        f"gunicorn {args.workers} sync workers, wrk -t{args.threads} -c{args.connections}, "
        f"CACHE_URL {args.cache_url}, "
        f"median of {args.repeat} rounds of {args.duration} s per read endpoint and "
        f"{args.write_duration} s per write endpoint",
        "",
        "| db | links | endpoint | req/s | p50 ms | p99 ms | non-2xx | 5xx | ratio to /health |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        for r in run.results:
            ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
            flag = " (list exhausted)" if r.exhausted else ""
            out.append(
                f"| {r.db} | {r.tier:,} | {r.endpoint}{flag} | {r.rps:.0f} | {r.p50_ms} | "
                f"{r.p99_ms} | {r.non2xx + r.socket_errors} | {r.s5xx} | {ratio} |"
            )
    out += ["", "| db | links | data generation s | peak worker RSS MB | notes |",
            "|---|---:|---:|---:|---|"]  # fmt: skip
    for run in runs:
        out.append(
            f"| {run.db} | {run.tier:,} | {run.generate_seconds} | {run.peak_rss_mb} | "
            f"{'; '.join(run.notes)} |"
        )
    tiers = sorted({r.tier for r in runs})
    if len(tiers) > 1:
        out += ["", f"p50 at {tiers[-1]:,} links / p50 at {tiers[0]:,} links:", ""]
        by = {(r.db, r.tier, r.endpoint): r for run in runs for r in run.results}
        for (db, tier, endpoint), r in by.items():
            if tier == tiers[-1] and (db, tiers[0], endpoint) in by:
                base = by[(db, tiers[0], endpoint)]
                if base.p50_ms:
                    out.append(f"- {db} {endpoint}: {r.p50_ms / base.p50_ms:.2f}x")
    return "\n".join(out)


def main(args) -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    preflight()
    args.cache_url = cache_url(args.cache)
    log(f"rate limits and cache: {args.cache_url}")
    args.tier_list = [int(links) for links in args.tiers.split(",")]
    args.runs = runs = []
    for db in args.db.split(","):
        run_database(db.strip(), args)
    table = markdown(runs, args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"results_{stamp}.md").write_text(table + "\n")
    (RESULTS / f"results_{stamp}.json").write_text(
        json.dumps([run.__dict__ | {"results": [r.__dict__ for r in run.results]} for run in runs])
    )
    print(table)
    log(f"results in bench/results/results_{stamp}.md")
    return 0
