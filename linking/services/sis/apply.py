"""Applying SIS records in bulk: accounts, terms, courses, users, enrollments, admins, birth dates.

Both readers (Canvas's SIS CSV and OneRoster) turn their rows into the same
records; the functions here apply a chunk of them with a fixed number of
queries whatever the chunk's size (one lookup per kind of reference, one
insert and one update per table), so a district's users and enrollments
import at thousands of rows a second instead of a few hundred.

A record that cannot be applied is reported through ``step.error`` with the
reader's wording and skipped; the rest of the chunk goes on. Student
enrollments that change bring linked observers along through
``services.enrollments.sync_observers_in_bulk``, the same rule a single
enrollment follows.
"""

import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX, check_password, make_password
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from ...models import (
    Account,
    AccountAdmin,
    Course,
    Enrollment,
    EnrollmentState,
    Login,
    Role,
    Term,
    User,
)
from ...models.lookups import any_of, json_array
from .. import safeguarding
from ..accounts import builtin_admin_role
from ..bulk import update_in_bulk
from ..enrollments import sync_observers_in_bulk
from .bulkdb import SeenIds, insert_returning_ids, new_row, note_inserted
from .report import FileReport, ImportReport
from .rows import ImportContext

DELETED_LOGIN = Login.State.DELETED


@dataclass(slots=True)
class Record:
    """One row of a file in the importer's terms: its line, its SIS id and its values."""

    line: int
    key: str
    values: dict[str, Any]


@dataclass
class Step:
    """One file (or pass) being applied: where errors, counts, changes and seen rows go."""

    ctx: ImportContext
    file: FileReport
    report: ImportReport
    messages: dict[str, str]
    seen: SeenIds | None = None
    # OneRoster: a sourcedId twice in one file is an error; Canvas: the later row wins.
    strict_duplicates: bool = False
    # OneRoster: a disabled user (enabledUser=false, a suspended login) is still
    # a person the SIS names; Canvas: only an active login names a user.
    suspended_count: bool = False
    pending_changes: list[tuple[str, str, str, str]] = field(default_factory=list)

    @property
    def root(self) -> Account:
        return self.ctx.root_account

    def error(self, record: Record, message: str) -> None:
        self.report.add_error(self.file, record.line, message, record.key)

    def warn(self, record: Record, message: str) -> None:
        self.report.add_warning(self.file, record.line, message, record.key)

    def msg(self, name: str, **values) -> str:
        return self.messages[name].format(**values)

    def count(self, outcome: str) -> None:
        self.file.counts[outcome] += 1

    def change(self, kind: str, action: str, sis_id: str, description: str) -> None:
        if self.report.changes is not None:
            self.pending_changes.append((kind, action, sis_id, description))

    def flush_changes(self) -> None:
        if self.report.changes is not None:
            for change in self.pending_changes:
                self.report.changes.add(*change)
        self.pending_changes.clear()

    def mark_seen(self, ids: Iterable[int]) -> None:
        if self.seen is not None:
            self.seen.add(ids)


def named_logins(step: Step):
    """The logins of the root account that SIS ids in a file may refer to."""
    logins = Login.objects.filter(root_account=step.root)
    if step.suspended_count:
        return logins.exclude(workflow_state=DELETED_LOGIN)
    return logins.filter(workflow_state=Login.State.ACTIVE)


def unique_runs(records: list[Record], key: Callable[[Record], Any]) -> Iterator[list[Record]]:
    """Split a chunk into runs in which no key repeats, keeping the file's order.

    A bulk statement cannot create a row and then update it; a later row for
    the same object goes into the next run and sees the earlier one applied.
    """
    run: list[Record] = []
    keys: set = set()
    for record in records:
        k = key(record)
        if k in keys:
            yield run
            run, keys = [], set()
        run.append(record)
        keys.add(k)
    if run:
        yield run


def apply_chunk(step: Step, applier: Callable[[Step, list[Record]], None], records: list[Record]):
    """Apply records in bulk in a savepoint; if the database refuses, again one record at a time.

    A constraint the checks did not foresee (two rows swapping login ids, a
    concurrent insert) fails the bulk statement; the chunk's savepoint is
    rolled back with its counts, errors and changes, and each record is
    applied alone so only the offending one is reported.
    """
    if not records:
        return
    mark = step.report.mark(step.file)
    try:
        with transaction.atomic():
            applier(step, records)
    except (DatabaseError, ValueError) as exc:
        step.report.back_to(step.file, mark)
        step.pending_changes.clear()
        if len(records) == 1:
            step.error(records[0], f"The row could not be saved: {exc}")
            return
        for record in records:
            apply_chunk(step, applier, [record])
        return
    step.flush_changes()


def _changed(obj, **fields) -> list[str]:
    names = [name for name, value in fields.items() if getattr(obj, name) != value]
    for name in names:
        setattr(obj, name, fields[name])
    return names


def _outcome(changed: list[str], state_field: str, deleted: bool) -> str:
    if not changed:
        return "unchanged"
    return "deleted" if state_field in changed and deleted else "updated"


def sub_accounts(root: Account) -> dict[str, Account]:
    """SIS id -> account for the root account's sub-accounts with one (accounts are few)."""
    return {
        account.sis_account_id: account
        for account in Account.objects.filter(root_account=root, sis_account_id__isnull=False)
    }


# accounts -------------------------------------------------------------------


def apply_accounts(step: Step, records: list[Record]) -> None:
    """Sub-accounts keyed by SIS id; a parent may be defined earlier in the same file.

    Values: account_id, parent_account_id ("" or one of ``root_ids`` = the
    root account), name, state (active/deleted). Accounts are few, so a new
    one is created as it comes (its children may follow in the same chunk).
    """
    root = step.root
    accounts = sub_accounts(root)
    by_pk = {account.pk: account for account in accounts.values()}
    root_ids = set(step.ctx.root_sis_ids)
    if root.sis_account_id:
        root_ids.add(root.sis_account_id)
    earlier = _seen_before(step, list(by_pk))
    seen: list[int] = []
    for record in records:
        v = record.values
        account_id, parent_id = v["account_id"], v["parent_account_id"]
        if parent_id == account_id:
            step.error(record, step.msg("account_own_parent", account_id=account_id))
            continue
        parent = root if not parent_id or parent_id in root_ids else accounts.get(parent_id)
        if parent is None:
            step.error(record, step.msg("parent_missing", account_id=account_id, parent=parent_id))
            continue
        account = accounts.get(account_id)
        if account is not None and account.pk in earlier:
            step.error(record, step.msg("duplicate", key=account_id))
            continue
        state = Account.State.DELETED if v["state"] == "deleted" else Account.State.ACTIVE
        if account is None:
            account = Account.objects.create(
                name=v["name"],
                parent=parent,
                root_account=root,
                sis_account_id=account_id,
                workflow_state=state,
            )
            accounts[account_id] = by_pk[account.pk] = account
            step.count("created")
            step.change("accounts", "created", account_id, v["name"])
        else:
            node = parent
            while node is not None and node.pk != root.pk and node.pk != account.pk:
                node = by_pk.get(node.parent_id)
            if node is not None and node.pk == account.pk:
                step.error(
                    record, step.msg("account_loop", account_id=account_id, parent=parent_id)
                )
                continue
            changed = _changed(account, name=v["name"], parent_id=parent.pk, workflow_state=state)
            if changed:
                account.save(update_fields=[*changed, "updated_at"])
                step.change("accounts", _outcome(changed, "workflow_state", True), account_id, "")
            step.count(_outcome(changed, "workflow_state", state == Account.State.DELETED))
        seen.append(account.pk)
        if step.strict_duplicates:
            earlier.add(account.pk)
    step.mark_seen(seen)


# terms ----------------------------------------------------------------------


def apply_terms(step: Step, records: list[Record]) -> None:
    """Terms keyed by SIS id. Values: term_id, name, start_at, end_at, state."""
    root = step.root
    for run in unique_runs(records, lambda r: r.values["term_id"]):
        terms = {
            term.sis_term_id: term
            for term in Term.objects.filter(
                any_of("sis_term_id", [r.values["term_id"] for r in run]), root_account=root
            )
        }
        duplicates = _seen_before(step, [term.pk for term in terms.values()])
        new, changed_terms, seen = [], [], []
        for record in run:
            v = record.values
            term = terms.get(v["term_id"])
            if term is not None and term.pk in duplicates:
                step.error(record, step.msg("duplicate", key=v["term_id"]))
                continue
            state = Term.State.DELETED if v["state"] == "deleted" else Term.State.ACTIVE
            fields = {
                "name": v["name"],
                "start_at": v["start_at"],
                "end_at": v["end_at"],
                "workflow_state": state,
            }
            if term is None:
                new.append(Term(root_account=root, sis_term_id=v["term_id"], **fields))
                step.count("created")
                step.change("terms", "created", v["term_id"], v["name"])
                continue
            changed = _changed(term, **fields)
            if changed:
                changed_terms.append(term)
                step.change("terms", _outcome(changed, "workflow_state", True), v["term_id"], "")
            step.count(_outcome(changed, "workflow_state", state == Term.State.DELETED))
            seen.append(term.pk)
        Term.objects.bulk_create(new)
        note_inserted(Term, len(new))
        Term.objects.bulk_update(changed_terms, ["name", "start_at", "end_at", "workflow_state"])
        step.mark_seen([*seen, *(term.pk for term in new)])


def _seen_before(step: Step, ids: list[int]) -> set[int]:
    """Of these ids, those an earlier row of the same file already named (OneRoster only)."""
    if not step.strict_duplicates or step.seen is None:
        return set()
    return step.seen.which(ids)


# courses --------------------------------------------------------------------


def apply_courses(step: Step, records: list[Record]) -> None:
    """Courses keyed by SIS id.

    Values: course_id, short_name, long_name, account_id ("" = root),
    state (a Course.State), and optionally term_id ("" = none).
    """
    root = step.root
    accounts = {sis: account.pk for sis, account in sub_accounts(root).items()}
    for sis in step.ctx.root_sis_ids:
        accounts[sis] = root.pk
    terms = None
    for run in unique_runs(records, lambda r: r.values["course_id"]):
        if terms is None and any("term_id" in r.values for r in run):
            terms = dict(
                Term.objects.filter(root_account=root, sis_term_id__isnull=False).values_list(
                    "sis_term_id", "pk"
                )
            )
        # No ordering: "ORDER BY id" lured the generic plan onto the school's
        # (root_account, id) index, testing every course against the chunk's keys.
        courses = {
            course.sis_course_id: course
            for course in Course.objects.filter(
                any_of("sis_course_id", [r.values["course_id"] for r in run]), root_account=root
            ).order_by()
        }
        duplicates = _seen_before(step, [course.pk for course in courses.values()])
        new, changed_courses, seen = [], [], []
        for record in run:
            v = record.values
            course_id = v["course_id"]
            course = courses.get(course_id)
            if course is not None and course.pk in duplicates:
                step.error(record, step.msg("duplicate", key=course_id))
                continue
            account_pk = root.pk
            if v["account_id"]:
                account_pk = accounts.get(v["account_id"])
                if account_pk is None:
                    step.error(
                        record,
                        step.msg(
                            "course_account_missing", account=v["account_id"], course=course_id
                        ),
                    )
                    continue
            fields = {
                "name": v["long_name"],
                "course_code": v["short_name"],
                "account_id": account_pk,
                "workflow_state": v["state"],
            }
            if "term_id" in v:
                term_pk = terms.get(v["term_id"]) if v["term_id"] else None
                if v["term_id"] and term_pk is None:
                    step.warn(record, step.msg("term_missing", term=v["term_id"], course=course_id))
                fields["term_id"] = term_pk
            if course is None:
                new.append(Course(root_account=root, sis_course_id=course_id, **fields))
                step.count("created")
                step.change("courses", "created", course_id, v["long_name"])
                continue
            changed = _changed(course, **fields)
            if changed:
                changed_courses.append(course)
                step.change(
                    "courses", _outcome(changed, "workflow_state", True), course_id, v["long_name"]
                )
            step.count(_outcome(changed, "workflow_state", v["state"] == Course.State.DELETED))
            seen.append(course.pk)
        Course.objects.bulk_create(new, batch_size=1000)
        # Counted so the courses get statistics: without them the enrollments'
        # course lookup tested every course of the school per chunk.
        note_inserted(Course, len(new))
        Course.objects.bulk_update(
            changed_courses,
            ["name", "course_code", "account_id", "workflow_state", "term_id"],
            batch_size=1000,
        )
        step.mark_seen([*seen, *(course.pk for course in new)])


# users ----------------------------------------------------------------------


def apply_protection(step: Step, records: list[Record]) -> None:
    """A users chunk's protected flags (``values["protected"]``), through services.safeguarding.

    Both formats carry the flag in an extension column (Canvas ``protected``,
    OneRoster ``metadata.observers.protected``): True protects, False lifts
    only what an SIS import protected, None (an empty cell, or no column)
    leaves it as it is. A deleted login's row says nothing of protection.
    """
    flags = {
        r.values["user_id"]: r.values["protected"]
        for r in records
        if r.values.get("protected") is not None and r.values["state"] != Login.State.DELETED
    }
    if not flags:
        return
    owners = dict(
        Login.objects.filter(any_of("sis_user_id", flags), root_account=step.root)
        .exclude(workflow_state=Login.State.DELETED)
        .values_list("sis_user_id", "user_id")
    )
    protected, unprotected = safeguarding.set_protection_from_sis(
        root_account=step.root,
        flags={owners[sis]: flag for sis, flag in flags.items() if sis in owners},
        actor=step.ctx.actor,
    )
    step.file.counts["protected"] += protected
    step.file.counts["no longer protected"] += unprotected


def live_logins_by_lower_id(root: Account, login_ids: Iterable[str]) -> dict[str, list[tuple]]:
    """Python-lowered login id -> [(login pk, sis_user_id)] of the root account's live logins.

    Written so both databases use the partial unique index on
    (lower(unique_id), root_account) whatever the list's length: the
    ``workflow_state`` condition is the index's own literal predicate, not
    a parameter a generic plan cannot match (issue 12's profile).
    """
    lowered = sorted({login_id.lower() for login_id in login_ids})
    if not lowered:
        return {}
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT id, unique_id, sis_user_id FROM linking_login "
                "WHERE lower(unique_id) = ANY(%s::text[]) AND root_account_id = %s "
                "AND NOT (workflow_state = 'deleted')",
                [lowered, root.pk],
            )
        else:
            cursor.execute(
                "SELECT id, unique_id, sis_user_id FROM linking_login "
                "WHERE lower(unique_id) IN (SELECT lower(value) FROM json_each(%s)) "
                "AND root_account_id = %s AND NOT (workflow_state = 'deleted')",
                [json_array(lowered), root.pk],
            )
        found: dict[str, list[tuple]] = {}
        for pk, unique_id, sis_user_id in cursor.fetchall():
            found.setdefault(unique_id.lower(), []).append((pk, sis_user_id))
        return found


_USER_FIELDS = ["name", "sortable_name", "short_name", "email", "updated_at"]
_LOGIN_ROW = (
    "pk",
    "sis_user_id",
    "unique_id",
    "integration_id",
    "workflow_state",
    "sis_role",
    "sis_agent_ids",
    "password",
    "user_id",
    "name",
    "sortable_name",
    "short_name",
    "email",
)
_LOGIN_ROW_LOOKUPS = (
    *_LOGIN_ROW[:9],
    "user__name",
    "user__sortable_name",
    "user__short_name",
    "user__email",
)
_LOGIN_FIELDS = [
    "unique_id",
    "integration_id",
    "workflow_state",
    "sis_role",
    "sis_agent_ids",
    "password",
]


def apply_users(step: Step, records: list[Record]) -> None:
    """Users and their logins in the root account, keyed by SIS user id.

    Values: user_id, login_id, full_name, sortable_name, short_name, email
    ("" keeps the stored one), integration_id, password ("" = none; stored
    hashed, set only when new or changed), state (a Login.State), and for
    OneRoster sis_role and sis_agent_ids. A deleted row deletes the login,
    not the person (Canvas).
    """
    for run in unique_runs(records, lambda r: r.values["user_id"]):
        _apply_user_run(step, run)


def _apply_user_run(step: Step, run: list[Record]) -> None:
    root = step.root
    # Plain rows, not model instances (an unchanged re-import builds none).
    logins = {
        row[1]: SimpleNamespace(**dict(zip(_LOGIN_ROW, row, strict=True)))
        for row in Login.objects.filter(
            any_of("sis_user_id", [r.values["user_id"] for r in run]), root_account=root
        ).values_list(*_LOGIN_ROW_LOOKUPS)
    }
    duplicates = _seen_before(step, [login.pk for login in logins.values()])
    taken = live_logins_by_lower_id(root, (r.values["login_id"] for r in run))
    integration_ids = [r.values["integration_id"] for r in run if r.values.get("integration_id")]
    integration_owner = dict(
        Login.objects.filter(
            any_of("integration_id", integration_ids), root_account=root
        ).values_list("integration_id", "sis_user_id")
    )
    claimed: dict[str, str] = {}
    new: list[tuple[User, Login]] = []
    users_changed: list[User] = []
    logins_changed: list[Login] = []
    seen: list[int] = []
    now = timezone.now()
    for record in run:
        v = record.values
        sis_id, login_id = v["user_id"], v["login_id"]
        login = logins.get(sis_id)
        if login is not None and login.pk in duplicates:
            step.error(record, step.msg("duplicate", key=sis_id))
            continue
        lowered = login_id.lower()
        state = v["state"]
        if state != DELETED_LOGIN:
            holders = [
                holder_sis
                for pk, holder_sis in taken.get(lowered, ())
                if login is None or pk != login.pk
            ]
            if not holders and claimed.get(lowered, sis_id) != sis_id:
                holders = [claimed[lowered]]
            if holders:
                step.error(
                    record,
                    step.msg(
                        "login_taken",
                        taken_sis=holders[0] or "(none)",
                        user_id=sis_id,
                        login_id=login_id,
                    ),
                )
                continue
            claimed[lowered] = sis_id
        integration_id = v.get("integration_id") or None
        if integration_id and integration_owner.get(integration_id, sis_id) != sis_id:
            step.error(record, step.msg("integration_taken", integration_id=integration_id))
            continue
        password = v.get("password") or ""
        login_fields = {"unique_id": login_id, "workflow_state": state}
        for name in ("integration_id", "sis_role", "sis_agent_ids"):
            if name in v:
                login_fields[name] = v[name] or (None if name == "integration_id" else "")
        if login is None:
            user = new_row(
                User,
                name=v["full_name"],
                sortable_name=v["sortable_name"],
                short_name=v["short_name"],
                email=v["email"],
                # Unusable (Django's "!" prefix): people sign in with their login's password.
                password=UNUSABLE_PASSWORD_PREFIX + secrets.token_urlsafe(30),
                created_at=now,
            )
            new_login = new_row(
                Login,
                root_account_id=root.pk,
                sis_user_id=sis_id,
                password=make_password(password) if password else "",
                **login_fields,
            )
            new.append((user, new_login))
            step.count("created")
            step.change("users", "created", sis_id, f"{v['full_name']} ({login_id})")
            continue
        user_fields = {
            "name": v["full_name"],
            "sortable_name": v["sortable_name"],
            "short_name": v["short_name"],
        }
        if v["email"]:
            user_fields["email"] = v["email"]
        user_changes = _changed(login, **user_fields)
        if user_changes:
            users_changed.append(
                User(
                    pk=login.user_id,
                    name=login.name,
                    sortable_name=login.sortable_name,
                    short_name=login.short_name,
                    email=login.email,
                    updated_at=now,
                )
            )
        login_changes = _changed(login, **login_fields)
        if password and not check_password(password, login.password):
            login.password = make_password(password)
            login_changes.append("password")
        if login_changes:
            logins_changed.append(
                Login(
                    pk=login.pk,
                    **{name: getattr(login, name) for name in _LOGIN_FIELDS},
                )
            )
        changed = user_changes + login_changes
        outcome = _outcome(changed, "workflow_state", state == DELETED_LOGIN)
        step.count(outcome)
        if changed:
            step.change("users", outcome, sis_id, f"{v['full_name']}: {', '.join(changed)}")
        seen.append(login.pk)
        if state == DELETED_LOGIN and login is not None:
            taken.pop(lowered, None)
    if new:
        insert_returning_ids(User, [user for user, _ in new])
        for user, login in new:
            login.user_id = user.pk
        insert_returning_ids(Login, [login for _, login in new])
        seen.extend(login.pk for _, login in new)
    User.objects.bulk_update(users_changed, _USER_FIELDS, batch_size=1000)
    Login.objects.bulk_update(logins_changed, _LOGIN_FIELDS, batch_size=1000)
    step.mark_seen(seen)


def apply_birth_dates(step: Step, records: list[Record]) -> None:
    """OneRoster demographics: a user's birth date (values: user_id, birth_date or None)."""
    root = step.root
    for run in unique_runs(records, lambda r: r.values["user_id"]):
        owners = dict(
            Login.objects.filter(
                any_of("sis_user_id", [r.values["user_id"] for r in run]), root_account=root
            )
            .exclude(workflow_state=DELETED_LOGIN)
            .values_list("sis_user_id", "user_id")
        )
        users = {
            user.pk: user
            for user in User.objects.filter(any_of("id", owners.values())).only("id", "birth_date")
        }
        changed = []
        for record in run:
            user = users.get(owners.get(record.values["user_id"]))
            if user is None:
                step.error(record, step.msg("user_missing", user_id=record.values["user_id"]))
                continue
            if user.birth_date == record.values["birth_date"]:
                step.count("unchanged")
                continue
            user.birth_date = record.values["birth_date"]
            changed.append(user)
            step.count("updated")
            step.change("users", "birth date", record.values["user_id"], str(user.birth_date))
        User.objects.bulk_update(changed, ["birth_date"], batch_size=1000)


# enrollments ----------------------------------------------------------------


def _enrollment_key(record: Record) -> tuple:
    v = record.values
    return (v["user_id"], v["course_id"], v["type"], v.get("associated_user_id") or "")


def apply_enrollments(step: Step, records: list[Record]) -> None:
    """Enrollments keyed by (user, course, type, observed student); linked observers follow.

    Values: course_id, user_id, type (an EnrollmentType), state (an
    EnrollmentState), associated_user_id ("" unless an observer), and
    optionally start_at and end_at (absent = keep the stored dates).
    """
    for run in unique_runs(records, _enrollment_key):
        _apply_enrollment_run(step, run)


def _apply_enrollment_run(step: Step, run: list[Record]) -> None:
    root = step.root
    courses = dict(
        Course.objects.filter(
            any_of("sis_course_id", {r.values["course_id"] for r in run}), root_account=root
        )
        .order_by()  # see apply_courses: an ORDER BY id plan walks every course of the school
        .values_list("sis_course_id", "pk")
    )
    sis_ids = {r.values["user_id"] for r in run} | {
        r.values["associated_user_id"] for r in run if r.values.get("associated_user_id")
    }
    users = dict(
        named_logins(step)
        .filter(any_of("sis_user_id", sis_ids))
        .values_list("sis_user_id", "user_id")
    )
    # Plain tuples: at 300,000 enrollments building a model instance per row
    # was most of an unchanged re-import's time; instances are made for changes only.
    # By user alone (a few enrollments each): a course list as well lured the
    # planner onto the course index when a chunk's courses were scattered.
    course_pks = set(courses.values())
    existing = {
        (row[1], row[2], row[3], row[4]): row
        for row in Enrollment.objects.filter(
            any_of("user_id", {users[s] for s in sis_ids if s in users})
        )
        .order_by()
        .values_list(
            "pk",
            "user_id",
            "course_id",
            "type",
            "associated_user_id",
            "workflow_state",
            "start_at",
            "end_at",
            "sis_managed",
        )
        if row[2] in course_pks
    }
    duplicates = _seen_before(step, [row[0] for row in existing.values()])
    now = timezone.now()
    new: list[Enrollment] = []
    changed: list[Enrollment] = []
    observer_changes: list[tuple[Enrollment, str | None]] = []
    seen: list[int] = []
    for record in run:
        v = record.values
        course_id, user_id, kind = v["course_id"], v["user_id"], v["type"]
        course_pk = courses.get(course_id)
        if course_pk is None:
            step.error(record, step.msg("course_missing", course_id=course_id, user_id=user_id))
            continue
        user_pk = users.get(user_id)
        if user_pk is None:
            step.error(
                record,
                step.msg("enrollee_missing", user_id=user_id, course_id=course_id, role=kind),
            )
            continue
        associated_pk = None
        if v.get("associated_user_id"):
            associated_pk = users.get(v["associated_user_id"])
            if associated_pk is None:
                step.error(
                    record, step.msg("associated_missing", associated=v["associated_user_id"])
                )
                continue
            if associated_pk == user_pk:
                step.error(record, step.msg("observe_self", user_id=user_id))
                continue
        state = v["state"]
        row = existing.get((user_pk, course_pk, kind, associated_pk))
        if row is not None and row[0] in duplicates:
            step.error(record, step.msg("duplicate", key=record.key))
            continue
        description = f"{user_id} in {course_id} as {kind}"
        if "start_at" in v:
            start_at, end_at = v["start_at"], v["end_at"]
        elif row is not None:
            start_at, end_at = row[6], row[7]  # Canvas's files carry no dates: keep them
        else:
            start_at = end_at = None
        fields = {
            "user_id": user_pk,
            "course_id": course_pk,
            "type": kind,
            "associated_user_id": associated_pk,
            "workflow_state": state,
            "start_at": start_at,
            "end_at": end_at,
        }
        if row is None:
            enrollment = new_row(Enrollment, root_account_id=root.pk, sis_managed=True, **fields)
            new.append(enrollment)
            observer_changes.append((enrollment, None))
            step.count("created")
            step.change("enrollments", "created", record.key, f"{description} ({state})")
            continue
        pk, previous, sis_managed = row[0], row[5], row[8]
        changes = [
            name
            for name, before, after in (
                ("workflow_state", previous, state),
                ("start_at", row[6], start_at),
                ("end_at", row[7], end_at),
            )
            if before != after
        ]
        seen.append(pk)
        outcome = _outcome(changes, "workflow_state", state == EnrollmentState.DELETED)
        step.count(outcome)
        if not changes and sis_managed:
            continue
        enrollment = Enrollment(
            pk=pk, root_account_id=root.pk, sis_managed=True, updated_at=now, **fields
        )
        changed.append(enrollment)
        if changes:
            observer_changes.append((enrollment, previous))
            step.change("enrollments", outcome, record.key, f"{description}: {previous} → {state}")
    insert_returning_ids(Enrollment, new)
    update_in_bulk(
        Enrollment, changed, ["workflow_state", "start_at", "end_at", "sis_managed", "updated_at"]
    )
    step.mark_seen([*seen, *(e.pk for e in new)])
    sync_observers_in_bulk(observer_changes)


def end_enrollments(enrollment_ids: list[int]) -> int:
    """Delete these enrollments (a bulk file no longer sends them); linked observers follow."""
    enrollments = list(
        Enrollment.objects.filter(any_of("id", enrollment_ids)).exclude(
            workflow_state=EnrollmentState.DELETED
        )
    )
    now = timezone.now()
    changes = []
    for enrollment in enrollments:
        changes.append((enrollment, enrollment.workflow_state))
        enrollment.workflow_state = EnrollmentState.DELETED
        enrollment.updated_at = now
    update_in_bulk(Enrollment, enrollments, ["workflow_state", "updated_at"])
    sync_observers_in_bulk(changes)
    return len(enrollments)


# admins ---------------------------------------------------------------------


def apply_admins(step: Step, records: list[Record]) -> None:
    """Account admin memberships (Canvas admins.csv). Values: user_id, account_id, role, state."""
    root = step.root
    accounts = {sis: account.pk for sis, account in sub_accounts(root).items()}
    builtin = builtin_admin_role()
    roles = {role.name: role.pk for role in Role.objects.filter(root_account=root)}
    roles[Role.ACCOUNT_ADMIN] = builtin.pk
    for run in unique_runs(
        records, lambda r: (r.values["user_id"], r.values["account_id"], r.values["role"])
    ):
        users = dict(
            named_logins(step)
            .filter(any_of("sis_user_id", {r.values["user_id"] for r in run}))
            .values_list("sis_user_id", "user_id")
        )
        memberships = {
            (m.user_id, m.account_id, m.role_id): m
            for m in AccountAdmin.objects.filter(any_of("user_id", users.values()))
        }
        new, changed, staff = [], [], set()
        for record in run:
            v = record.values
            account_pk = root.pk
            if v["account_id"]:
                account_pk = accounts.get(v["account_id"])
                if account_pk is None:
                    step.error(record, step.msg("admin_account_missing", user_id=v["user_id"]))
                    continue
            user_pk = users.get(v["user_id"])
            if user_pk is None:
                step.error(record, step.msg("admin_user_missing", user_id=v["user_id"]))
                continue
            role_pk = roles.get(v["role"])
            if role_pk is None:
                step.error(
                    record, step.msg("admin_role_missing", role=v["role"], user_id=v["user_id"])
                )
                continue
            membership = memberships.get((user_pk, account_pk, role_pk))
            description = f"{v['user_id']} as {v['role']} in {v['account_id'] or root.name}"
            if v["state"] == "deleted":
                if membership is None or membership.workflow_state == AccountAdmin.State.DELETED:
                    step.count("unchanged")
                    continue
                membership.workflow_state = AccountAdmin.State.DELETED
                changed.append(membership)
                step.count("deleted")
                step.change("admins", "deleted", v["user_id"], description)
                continue
            staff.add(user_pk)
            if membership is None:
                new.append(
                    AccountAdmin(
                        user_id=user_pk,
                        account_id=account_pk,
                        root_account_id=root.pk,
                        role_id=role_pk,
                    )
                )
                step.count("created")
                step.change("admins", "created", v["user_id"], description)
            elif membership.workflow_state != AccountAdmin.State.ACTIVE:
                membership.workflow_state = AccountAdmin.State.ACTIVE
                changed.append(membership)
                step.count("updated")
                step.change("admins", "updated", v["user_id"], description)
            else:
                step.count("unchanged")
        AccountAdmin.objects.bulk_create(new)
        note_inserted(AccountAdmin, len(new))
        AccountAdmin.objects.bulk_update(changed, ["workflow_state"])
        if staff:
            # Admins may sign in to the staff admin (services.accounts.make_account_admin).
            User.objects.filter(any_of("id", staff), is_staff=False).update(
                is_staff=True, updated_at=timezone.now()
            )
