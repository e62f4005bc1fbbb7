"""Running an SIS import: files in dependency order, one transaction per file, a recorded batch."""

from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from ...models import Account, AuditSource, ObservationLink, SisBatch
from ..context import Actor
from ..errors import LinkingError
from . import rows as row_rules
from . import user_observers
from .reader import (
    KIND_ORDER,
    SisFileError,
    SisRow,
    SisSource,
    collect_sources,
    iter_rows,
    recognise,
)
from .report import FileReport, ImportReport

CHUNK_SIZE = 1000
DEFAULT_MASS_DELETE_SHARE = 0.10

Progress = Callable[[str, int], None]

_ROW_HANDLERS = {
    "accounts": row_rules.apply_account_row,
    "users": row_rules.apply_user_row,
    "courses": row_rules.apply_course_row,
    "enrollments": row_rules.apply_enrollment_row,
    "admins": row_rules.apply_admin_row,
}


class MassDeleteRefused(LinkingError):
    """The import would remove more than the allowed share of a root account's active links."""

    code = "sis_mass_delete"

    def __init__(self, *, would_delete: int, active: int, share: float, batch_id: int | None):
        self.would_delete, self.active, self.share = would_delete, active, share
        self.batch_id = batch_id
        super().__init__(
            f"This import would delete {would_delete} of {active} active observer links, "
            f"more than the allowed {share:.0%}. Check the files, then run it again with "
            "--allow-mass-delete (admin: tick “allow mass delete”) if that is intended."
        )


class _DryRunRollback(Exception):
    pass


def mass_delete_share() -> float:
    """The largest share of active links one import may delete without --allow-mass-delete."""
    return float(getattr(settings, "SIS_MASS_DELETE_SHARE", DEFAULT_MASS_DELETE_SHARE))


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
) -> ImportReport:
    """Import Canvas SIS CSV files (directories, zips or single files) into one root account.

    Rules (canvas-behaviour.md §6.2): files are recognised by their header
    and applied in dependency order (accounts, users, courses, enrollments,
    admins, user_observers); every row is checked and a bad row is reported
    with its file and line while the rest goes on; each file is applied in
    its own transaction, so a file that cannot be read or a crash leaves
    none of that file behind. The run is recorded as a SisBatch (counts, row
    errors, who, when) and every link it touches points to it.

    ``dry_run`` runs everything and rolls it all back, batch included: the
    report says exactly what would change. Raises MassDeleteRefused (after
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
    report = ImportReport(dry_run=dry_run)
    planned = _recognise_all(collect_sources(paths), report)
    if not dry_run:
        return _run(
            planned, report, root_account, actor, share, allow_mass_delete, source_name, progress
        )
    try:
        with transaction.atomic():
            _run(planned, report, root_account, actor, share, True, source_name, progress)
            raise _DryRunRollback
    except _DryRunRollback:
        pass
    report.batch_id = None
    report.state = SisBatch.State.DRY_RUN
    return report


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
    batch = SisBatch.objects.create(
        root_account=root_account,
        created_by=actor.user if actor.user is not None and actor.user.pk else None,
        workflow_state=SisBatch.State.RUNNING,
        source_name=source_name[:255],
        dry_run=report.dry_run,
    )
    report.batch_id = batch.pk
    ctx = row_rules.ImportContext(root_account=root_account, batch=batch, actor=actor)
    guard = _mass_delete_check(ctx, planned, share)
    report.mass_delete = guard
    if guard["over_limit"] and not allow_mass_delete:
        _finish(batch, report, SisBatch.State.ABORTED)
        raise MassDeleteRefused(
            would_delete=guard["would_delete"],
            active=guard["active_links"],
            share=share,
            batch_id=batch.pk,
        )
    try:
        for source, kind in planned:
            file = FileReport(name=source.name, kind=kind)
            report.files.append(file)
            _apply_file(ctx, source, file, report, progress)
    except BaseException:
        _finish(batch, report, SisBatch.State.FAILED)
        raise
    _finish(
        batch,
        report,
        SisBatch.State.IMPORTED_WITH_ERRORS if report.failed else SisBatch.State.IMPORTED,
    )
    return report


def _finish(batch: SisBatch, report: ImportReport, state: str) -> None:
    report.state = state
    batch.workflow_state = state
    batch.counts = report.counts_json()
    batch.errors = report.errors
    batch.finished_at = timezone.now()
    batch.save(update_fields=["workflow_state", "counts", "errors", "finished_at"])


def _mass_delete_check(ctx, planned, share: float) -> dict:
    active = ObservationLink.objects.active().filter(root_account=ctx.root_account).count()
    doomed: set[int] = set()
    for source, kind in planned:
        if kind != "user_observers":
            continue
        try:
            doomed |= user_observers.planned_deletions(ctx, iter_rows(source))
        except SisFileError:
            continue  # reported when the file itself is applied
    would_delete = len(doomed)
    return {
        "would_delete": would_delete,
        "active_links": active,
        "share": share,
        "over_limit": would_delete > 0 and would_delete > share * active,
    }


def _chunks(rows: Iterator[SisRow], size: int) -> Iterator[list[SisRow]]:
    while chunk := list(islice(rows, size)):
        yield chunk


def _apply_file(ctx, source: SisSource, file: FileReport, report: ImportReport, progress) -> None:
    """Apply one file atomically; a file-level error undoes the file and is reported."""
    errors_before = len(report.errors)
    try:
        with transaction.atomic():
            for chunk in _chunks(iter_rows(source), CHUNK_SIZE):
                if file.kind == "user_observers":
                    _apply_link_chunk(ctx, chunk, file, report)
                else:
                    _apply_rows(ctx, chunk, file, report)
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


# Attempts per chunk when another request creates one of its new links meanwhile.
LINK_CHUNK_ATTEMPTS = 3


def _apply_link_chunk(ctx, chunk: list[SisRow], file: FileReport, report: ImportReport) -> None:
    """Apply a chunk of user_observers.csv in a savepoint, again if a new link collides.

    The chunk locks the links it changes, but a link that does not exist yet
    cannot be locked: if the API creates it between the chunk's lookup and
    its insert, the insert violates the unique constraint. The savepoint is
    rolled back and the chunk applied again, now finding (and locking) that
    link, so the file neither fails nor duplicates anything.
    """
    for attempt in range(1, LINK_CHUNK_ATTEMPTS + 1):
        before = (file.rows, file.counts.copy(), file.errors, len(report.errors))
        error_count = report.error_count
        try:
            with transaction.atomic():
                user_observers.apply_chunk(ctx, chunk, file, report)
            return
        except IntegrityError:
            if attempt == LINK_CHUNK_ATTEMPTS:
                raise
            file.rows, file.counts, file.errors = before[0], before[1], before[2]
            del report.errors[before[3] :]
            report.error_count = error_count


def _apply_rows(ctx, chunk: list[SisRow], file: FileReport, report: ImportReport) -> None:
    handler = _ROW_HANDLERS[file.kind]
    for row in chunk:
        file.rows += 1
        if row.error:
            report.add_error(file, row.line, row.error)
            continue
        try:
            with transaction.atomic():
                outcome = handler(ctx, row.values)
        except LinkingError as exc:
            report.add_error(file, row.line, exc.message)
        except (DatabaseError, ValueError) as exc:
            # A constraint the checks above did not foresee: the row's savepoint
            # is rolled back and the file goes on.
            report.add_error(file, row.line, f"The row could not be saved: {exc}")
        else:
            file.counts[outcome] += 1
