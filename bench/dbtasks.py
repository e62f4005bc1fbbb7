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


def _write_requests(data: dict) -> list[tuple[str, str, str, str, dict | None]]:
    """(title, method, path, token key, JSON body) of one request to each write endpoint."""
    users = data["users"]
    redeemer, code = data["redeem"][-1]
    parent, student = users["fresh_parents"][-1], users["student_ids"][0]
    (linked_parent, linked_student), *_ = active_links(data, limit=1)
    return [
        ("create pairing code", "post", "/api/v1/users/self/observer_pairing_codes",
         "code_student", None),
        ("redeem pairing code", "post", "/api/v1/users/self/observees", f"redeemer{redeemer}",
         {"pairing_code": code}),
        ("PUT link (admin)", "put", f"/api/v1/users/{parent}/observees/{student}", "admin", None),
        ("DELETE link (admin)", "delete",
         f"/api/v1/users/{linked_parent}/observees/{linked_student}", "admin", None),
    ]  # fmt: skip


def _plans(connection, prefix: str, queries) -> list[str]:
    """Each captured statement, with the plan of those that are SELECTs."""
    out = []
    for query in queries:
        sql = query["sql"]
        out.append(f"```sql\n{sql}\n```")
        if sql.lstrip().upper().startswith("SELECT"):
            with connection.cursor() as cursor:
                cursor.execute(prefix + sql)
                plan = "\n".join(" ".join(str(c) for c in row) for row in cursor.fetchall())
            out.append(f"```\n{plan}\n```\n")
    return out


def explain(data: dict) -> str:
    """EXPLAIN ANALYZE of every SELECT the hot GET endpoints run (or representative queries)."""
    from django.db import connection, transaction
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
        out += _plans(connection, prefix, ctx.captured_queries)
    # The write endpoints, each run once inside a transaction that is rolled
    # back: their statements are explained as they ran, and nothing stays.
    for title, method, path, token_key, body in _write_requests(data) if api_ok else []:
        with transaction.atomic():
            with CaptureQueriesContext(connection) as ctx:
                payload = {"data": json.dumps(body), "content_type": "application/json"}
                response = getattr(client, method)(
                    path,
                    **(payload if body else {}),
                    HTTP_HOST=data["domain"],
                    HTTP_AUTHORIZATION=f"Bearer {data['tokens'][token_key]}",
                )
            writes = [q for q in ctx.captured_queries if q["sql"].lstrip().upper() != "BEGIN"]
            out.append(
                f"## {title}: {method.upper()} {path} answered {response.status_code} "
                f"({len(writes)} statements; rolled back)\n"
            )
            out += _plans(connection, prefix, writes)
            transaction.set_rollback(True)
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
