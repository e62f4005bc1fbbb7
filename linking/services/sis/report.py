"""What an SIS import did: per-file counts, row errors and warnings, and the changes it made."""

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from django.utils import timezone

from ...models import SisBatch
from ...spreadsheet import text_row

# Row errors kept on the batch; past this only the count grows, so a file of
# a million bad rows cannot blow up memory or the batch row.
MAX_STORED_ERRORS = 1000
# Changes of each kind shown in a preview; the CSV download has them all.
PREVIEW_ROWS = 20

CHANGE_COLUMNS = ("kind", "action", "sis_id", "description")


@dataclass
class FileReport:
    name: str
    kind: str = ""
    rows: int = 0
    counts: Counter = field(default_factory=Counter)
    errors: int = 0
    warnings: int = 0
    seconds: float = 0.0
    error: str = ""  # a file-level error: nothing of the file was applied

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "rows": self.rows,
            "errors": self.errors,
            "warnings": self.warnings,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            **{key: self.counts[key] for key in sorted(self.counts)},
        }


class ChangeLog:
    """The changes an import makes, by kind (links, enrollments, users, ...).

    Keeps the first PREVIEW_ROWS of each kind for the preview and, when a
    path is given, writes every change to a CSV file as it goes, so memory
    stays flat however many rows change.
    """

    def __init__(self, path: Path | None = None):
        self.path = path
        self.first: dict[str, list[dict]] = {}
        self.counts: Counter = Counter()
        self._file = None
        self._writer = None
        if path is not None:
            self._file = Path(path).open("w", encoding="utf-8", newline="")  # noqa: SIM115
            self._writer = csv.writer(self._file)
            self._writer.writerow(CHANGE_COLUMNS)

    def add(self, kind: str, action: str, sis_id: str, description: str) -> None:
        self.counts[(kind, action)] += 1
        shown = self.first.setdefault(kind, [])
        if len(shown) < PREVIEW_ROWS:
            shown.append(
                {"kind": kind, "action": action, "sis_id": sis_id, "description": description}
            )
        if self._writer is not None:
            # A spreadsheet must not read a name as a formula (=, +, -, @).
            self._writer.writerow(text_row((kind, action, sis_id, description)))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def as_dict(self) -> dict:
        return {
            "first": self.first,
            "counts": [
                {"kind": kind, "action": action, "count": count}
                for (kind, action), count in sorted(self.counts.items())
            ],
        }


@dataclass
class ImportReport:
    """The outcome of one import (or dry run), kept on the SisBatch as JSON."""

    dry_run: bool = False
    content_hash: str = ""  # of the files, for the nightly sync (sync.bundle_hash)
    batch_id: int | None = None
    state: str = ""
    format: str = "canvas"
    files: list[FileReport] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    error_count: int = 0
    warning_count: int = 0
    mass_delete: dict = field(default_factory=dict)
    changes: ChangeLog | None = None

    def add_error(
        self, file: FileReport, line: int | None, message: str, sourced_id: str = ""
    ) -> None:
        file.errors += 1
        self.error_count += 1
        if len(self.errors) < MAX_STORED_ERRORS:
            entry = {"file": file.name, "line": line, "message": message}
            if sourced_id:
                entry["sourced_id"] = sourced_id
            self.errors.append(entry)

    def add_warning(
        self, file: FileReport, line: int | None, message: str, sourced_id: str = ""
    ) -> None:
        file.warnings += 1
        self.warning_count += 1
        if len(self.warnings) < MAX_STORED_ERRORS:
            entry = {"file": file.name, "line": line, "message": message, "level": "warning"}
            if sourced_id:
                entry["sourced_id"] = sourced_id
            self.warnings.append(entry)

    def mark(self, file: FileReport) -> tuple:
        """Where the report stands for ``file``, to go back to when a savepoint is rolled back."""
        return (
            file.counts.copy(),
            file.errors,
            file.warnings,
            len(self.errors),
            len(self.warnings),
            self.error_count,
            self.warning_count,
        )

    def back_to(self, file: FileReport, mark: tuple) -> None:
        """Forget the counts, errors and warnings added since ``mark``."""
        file.counts, file.errors, file.warnings = mark[0], mark[1], mark[2]
        del self.errors[mark[3] :]
        del self.warnings[mark[4] :]
        self.error_count, self.warning_count = mark[5], mark[6]

    @property
    def failed(self) -> bool:
        """Any row or file failed (warnings do not count)."""
        return self.error_count > 0

    def totals(self) -> Counter:
        total: Counter = Counter()
        for file in self.files:
            total.update(file.counts)
            total["rows"] += file.rows
        total["errors"] = self.error_count
        total["warnings"] = self.warning_count
        return total

    def counts_json(self) -> dict:
        data = {
            "format": self.format,
            "files": [file.as_dict() for file in self.files],
            "totals": dict(self.totals()),
            "mass_delete": self.mass_delete,
        }
        if self.changes is not None:
            data["changes"] = self.changes.as_dict()
        return data


def start_batch(report: ImportReport, root_account, actor, source_name: str) -> SisBatch:
    """Record a running batch for an import (its id goes on the report)."""
    batch = SisBatch.objects.create(
        root_account=root_account,
        created_by=actor.user if actor.user is not None and actor.user.pk else None,
        workflow_state=SisBatch.State.RUNNING,
        format=report.format,
        content_hash=report.content_hash,
        source_name=source_name[:255],
        dry_run=report.dry_run,
    )
    report.batch_id = batch.pk
    return batch


def finish_batch(batch: SisBatch, report: ImportReport, state: str) -> None:
    """Write the report's counts, errors and warnings on its batch, in ``state``."""
    report.state = state
    batch.workflow_state = state
    batch.counts = report.counts_json()
    batch.errors = report.errors + report.warnings
    batch.finished_at = timezone.now()
    batch.save(update_fields=["workflow_state", "counts", "errors", "finished_at"])
