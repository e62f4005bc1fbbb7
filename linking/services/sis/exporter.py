"""Exporting a root account's users and active observer links as Canvas SIS CSV files.

The files re-import to the same state: every login with an SIS user id
becomes a users.csv row, every active link between two such users a
user_observers.csv row, with its end date in our extension column
(``end_date``; OneRoster: ``metadata.observers.ends_on`` on the observer's
row). Links where either side has no SIS id cannot be expressed in the
format and are counted as skipped.
"""

import csv
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from django.db.models import OuterRef, Subquery

from ...models import Account, Login, ObservationLink
from ...timezones import school_time_zone
from .oneroster import COLUMNS, ENDS_ON_COLUMN, FILES_11, OBSERVER_KINDS, USER_ROLES_11
from .user_observers import END_DATE_COLUMN, format_link_end

USERS_HEADER = [
    "user_id",
    "integration_id",
    "login_id",
    "password",
    "first_name",
    "last_name",
    "full_name",
    "sortable_name",
    "short_name",
    "email",
    "status",
]
USER_OBSERVERS_HEADER = ["observer_id", "student_id", "status", END_DATE_COLUMN]


@dataclass
class ExportCounts:
    users: int = 0
    user_observers: int = 0
    skipped_links: int = 0
    # OneRoster: observers whose links end on different dates (one column per observer).
    mixed_end_dates: int = 0


def _sis_logins(root_account: Account):
    return Login.objects.filter(root_account=root_account, sis_user_id__isnull=False).exclude(
        workflow_state=Login.State.DELETED
    )


def write_users(root_account: Account, out: io.TextIOBase) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(USERS_HEADER)
    count = 0
    logins = _sis_logins(root_account).select_related("user").order_by("sis_user_id")
    for login in logins.iterator(chunk_size=2000):
        user = login.user
        writer.writerow(
            [
                login.sis_user_id,
                login.integration_id or "",
                login.unique_id,
                "",
                user.first_name,
                user.last_name,
                user.name,
                user.sortable_name,
                user.short_name,
                user.email,
                "active",
            ]
        )
        count += 1
    return count


def write_user_observers(root_account: Account, out: io.TextIOBase) -> tuple[int, int]:
    """Returns (rows written, active links skipped because a side has no SIS id)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(USER_OBSERVERS_HEADER)

    def sis_id_of(field: str) -> Subquery:
        return Subquery(
            _sis_logins(root_account)
            .filter(user_id=OuterRef(field))
            .order_by("id")
            .values("sis_user_id")[:1]
        )

    links = (
        ObservationLink.objects.active()
        .filter(root_account=root_account)
        .annotate(observer_sis=sis_id_of("observer_id"), student_sis=sis_id_of("student_id"))
        .order_by("id")
        .values_list("observer_sis", "student_sis", "ends_at")
    )
    zone = school_time_zone(root_account)
    written = skipped = 0
    for observer_sis, student_sis, ends_at in links.iterator(chunk_size=2000):
        if observer_sis is None or student_sis is None:
            skipped += 1
            continue
        writer.writerow([observer_sis, student_sis, "active", format_link_end(ends_at, zone)])
        written += 1
    return written, skipped


def export_to_directory(*, root_account: Account, directory: str | Path) -> ExportCounts:
    """Write users.csv and user_observers.csv into ``directory`` (created if missing)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    counts = ExportCounts()
    with (directory / "users.csv").open("w", encoding="utf-8", newline="") as out:
        counts.users = write_users(root_account, out)
    with (directory / "user_observers.csv").open("w", encoding="utf-8", newline="") as out:
        counts.user_observers, counts.skipped_links = write_user_observers(root_account, out)
    return counts


def export_zip(*, root_account: Account, target) -> ExportCounts:
    """Write a zip holding users.csv and user_observers.csv to the binary file ``target``."""
    counts = ExportCounts()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("users.csv", "w") as member:
            text = io.TextIOWrapper(member, encoding="utf-8", newline="")
            counts.users = write_users(root_account, text)
            text.flush()
            text.detach()
        with archive.open("user_observers.csv", "w") as member:
            text = io.TextIOWrapper(member, encoding="utf-8", newline="")
            counts.user_observers, counts.skipped_links = write_user_observers(root_account, text)
            text.flush()
            text.detach()
    return counts


# OneRoster ------------------------------------------------------------------

ONEROSTER_MANIFEST = (
    ("manifest.version", "1.0"),
    ("oneroster.version", "1.1"),
    *((f"file.{name}", "bulk" if name == "users" else "absent") for name in FILES_11),
    ("source.systemName", "observers"),
)
ONEROSTER_USERS_HEADER = [*COLUMNS["users/1.1"], ENDS_ON_COLUMN]
_ENROLLMENT_ROLES = {"student": "student", "teacher": "teacher", "ta": "aide"}
EXPORT_CHUNK = 2000


def _oneroster_role(login: Login, observes: list[str], observed: bool, enrolled: set[str]) -> str:
    """The person's OneRoster role, so that re-importing derives exactly their links.

    Anyone who observes someone is exported as an observer (their link's
    kind, else their SIS role if it is one, else parent); anyone observed as
    a student; others by their SIS role or their enrollments.
    """
    if observes:
        kinds = [kind for kind in observes if kind]
        if kinds:
            return kinds[0]
        return login.sis_role if login.sis_role in OBSERVER_KINDS else "parent"
    if observed:
        return "student"
    if login.sis_role in USER_ROLES_11:
        return login.sis_role
    for kind in ("student", "teacher", "ta"):
        if kind in enrolled:
            return _ENROLLMENT_ROLES[kind]
    return "student"


def _observers_end(ends: list) -> tuple[object, bool]:
    """One end date for all of an observer's links, and whether they differed.

    The column is per observer: when their links end on different dates the
    latest is written (no end counts as latest), so a re-import ends none
    earlier than it would have ended.
    """
    if not ends:
        return None, False
    mixed = len(set(ends)) > 1
    if None in ends:
        return None, mixed
    return max(ends), mixed


def write_oneroster_users(
    root_account: Account, out: io.TextIOBase, counts: ExportCounts | None = None
) -> tuple[int, int]:
    """users.csv (1.1) with every live SIS login and its agents; returns (rows, links skipped).

    ``counts.mixed_end_dates`` counts the observers whose links' end dates
    could not all be written (_observers_end).
    """
    from ...models import Enrollment
    from ...models.lookups import any_of

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ONEROSTER_USERS_HEADER)
    org = root_account.sis_account_id or f"root-{root_account.pk}"
    zone = school_time_zone(root_account)
    rows = exported = 0
    last = 0
    while True:
        logins = list(
            _sis_logins(root_account)
            .filter(pk__gt=last)
            .select_related("user")
            .order_by("pk")[:EXPORT_CHUNK]
        )
        if not logins:
            break
        last = logins[-1].pk
        user_ids = [login.user_id for login in logins]
        links = list(
            ObservationLink.objects.active()
            .filter(root_account=root_account)
            .filter(any_of("observer_id", user_ids) | any_of("student_id", user_ids))
            .values_list("observer_id", "student_id", "kind", "ends_at")
        )
        partners = {u for observer, student, *_ in links for u in (observer, student)}
        sis = dict(
            _sis_logins(root_account)
            .filter(any_of("user_id", partners))
            .values_list("user_id", "sis_user_id")
        )
        enrolled: dict[int, set[str]] = {}
        for user_id, kind in (
            Enrollment.objects.filter(any_of("user_id", user_ids), root_account=root_account)
            .exclude(workflow_state="deleted")
            .values_list("user_id", "type")
            .distinct()
        ):
            enrolled.setdefault(user_id, set()).add(kind)
        for login in logins:
            user = login.user
            observes = [kind for o, s, kind, _ in links if o == user.pk and s in sis]
            exported += len(observes)
            observed = any(s == user.pk and o in sis for o, s, *_ in links)
            agents = sorted(
                {sis[s] for o, s, *_ in links if o == user.pk and s in sis}
                | {sis[o] for o, s, *_ in links if s == user.pk and o in sis}
            )
            ends, mixed = _observers_end(
                [ends_at for o, s, _, ends_at in links if o == user.pk and s in sis]
            )
            if mixed and counts is not None:
                counts.mixed_end_dates += 1
            family = user.last_name or user.name
            given = user.first_name or ("" if user.last_name else user.name)
            writer.writerow(
                [
                    login.sis_user_id,
                    "",
                    "",
                    "false" if login.workflow_state == Login.State.SUSPENDED else "true",
                    org,
                    _oneroster_role(login, observes, observed, enrolled.get(user.pk, set())),
                    login.unique_id,
                    "",
                    given or family,
                    family,
                    "",
                    "",
                    user.email,
                    "",
                    "",
                    ",".join(agents),
                    "",
                    "",
                    format_link_end(ends, zone),
                ]
            )
            rows += 1
    total = ObservationLink.objects.active().filter(root_account=root_account).count()
    return rows, total - exported


def _write_manifest(out: io.TextIOBase) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["propertyName", "value"])
    writer.writerows(ONEROSTER_MANIFEST)


def export_oneroster_directory(*, root_account: Account, directory: str | Path) -> ExportCounts:
    """A OneRoster 1.1 bundle (manifest.csv, users.csv with agents) that re-imports as it is."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    counts = ExportCounts()
    with (directory / "manifest.csv").open("w", encoding="utf-8", newline="") as out:
        _write_manifest(out)
    with (directory / "users.csv").open("w", encoding="utf-8", newline="") as out:
        counts.users, counts.skipped_links = write_oneroster_users(root_account, out, counts)
    return counts


def export_oneroster_zip(*, root_account: Account, target) -> ExportCounts:
    """The same bundle as a zip written to the binary file ``target``."""
    counts = ExportCounts()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, write in (("manifest.csv", None), ("users.csv", write_oneroster_users)):
            with archive.open(name, "w") as member:
                text = io.TextIOWrapper(member, encoding="utf-8", newline="")
                if write is None:
                    _write_manifest(text)
                else:
                    counts.users, counts.skipped_links = write(root_account, text, counts)
                text.flush()
                text.detach()
    return counts
