"""Running an SIS import: files in dependency order, one transaction per file, a recorded batch."""

from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from time import perf_counter

from django.db import transaction

from ...models import Account, AuditSource, ObservationLink, SisBatch
from ...timezones import school_time_zone
from ..context import Actor
from . import guard, oneroster, user_observers
from .apply import (
    Record,
    Step,
    apply_accounts,
    apply_admins,
    apply_chunk,
    apply_courses,
    apply_enrollments,
    apply_protection,
    apply_users,
)
from .bulkdb import plan_with_indexes
from .guard import MassDeleteRefused, mass_delete_share
from .reader import (
    KIND_ORDER,
    SisFileError,
    SisRow,
    SisSource,
    collect_sources,
    iter_rows,
    recognise,
)
from .report import ChangeLog, FileReport, ImportReport, finish_batch, start_batch
from .rows import CANVAS_MESSAGES, RECORD_MAKERS, ImportContext, RowError

# Rows per chunk of a Canvas file. Each chunk costs a fixed handful of
# statements, and more when some of its rows change (insert, update, the
# observers' mirror): with 1,000 a 1%-changed enrollments.csv of 300,000 rows
# took 1.6-1.7x its unchanged time, with 4,000 1.37x (PostgreSQL, same run).
CHUNK_SIZE = 4000
Progress = Callable[[str, int], None]

_APPLIERS = {
    "accounts": apply_accounts,
    "users": apply_users,
    "courses": apply_courses,
    "enrollments": apply_enrollments,
    "admins": apply_admins,
}


class _DryRunRollback(Exception):
    pass


def import_sis(
    *,
    paths: list[str | Path],
    root_account: Account,
    actor: Actor,
    dry_run: bool = False,
    allow_mass_delete: bool = False,
    max_delete_share: float | None = None,
    source_name: str = "",
    progress: Progress | None = None,
    changes_path: str | Path | None = None,
    content_hash: str = "",
) -> ImportReport:
    """Import Canvas SIS CSV files or a OneRoster bundle into one root account.

    A directory or zip holding ``manifest.csv`` is a OneRoster 1.1/1.2
    bundle (services/sis/oneroster.py: its own reader, applied by the same
    bulk appliers, whole or not at all); anything else is Canvas's format.

    Rules (canvas-behaviour.md §6.2): files are recognised by their header
    and applied in dependency order (accounts, users, courses, enrollments,
    admins, user_observers); every row is checked and a bad row is reported
    with its file and line while the rest goes on; each file is applied in
    its own transaction, so a file that cannot be read or a crash leaves
    none of that file behind. The run is recorded as a SisBatch (counts, row
    errors, who, when) and every link it touches points to it.

    ``dry_run`` runs everything and rolls it all back, batch included: the
    report says exactly what would change, and lists the changes (the first
    of each kind in ``report.changes``, all of them in a CSV at
    ``changes_path`` when given). ``content_hash`` is recorded on the batch
    (the nightly sync skips a bundle already applied). Raises MassDeleteRefused (after
    recording an aborted batch) when the files would delete more than
    ``max_delete_share`` (default: settings.SIS_MASS_DELETE_SHARE, 10%) of
    the root account's active links and ``allow_mass_delete`` is not set;
    SisFileError when a path does not exist.
    """
    if actor.source != AuditSource.SIS:
        actor = Actor(
            user=actor.user,
            source=AuditSource.SIS,
            ip_address=actor.ip_address,
            user_agent=actor.user_agent,
        )
    share = mass_delete_share() if max_delete_share is None else max_delete_share
    source_name = source_name or ", ".join(str(path) for path in paths)
    report = ImportReport(dry_run=dry_run, content_hash=content_hash)
    if dry_run or changes_path is not None:
        report.changes = ChangeLog(Path(changes_path) if changes_path else None)
    bundle = oneroster.find_bundle(paths)
    if bundle is not None:
        report.format = SisBatch.Format.ONEROSTER

        def run(allow: bool) -> ImportReport:
            return oneroster.run_bundle(
                bundle,
                report=report,
                root_account=root_account,
                actor=actor,
                share=share,
                allow_mass_delete=allow,
                source_name=source_name,
                progress=progress,
            )
    else:
        planned = _recognise_all(collect_sources(paths), report)

        def run(allow: bool) -> ImportReport:
            return _run(planned, report, root_account, actor, share, allow, source_name, progress)

    try:
        if not dry_run:
            return run(allow_mass_delete)
        try:
            with transaction.atomic():
                run(allow_mass_delete)
                raise _DryRunRollback
        except _DryRunRollback:
            pass
        except MassDeleteRefused:
            pass  # the preview reports the guard; nothing was written either way
        report.batch_id = None
        report.state = SisBatch.State.DRY_RUN
        return report
    finally:
        if report.changes is not None:
            report.changes.close()


def _recognise_all(sources: list[SisSource], report: ImportReport) -> list[tuple[SisSource, str]]:
    planned = []
    for source in sources:
        file = FileReport(name=source.name)
        try:
            file.kind = recognise(source)
        except SisFileError as exc:
            file.error = exc.message
            report.files.append(file)
            report.add_error(file, None, exc.message)
            continue
        planned.append((source, file.kind))
    planned.sort(key=lambda item: KIND_ORDER.index(item[1]))
    return planned


def _run(planned, report, root_account, actor, share, allow_mass_delete, source_name, progress):
    batch = start_batch(report, root_account, actor, source_name)
    ctx = ImportContext(root_account=root_account, batch=batch, actor=actor)
    try:
        guard.check(
            report,
            kind="links",
            **_planned_link_deletions(ctx, planned),
            share=share,
            allowed=allow_mass_delete,
            batch_id=batch.pk,
        )
    except MassDeleteRefused:
        finish_batch(batch, report, SisBatch.State.ABORTED)
        raise
    try:
        for source, kind in planned:
            file = FileReport(name=source.name, kind=kind)
            report.files.append(file)
            _apply_file(ctx, source, file, report, progress)
    except BaseException:
        finish_batch(batch, report, SisBatch.State.FAILED)
        raise
    finish_batch(
        batch,
        report,
        SisBatch.State.IMPORTED_WITH_ERRORS if report.failed else SisBatch.State.IMPORTED,
    )
    return report


def _planned_link_deletions(ctx, planned) -> dict:
    """How many active links the files' ``deleted`` rows would remove, of how many."""
    active = ObservationLink.objects.active().filter(root_account=ctx.root_account).count()
    doomed: set[int] = set()
    for source, kind in planned:
        if kind != "user_observers":
            continue
        try:
            doomed |= user_observers.planned_deletions(ctx, iter_rows(source))
        except SisFileError:
            continue  # reported when the file itself is applied
    return {"would_delete": len(doomed), "active": active}


def _chunks(rows: Iterator[SisRow], size: int) -> Iterator[list[SisRow]]:
    while chunk := list(islice(rows, size)):
        yield chunk


def _apply_file(ctx, source: SisSource, file: FileReport, report: ImportReport, progress) -> None:
    """Apply one file atomically; a file-level error undoes the file and is reported."""
    errors_before = len(report.errors)
    started = perf_counter()
    step = Step(ctx=ctx, file=file, report=report, messages=CANVAS_MESSAGES)
    try:
        with transaction.atomic():
            plan_with_indexes()
            for chunk in _chunks(iter_rows(source), CHUNK_SIZE):
                if file.kind == "user_observers":
                    _apply_link_chunk(ctx, chunk, file, report)
                else:
                    _apply_rows(step, chunk, file, report)
                if progress is not None:
                    progress(file.name, file.rows)
    except SisFileError as exc:
        # Nothing of the file stays, so neither do its counts or row errors.
        report.error_count -= file.errors
        del report.errors[errors_before:]
        file.errors, file.rows = 0, 0
        file.counts.clear()
        file.error = exc.message
        report.add_error(file, None, exc.message)
    finally:
        file.seconds = perf_counter() - started


def _apply_link_chunk(ctx, chunk: list[SisRow], file: FileReport, report: ImportReport) -> None:
    errors, valid = user_observers.check_rows(chunk, file, school_time_zone(ctx.root_account))
    user_observers.apply_links_retrying(ctx, valid, file, report, errors=errors)


def _apply_rows(step: Step, chunk: list[SisRow], file: FileReport, report: ImportReport) -> None:
    """A chunk of a Canvas file: each row checked on its face, then applied in bulk."""
    errors_before = len(report.errors)
    make = RECORD_MAKERS[file.kind]
    records = []
    for row in chunk:
        file.rows += 1
        if row.error:
            report.add_error(file, row.line, row.error)
            continue
        try:
            key, values = make(row.values)
        except RowError as exc:
            report.add_error(file, row.line, exc.message)
            continue
        records.append(Record(line=row.line, key=key, values=values))
    apply_chunk(step, _APPLIERS[file.kind], records)
    if file.kind == "users":
        apply_protection(step, records)
    # Canvas lists a file's row errors in line order.
    report.errors[errors_before:] = sorted(
        report.errors[errors_before:], key=lambda error: error["line"] or 0
    )
