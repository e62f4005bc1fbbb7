"""District rostering benchmark: ``manage.py sis_import`` on a generated district (issue 12).

    python -m bench.district_import --db postgres --scales 0.1,1
    python -m bench.district_import --db sqlite --scales 0.1,1

For each scale the district of bench/district.py is generated once (Canvas
SIS CSVs and OneRoster bundles with the same ids). Then, for each database
and each format (``canvas``, ``oneroster``), on a fresh database (PostgreSQL:
``--pg-db``, default ``bench_district``, dropped and created again; SQLite: a
file in a temporary directory), migrated, with the root account made by
``manage.py create_root_account``:

1. a dry run of a 40-user district of that format (untimed): a format the
   command does not take (unrecognised files, no rows read, usage error) is
   skipped with a line saying why;
2. first import, then VACUUM (ANALYZE) and CHECKPOINT (``bench.dbtasks
   settle``; on SQLite ANALYZE), as on a live database with autovacuum;
3. re-import of the same files (nothing changed);
4. re-import of the "1% changed" files;
5. OneRoster only (unless ``--no-delta``): the base bundle again (which
   undoes the change, timed too), then the delta bundle.

Every import is one subprocess ``manage.py sis_import DIR --domain D
--no-notifications`` with production settings; the harness measures its wall
time (process start to exit, Django start-up included) and its peak RSS
(``os.wait4`` of that process: ru_maxrss). rows/s is the rows of the
command's summary table over the wall time. When the table has a
``seconds`` column, per-file rows/s come from it; otherwise per-file rows
only. Results: a Markdown table on stdout and in
``bench/results/district_<db>.md``, logs of every command in
``bench/results/district_logs/``. Every import is bounded by ``--timeout``.
Only 127.0.0.1 is contacted (PostgreSQL, ``BENCH_PG_URL``).
"""

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.district import Params, generate
from bench.load import PG_BASE, PYTHON, RESULTS, ROOT, dbtask, fresh_database, log, manage, run_env

DOMAIN = "district.bench.test"
FORMATS = ("canvas", "oneroster")
PROTECTED_DATABASES = {"test", "postgres", "template0", "template1"}
PROBE = Params(users=40, schools=2, classes=4, enrollments=60, links=24, seed=7)
LOGS = RESULTS / "district_logs"


@dataclass
class Run:
    db: str
    scale: float
    users: int
    format: str
    label: str
    rows: int = 0
    seconds: float = 0.0
    rss_mb: float = 0.0
    returncode: int | None = None
    errors: str = ""
    files: list[dict] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)

    @property
    def rows_per_s(self) -> int:
        return round(self.rows / self.seconds) if self.seconds else 0


@dataclass
class Timed:
    returncode: int | None
    seconds: float
    rss_mb: float
    stdout: str
    stderr: str
    timed_out: bool = False


def run_timed(cmd: list[str], env: dict, log_name: str, timeout: float) -> Timed:
    """Run a command, waiting at most ``timeout`` s; wall time and the process's own peak RSS."""
    LOGS.mkdir(parents=True, exist_ok=True)
    out_path, err_path = LOGS / f"{log_name}.out", LOGS / f"{log_name}.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True
        )
        reaped: dict = {}

        def reap() -> None:
            _, status, usage = os.wait4(proc.pid, 0)
            reaped.update(end=time.perf_counter(), status=status, maxrss=usage.ru_maxrss)

        waiter = threading.Thread(target=reap, daemon=True)
        waiter.start()
        waiter.join(timeout)
        timed_out = waiter.is_alive()
        if timed_out:
            with contextlib.suppress(ProcessLookupError):  # it may have just ended
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: this import only
            waiter.join(60)
    returncode = os.waitstatus_to_exitcode(reaped["status"]) if "status" in reaped else None
    proc.returncode = returncode if returncode is not None else -9  # reaped here, not by Popen
    return Timed(
        returncode=None if timed_out else returncode,
        seconds=reaped.get("end", time.perf_counter()) - started,
        rss_mb=reaped.get("maxrss", 0) / 1024,  # KiB on Linux
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        timed_out=timed_out,
    )


def parse_summary(text: str) -> tuple[list[str], list[dict], dict] | None:
    """The summary table of ``sis_import``: (column names, file rows, total row).

    Columns are found from the dashed line under the header, so extra
    columns (e.g. ``seconds``) and empty cells (the total's kind) are read
    by position.
    """
    lines = text.splitlines()
    for i, line in enumerate(lines[:-1]):
        below = lines[i + 1]
        if line.split()[:2] != ["file", "kind"] or not re.fullmatch(r"[- ]+", below):
            continue
        spans = [m.span() for m in re.finditer(r"-+", below)]
        names = [line[a:b].strip() for a, b in spans]
        files = []
        for row in lines[i + 2 :]:
            if re.fullmatch(r"[- ]+", row):
                continue
            if not row.strip():
                break
            cells = {name: row[a:b].strip() for name, (a, b) in zip(names, spans, strict=True)}
            if cells.get("file") == "total":
                return names, files, cells
            files.append(cells)
        return names, files, {}
    return None


def _int(value: str | None) -> int:
    try:
        return int(str(value).replace(",", ""))
    except ValueError:
        return 0


def _seconds_column(columns: list[str]) -> str | None:
    return next((c for c in columns if c in {"seconds", "s", "secs"}), None)


def rejection(timed: Timed) -> str | None:
    """Why the command did not take a bundle (None when it did)."""
    text = timed.stdout + timed.stderr
    first_error = next(
        (line.strip() for line in timed.stderr.splitlines() if line.strip()), "no message"
    )
    first_error = re.sub(r"^(\S+): \1: ", r"\1: ", first_error)  # "f.csv: f.csv: ..."
    if timed.timed_out:
        return "the dry run timed out"
    if timed.returncode == 2:
        return f"usage error: {first_error}"
    summary = parse_summary(timed.stdout)
    if summary is None:
        return f"exit {timed.returncode}, no summary table: {first_error}"
    _, files, total = summary
    unknown = [f["file"] for f in files if f.get("kind") == "?"]
    if unknown or "unrecognised header" in text or "unrecognized header" in text:
        return f"files not recognised ({', '.join(unknown) or '?'}): {first_error}"
    if _int(total.get("rows")) == 0:
        return f"no rows read (exit {timed.returncode}): {first_error}"
    return None


def sis_import(env: dict, directory: Path, log_name: str, timeout: float, *extra: str) -> Timed:
    cmd = [PYTHON, "manage.py", "sis_import", str(directory), "--domain", DOMAIN]
    return run_timed([*cmd, "--no-notifications", *extra], env, log_name, timeout)


def final_state(env: dict) -> dict:
    """Counts of what the imports left (run in a subprocess with the run's database)."""
    proc = subprocess.run(
        [PYTHON, "-m", "bench.district_import", "--state"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout)


def _state() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "observers_project.settings")
    import django

    django.setup()
    from django.db.models import Count

    from linking.models import Account, Course, Enrollment, Login, ObservationLink

    root = Account.objects.roots().get(domain=DOMAIN)
    enrollments = (
        Enrollment.objects.filter(root_account=root)
        .exclude(workflow_state="deleted")
        .values("type")
        .annotate(n=Count("id"))
    )
    state = {
        "logins": Login.objects.active().filter(root_account=root).count(),
        "sub_accounts": Account.objects.filter(root_account=root).exclude(pk=root.pk).count(),
        "courses": Course.objects.filter(root_account=root).count(),
        "links": ObservationLink.objects.active().filter(root_account=root).count(),
        **{f"enrollments_{row['type']}": row["n"] for row in enrollments},
    }
    print(json.dumps(state))


def fresh_db(db: str, name: str, tmp: Path) -> str:
    if db == "sqlite":
        path = tmp / f"{name}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    return fresh_database("postgres", None, name)  # load.py's: DROP ... WITH (FORCE), CREATE


def run_format(db, scale, fmt, district_dir, probe_dir, args, tmp, runs, notes, states):
    users = json.loads((district_dir / "district.json").read_text())["params"]["users"]
    tag = f"{db}_{scale:g}_{fmt}"
    try:
        url = fresh_db(db, args.pg_db if db == "postgres" else tag, tmp)
    except Exception as exc:  # PostgreSQL not reachable: say so, keep the other runs
        notes.append(f"{tag}: skipped, cannot create the database ({' '.join(str(exc).split())})")
        log(notes[-1])
        return
    env = run_env(url, domain=DOMAIN)
    log(f"{tag}: migrate, root account")
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "createcachetable")
    manage(env, "create_root_account", "Bench District", "--domain", DOMAIN)
    probe = sis_import(env, probe_dir / fmt / "base", f"{tag}_probe", args.timeout, "--dry-run")
    reason = rejection(probe)
    if reason:
        notes.append(f"{tag}: skipped, `sis_import` does not take the {fmt} files: {reason}")
        log(notes[-1])
        return
    plan = [
        ("first import", district_dir / fmt / "base"),
        ("re-import, unchanged", district_dir / fmt / "base"),
        ("re-import, 1% changed", district_dir / fmt / "changed"),
    ]
    if fmt == "oneroster" and args.delta:
        plan += [
            ("bulk base again (undo the 1%)", district_dir / fmt / "base"),
            ("delta (the 1% again)", district_dir / fmt / "delta"),
        ]
    for index, (label, directory) in enumerate(plan):
        log(f"{tag}: {label} ({directory.relative_to(district_dir)})")
        timed = sis_import(env, directory, f"{tag}_{index}", args.timeout)
        run = Run(db, scale, users, fmt, label, seconds=timed.seconds, rss_mb=timed.rss_mb)
        run.returncode = timed.returncode
        summary = parse_summary(timed.stdout)
        if summary:
            run.columns, run.files, total = summary
            run.rows = _int(total.get("rows"))
            run.errors = total.get("errors", "")
        runs.append(run)
        log(
            f"{tag}: {label}: {run.rows} rows in {run.seconds:.1f} s = {run.rows_per_s} rows/s, "
            f"peak RSS {run.rss_mb:.0f} MB, exit {run.returncode}, errors {run.errors or '?'}"
        )
        if timed.timed_out:
            notes.append(f"{tag}: {label} stopped after --timeout {args.timeout:g} s")
            log(notes[-1])
            break
        if index == 0:
            data = tmp / "settle.json"
            data.write_text("{}")
            started = time.perf_counter()
            dbtask(env, "settle", data)
            log(f"{tag}: VACUUM (ANALYZE), CHECKPOINT: {time.perf_counter() - started:.1f} s")
    states[tag] = final_state(env)
    log(f"{tag}: final state {states[tag]}")


def markdown(db: str, runs: list[Run], notes: list[str], states: dict, meta: dict) -> str:
    out = [
        f"# District import benchmark ({db})",
        "",
        f"{meta['when']} · {meta['host']} · {meta['cpus']} CPUs · commit {meta['commit']}",
        f"Command: `{meta['command']}`",
        "",
    ]
    for scale, summary in meta["districts"].items():
        p, c = summary["params"], summary["changes"]
        out.append(
            f"- scale {scale}: {p['users']:,} users ({summary['people']['students']:,} students, "
            f"{summary['people']['teachers']:,} teachers, {summary['people']['guardians']:,} "
            f"guardians) in {p['schools']} schools, {p['classes']:,} classes, "
            f"{p['enrollments']:,} enrollments, {summary['agent_pairs']:,} agent pairs "
            f"({summary['links']:,} parent/guardian links); changed: {c['renamed_users']} "
            f"renamed, {c['dropped_enrollments']} + {c['added_enrollments']} enrollments "
            f"dropped + added, {c['moved_links']} links moved; generated in "
            f"{summary['seconds']:.1f} s"
        )
    out += [
        "",
        "Wall time = the `sis_import` process from start to exit, Django start-up included "
        f"(`manage.py sis_import --help` takes {meta.get('startup', 0):.1f} s here); "
        "peak RSS = that process's ru_maxrss.",
        "",
        "| scale | users | format | run | rows | wall s | rows/s | peak RSS MB | errors | exit |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        out.append(
            f"| {r.scale:g} | {r.users:,} | {r.format} | {r.label} | {r.rows:,} | "
            f"{r.seconds:.1f} | {r.rows_per_s:,} | {r.rss_mb:.0f} | {r.errors or '?'} | "
            f"{r.returncode} |"
        )
    out += ["", "Per file:", ""]
    out.append(
        "| scale | format | run | file | kind | rows | seconds | rows/s | created | restored "
        "| updated | deleted | unchanged | errors |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        seconds_column = _seconds_column(r.columns)
        for f in r.files:
            rows = _int(f.get("rows"))
            seconds = f.get(seconds_column, "") if seconds_column else ""
            try:
                rate = f"{rows / float(seconds):,.0f}" if seconds and float(seconds) else ""
            except ValueError:
                rate = ""
            kinds = ("created", "restored", "updated", "deleted", "unchanged", "errors")
            cells = [f.get(k, "") for k in kinds]
            out.append(
                f"| {r.scale:g} | {r.format} | {r.label} | {Path(f.get('file', '')).name} | "
                f"{f.get('kind', '')} | {rows:,} | {seconds or '-'} | {rate or '-'} | "
                + " | ".join(cells)
                + " |"
            )
    if not any(_seconds_column(r.columns) for r in runs):
        out += ["", "(`sis_import` printed no `seconds` column: per-file rows/s not available.)"]
    peaks: dict[str, list[str]] = {}
    for r in runs:
        peaks.setdefault(r.format, [])
        entry = f"{r.scale:g}: {r.rss_mb:.0f} MB"
        if r.label == "first import":
            peaks[r.format].append(entry)
    if peaks:
        out += ["", "Peak RSS of the first import by scale (flat = memory does not grow):"]
        out += [f"- {fmt}: " + ", ".join(entries) for fmt, entries in peaks.items()]
    if states:
        out += ["", "What the imports left (last run of each scale and format):", ""]
        out += [f"- {tag}: {json.dumps(state)}" for tag, state in states.items()]
    if notes:
        out += ["", "Notes:", ""] + [f"- {note}" for note in notes]
    return "\n".join(out) + "\n"


def _commit() -> str:
    proc = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return proc.stdout.strip() or "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.district_import",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--db", default="postgres", help="postgres, sqlite or postgres,sqlite")
    parser.add_argument(
        "--scales", default="0.1,1", help="district sizes, 1 = 100,000 users (default 0.1,1)"
    )
    parser.add_argument("--formats", default=",".join(FORMATS), help="canvas,oneroster")
    parser.add_argument("--pg-db", default="bench_district", help="PostgreSQL database to rebuild")
    parser.add_argument("--oneroster-version", choices=("1.1", "1.2"), default="1.1")
    parser.add_argument("--no-delta", dest="delta", action="store_false")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per import")
    parser.add_argument("--workdir", type=Path, help="where the districts go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the districts and SQLite files")
    parser.add_argument("--state", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.state:
        _state()
        return 0
    dbs = [d.strip() for d in args.db.split(",") if d.strip()]
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    scales = [float(s) for s in args.scales.split(",") if s.strip()]
    if set(dbs) - {"postgres", "sqlite"} or set(formats) - set(FORMATS) or not scales:
        parser.error("--db takes postgres/sqlite, --formats canvas/oneroster, --scales numbers")
    if args.pg_db.lower() in PROTECTED_DATABASES:
        parser.error(f"--pg-db {args.pg_db!r} is not a benchmark database; pick another name")
    if "127.0.0.1" not in PG_BASE and "localhost" not in PG_BASE and "postgres" in dbs:
        parser.error(f"BENCH_PG_URL {PG_BASE!r}: the benchmark only talks to 127.0.0.1")
    tmp = Path(tempfile.mkdtemp(prefix="bench-district-", dir=args.workdir))
    meta = {
        "when": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "commit": _commit(),
        "command": "python -m bench.district_import " + " ".join(argv or sys.argv[1:]),
        "districts": {},
    }
    try:
        log(f"districts in {tmp}")
        generate(tmp / "probe", PROBE, version=args.oneroster_version)
        districts = {}
        for scale in scales:
            started = time.perf_counter()
            log(f"generating the district at scale {scale:g}")
            summary = generate(
                tmp / f"scale_{scale:g}", Params.scaled(scale), version=args.oneroster_version
            )
            summary["seconds"] = time.perf_counter() - started
            meta["districts"][f"{scale:g}"] = summary
            districts[scale] = tmp / f"scale_{scale:g}"
        startup = run_timed(
            [PYTHON, "manage.py", "sis_import", "--help"],
            run_env(f"sqlite:///{tmp}/help.sqlite3"),
            "help",
            120,
        )
        meta["startup"] = startup.seconds
        log(f"Django start-up (manage.py sis_import --help): {startup.seconds:.1f} s")
        for db in dbs:
            runs: list[Run] = []
            notes: list[str] = []
            states: dict = {}
            for scale in scales:
                for fmt in formats:
                    run_format(
                        db, scale, fmt, districts[scale], tmp / "probe", args, tmp, runs, notes,
                        states,
                    )  # fmt: skip
            text = markdown(db, runs, notes, states, meta)
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / f"district_{db}.md").write_text(text)
            print(text, flush=True)
            log(f"written to {RESULTS / f'district_{db}.md'}")
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
