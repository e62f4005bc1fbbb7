"""OneRoster 1.1 and 1.2 CSV bundles (shared/reference/oneroster-csv.md) as importer records.

A bundle is a directory or zip with ``manifest.csv``. Its files are read in
dependency order and applied by the bulk appliers of ``apply.py``:

- orgs: a district (and anything above it) is the root account itself;
  schools and departments are sub-accounts;
- academicSessions: terms; classes: courses (their courses.csv row gives
  the code), with the term and the school;
- users (+ 1.2 roles, demographics): users with logins (``sourcedId`` is
  the SIS id, ``username`` the login id); the person's role and their
  ``agentSourcedIds`` are kept on the login;
- enrollments: student, teacher, aide/proctor (TA);
- then the links: a student and a parent, guardian or relative who name
  each other (either side, the union) are linked (source SIS, the agent's
  role kept as the link's kind); observer enrollments follow as for every
  link.

``bulk`` files replace what the SIS owns of their kind (what it created
earlier and no longer sends is removed, soft); ``delta`` files apply their
rows only. Links made with a code, by staff or through the API are never
removed by a sync. A bundle is applied whole or not at all: a file that
cannot be read, or a mass-delete guard, leaves nothing behind.
"""

import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from itertools import islice
from pathlib import Path
from time import perf_counter

from django.db import transaction

from ...models import (
    Account,
    Course,
    Enrollment,
    EnrollmentState,
    EnrollmentType,
    LinkKind,
    LinkSource,
    Login,
    ObservationLink,
    SisBatch,
    Term,
)
from ...models.lookups import any_of
from ...timezones import school_time_zone
from ..links import UNCHANGED
from . import guard, user_observers
from .apply import (
    Record,
    Step,
    apply_accounts,
    apply_birth_dates,
    apply_chunk,
    apply_courses,
    apply_enrollments,
    apply_protection,
    apply_terms,
    apply_users,
    end_enrollments,
)
from .bulkdb import SeenIds, plan_with_indexes
from .guard import MassDeleteRefused
from .reader import SisFileError, SisRow, SisSource, data_rows, zip_member_opener
from .report import FileReport, ImportReport, finish_batch, start_batch
from .rows import ImportContext, RowError, boolean_cell

MANIFEST = "manifest.csv"
CHUNK_SIZE = 1000

FILES_11 = (
    "academicSessions",
    "categories",
    "classes",
    "classResources",
    "courses",
    "courseResources",
    "demographics",
    "enrollments",
    "lineItems",
    "orgs",
    "resources",
    "results",
    "users",
)
FILES_12 = (
    *FILES_11,
    "roles",
    "userProfiles",
    "userResources",
    "scoreScales",
    "lineItemScoreScales",
    "resultScoreScales",
    "lineItemLearningObjectiveIds",
    "resultLearningObjectiveIds",
)
# The files this importer reads, in the order they are applied.
ROSTER_ORDER = (
    "orgs",
    "academicSessions",
    "courses",
    "classes",
    "roles",
    "users",
    "demographics",
    "enrollments",
)

_BASE = ("sourcedId", "status", "dateLastModified")
COLUMNS = {
    "orgs": (*_BASE, "name", "type", "identifier", "parentSourcedId"),
    "academicSessions": (
        *_BASE,
        "title",
        "type",
        "startDate",
        "endDate",
        "parentSourcedId",
        "schoolYear",
    ),
    "courses": (
        *_BASE,
        "schoolYearSourcedId",
        "title",
        "courseCode",
        "grades",
        "orgSourcedId",
        "subjects",
        "subjectCodes",
    ),
    "classes": (
        *_BASE,
        "title",
        "grades",
        "courseSourcedId",
        "classCode",
        "classType",
        "location",
        "schoolSourcedId",
        "termSourcedIds",
        "subjects",
        "subjectCodes",
        "periods",
    ),
    "users/1.1": (
        *_BASE,
        "enabledUser",
        "orgSourcedIds",
        "role",
        "username",
        "userIds",
        "givenName",
        "familyName",
        "middleName",
        "identifier",
        "email",
        "sms",
        "phone",
        "agentSourcedIds",
        "grades",
        "password",
    ),
    "roles": (
        *_BASE,
        "userSourcedId",
        "roleType",
        "role",
        "beginDate",
        "endDate",
        "orgSourcedId",
        "userProfileSourcedId",
    ),
    "demographics": (*_BASE, "birthDate", "sex"),
    "enrollments": (
        *_BASE,
        "classSourcedId",
        "schoolSourcedId",
        "userSourcedId",
        "role",
        "primary",
        "beginDate",
        "endDate",
    ),
}
# 1.2 moved orgSourcedIds and role to roles.csv and added columns at the end.
COLUMNS["users/1.2"] = (
    *(column for column in COLUMNS["users/1.1"] if column not in ("orgSourcedIds", "role")),
    "userMasterIdentifier",
    "resourceSourcedIds",
    "preferredGivenName",
    "preferredMiddleName",
    "preferredFamilyName",
    "primaryOrgSourcedId",
    "pronouns",
)
# Our extension columns, read when present (OneRoster's ``metadata.*`` convention):
# users.csv may say a student is protected (services.safeguarding; "true",
# "false", or empty to leave it as it is; never exported), and on an
# observer's row when their SIS links end (an ISO 8601 date or date and
# time, empty for no end; exported). OneRoster has no field for the end of a
# relationship: roles.csv's endDate ends a person's role at an org, which
# other consumers of the same bundle read as such (docs/sis.md).
PROTECTED_COLUMN = "metadata.observers.protected"
ENDS_ON_COLUMN = "metadata.observers.ends_on"
EXTENSION_COLUMNS = {"users": (PROTECTED_COLUMN, ENDS_ON_COLUMN)}
# Values every row must have (besides sourcedId); a missing header for one is a file error.
REQUIRED = {
    "orgs": ("name", "type"),
    "academicSessions": ("title", "type", "startDate", "endDate"),
    "courses": ("title", "orgSourcedId"),
    "classes": ("title", "courseSourcedId", "classType", "schoolSourcedId", "termSourcedIds"),
    "users/1.1": ("enabledUser", "orgSourcedIds", "role", "username", "givenName", "familyName"),
    "users/1.2": ("enabledUser", "username", "givenName", "familyName"),
    "roles": ("userSourcedId", "roleType", "role", "orgSourcedId"),
    "demographics": (),
    "enrollments": ("classSourcedId", "schoolSourcedId", "userSourcedId", "role"),
}

ORG_TYPES = {"department", "school", "district", "local", "state", "national"}
SESSION_TYPES = {"gradingPeriod", "semester", "schoolYear", "term"}
CLASS_TYPES = {"homeroom", "scheduled"}
USER_ROLES_11 = {
    "administrator",
    "aide",
    "guardian",
    "parent",
    "proctor",
    "relative",
    "student",
    "teacher",
}
USER_ROLES_12 = {
    "aide",
    "counselor",
    "districtAdministrator",
    "guardian",
    "parent",
    "principal",
    "proctor",
    "relative",
    "siteAdministrator",
    "student",
    "systemAdministrator",
    "teacher",
}
# The roles that observe a student they are agents of, and the kind of link each
# makes: the one list of guardian roles (bulk invitations and the export read it).
OBSERVER_KINDS = {
    "parent": LinkKind.PARENT,
    "guardian": LinkKind.GUARDIAN,
    "relative": LinkKind.RELATIVE,
}
# Which role decides a person's part in linking when 1.2 gives them several.
_ROLE_RANK = {"parent": 0, "guardian": 1, "relative": 2, "student": 3}
ENROLLMENT_TYPES = {
    "student": EnrollmentType.STUDENT,
    "teacher": EnrollmentType.TEACHER,
    "aide": EnrollmentType.TA,
    "proctor": EnrollmentType.TA,
}
# Roles some producers send in enrollments.csv that have no enrollment here.
ENROLLMENT_SKIPPED = {"administrator", "guardian", "parent", "relative"}

# No commas (lists), whitespace or control characters; at most 255 characters.
_GUID = re.compile(r"^[^\s,]{1,255}$")

ONEROSTER_MESSAGES = {
    "duplicate": "sourcedId {key} appears more than once in the file",
    "account_own_parent": "org {account_id} names itself as its parent",
    "parent_missing": "parentSourcedId {parent} of org {account_id} is not a known org",
    "account_loop": "parentSourcedId {parent} of org {account_id} would make a loop",
    "course_account_missing": "schoolSourcedId {account} of class {course} is not a known school",
    "term_missing": "termSourcedIds: academic session {term} of class {course} is not known",
    "login_taken": (
        "username {login_id} of user {user_id} is already the login of user {taken_sis} "
        "(usernames are compared without case)"
    ),
    "integration_taken": "identifier {integration_id} already belongs to another user",
    "user_missing": "user {user_id} is not in users.csv nor imported before",
    "course_missing": "classSourcedId {course_id} is not a known class",
    "enrollee_missing": "userSourcedId {user_id} is not a known user",
    "associated_missing": "user {associated} is not known",
    "observe_self": "user {user_id} cannot observe themselves",
}


@dataclass(frozen=True)
class Bundle:
    """A OneRoster bundle: its name and its member files by exact file name."""

    name: str
    members: dict[str, SisSource]


def find_bundle(paths: list[str | Path]) -> Bundle | None:
    """The OneRoster bundle among ``paths`` (a directory or zip with manifest.csv), or None.

    Raises SisFileError when a bundle is given together with other paths: a
    bundle is one unit and is imported on its own.
    """
    bundles = [bundle for bundle in map(_bundle_at, map(Path, paths)) if bundle is not None]
    if not bundles:
        return None
    if len(paths) > 1:
        raise SisFileError(
            f"{bundles[0].name}: a OneRoster bundle (with manifest.csv) must be imported on its "
            "own, not together with other files"
        )
    return bundles[0]


def _bundle_at(path: Path) -> Bundle | None:
    if path.is_dir():
        if not (path / MANIFEST).is_file():
            return None
        members = {
            child.name: SisSource(name=child.name, opener=lambda p=child: p.open("rb"))
            for child in sorted(path.iterdir())
            if child.is_file() and child.suffix.lower() == ".csv"
        }
        return Bundle(name=path.name, members=members)
    if not (path.is_file() and zipfile.is_zipfile(path)):
        return None
    with zipfile.ZipFile(path) as archive:
        names = [
            info.filename
            for info in archive.infolist()
            if not info.is_dir() and not info.filename.startswith("__MACOSX/")
        ]
    # Files belong at the zip's root; one enclosing folder is tolerated.
    prefix = ""
    if MANIFEST not in names:
        nested = [name for name in names if name.endswith("/" + MANIFEST)]
        if len(nested) != 1 or nested[0].count("/") != 1:
            return None
        prefix = nested[0][: -len(MANIFEST)]

    members = {
        name[len(prefix) :]: SisSource(
            name=name[len(prefix) :], opener=zip_member_opener(path, name)
        )
        for name in names
        if name.startswith(prefix)
        and "/" not in name[len(prefix) :]
        and name.lower().endswith(".csv")
    }
    return Bundle(name=path.name, members=members)


# Reading --------------------------------------------------------------------


@dataclass
class Manifest:
    version: str
    modes: dict[str, str]  # file name without .csv -> bulk | delta
    system: str = ""


def read_manifest(bundle: Bundle, report: ImportReport) -> Manifest:
    """The manifest's version and file modes; SisFileError when the bundle cannot be imported."""
    source = bundle.members.get(MANIFEST)
    if source is None:
        raise SisFileError(f"{bundle.name}: no manifest.csv")
    properties: dict[str, str] = {}
    for row in _csv_rows(source, ("propertyName", "value"), ("propertyName", "value")):
        if row.error:
            raise SisFileError(f"manifest.csv: line {row.line}: {row.error}")
        if row.values is None:
            continue  # a header matched without case: the manifest is read all the same
        name = row.values["propertyName"]
        if name in properties:
            raise SisFileError(f"manifest.csv: line {row.line}: {name} is given twice")
        properties[name] = row.values["value"]
    if properties.get("manifest.version") != "1.0":
        raise SisFileError(
            "manifest.csv: manifest.version is "
            f"{properties.get('manifest.version', '(missing)')!r}; expected 1.0"
        )
    version = properties.get("oneroster.version", "")
    if version not in ("1.1", "1.2"):
        raise SisFileError(
            f"manifest.csv: oneroster.version is {version or '(missing)'!r}; this importer reads "
            "OneRoster 1.1 and 1.2"
        )
    known = FILES_11 if version == "1.1" else FILES_12
    modes = {}
    for name, value in properties.items():
        if not name.startswith("file."):
            continue
        kind = name[len("file.") :]
        if kind not in known:
            raise SisFileError(f"manifest.csv: {name} is not a file of OneRoster {version}")
        if value not in ("bulk", "delta", "absent"):
            raise SisFileError(f"manifest.csv: {name} is {value!r}; expected bulk, delta or absent")
        if value != "absent":
            modes[kind] = value
    for kind in modes:
        if f"{kind}.csv" not in bundle.members:
            raise SisFileError(
                f"manifest.csv: file.{kind} is {modes[kind]} but {kind}.csv is not in the bundle"
            )
    for name in sorted(bundle.members):
        kind = name[: -len(".csv")]
        if name != MANIFEST and kind not in modes:
            file = FileReport(name=name, kind="not imported")
            report.files.append(file)
            report.add_warning(
                file,
                None,
                f"{name} is not declared bulk or delta in manifest.csv; it was not imported",
            )
    return Manifest(version=version, modes=modes, system=properties.get("source.systemName", ""))


def _csv_rows(
    source: SisSource, columns: tuple[str, ...], required: tuple[str, ...]
) -> Iterator[SisRow]:
    """Stream a file's rows as {column: value}, header checked (case-sensitive, any order).

    A missing required column or undecodable text is a SisFileError. A
    header that matches only without case is read, with the column named in
    ``csv_warnings`` of the iterator's first item (line 0).
    """
    with source.opener() as stream:
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")
        reader = csv.reader(text)
        try:
            header = next(reader)
        except StopIteration:
            raise SisFileError(f"{source.name}: the file is empty (no header row)") from None
        except UnicodeDecodeError as exc:
            raise SisFileError(f"{source.name}: not UTF-8 encoded text ({exc.reason})") from exc
        except csv.Error as exc:
            raise SisFileError(f"{source.name}: the header cannot be read ({exc})") from exc
        header = [column.strip() for column in header]
        index: dict[str, int] = {}
        loose: list[str] = []
        by_lower = {column.lower(): i for i, column in enumerate(header)}
        for column in columns:
            if column in header:
                index[column] = header.index(column)
            elif column.lower() in by_lower:
                index[column] = by_lower[column.lower()]
                loose.append(f"{header[by_lower[column.lower()]]} (should be {column})")
        missing = [column for column in ("sourcedId", *required) if column not in index]
        if columns[0] != "sourcedId":
            missing = [column for column in required if column not in index]
        if missing:
            raise SisFileError(
                f"{source.name}: missing required column(s) {', '.join(missing)}; the header "
                f"must be {','.join(columns)}"
            )
        if loose:
            yield SisRow(
                line=0,
                values=None,
                warning="header names are case-sensitive: " + ", ".join(loose),
            )
        yield from data_rows(source, reader, index)


def _guid(value: str, column: str) -> str:
    if not _GUID.match(value):
        raise RowError(
            f"{column} {value[:60]!r} is not a valid GUID (no spaces or commas, at most "
            "255 characters)"
        )
    return value


def _guid_list(value: str, column: str) -> list[str]:
    items = [item.strip() for item in value.split(",") if item.strip()]
    return [_guid(item, column) for item in items]


def _date(value: str, column: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RowError(f"{column} {value!r} is not a date (YYYY-MM-DD)") from None


def _midnight(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, time.min, tzinfo=UTC)


def _enum(value: str, column: str, allowed: set[str], *, extensible: bool = False) -> str:
    if value in allowed or (extensible and value.startswith("ext:") and len(value) > 4):
        return value
    raise RowError(f"{column} {value!r} is not one of {', '.join(sorted(allowed))}")


def _required(values: dict[str, str], *columns: str) -> None:
    for column in columns:
        if not values.get(column):
            raise RowError(f"{column} is required")


# Running a bundle -----------------------------------------------------------


@dataclass
class _Run:
    bundle: Bundle
    manifest: Manifest
    ctx: ImportContext
    report: ImportReport
    share: float
    allow_mass_delete: bool
    progress: Callable[[str, int], None] | None
    seen_tables: list[SeenIds] = field(default_factory=list)
    course_codes: dict[str, str] | None = None
    roles: dict[str, tuple[str, int]] | None = None
    touched_users: SeenIds | None = None
    school_ids: set[str] | None = None
    # users.csv's end dates of observers' links by sourcedId (only those set):
    # None when the file has no such column (end dates are left as they are).
    link_ends: dict[str, datetime] | None = None

    @property
    def root(self) -> Account:
        return self.ctx.root_account

    def mode(self, kind: str) -> str | None:
        return self.manifest.modes.get(kind)

    def new_file(self, kind: str, label: str) -> FileReport:
        file = FileReport(name=f"{kind}.csv", kind=label)
        self.report.files.append(file)
        return file

    def _drop_seen_tables(self, keep: SeenIds | None) -> None:
        """A file's seen rows are done with once it is applied (the links need users.csv's)."""
        for table in [table for table in self.seen_tables if table is not keep]:
            table.__exit__(None, None, None)
            self.seen_tables.remove(table)

    def seen(self, label: str) -> SeenIds:
        table = SeenIds(label).__enter__()
        self.seen_tables.append(table)
        return table

    def rows(self, kind: str, file: FileReport) -> Iterator[SisRow]:
        spec = f"{kind}/{self.manifest.version}" if kind == "users" else kind
        columns = (*COLUMNS[spec], *EXTENSION_COLUMNS.get(kind, ()))
        for row in _csv_rows(self.bundle.members[f"{kind}.csv"], columns, REQUIRED[spec]):
            if row.warning:
                self.report.add_warning(file, None, row.warning)
                continue
            yield row

    def records(
        self, kind: str, file: FileReport, parse: Callable[[dict[str, str], str], dict | None]
    ) -> Iterator[list[Record]]:
        """The file's rows parsed into records, a chunk at a time; bad rows are reported."""
        mode = self.mode(kind)
        rows = self.rows(kind, file)
        while chunk := list(islice(rows, CHUNK_SIZE)):
            errors_before = len(self.report.errors)
            records = []
            for row in chunk:
                file.rows += 1
                line, values = row.line, row.values or {}
                key = values.get("sourcedId", "")
                try:
                    if row.error:
                        raise RowError(row.error)
                    state = self.row_state(values, mode)
                    parsed = parse(values, state)
                except RowError as exc:
                    self.report.add_error(file, line, exc.message, key)
                    continue
                except _Skip as skip:
                    file.counts["skipped"] += 1
                    self.report.add_warning(file, line, skip.message, key)
                    continue
                if parsed is not None:
                    records.append(Record(line=line, key=key, values=parsed))
            yield records
            # The caller applied the chunk meanwhile: its errors are listed in line order.
            self.report.errors[errors_before:] = sorted(
                self.report.errors[errors_before:], key=lambda error: error["line"] or 0
            )
            if self.progress is not None:
                self.progress(file.name, file.rows)

    def row_state(self, values: dict[str, str], mode: str) -> str:
        """``active`` or ``deleted``, from the row's status under the file's mode."""
        _required(values, "sourcedId")
        _guid(values["sourcedId"], "sourcedId")
        status = values.get("status", "")
        modified = values.get("dateLastModified", "")
        if modified:
            try:
                datetime.fromisoformat(modified)
            except ValueError:
                raise RowError(
                    f"dateLastModified {modified!r} is not a date and time "
                    "(ISO 8601, e.g. 2025-10-06T09:15:00.000Z)"
                ) from None
        if status in ("", "active") and not (status == "" and mode == "delta"):
            return "active"
        if status in ("tobedeleted", "inactive"):
            # 1.1 removed "inactive"; OneRoster says to read it as tobedeleted.
            return "deleted"
        if status == "":
            raise RowError("status is required in a delta file (active or tobedeleted)")
        raise RowError(f"status {status!r} is not active or tobedeleted")

    def guard(self, kind: str, would_delete: int, active: int) -> None:
        """The mass-delete guard for one kind of record (links, enrollments, users, ...)."""
        guard.check(
            self.report,
            kind=kind,
            would_delete=would_delete,
            active=active,
            share=self.share,
            allowed=self.allow_mass_delete,
            batch_id=self.ctx.batch.pk,
        )

    def step(self, file: FileReport, label: str) -> Step:
        return Step(
            ctx=self.ctx,
            file=file,
            report=self.report,
            messages=ONEROSTER_MESSAGES,
            seen=self.seen(label),
            strict_duplicates=True,
            suspended_count=True,
        )

    # The files, in order ----------------------------------------------------

    def run(self) -> None:
        for kind in ROSTER_ORDER:
            if self.mode(kind) is None:
                continue
            if kind == "roles" and self.manifest.version != "1.2":
                continue
            started = perf_counter()
            getattr(self, f"_{kind}")()
            self.report.files[-1].seconds = perf_counter() - started
            self._drop_seen_tables(keep=self.touched_users)
        for kind in self.manifest.modes:
            if kind not in ROSTER_ORDER:
                file = self.new_file(kind, "not imported")
                self.report.add_warning(
                    file, None, f"{kind}.csv carries no rostering data; it was not imported"
                )
        if self.roles is not None and self.mode("users") is None:
            # A roles.csv without users.csv: the people it names change role.
            step = self.step(self.report.files[-1], "users")
            self.touched_users = step.seen
            self._roles_of_users_not_in_file(step)
        if self.mode("users") or self.mode("roles"):
            started = perf_counter()
            self._links()
            self.report.files[-1].seconds = perf_counter() - started

    def _orgs(self) -> None:
        file = self.new_file("orgs", "accounts")
        step = self.step(file, "orgs")
        parsed: list[Record] = []
        for records in self.records("orgs", file, self._org):
            parsed.extend(records)
        above = {r.key for r in parsed if r.values["type"] not in ("school", "department")}
        self.ctx.root_sis_ids |= above
        districts = [r.key for r in parsed if r.values["type"] == "district"]
        if len(districts) == 1 and not self.root.sis_account_id:
            # Later delta files name schools' parent by the district's sourcedId.
            Account.objects.filter(pk=self.root.pk).update(sis_account_id=districts[0])
        for record in parsed:
            if record.key in above:
                file.counts["unchanged"] += 1
        accounts = [r for r in parsed if r.key not in above]
        self.school_ids = {r.key for r in accounts if r.values["type"] == "school"}
        # Parents first: a school may come after its departments in the file.
        ordered, placed = [], set(above)
        pending = accounts
        while pending:
            ready = [r for r in pending if r.values["parent_account_id"] in placed | {""}]
            if not ready:
                ordered.extend(pending)  # unknown parents: reported by the applier
                break
            ordered.extend(ready)
            placed |= {r.key for r in ready}
            pending = [r for r in pending if r.key not in placed]
        for start in range(0, len(ordered), CHUNK_SIZE):
            apply_chunk(step, apply_accounts, ordered[start : start + CHUNK_SIZE])
        if self.mode("orgs") == "bulk":
            self._remove_unseen(step, Account, "accounts")

    def _org(self, values: dict[str, str], state: str) -> dict:
        _required(values, "name", "type")
        kind = _enum(values["type"], "type", ORG_TYPES, extensible=True)
        parent = values.get("parentSourcedId", "")
        if parent:
            _guid(parent, "parentSourcedId")
        return {
            "account_id": values["sourcedId"],
            "parent_account_id": parent,
            "name": values["name"],
            "state": state,
            "type": kind,
        }

    def _academicSessions(self) -> None:
        file = self.new_file("academicSessions", "terms")
        step = self.step(file, "terms")
        for records in self.records("academicSessions", file, self._session):
            apply_chunk(step, apply_terms, records)
        if self.mode("academicSessions") == "bulk":
            self._remove_unseen(step, Term, "terms")

    def _session(self, values: dict[str, str], state: str) -> dict:
        _required(values, "title", "type", "startDate", "endDate")
        _enum(values["type"], "type", SESSION_TYPES, extensible=True)
        start = _date(values["startDate"], "startDate")
        end = _date(values["endDate"], "endDate")
        if end < start:
            raise RowError(f"endDate {end} is before startDate {start}")
        year = values.get("schoolYear", "")
        if year and not re.fullmatch(r"\d{4}", year):
            raise RowError(f"schoolYear {year!r} is not a year (YYYY)")
        return {
            "term_id": values["sourcedId"],
            "name": values["title"],
            "start_at": _midnight(start),
            "end_at": _midnight(end),  # OneRoster's endDate is exclusive, as is Term.end_at
            "state": state,
        }

    def _courses(self) -> None:
        """courses.csv holds what a class's course is called; classes become the courses here."""
        file = self.new_file("courses", "course codes")
        self.course_codes = {}
        seen: set[str] = set()
        for records in self.records("courses", file, self._course):
            for record in records:
                if record.key in seen:
                    self.report.add_error(
                        file, record.line, ONEROSTER_MESSAGES["duplicate"].format(key=record.key)
                    )
                    continue
                seen.add(record.key)
                self.course_codes[record.key] = record.values["code"]
                file.counts["read"] += 1

    def _course(self, values: dict[str, str], state: str) -> dict:
        _required(values, "title", "orgSourcedId")
        _guid(values["orgSourcedId"], "orgSourcedId")
        return {"code": values.get("courseCode") or values["title"]}

    def _classes(self) -> None:
        file = self.new_file("classes", "courses")
        step = self.step(file, "classes")
        for records in self.records("classes", file, self._class):
            apply_chunk(step, apply_courses, records)
        if self.mode("classes") == "bulk":
            self._remove_unseen(step, Course, "courses")

    def _class(self, values: dict[str, str], state: str) -> dict:
        _required(values, *REQUIRED["classes"])
        _enum(values["classType"], "classType", CLASS_TYPES, extensible=True)
        course = _guid(values["courseSourcedId"], "courseSourcedId")
        school = _guid(values["schoolSourcedId"], "schoolSourcedId")
        terms = _guid_list(values["termSourcedIds"], "termSourcedIds")
        if self.course_codes is not None and course not in self.course_codes:
            raise RowError(f"courseSourcedId {course} is not in courses.csv")
        if self.school_ids is not None and school in self.ctx.root_sis_ids:
            raise RowError(f"schoolSourcedId {school} is not an org of type school")
        code = values.get("classCode") or (self.course_codes or {}).get(course) or values["title"]
        return {
            "course_id": values["sourcedId"],
            "short_name": code,
            "long_name": values["title"],
            "account_id": school,
            "term_id": terms[0] if terms else "",
            "state": Course.State.DELETED if state == "deleted" else Course.State.AVAILABLE,
        }

    def _roles(self) -> None:
        """1.2's roles.csv: each person's role for linking, read before users.csv applies it."""
        file = self.new_file("roles", "roles")
        self.roles = {}
        primaries: set[tuple[str, str]] = set()
        for records in self.records("roles", file, self._role):
            for record in records:
                v = record.values
                if v["state"] == "deleted":
                    file.counts["deleted"] += 1
                    continue
                if v["primary"]:
                    if (v["user"], v["org"]) in primaries:
                        self.report.add_warning(
                            file,
                            record.line,
                            f"user {v['user']} has more than one primary role in org {v['org']}",
                            record.key,
                        )
                    primaries.add((v["user"], v["org"]))
                current = self.roles.get(v["user"])
                rank = _ROLE_RANK.get(v["role"], 9)
                if current is None or rank < _ROLE_RANK.get(current[0], 9):
                    self.roles[v["user"]] = (v["role"], record.line)
                file.counts["read"] += 1

    def _role(self, values: dict[str, str], state: str) -> dict:
        _required(values, *REQUIRED["roles"])
        role_type = _enum(values["roleType"], "roleType", {"primary", "secondary"})
        role = _enum(values["role"], "role", USER_ROLES_12, extensible=True)
        _date(values.get("beginDate", ""), "beginDate")
        _date(values.get("endDate", ""), "endDate")
        return {
            "user": _guid(values["userSourcedId"], "userSourcedId"),
            "org": _guid(values["orgSourcedId"], "orgSourcedId"),
            "role": role,
            "primary": role_type == "primary",
            "state": state,
        }

    def _users(self) -> None:
        file = self.new_file("users", "users")
        step = self.step(file, "users")
        self.touched_users = step.seen
        for records in self.records("users", file, self._user):
            apply_chunk(step, apply_users, records)
            apply_protection(step, records)
        if self.roles:
            self._roles_of_users_not_in_file(step)
        if self.mode("users") == "bulk":
            live = Login.objects.filter(root_account=self.root, sis_user_id__isnull=False)
            live = live.exclude(workflow_state=Login.State.DELETED)
            doomed = list(step.seen.unseen(live).values_list("pk", flat=True))
            self.guard("users", len(doomed), live.count())
            for start in range(0, len(doomed), CHUNK_SIZE):
                Login.objects.filter(any_of("id", doomed[start : start + CHUNK_SIZE])).update(
                    workflow_state=Login.State.DELETED
                )
            if doomed:
                file.counts["deleted"] += len(doomed)
            self._log_removed(Login, doomed, "users", "sis_user_id")

    def _user(self, values: dict[str, str], state: str) -> dict:
        spec = f"users/{self.manifest.version}"
        _required(values, *REQUIRED[spec])
        enabled = boolean_cell(values["enabledUser"], "enabledUser", required=True)
        sourced_id = values["sourcedId"]
        if self.manifest.version == "1.1":
            role = _enum(values["role"], "role", USER_ROLES_11)
            _guid_list(values["orgSourcedIds"], "orgSourcedIds")
        elif self.roles is not None:
            role = self.roles.pop(sourced_id, ("", 0))[0]
        else:
            role = None  # roles.csv not in this bundle: keep the stored role
        agents = []
        for agent in _guid_list(values.get("agentSourcedIds", ""), "agentSourcedIds"):
            if agent != sourced_id and agent not in agents:
                agents.append(agent)
        given, family = values["givenName"], values["familyName"]
        preferred = values.get("preferredGivenName") or given
        preferred_family = values.get("preferredFamilyName") or family
        if state == "deleted":
            login_state = Login.State.DELETED
        else:
            login_state = Login.State.ACTIVE if enabled else Login.State.SUSPENDED
        record = {
            "user_id": sourced_id,
            "login_id": values["username"],
            "full_name": f"{given} {family}",
            "sortable_name": f"{family}, {given}",
            "short_name": f"{preferred} {preferred_family}",
            "email": values.get("email", ""),
            "state": login_state,
            "sis_agent_ids": ",".join(agents),
        }
        if role is not None:
            record["sis_role"] = role
        protected = boolean_cell(values.get(PROTECTED_COLUMN, ""), PROTECTED_COLUMN)
        if protected is not None:
            record["protected"] = protected
        if ENDS_ON_COLUMN in values:
            ends = user_observers.parse_link_end(
                values[ENDS_ON_COLUMN], ENDS_ON_COLUMN, school_time_zone(self.root)
            )
            if self.link_ends is None:
                self.link_ends = {}
            if ends is None or state == "deleted":
                self.link_ends.pop(sourced_id, None)
            else:
                self.link_ends[sourced_id] = ends
        return record

    def _ends_of(self, observer_sis: str, in_file: bool):
        """The end date users.csv gives the observer's links, or UNCHANGED when it gives none.

        An observer the file sent without a date: no end. One it did not
        send (a delta), or a file without the column: left as it is.
        """
        if self.link_ends is None or not in_file:
            return UNCHANGED
        return self.link_ends.get(observer_sis)

    def _roles_of_users_not_in_file(self, step: Step) -> None:
        """roles.csv rows for people users.csv did not send: known people get the role."""
        file = self.report.files[[f.name for f in self.report.files].index("roles.csv")]
        left = sorted(self.roles.items())
        for start in range(0, len(left), CHUNK_SIZE):
            part = dict(left[start : start + CHUNK_SIZE])
            logins = Login.objects.filter(
                any_of("sis_user_id", part), root_account=self.root
            ).exclude(workflow_state=Login.State.DELETED)
            known = {login.sis_user_id: login for login in logins}
            changed = []
            for sourced_id, (role, line) in part.items():
                login = known.get(sourced_id)
                if login is None:
                    self.report.add_error(
                        file,
                        line,
                        f"userSourcedId {sourced_id} is not in users.csv nor imported before",
                        sourced_id,
                    )
                elif login.sis_role != role:
                    login.sis_role = role
                    changed.append(login)
            Login.objects.bulk_update(changed, ["sis_role"])
            step.mark_seen(login.pk for login in changed)

    def _demographics(self) -> None:
        file = self.new_file("demographics", "birth dates")
        step = self.step(file, "demographics")
        for records in self.records("demographics", file, self._demographic):
            apply_chunk(step, apply_birth_dates, records)

    def _demographic(self, values: dict[str, str], state: str) -> dict:
        born = _date(values.get("birthDate", ""), "birthDate")
        return {"user_id": values["sourcedId"], "birth_date": None if state == "deleted" else born}

    def _enrollments(self) -> None:
        file = self.new_file("enrollments", "enrollments")
        step = self.step(file, "enrollments")
        for records in self.records("enrollments", file, self._enrollment):
            apply_chunk(step, apply_enrollments, records)
        if self.mode("enrollments") == "bulk":
            live = (
                Enrollment.objects.filter(root_account=self.root, sis_managed=True)
                .exclude(type=EnrollmentType.OBSERVER)
                .exclude(workflow_state=EnrollmentState.DELETED)
            )
            doomed = list(step.seen.unseen(live).values_list("pk", flat=True))
            self.guard("enrollments", len(doomed), live.count())
            for start in range(0, len(doomed), CHUNK_SIZE):
                end_enrollments(doomed[start : start + CHUNK_SIZE])
            if doomed:
                file.counts["deleted"] += len(doomed)
            if self.report.changes is not None:
                for enrollment_id in doomed[:50]:
                    self.report.changes.add(
                        "enrollments", "deleted", str(enrollment_id), "no longer sent by the SIS"
                    )

    def _enrollment(self, values: dict[str, str], state: str) -> dict:
        _required(values, *REQUIRED["enrollments"])
        role = values["role"]
        if role in ENROLLMENT_SKIPPED or role.startswith("ext:"):
            raise _Skip(
                f"role {role} has no enrollment here (observers are enrolled through their "
                "links): row skipped"
            )
        kind = ENROLLMENT_TYPES.get(role)
        if kind is None:
            raise RowError(
                f"role {role!r} is not one of administrator, aide, proctor, student, teacher"
            )
        boolean_cell(values.get("primary", ""), "primary")
        begin = _date(values.get("beginDate", ""), "beginDate")
        end = _date(values.get("endDate", ""), "endDate")
        if begin and end and end < begin:
            raise RowError(f"endDate {end} is before beginDate {begin}")
        return {
            "course_id": _guid(values["classSourcedId"], "classSourcedId"),
            "user_id": _guid(values["userSourcedId"], "userSourcedId"),
            "type": kind,
            "state": EnrollmentState.DELETED if state == "deleted" else EnrollmentState.ACTIVE,
            "associated_user_id": "",
            "start_at": _midnight(begin),
            "end_at": _midnight(end),
        }

    # Links ------------------------------------------------------------------

    def _links(self) -> None:
        """Links from the people's agents; a bulk users.csv makes the SIS's links exactly those."""
        file = FileReport(name="users.csv (agentSourcedIds)", kind="user_observers")
        self.report.files.append(file)
        bulk = self.mode("users") == "bulk"
        self._link_forward(file, bulk)
        self._link_removals(file, bulk)

    def _logins_with_agents(self, bulk: bool) -> Iterator[list[tuple]]:
        """Live logins naming agents, a chunk at a time: all (bulk) or those users.csv named."""
        rows = ("pk", "sis_user_id", "sis_role", "sis_agent_ids")
        live = (
            Login.objects.filter(root_account=self.root)
            .exclude(workflow_state=Login.State.DELETED)
            .exclude(sis_agent_ids="")
        )
        if not bulk:
            for ids in self.touched_users.chunks(CHUNK_SIZE):
                batch = list(live.filter(any_of("id", ids)).order_by("pk").values_list(*rows))
                if batch:
                    yield batch
            return
        last = 0
        while batch := list(
            live.filter(pk__gt=last).order_by("pk").values_list(*rows)[:CHUNK_SIZE]
        ):
            last = batch[-1][0]
            yield batch

    def _link_forward(self, file: FileReport, bulk: bool) -> None:
        for batch in self._logins_with_agents(bulk):
            agents = {a for _, _, _, ids in batch for a in ids.split(",")}
            info = {
                sis: (pk, role, set(ids.split(",")) if ids else set())
                for pk, sis, role, ids in Login.objects.filter(
                    any_of("sis_user_id", agents), root_account=self.root
                )
                .exclude(workflow_state=Login.State.DELETED)
                .values_list("pk", "sis_user_id", "sis_role", "sis_agent_ids")
            }
            processed = set()
            if not bulk:
                processed = self.touched_users.which(pk for pk, _, _ in info.values())
            valid = []
            # A bulk users.csv sent every live login; a delta, the batch's and ``processed``.
            for _, sis, role, ids in batch:
                for agent in ids.split(","):
                    other = info.get(agent)
                    if other is None:
                        file.counts["unresolved agents"] += 1
                        self.report.add_warning(
                            file, None, f"agent {agent} of user {sis} is not a known user", sis
                        )
                        continue
                    other_pk, other_role, other_agents = other
                    if role == "student" and other_role in OBSERVER_KINDS:
                        ends = self._ends_of(agent, bulk or other_pk in processed)
                        valid.append((None, agent, sis, "active", OBSERVER_KINDS[other_role], ends))
                    elif role in OBSERVER_KINDS and other_role == "student":
                        # Named from both sides: the student's row already made it.
                        if sis in other_agents and (bulk or other_pk in processed):
                            continue
                        ends = self._ends_of(sis, True)
                        valid.append((None, sis, agent, "active", OBSERVER_KINDS[role], ends))
                    else:
                        file.counts["not linked"] += 1
                        self.report.add_warning(
                            file, None, _not_linked(sis, role, agent, other_role), sis
                        )
            file.rows += len(valid)
            user_observers.apply_links_retrying(
                self.ctx, valid, file, self.report, suspended_count=True
            )

    def _links_to_check(self, links, bulk: bool) -> Iterator[list[tuple]]:
        """SIS links a chunk at a time: all (bulk), or those of the people users.csv named."""
        rows = ("pk", "observer_id", "student_id")
        if not bulk:
            checked: set[int] = set()
            for ids in self.touched_users.chunks(CHUNK_SIZE):
                users = list(
                    Login.objects.filter(any_of("id", ids)).values_list("user_id", flat=True)
                )
                batch = [
                    row
                    for row in links.filter(
                        any_of("observer_id", users) | any_of("student_id", users)
                    )
                    .order_by("pk")
                    .values_list(*rows)
                    if row[0] not in checked
                ]
                checked.update(row[0] for row in batch)
                if batch:
                    yield batch
            return
        last = 0
        while batch := list(
            links.filter(pk__gt=last).order_by("pk").values_list(*rows)[:CHUNK_SIZE]
        ):
            last = batch[-1][0]
            yield batch

    def _link_removals(self, file: FileReport, bulk: bool) -> None:
        """SIS-made links the agents no longer name (a tobedeleted person names none)."""
        links = ObservationLink.objects.active().filter(
            root_account=self.root, source=LinkSource.SIS
        )
        doomed: list[int] = []
        for batch in self._links_to_check(links, bulk):
            people = {
                user_id: (sis, role, set(ids.split(",")) if ids else set())
                for user_id, sis, role, ids in Login.objects.filter(
                    any_of("user_id", {u for _, o, s in batch for u in (o, s)}),
                    root_account=self.root,
                    sis_user_id__isnull=False,
                )
                .exclude(workflow_state=Login.State.DELETED)
                .values_list("user_id", "sis_user_id", "sis_role", "sis_agent_ids")
            }
            for pk, observer_id, student_id in batch:
                observer, student = people.get(observer_id), people.get(student_id)
                named = (
                    observer is not None
                    and student is not None
                    and student[1] == "student"
                    and observer[1] in OBSERVER_KINDS
                    and (observer[0] in student[2] or student[0] in observer[2])
                )
                if not named:
                    doomed.append(pk)
        active = ObservationLink.objects.active().filter(root_account=self.root).count()
        self.guard("links", len(doomed), active)
        for start in range(0, len(doomed), CHUNK_SIZE):
            user_observers.remove_links(
                self.ctx, doomed[start : start + CHUNK_SIZE], file, self.report
            )

    # Helpers ----------------------------------------------------------------

    def _remove_unseen(self, step: Step, model, kind: str) -> None:
        """A bulk file's sub-accounts, terms or courses it no longer sends: marked deleted."""
        sis_field = {Account: "sis_account_id", Term: "sis_term_id", Course: "sis_course_id"}[model]
        live = model.objects.filter(root_account=self.root, **{f"{sis_field}__isnull": False})
        live = live.exclude(workflow_state=model.State.DELETED)
        ids = list(step.seen.unseen(live).values_list("pk", flat=True))
        self.guard(kind, len(ids), live.count())
        for start in range(0, len(ids), CHUNK_SIZE):
            model.objects.filter(any_of("id", ids[start : start + CHUNK_SIZE])).update(
                workflow_state=model.State.DELETED
            )
        if ids:
            step.file.counts["deleted"] += len(ids)
        self._log_removed(model, ids, kind, sis_field)

    def _log_removed(self, model, ids: list[int], kind: str, sis_field: str) -> None:
        if self.report.changes is None or not ids:
            return
        for sis_id in model.objects.filter(any_of("id", ids[:50])).values_list(
            sis_field, flat=True
        ):
            self.report.changes.add(kind, "deleted", sis_id or "", "no longer sent by the SIS")


class _Skip(Exception):
    """A row that is well-formed but has nothing to import here (a warning, not an error)."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


def _not_linked(sis: str, role: str, agent: str, other_role: str) -> str:
    def who(role: str) -> str:
        return f"a {role}" if role else "without a role"

    return (
        f"user {sis} ({who(role)}) names {agent} ({who(other_role)}) as an agent: only a "
        "student and a parent, guardian or relative are linked"
    )


def run_bundle(
    bundle: Bundle,
    *,
    report: ImportReport,
    root_account: Account,
    actor,
    share: float,
    allow_mass_delete: bool,
    source_name: str,
    progress,
) -> ImportReport:
    """Apply a bundle in one transaction and record its batch (see the module's docstring)."""
    batch = start_batch(report, root_account, actor, source_name)
    ctx = ImportContext(root_account=root_account, batch=batch, actor=actor)
    try:
        with transaction.atomic():
            plan_with_indexes()
            manifest = read_manifest(bundle, report)
            run = _Run(bundle, manifest, ctx, report, share, allow_mass_delete, progress)
            try:
                run.run()
            finally:
                run._drop_seen_tables(keep=None)
    except MassDeleteRefused:
        finish_batch(batch, report, SisBatch.State.ABORTED)
        raise
    except SisFileError as exc:
        # Nothing of the bundle stays, so neither do its counts.
        for file in report.files:
            file.counts.clear()
        file = FileReport(name=bundle.name, kind="bundle", error=exc.message)
        report.files.append(file)
        report.add_error(file, None, exc.message)
        finish_batch(batch, report, SisBatch.State.FAILED)
        return report
    except BaseException:
        finish_batch(batch, report, SisBatch.State.FAILED)
        raise
    finish_batch(
        batch,
        report,
        SisBatch.State.IMPORTED_WITH_ERRORS if report.failed else SisBatch.State.IMPORTED,
    )
    return report
