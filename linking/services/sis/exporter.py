"""Exporting a root account's users and active observer links as Canvas SIS CSV files.

The files re-import to the same state: every login with an SIS user id
becomes a users.csv row, every active link between two such users a
user_observers.csv row. Links where either side has no SIS id cannot be
expressed in the format and are counted as skipped.
"""

import csv
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from django.db.models import OuterRef, Subquery

from ...models import Account, Login, ObservationLink

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
USER_OBSERVERS_HEADER = ["observer_id", "student_id", "status"]


@dataclass
class ExportCounts:
    users: int = 0
    user_observers: int = 0
    skipped_links: int = 0


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
        .values_list("observer_sis", "student_sis")
    )
    written = skipped = 0
    for observer_sis, student_sis in links.iterator(chunk_size=2000):
        if observer_sis is None or student_sis is None:
            skipped += 1
            continue
        writer.writerow([observer_sis, student_sis, "active"])
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
