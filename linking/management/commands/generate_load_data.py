"""Generate a large, realistic tenant for the benchmarks in ``bench/``.

    manage.py generate_load_data --users 1000000 --links 1000000 --codes 50000 --courses 5000

One root account (``--domain``, default ``bench.test``) with students enrolled
in one to three courses each, parents observing one to four children, observer
enrollments consistent with the links (canvas-behaviour.md §5: an active link
gives the observer an observer enrollment per mirrorable student enrollment of
the student, invited becoming active; a deleted link's observer enrollments are
deleted), about 5% of links deleted, pairing codes of which a fifth are expired,
a login and an avatar url for everyone, and a few API tokens.

It also creates the benchmark personas: a parent with two children, an observer
of 100 students, a student who issues codes, a student whose observers are
listed, an account admin, fifty "redeemer" parents and twenty parents without
links (targets for PUT). Token and code plaintexts are written to ``--output``
(JSON) for the load run.

THIS IS A DATA-GENERATION TOOL FOR BENCHMARKS ONLY. To build a million links in
minutes it writes rows directly (COPY on PostgreSQL, executemany in big
batches on SQLite) instead of going through ``linking.services``; it
reproduces the services' mirroring rules in bulk and writes no audit rows.
Nothing else in the project may write links, codes or observer enrollments
this way.
"""

import json
import random
import secrets
import time
import uuid
from datetime import timedelta
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from linking.models import (
    AccessToken,
    Account,
    AccountAdmin,
    Course,
    Enrollment,
    Login,
    ObservationLink,
    PairingCode,
    User,
)
from linking.services.accounts import builtin_admin_role
from linking.services.pairing import ALPHABET, CODE_LENGTH, format_code, hash_code
from linking.services.tokens import hash_token

FIRST = ["Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea"]
LAST = ["Abbott", "Baker", "Chen", "Diaz", "Evans", "Fox", "Garcia", "Haas", "Ito", "Jones", "Khan"]

PERSONA_LINKS = 102  # observer of 100 + parent of 2
PERSONA_STUDENTS = (
    103  # 0-99 observed by the observer of 100, 100-101 the two children, 102 issues codes
)
REDEEMERS = 50
FRESH_PARENTS = 20
EXTRA_USERS = 3 + REDEEMERS + FRESH_PARENTS  # parent2, observer100, admin, redeemers, fresh
MAX_ACTIVE_CODES = 5
DELETED_LINK_SHARE = 0.05


def _student_courses(s: int, courses: int) -> list[tuple[int, str]]:
    """Course indexes and states of student ``s``: deterministic, so nothing is kept in memory."""
    n = 1 + s % 3
    result = []
    for k in range(n):
        course = (s * 7919 + k * 104729) % courses
        if k == 0 and s % 20 == 1:
            state = "invited"
        elif k == 2 and s % 10 == 0:
            state = "completed"
        else:
            state = "active"
        result.append((course, state))
    return result


def cols(names: str) -> list[str]:
    return names.split()


MIRRORED = {"invited": "active", "active": "active", "inactive": "inactive"}


class BulkWriter:
    """COPY on PostgreSQL, executemany in batches on SQLite; explicit ids."""

    def __init__(self, batch: int = 50_000):
        self.vendor = connection.vendor
        self.batch = batch
        self.counts: dict[str, int] = {}

    def dt(self, value):
        if value is None or self.vendor == "postgresql":
            return value
        return connection.ops.adapt_datetimefield_value(value)

    def uuid(self, value: uuid.UUID):
        return value if self.vendor == "postgresql" else value.hex

    def skip_foreign_key_triggers(self) -> bool:
        """On PostgreSQL, skip the deferred per-row foreign-key checks for this transaction.

        Django's foreign keys are DEFERRABLE INITIALLY DEFERRED, so a million
        rows queue millions of trigger checks that all run at COMMIT (minutes).
        The generator assigns every id itself from rows it has just written,
        so the references are valid by construction. Needs a superuser;
        without one the checks simply run.
        """
        if self.vendor != "postgresql":
            return False
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL session_replication_role = replica")
        except DatabaseError:
            return False
        return True

    def next_id(self, model) -> int:
        with connection.cursor() as cursor:
            # Table names come from model metadata, never from input.
            table = model._meta.db_table
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")  # noqa: S608
            return cursor.fetchone()[0] + 1

    def write(self, model, columns: list[str], rows) -> int:
        table = model._meta.db_table
        count = 0
        with connection.cursor() as wrapper:
            raw = wrapper.cursor
            if self.vendor == "postgresql":
                with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                        count += 1
            else:
                marks = ", ".join("?" * len(columns))
                sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
                chunk = []
                for row in rows:
                    chunk.append(row)
                    if len(chunk) >= self.batch:
                        raw.executemany(sql, chunk)
                        count += len(chunk)
                        chunk = []
                if chunk:
                    raw.executemany(sql, chunk)
                    count += len(chunk)
        self.counts[table] = self.counts.get(table, 0) + count
        return count

    def finish(self, models) -> None:
        with connection.cursor() as cursor:
            for model in models:
                table = model._meta.db_table
                if self.vendor == "postgresql":
                    top = f"SELECT COALESCE(MAX(id), 1) FROM {table}"  # noqa: S608
                    cursor.execute(
                        f"SELECT setval(pg_get_serial_sequence(%s, 'id'), ({top}))", [table]
                    )
            cursor.execute("ANALYZE")


class Command(BaseCommand):
    help = "Bulk-generate a realistic tenant for benchmarks (writes rows directly; bench only)."

    def add_arguments(self, parser):
        parser.add_argument("--users", type=int, required=True)
        parser.add_argument("--links", type=int, required=True)
        parser.add_argument("--codes", type=int, default=1000)
        parser.add_argument("--courses", type=int, default=100)
        parser.add_argument("--domain", default="bench.test")
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument(
            "--output", default="bench/results/load_data.json", help="JSON with token plaintexts"
        )

    def handle(self, *args, **opts):
        started = time.monotonic()
        # Reproducible benchmark data, not secrets (tokens use secrets).
        rng = random.Random(opts["seed"])  # noqa: S311
        users, links = opts["users"], opts["links"]
        courses = opts["courses"]
        if courses < 3:
            raise CommandError("--courses must be at least 3")
        if links < PERSONA_LINKS + 1:
            raise CommandError(f"--links must be at least {PERSONA_LINKS + 1}")
        general_links = links - PERSONA_LINKS
        parents = max(1, round(general_links / 2.5))
        students = users - EXTRA_USERS - parents
        if students < PERSONA_STUDENTS + 4:
            raise CommandError(
                f"--users too small: {users} users leave {students} students for {links} links"
            )
        if Account.objects.filter(domain=opts["domain"]).exists():
            raise CommandError(f"A root account already serves {opts['domain']}")
        span = students - PERSONA_STUDENTS
        codes = min(opts["codes"], span * MAX_ACTIVE_CODES)

        with transaction.atomic():
            result = self._generate(
                rng, opts["domain"], students, parents, general_links, codes, courses
            )
        result["seconds"] = round(time.monotonic() - started, 1)
        output = Path(opts["output"])
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result))
        self.stdout.write(
            f"Generated {json.dumps(result['counts'])} in {result['seconds']} s; "
            f"tokens and codes in {output}"
        )

    def _generate(self, rng, domain, students, parents, general_links, codes, courses):
        w = BulkWriter()
        w.skip_foreign_key_triggers()
        span = students - PERSONA_STUDENTS
        now = timezone.now()
        now_db = w.dt(now)
        root = Account.objects.create(name=f"Bench {domain}", domain=domain, avatars_enabled=True)
        role = builtin_admin_role()

        # User ids: students first, then the general parents, then the personas.
        first_user = w.next_id(User)
        student_id = [first_user + s for s in range(students)]
        parent_base = first_user + students
        persona_base = parent_base + parents
        parent2 = persona_base
        observer100 = persona_base + 1
        admin = persona_base + 2
        redeemers = [persona_base + 3 + i for i in range(REDEEMERS)]
        fresh = [persona_base + 3 + REDEEMERS + i for i in range(FRESH_PARENTS)]
        total_users = students + parents + EXTRA_USERS

        def user_rows():
            for i in range(total_users):
                uid = first_user + i
                first, last = FIRST[uid % len(FIRST)], LAST[(uid // 7) % len(LAST)]
                name = f"{first} {last}{uid}"
                uu = uuid.UUID(int=rng.getrandbits(128), version=4)
                yield (
                    uid,
                    "!",
                    None,
                    False,
                    w.uuid(uu),
                    name,
                    f"{last}{uid}, {first}",
                    name,
                    f"u{uid}@{domain}",
                    f"https://avatars.example.org/{uu.hex}.png",
                    "",
                    "",
                    "registered",
                    uid == admin,
                    now_db,
                    now_db,
                )

        w.write(
            User,
            cols(
                "id password last_login is_superuser uuid name sortable_name short_name email "
                "avatar_url pronouns locale workflow_state is_staff created_at updated_at"
            ),
            user_rows(),
        )
        first_login = w.next_id(Login)
        w.write(
            Login,
            cols("id user_id root_account_id unique_id password sis_user_id integration_id "
            "workflow_state created_at"),
            (
                (first_login + i, first_user + i, root.pk, f"u{first_user + i}", "",
                 f"S{first_user + i}", None, "active", now_db)
                for i in range(total_users)
            ),
        )  # fmt: skip
        admin_user = User.objects.get(pk=admin)
        AccountAdmin.objects.create(user=admin_user, account=root, root_account=root, role=role)

        first_course = w.next_id(Course)
        w.write(
            Course,
            cols("id name course_code account_id root_account_id sis_course_id workflow_state "
            "created_at"),
            (
                (first_course + c, f"Course {c}", f"C{c}", root.pk, root.pk, f"bench-c{c}",
                 "available", now_db)
                for c in range(courses)
            ),
        )  # fmt: skip

        # Links: (observer id, student index, deleted?).
        link_plan: list[tuple[int, int, bool]] = []
        link_plan += [(observer100, s, False) for s in range(100)]
        link_plan += [(parent2, 100, False), (parent2, 101, False)]
        counts = [rng.randint(1, 4) for _ in range(parents)]
        diff = general_links - sum(counts)
        while diff:
            i = rng.randrange(parents)
            if diff > 0 and counts[i] < 4:
                counts[i] += 1
                diff -= 1
            elif diff < 0 and counts[i] > 1:
                counts[i] -= 1
                diff += 1
        for p, k in enumerate(counts):
            for s in rng.sample(range(PERSONA_STUDENTS, students), k):
                link_plan.append((parent_base + p, s, rng.random() < DELETED_LINK_SHARE))

        first_enrollment = w.next_id(Enrollment)
        next_enrollment = [first_enrollment]

        def enrollment_rows():
            for s in range(students):
                for course, state in _student_courses(s, courses):
                    eid = next_enrollment[0]
                    next_enrollment[0] += 1
                    yield (eid, student_id[s], first_course + course, root.pk, "student", state,
                           None, now_db, now_db)  # fmt: skip
            for observer, s, deleted in link_plan:
                for course, state in _student_courses(s, courses):
                    if state not in MIRRORED:
                        continue
                    eid = next_enrollment[0]
                    next_enrollment[0] += 1
                    yield (eid, observer, first_course + course, root.pk, "observer",
                           "deleted" if deleted else MIRRORED[state], student_id[s],
                           now_db, now_db)  # fmt: skip

        w.write(
            Enrollment,
            cols(
                "id user_id course_id root_account_id type workflow_state associated_user_id "
                "created_at updated_at"
            ),
            enrollment_rows(),
        )

        sources = ["api", "pairing_code", "sis", "self_registration"]
        first_link = w.next_id(ObservationLink)
        w.write(
            ObservationLink,
            cols("id observer_id student_id root_account_id workflow_state source created_at "
            "updated_at deleted_at"),
            (
                (first_link + i, observer, student_id[s], root.pk,
                 "deleted" if deleted else "active", sources[i % len(sources)], now_db, now_db,
                 now_db if deleted else None)
                for i, (observer, s, deleted) in enumerate(link_plan)
            ),
        )  # fmt: skip

        # Pairing codes on ordinary students, at most five per student; every
        # fifth expired. Valid ones go to the redeemers, never two codes of one
        # student to the same redeemer, so each redemption makes exactly one link.
        redeem = []
        seen: set[str] = set()
        first_code = w.next_id(PairingCode)
        valid_until = w.dt(now + timedelta(days=7))
        expired_at = w.dt(now - timedelta(hours=1))

        def code_rows():
            for i in range(codes):
                while True:
                    plain = "".join(rng.choice(ALPHABET) for _ in range(CODE_LENGTH))
                    if plain not in seen:
                        seen.add(plain)
                        break
                s = PERSONA_STUDENTS + i % span
                expired = i % 5 == 4
                if not expired:
                    redeem.append([(i % span + i // span) % REDEEMERS, format_code(plain)])
                yield (first_code + i, student_id[s], root.pk, hash_code(plain),
                       expired_at if expired else valid_until, "active", now_db)  # fmt: skip

        w.write(
            PairingCode,
            cols("id student_id root_account_id code_hash expires_at workflow_state created_at"),
            code_rows(),
        )

        token_owners = {
            "parent2": parent2,
            "observer100": observer100,
            "observed_student": student_id[100],
            "code_student": student_id[102],
            "admin": admin,
            **{f"redeemer{i}": uid for i, uid in enumerate(redeemers)},
        }
        tokens = {}
        first_token = w.next_id(AccessToken)
        token_rows = []
        for i, (key, uid) in enumerate(token_owners.items()):
            plain = secrets.token_urlsafe(32)
            tokens[key] = plain
            token_rows.append(
                (first_token + i, uid, f"bench {key}", hash_token(plain), plain[-4:], now_db, "[]")
            )
        w.write(
            AccessToken,
            cols("id user_id purpose token_hash token_hint created_at scopes"),
            token_rows,
        )
        w.finish([User, Login, Course, Enrollment, ObservationLink, PairingCode, AccessToken])
        return {
            "domain": domain,
            "root_account_id": root.pk,
            "tokens": tokens,
            "users": {
                "parent2": parent2,
                "children": [student_id[100], student_id[101]],
                "observer100": observer100,
                "observed_student": student_id[100],
                "code_student": student_id[102],
                "admin": admin,
                "redeemers": redeemers,
                "fresh_parents": fresh,
                "student_ids": [student_id[PERSONA_STUDENTS], student_id[-1]],
                "parent_ids": [parent_base, parent_base + parents - 1],
            },
            "redeem": redeem,
            "counts": {
                "users": total_users,
                "links": len(link_plan),
                "deleted_links": sum(1 for *_, d in link_plan if d),
                "enrollments": next_enrollment[0] - first_enrollment,
                "codes": codes,
                "courses": courses,
            },
        }
