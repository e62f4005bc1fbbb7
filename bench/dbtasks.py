"""Database-side helpers for the load run, executed in a subprocess with the run's environment.

    python -m bench.dbtasks active_links  <data.json>   -> JSON list of [observer, student]
    python -m bench.dbtasks verify_redeem <data.json>   -> JSON {"codes": n, "links": m}
    python -m bench.dbtasks explain       <data.json>   -> query plans of the hot requests
    python -m bench.dbtasks settle        <data.json>   -> vacuum and checkpoint after the load

Only reads (and EXPLAIN, VACUUM); nothing here writes application rows.
"""

import json
import os
import sys
from pathlib import Path


def _setup():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "observers_project.settings")
    import django

    django.setup()


def active_links(data: dict, limit: int = 20000) -> list[list[int]]:
    """Active links of ordinary parents (not the personas), newest first: DELETE targets."""
    from linking.models import ObservationLink

    users = data["users"]
    personas = {users["parent2"], users["observer100"], *users["redeemers"]}
    rows = (
        ObservationLink.objects.active()
        .filter(root_account_id=data["root_account_id"])
        .exclude(observer_id__in=personas)
        .order_by("-id")
        .values_list("observer_id", "student_id")[:limit]
    )
    return [list(r) for r in rows]


def verify_redeem(data: dict) -> dict:
    """Codes redeemed by the redeemers and links they hold: equal when each code made one link."""
    from linking.models import ObservationLink, PairingCode

    redeemers = data["users"]["redeemers"]
    codes = PairingCode.objects.filter(
        redeemed_by_id__in=redeemers, workflow_state=PairingCode.State.REDEEMED
    ).count()
    links = ObservationLink.objects.filter(observer_id__in=redeemers).count()
    return {"codes": codes, "links": links}


def settle(data: dict) -> str:
    """Bring a freshly bulk-loaded database to the steady state a live one is in.

    A million rows written by COPY leave every page without hint bits or a
    visibility map, so the first requests would pay for writing them and
    autovacuum would start in the middle of the measurement; a live
    database has long been vacuumed. VACUUM (ANALYZE) and a CHECKPOINT do
    that work before measuring (on SQLite: ANALYZE and a WAL checkpoint).
    """
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("VACUUM (ANALYZE)")
            cursor.execute("CHECKPOINT")
        else:
            cursor.execute("ANALYZE")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return "settled"


def _requests(data: dict) -> list[tuple[str, str, str]]:
    users = data["users"]
    return [
        ("observees of a parent of two", "/api/v1/users/self/observees", "parent2"),
        (
            "observees of an observer of 100 (per_page=100, avatar_url)",
            "/api/v1/users/self/observees?per_page=100&include[]=avatar_url",
            "observer100",
        ),
        ("observers of a student", "/api/v1/users/self/observers", "observed_student"),
        (
            "show observee",
            f"/api/v1/users/self/observees/{users['children'][0]}",
            "parent2",
        ),
    ]


REPRESENTATIVE = [
    # Used when the API is absent: the lookups any implementation needs.
    (
        "token lookup",
        "SELECT * FROM linking_accesstoken WHERE token_hash = %s AND revoked_at IS NULL",
        lambda d: ["0" * 64],
    ),
    (
        "active links of an observer",
        "SELECT * FROM linking_observationlink WHERE observer_id = %s "
        "AND root_account_id = %s AND workflow_state = 'active' ORDER BY id",
        lambda d: [d["users"]["observer100"], d["root_account_id"]],
    ),
    (
        "active links of a student",
        "SELECT * FROM linking_observationlink WHERE student_id = %s "
        "AND root_account_id = %s AND workflow_state = 'active'",
        lambda d: [d["users"]["observed_student"], d["root_account_id"]],
    ),
    (
        "observed users, sorted",
        "SELECT u.* FROM linking_user u JOIN linking_observationlink l ON l.student_id = u.id "
        "WHERE l.observer_id = %s AND l.workflow_state = 'active' "
        "ORDER BY u.sortable_name, u.id LIMIT 100",
        lambda d: [d["users"]["observer100"]],
    ),
    (
        "pairing code lookup",
        "SELECT * FROM linking_pairingcode WHERE code_hash = %s AND workflow_state = 'active' "
        "AND expires_at > now()",
        lambda d: ["0" * 64],
    ),
]


def _write_lookups(data: dict) -> list[tuple[str, str, list]]:
    """The SELECTs a redemption, a code issue and a link PUT/DELETE run, with real ids."""
    from django.db import connection
    from django.db.models import Q
    from django.utils import timezone

    from linking.models import Enrollment, ObservationLink, PairingCode
    from linking.models.courses import mirrorable_q
    from linking.services import pairing, permissions

    users = data["users"]
    parent, student, root = users["parent2"], users["children"][0], data["root_account_id"]
    now = connection.ops.adapt_datetimefield_value(timezone.now())

    def orm(queryset):
        sql, params = queryset.query.sql_with_params()
        return sql, list(params)

    return [
        (
            "both users' root accounts (every link write, every admin check)",
            permissions._associated_sql(2),
            [parent, student, "deleted", parent, student, "deleted", parent, student, "active"],
        ),
        (
            "a redeemable code by its hash, with its student",
            pairing._code_sql(),
            [root, "0" * 64, "active", now],
        ),
        (
            "the pair's link row (locked before create or restore)",
            *orm(ObservationLink.objects.filter(observer_id=parent, student_id=student,
                                                root_account_id=root)),
        ),
        (
            "the student's mirrorable and the observer's existing enrollments",
            *orm(Enrollment.objects.filter(
                mirrorable_q(user_id=student)
                | Q(user_id=parent, associated_user_id=student),
                root_account_id=root,
            ).order_by("course_id", "id")),
        ),
        (
            "a student's active codes (issuing a code)",
            *orm(PairingCode.objects.redeemable().filter(student_id=student)
                 .order_by("-created_at", "-id").values_list("pk", flat=True)),
        ),
        (
            "the pair's active links on a root account (DELETE)",
            *orm(ObservationLink.objects.active().filter(observer_id=parent, student_id=student,
                                                         root_account_id__in=[root])),
        ),
    ]  # fmt: skip


def explain(data: dict) -> str:
    """EXPLAIN ANALYZE of every SELECT the hot GET endpoints run (or representative queries)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    prefix = "EXPLAIN ANALYZE " if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN "
    out = [f"# Query plans ({connection.vendor})\n"]
    client = Client()
    api_ok = False
    for title, path, token_key in _requests(data):
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(
                path,
                HTTP_HOST=data["domain"],
                HTTP_AUTHORIZATION=f"Bearer {data['tokens'][token_key]}",
            )
        if response.status_code != 200:
            out.append(f"## {title}: GET {path} answered {response.status_code}; no plans\n")
            continue
        api_ok = True
        out.append(f"## {title}: GET {path} ({len(ctx.captured_queries)} queries)\n")
        for query in ctx.captured_queries:
            sql = query["sql"]
            out.append(f"```sql\n{sql}\n```")
            if sql.lstrip().upper().startswith("SELECT"):
                with connection.cursor() as cursor:
                    cursor.execute(prefix + sql)
                    plan = "\n".join(" ".join(str(c) for c in row) for row in cursor.fetchall())
                out.append(f"```\n{plan}\n```\n")
    if api_ok:
        out.append("## Lookups of the write endpoints (redeem, create code, PUT, DELETE)\n")
        for title, sql, params in _write_lookups(data):
            with connection.cursor() as cursor:
                cursor.execute(prefix + sql, params)
                plan = "\n".join(" ".join(str(c) for c in row) for row in cursor.fetchall())
            out.append(f"### {title}\n```sql\n{sql}\n```\n```\n{plan}\n```\n")
    if not api_ok:
        out.append("## Representative lookups (the API did not answer)\n")
        for title, sql, params in REPRESENTATIVE:
            if connection.vendor != "postgresql":
                sql = sql.replace("now()", "CURRENT_TIMESTAMP")
            with connection.cursor() as cursor:
                cursor.execute(prefix + sql, params(data))
                plan = "\n".join(" ".join(str(c) for c in row) for row in cursor.fetchall())
            out.append(f"### {title}\n```sql\n{sql}\n```\n```\n{plan}\n```\n")
    return "\n".join(out)


def main(argv: list[str]) -> None:
    task, path = argv[1], argv[2]
    _setup()
    data = json.loads(Path(path).read_text())
    if task == "active_links":
        print(json.dumps(active_links(data)))
    elif task == "verify_redeem":
        print(json.dumps(verify_redeem(data)))
    elif task == "explain":
        print(explain(data))
    elif task == "settle":
        print(settle(data))
    else:
        raise SystemExit(f"unknown task {task}")


if __name__ == "__main__":
    main(sys.argv)
