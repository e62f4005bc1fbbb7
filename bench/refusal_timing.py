"""Does a refusal by a rule of who may observe answer later than a wrong input? (security.md §15)

    python -m bench.refusal_timing [--n 400] [--credentials-n 60] [--database-url URL]

A refused person is answered exactly as a wrong input on the same path
(text, status, rate-limit count). This measures the remaining signal, the
time the server takes, per path of the Canvas API a parent calls
(``POST /api/v1/users/self/observees``):

- ``pairing_code``: an unknown code, a revoked code (real but unusable),
  and a live code the rules refuse (a restriction on the parent);
- ``credentials``: the student's login with a wrong password, and the
  right password refused (restriction; protected student), with the
  production password hasher;
- ``access_token``: an unknown token, and the student's token refused
  (restriction; protected student).

Each request runs in-process through Django's test client (the whole
middleware stack, the view, the database; no network). Attempts of all
kinds on one path are shuffled together so drift hits them alike, after a
warm-up. Rate limits are raised out of the way (their bookkeeping still
runs). Output: per kind the median, 10th and 90th percentiles, mean and
standard deviation in milliseconds, and against the path's wrong input the
difference of medians and the AUC (the chance that a random refused request
is slower than a random wrong one: 0.5 is a coin toss). Results also go to
``bench/results/refusal_timing.md``. The database is a fresh SQLite file
unless ``--database-url`` names an empty PostgreSQL database.
"""

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DOMAIN = "timing.bench.test"


def _setup(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "observers_project.settings")
    # Out of the way: every attempt here is a failure, thousands from one address.
    os.environ["RATE_LIMIT_FAILURES"] = "100000000"
    os.environ["RATE_LIMIT_ADDRESS_FAILURES"] = "100000000"
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _school():
    """A school, a parent with a token, and students for each kind of attempt."""
    from linking.models import AuditSource, EnrollmentType
    from linking.services import accounts, safeguarding
    from linking.services.context import Actor
    from linking.services.enrollments import enroll_user
    from linking.services.pairing import issue_pairing_code, revoke_pairing_code
    from linking.services.tokens import issue_access_token
    from tests import factories

    root = factories.RootAccountFactory(domain=DOMAIN, credential_linking_allowed=True)
    staff = factories.UserFactory(name="Alice Admin")
    factories.LoginFactory(user=staff, root_account=root)
    accounts.make_account_admin(user=staff, account=root)
    course = factories.CourseFactory(account=root)
    staff_actor = Actor(user=staff, source=AuditSource.ADMIN)

    def person(name, password="Correct-horse-42"):
        user = factories.UserFactory(name=name)
        login = factories.LoginFactory(user=user, root_account=root)
        login.set_password(password)
        login.save(update_fields=["password"])
        return user, login

    parent, _ = person("Pat Parent")
    restricted, restricted_login = person("Rita Restricted")
    protected, protected_login = person("Pete Protected")
    revoked_for, _ = person("Ruth Revoked")
    for student in (restricted, protected, revoked_for):
        enroll_user(user=student, course=course, type=EnrollmentType.STUDENT)
    safeguarding.record_restriction(
        root_account=root, student=restricted, observer=parent, reason="Order", actor=staff_actor
    )
    safeguarding.protect_student(student=protected, root_account=root, actor=staff_actor)
    live = issue_pairing_code(student=restricted, root_account=root, actor=staff_actor)
    dead = issue_pairing_code(student=revoked_for, root_account=root, actor=staff_actor)
    revoke_pairing_code(pairing_code=dead.pairing_code, actor=staff_actor)
    return {
        "parent_token": issue_access_token(user=parent, actor=Actor.system())[1],
        "restricted_code": live.plaintext,
        "revoked_code": dead.plaintext,
        "restricted_login": restricted_login.unique_id,
        "protected_login": protected_login.unique_id,
        "restricted_token": issue_access_token(user=restricted, actor=Actor.system())[1],
        "protected_token": issue_access_token(user=protected, actor=Actor.system())[1],
    }


def _kinds(school) -> dict[str, list[tuple[str, dict, int]]]:
    """Per path: (kind, the POST body, the status every kind must answer)."""
    from linking.services.pairing import ALPHABET

    def unknown_code():
        return "".join(random.choice(ALPHABET) for _ in range(8))

    return {
        "pairing_code": [
            ("wrong: unknown code", lambda: {"pairing_code": unknown_code()}, 422),
            ("wrong: revoked code", lambda: {"pairing_code": school["revoked_code"]}, 422),
            ("refused: restriction", lambda: {"pairing_code": school["restricted_code"]}, 422),
        ],
        "credentials": [
            (
                "wrong: wrong password",
                lambda: {
                    "observee[unique_id]": school["restricted_login"],
                    "observee[password]": "Wrong-horse-42",
                },
                401,
            ),
            (
                "refused: restriction",
                lambda: {
                    "observee[unique_id]": school["restricted_login"],
                    "observee[password]": "Correct-horse-42",
                },
                401,
            ),
            (
                "refused: protected student",
                lambda: {
                    "observee[unique_id]": school["protected_login"],
                    "observee[password]": "Correct-horse-42",
                },
                401,
            ),
        ],
        "access_token": [
            ("wrong: unknown token", lambda: {"access_token": "1~" + "x" * 64}, 422),
            ("refused: restriction", lambda: {"access_token": school["restricted_token"]}, 422),
            (
                "refused: protected student",
                lambda: {"access_token": school["protected_token"]},
                422,
            ),
        ],
    }


def _measure(client, token, kinds, n: int, warmup: int) -> dict[str, list[float]]:
    plan = [kind for kind in kinds for _ in range(n)]
    random.shuffle(plan)
    warm = [kind for kind in kinds for _ in range(warmup)]
    times: dict[str, list[float]] = {kind[0]: [] for kind in kinds}
    for index, (name, body, status) in enumerate([*warm, *plan]):
        data = body()
        started = time.perf_counter()
        response = client.post(
            "/api/v1/users/self/observees",
            data,
            HTTP_HOST=DOMAIN,
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != status:
            raise SystemExit(f"{name}: answered {response.status_code}, expected {status}")
        if index >= len(warm):
            times[name].append(elapsed)
    return times


def _auc(slower: list[float], than: list[float]) -> float:
    """P(a random ``slower`` sample > a random ``than`` sample), ties counting half."""
    merged = sorted([(value, 1) for value in slower] + [(value, 0) for value in than])
    rank_sum, index = 0.0, 0
    while index < len(merged):
        end = index
        while end + 1 < len(merged) and merged[end + 1][0] == merged[index][0]:
            end += 1
        average = (index + end) / 2 + 1
        rank_sum += average * sum(1 for i in range(index, end + 1) if merged[i][1])
        index = end + 1
    n1, n2 = len(slower), len(than)
    return (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n2)


def _row(name: str, values: list[float], base: list[float] | None) -> str:
    deciles = statistics.quantiles(values, n=10)
    median = statistics.median(values)
    cells = [
        name,
        str(len(values)),
        f"{median:.2f}",
        f"{deciles[0]:.2f}",
        f"{deciles[-1]:.2f}",
        f"{statistics.fmean(values):.2f}",
        f"{statistics.stdev(values):.2f}",
    ]
    if base is None:
        cells += ["-", "-"]
    else:
        cells += [f"{median - statistics.median(base):+.2f}", f"{_auc(values, base):.2f}"]
    return "| " + " | ".join(cells) + " |"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=400, help="requests per kind (default 400)")
    parser.add_argument(
        "--credentials-n",
        type=int,
        default=60,
        help="requests per kind on the credentials path (each hashes a password; default 60)",
    )
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--database-url", default="", help="an empty database (default: SQLite)")
    args = parser.parse_args(argv)
    random.seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/refusal-timing.sqlite3"
        _setup(url)
        from django.db import connection
        from django.test import Client

        school = _school()
        client = Client()
        lines = [
            f"# Refusal timing ({connection.vendor}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"{platform.node()}, load average {os.getloadavg()[0]:.2f})",
            "",
            "Server time of `POST /api/v1/users/self/observees` in process (ms); "
            "Δ median and AUC against the path's first (wrong-input) kind.",
            "",
            "| path / kind | n | median | p10 | p90 | mean | stdev | Δ median | AUC |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for path, kinds in _kinds(school).items():
            n = args.credentials_n if path == "credentials" else args.n
            warmup = min(args.warmup, n)
            times = _measure(client, school["parent_token"], kinds, n, warmup)
            base_name = kinds[0][0]
            for name, _body, _status in kinds:
                base = None if name == base_name else times[base_name]
                lines.append(_row(f"{path}: {name}", times[name], base))
            print(f"{path} done", file=sys.stderr)
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "refusal_timing.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
