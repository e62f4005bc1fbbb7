"""What an SIS import did: per-file counts and row errors."""

from collections import Counter
from dataclasses import dataclass, field

# Row errors kept on the batch; past this only the count grows, so a file of
# a million bad rows cannot blow up memory or the batch row.
MAX_STORED_ERRORS = 1000


@dataclass
class FileReport:
    name: str
    kind: str = ""
    rows: int = 0
    counts: Counter = field(default_factory=Counter)
    errors: int = 0
    error: str = ""  # a file-level error: nothing of the file was applied

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "rows": self.rows,
            "errors": self.errors,
            "error": self.error,
            **{key: self.counts[key] for key in sorted(self.counts)},
        }


@dataclass
class ImportReport:
    """The outcome of one import (or dry run), kept on the SisBatch as JSON."""

    dry_run: bool = False
    batch_id: int | None = None
    state: str = ""
    files: list[FileReport] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    error_count: int = 0
    mass_delete: dict = field(default_factory=dict)

    def add_error(self, file: FileReport, line: int | None, message: str) -> None:
        file.errors += 1
        self.error_count += 1
        if len(self.errors) < MAX_STORED_ERRORS:
            self.errors.append({"file": file.name, "line": line, "message": message})

    @property
    def failed(self) -> bool:
        """Any row or file failed."""
        return self.error_count > 0

    def totals(self) -> Counter:
        total: Counter = Counter()
        for file in self.files:
            total.update(file.counts)
            total["rows"] += file.rows
        total["errors"] = self.error_count
        return total

    def counts_json(self) -> dict:
        return {
            "files": [file.as_dict() for file in self.files],
            "totals": dict(self.totals()),
            "mass_delete": self.mass_delete,
        }
