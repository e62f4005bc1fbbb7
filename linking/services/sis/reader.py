"""Finding, recognising and streaming Canvas SIS CSV files.

Files come from a directory, a zip or single paths; each is recognised by
its header, never by its name, and read as a stream so memory stays flat
however long the file is.
"""

import csv
import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import LinkingError
from .archive import check_archive

# Processing order: each kind may refer to rows of the kinds before it.
KIND_ORDER = ("accounts", "users", "courses", "enrollments", "admins", "user_observers")

# Columns that identify a kind, tried in this order (enrollments and admins
# both carry user_id and role, so the more specific kinds come first).
_SIGNATURES = (
    ("user_observers", {"observer_id", "student_id"}),
    ("enrollments", {"course_id", "user_id", "role"}),
    ("admins", {"user_id", "account_id", "role"}),
    ("courses", {"course_id", "short_name", "long_name"}),
    ("users", {"user_id", "login_id"}),
    ("accounts", {"account_id", "parent_account_id"}),
)

# csv's default limit (128 KiB) stays: a longer field is a row error, not a
# 50 MB string held in memory for every later row.
FIELD_SIZE_LIMIT = csv.field_size_limit()


class SisFileError(LinkingError):
    """A whole file cannot be read: empty, unrecognised header, not UTF-8."""

    code = "sis_file"


@dataclass(frozen=True)
class SisSource:
    """One CSV file to import: a display name and a way to open it as bytes."""

    name: str
    opener: Callable[[], IO[bytes]]


@dataclass(frozen=True)
class SisRow:
    line: int
    values: dict[str, str] | None
    error: str | None = None
    warning: str | None = None  # about the file, not this row (line 0)


def collect_sources(paths: list[str | Path]) -> list[SisSource]:
    """The CSV files in the given directories, zips and single files, in the order found."""
    sources: list[SisSource] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.is_file() and child.suffix.lower() in {".csv", ".zip"}:
                    sources.extend(collect_sources([child]))
        elif zipfile.is_zipfile(path):
            check_archive(path)
            sources.extend(_zip_sources(path))
        elif path.is_file():
            sources.append(SisSource(name=path.name, opener=lambda p=path: p.open("rb")))
        else:
            raise SisFileError(f"{path}: no such file or directory")
    return sources


def _zip_sources(path: Path) -> list[SisSource]:
    with zipfile.ZipFile(path) as archive:
        names = [
            info.filename
            for info in archive.infolist()
            if not info.is_dir()
            and info.filename.lower().endswith(".csv")
            and not info.filename.startswith("__MACOSX/")
        ]

    return [
        SisSource(name=f"{path.name}/{name}", opener=zip_member_opener(path, name))
        for name in sorted(names)
    ]


def zip_member_opener(path: Path, member: str) -> Callable[[], IO[bytes]]:
    """Opens one member of a zip as a byte stream; closing the stream closes the archive."""

    def open_member() -> IO[bytes]:
        archive = zipfile.ZipFile(path)
        stream = archive.open(member)
        original_close = stream.close

        def close() -> None:
            original_close()
            archive.close()

        stream.close = close
        return stream

    return open_member


def _text(stream: IO[bytes]) -> io.TextIOWrapper:
    # utf-8-sig drops the byte-order mark Excel writes; strict errors make a
    # Latin-1 file a clear file error instead of silently mangled names.
    return io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")


def _normalise_header(header: list[str]) -> list[str]:
    return [column.strip().lower() for column in header]


def read_header(source: SisSource) -> list[str]:
    """The file's normalised header; raises SisFileError when there is none or it is unreadable."""
    with source.opener() as stream:
        text = _text(stream)
        try:
            header = next(csv.reader(text), None)
        except UnicodeDecodeError as exc:
            raise SisFileError(f"{source.name}: not UTF-8 encoded text ({exc.reason})") from exc
        except csv.Error as exc:
            raise SisFileError(f"{source.name}: line 1: {exc}") from exc
    if not header or not any(column.strip() for column in header):
        raise SisFileError(f"{source.name}: the file is empty (no header row)")
    return _normalise_header(header)


def recognise(source: SisSource) -> str:
    """Which kind of SIS file this is, from its header; raises SisFileError when unknown."""
    columns = set(read_header(source))
    for kind, required in _SIGNATURES:
        if required <= columns:
            return kind
    raise SisFileError(
        f"{source.name}: unrecognised header; expected the columns of one of "
        "accounts.csv, users.csv, courses.csv, enrollments.csv, admins.csv or user_observers.csv"
    )


def iter_rows(source: SisSource) -> Iterator[SisRow]:
    """Stream the data rows (header excluded) with their line numbers.

    A row whose field is over the csv size limit becomes an error row and
    reading goes on. Undecodable bytes raise SisFileError: the rest of the
    file cannot be trusted.
    """
    with source.opener() as stream:
        text = _text(stream)
        reader = csv.reader(text)
        try:
            header = _normalise_header(next(reader))
        except (StopIteration, UnicodeDecodeError) as exc:
            raise SisFileError(f"{source.name}: the file is empty or not UTF-8") from exc
        yield from data_rows(source, reader, {column: i for i, column in enumerate(header)})


def data_rows(source: SisSource, reader, index: dict[str, int]) -> Iterator[SisRow]:
    """The rest of a csv reader's rows as {column: stripped value} by ``index``; blank rows skipped.

    A malformed row (a field over the csv size limit) becomes an error row
    and reading goes on. Undecodable bytes raise SisFileError: the rest of
    the file cannot be trusted.
    """
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise SisFileError(
                f"{source.name}: not UTF-8 encoded text after line {reader.line_num} ({exc.reason})"
            ) from exc
        except csv.Error as exc:
            yield SisRow(line=reader.line_num, values=None, error=f"Malformed CSV row: {exc}")
            continue
        if not any(value.strip() for value in values):
            continue
        row = {
            column: (values[i].strip() if i < len(values) else "") for column, i in index.items()
        }
        yield SisRow(line=reader.line_num, values=row)
