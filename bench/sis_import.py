"""Benchmark: importing user_observers.csv at scale (issue 5).

``python -m bench.sis_import --rows 100000`` writes users.csv, courses.csv,
enrollments.csv and user_observers.csv for a fresh root account (two
observers per student, each student in five courses), loads the people,
courses and student enrollments (untimed setup), then times the import of
user_observers.csv through ``services.sis.import_sis``: links, observer
enrollments (five per link) and audit events. It prints rows/s, the number
of SQL queries, this process's CPU time (the machine may be shared), and
peak RSS before and after the import.

Run it against a migrated database of its own, e.g.
``DATABASE_URL=postgres://root@127.0.0.1:5432/h_sis_bench``
or ``DATABASE_URL=sqlite:////tmp/h_sis_bench.sqlite3``.
``--full`` imports users.csv, courses.csv and enrollments.csv through the
importer too (timed per file; the per-row paths are much slower).
"""

import argparse
import csv
import os
import resource
import tempfile
import time
from pathlib import Path

COURSES_PER_STUDENT = 5
OBSERVERS_PER_STUDENT = 2


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "observers_project.settings")
    import django

    django.setup()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_files(directory: Path, rows: int, tag: str) -> dict[str, Path]:
    students = max(1, rows // OBSERVERS_PER_STUDENT)
    courses = max(COURSES_PER_STUDENT, students // 100)
    paths = {name: directory / f"{name}.csv" for name in ("users", "courses", "enrollments")}
    paths["user_observers"] = directory / "user_observers.csv"
    with paths["users"].open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user_id", "login_id", "first_name", "last_name", "status"])
        for n in range(students):
            writer.writerow([f"S{n}", f"s{n}@{tag}", "Student", f"N{n}", "active"])
        for n in range(rows):
            writer.writerow([f"P{n}", f"p{n}@{tag}", "Parent", f"N{n}", "active"])
    with paths["courses"].open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["course_id", "short_name", "long_name", "account_id", "status"])
        for n in range(courses):
            writer.writerow([f"C{n}", f"C{n}", f"Course {n}", "", "active"])
    with paths["enrollments"].open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["course_id", "user_id", "role", "status"])
        for n in range(students):
            for k in range(COURSES_PER_STUDENT):
                writer.writerow([f"C{(n + k * 7) % courses}", f"S{n}", "student", "active"])
    with paths["user_observers"].open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["observer_id", "student_id", "status"])
        for n in range(rows):
            writer.writerow([f"P{n}", f"S{n // OBSERVERS_PER_STUDENT}", "active"])
    return paths


def bulk_setup(root_account, paths: dict[str, Path]) -> None:
    """Load users, courses and student enrollments from the files with plain bulk inserts.

    Setup only (no links, no observer enrollments, no audit rows): the timed
    part is the user_observers import, which goes through the services.
    """
    from linking.models import Course, Enrollment, Login, User

    def chunks(reader, size=5000):
        chunk = []
        for row in reader:
            chunk.append(row)
            if len(chunk) == size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    with paths["users"].open(newline="") as source:
        for chunk in chunks(csv.DictReader(source)):
            users = User.objects.bulk_create(
                [
                    User(
                        name=f"{r['first_name']} {r['last_name']}",
                        sortable_name=f"{r['last_name']}, {r['first_name']}",
                        short_name=r["first_name"],
                    )
                    for r in chunk
                ]
            )
            Login.objects.bulk_create(
                [
                    Login(
                        user=user,
                        root_account=root_account,
                        unique_id=r["login_id"],
                        sis_user_id=r["user_id"],
                    )
                    for user, r in zip(users, chunk, strict=True)
                ]
            )
    with paths["courses"].open(newline="") as source:
        Course.objects.bulk_create(
            [
                Course(
                    name=r["long_name"],
                    course_code=r["short_name"],
                    account=root_account,
                    root_account=root_account,
                    sis_course_id=r["course_id"],
                )
                for r in csv.DictReader(source)
            ]
        )
    course_ids = dict(
        Course.objects.filter(root_account=root_account).values_list("sis_course_id", "id")
    )
    with paths["enrollments"].open(newline="") as source:
        for chunk in chunks(csv.DictReader(source)):
            user_ids = dict(
                Login.objects.filter(
                    root_account=root_account, sis_user_id__in={r["user_id"] for r in chunk}
                ).values_list("sis_user_id", "user_id")
            )
            Enrollment.objects.bulk_create(
                [
                    Enrollment(
                        user_id=user_ids[r["user_id"]],
                        course_id=course_ids[r["course_id"]],
                        root_account=root_account,
                        type=r["role"],
                    )
                    for r in chunk
                ]
            )


def server_cpu_seconds() -> float | None:
    """CPU time of this connection's PostgreSQL backend (same host only), else None."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class QueryCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def timed_import(root_account, path: Path, label: str) -> dict:
    from django.db import connection

    from linking.models import AuditSource
    from linking.services.context import Actor
    from linking.services.sis import import_sis

    counter = QueryCounter()
    server_start = server_cpu_seconds()
    start, cpu_start = time.perf_counter(), time.process_time()
    with connection.execute_wrapper(counter):
        report = import_sis(
            paths=[path],
            root_account=root_account,
            actor=Actor(user=None, source=AuditSource.SIS),
            source_name=f"bench {label}",
        )
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    server_end = server_cpu_seconds()
    server = None if server_start is None or server_end is None else server_end - server_start
    rows = report.totals()["rows"]
    result = {
        "file": label,
        "rows": rows,
        "seconds": round(elapsed, 2),
        "cpu_seconds": round(cpu, 2),
        "server_cpu_seconds": None if server is None else round(server, 2),
        "rows_per_s": round(rows / elapsed) if elapsed else 0,
        "queries": counter.count,
        "errors": report.error_count,
        "counts": {k: v for k, v in report.totals().items() if k not in {"rows", "errors"}},
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    print(
        f"{label:<18} {rows:>8} rows  {elapsed:7.2f} s  {result['rows_per_s']:>7} rows/s  "
        f"(CPU: this process {cpu:.2f} s"
        + ("" if server is None else f", PostgreSQL backend {server:.2f} s")
        + ")  "
        f"{counter.count:>6} queries (COPY not counted)  errors {report.error_count}  "
        f"peak RSS {result['peak_rss_mb']} MB  {result['counts']}",
        flush=True,
    )
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sis_import", description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000, help="user_observers.csv rows")
    parser.add_argument("--full", action="store_true", help="import every file via the importer")
    parser.add_argument("--reimport", action="store_true", help="time a second, idempotent run")
    args = parser.parse_args(argv)
    _setup_django()

    from django.db import connection

    from linking.models import Enrollment, ObservationLink
    from linking.services.accounts import create_root_account

    tag = f"sisbench{int(time.time())}.test"
    root_account = create_root_account(name=f"SIS bench {tag}", domain=tag)
    print(
        f"database: {connection.vendor} ({connection.settings_dict['NAME']}); "
        f"rows {args.rows}; cpus {os.cpu_count()}; root account {tag}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="sis-bench-") as tmp:
        paths = write_files(Path(tmp), args.rows, tag)
        print(f"files written; RSS so far {peak_rss_mb():.1f} MB", flush=True)
        start = time.perf_counter()
        if args.full:
            for name in ("users", "courses", "enrollments"):
                timed_import(root_account, paths[name], f"{name}.csv")
        else:
            bulk_setup(root_account, paths)
            # Fresh planner statistics, as autovacuum/ANALYZE keep them on a live database.
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
            print(
                f"setup (bulk insert, untimed) {time.perf_counter() - start:.1f} s; "
                f"peak RSS {peak_rss_mb():.1f} MB",
                flush=True,
            )
        timed_import(root_account, paths["user_observers"], "user_observers.csv")
        if args.reimport:
            timed_import(root_account, paths["user_observers"], "user_observers.csv again")
    links = ObservationLink.objects.active().filter(root_account=root_account).count()
    observer_enrollments = Enrollment.objects.filter(
        root_account=root_account, type="observer"
    ).count()
    print(f"active links {links}; observer enrollments {observer_enrollments}", flush=True)


if __name__ == "__main__":
    main()
