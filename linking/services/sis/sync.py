"""The nightly sync: import the newest bundle an SIS dropped in a folder, once.

An SIS delivers its export over SFTP into a folder, usually as a new zip or
directory every night and often with the same content as the night before.
The sync picks the newest bundle that has finished arriving, skips it when
its content is what the root account's last import applied, and imports it
otherwise, recording the content's hash on the batch.
"""

import enum
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from ...models import Account, SisBatch
from ..context import Actor
from .guard import MassDeleteRefused
from .importer import Progress, import_sis
from .report import ImportReport

DEFAULT_SETTLE_SECONDS = 60

# Names an upload in progress goes by (SFTP clients, browsers, rsync, editors);
# a directory holding one is an incomplete bundle.
PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".filepart")

# The files of a directory the importer reads (linking.services.sis.reader).
_BUNDLE_FILE_SUFFIXES = (".csv", ".zip")

_READ_SIZE = 1 << 20


class SyncOutcome(enum.StrEnum):
    NO_BUNDLE = "no_bundle"
    SKIPPED = "skipped"
    IMPORTED = "imported"
    REFUSED = "refused"


@dataclass
class SyncResult:
    """What one sync did.

    ``batch_id`` is the earlier batch for SKIPPED, the new batch for IMPORTED
    (None on a dry run) and the aborted batch for REFUSED; ``refusal`` is the
    guard's error for REFUSED.
    """

    outcome: SyncOutcome
    folder: Path
    bundle: Path | None = None
    content_hash: str = ""
    batch_id: int | None = None
    report: ImportReport | None = None
    refusal: MassDeleteRefused | None = None


def bundle_hash(path: str | Path) -> str:
    """SHA-256 (hex) of a bundle: a zip's bytes, or a directory's CSV files.

    For a directory, the files the importer reads from it (its ``.csv`` and
    ``.zip`` files, not sub-directories) are hashed in name order, each as its
    name, its size and its bytes, so renaming or moving content between files
    changes the hash. Files are read in 1 MiB blocks: memory stays flat.
    """
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for file in _bundle_files(path):
            digest.update(file.name.encode() + b"\0")
            digest.update(str(file.stat().st_size).encode() + b"\0")
            _update_from_file(digest, file)
    else:
        _update_from_file(digest, path)
    return digest.hexdigest()


def newest_bundle(
    folder: str | Path, *, settle_seconds: float = DEFAULT_SETTLE_SECONDS
) -> Path | None:
    """The newest complete bundle in ``folder``, or None.

    A bundle is a ``*.zip`` file or a sub-directory holding ``manifest.csv`` or
    CSV files; loose CSV files and other entries are not bundles. Newest is by
    modification time (a directory's is the latest of itself and its entries).
    Entries modified in the last ``settle_seconds`` may still be being written
    and are passed over, as are hidden and partial names (``.*``, ``*.part``,
    ``*.tmp``...) and directories holding a partial file.
    """
    now = time.time()
    candidates: list[tuple[float, str, Path]] = []
    for entry in Path(folder).iterdir():
        if _is_hidden_or_partial(entry.name):
            continue
        try:
            if entry.is_dir():
                modified = _settled_directory_mtime(entry)
            elif entry.is_file() and entry.name.lower().endswith(".zip"):
                modified = entry.stat().st_mtime
            else:
                continue
        except FileNotFoundError:
            continue  # removed meanwhile (an old bundle cleaned up, a rename)
        if modified is None or now - modified < settle_seconds:
            continue
        candidates.append((modified, entry.name, entry))
    return max(candidates)[2] if candidates else None


def sync_folder(
    *,
    folder: str | Path,
    root_account: Account,
    actor: Actor,
    dry_run: bool = False,
    allow_mass_delete: bool = False,
    max_delete_share: float | None = None,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    progress: Progress | None = None,
) -> SyncResult:
    """Import the newest bundle in ``folder`` unless its content was the last one imported.

    The bundle is skipped when the root account's most recent completed
    import (state imported or imported_with_messages, not a dry run) has the
    same content hash; a bundle that comes back after a different one is
    imported again, so the database follows the newest delivery. An aborted
    or failed batch never counts: after a guard stops a bundle, the same
    bundle imports with ``allow_mass_delete``. A dry run skips the same way
    but writes nothing, hash included.

    Returns REFUSED (the aborted batch carries the hash, for the record) when
    the mass-delete guard stops the import; other errors of import_sis
    propagate. Runs of the same folder must not overlap (cron: flock).
    """
    folder = Path(folder)
    bundle = newest_bundle(folder, settle_seconds=settle_seconds)
    if bundle is None:
        return SyncResult(outcome=SyncOutcome.NO_BUNDLE, folder=folder)
    # Hashed before the import reads it: if the bundle still changes meanwhile,
    # the recorded hash is not the final content's and the next run imports it.
    content_hash = bundle_hash(bundle)
    last = last_import(root_account)
    if last is not None and last.content_hash == content_hash:
        return SyncResult(
            outcome=SyncOutcome.SKIPPED,
            folder=folder,
            bundle=bundle,
            content_hash=content_hash,
            batch_id=last.pk,
        )
    try:
        report = import_sis(
            paths=[bundle],
            root_account=root_account,
            actor=actor,
            dry_run=dry_run,
            allow_mass_delete=allow_mass_delete,
            max_delete_share=max_delete_share,
            source_name=f"folder sync: {bundle}",
            progress=progress,
            content_hash=content_hash,
        )
    except MassDeleteRefused as refusal:
        return SyncResult(
            outcome=SyncOutcome.REFUSED,
            folder=folder,
            bundle=bundle,
            content_hash=content_hash,
            batch_id=refusal.batch_id,
            refusal=refusal,
        )
    return SyncResult(
        outcome=SyncOutcome.IMPORTED,
        folder=folder,
        bundle=bundle,
        content_hash=content_hash,
        batch_id=report.batch_id,
        report=report,
    )


def last_import(root_account: Account) -> SisBatch | None:
    """The root account's most recently finished import that was applied (not a dry run)."""
    return (
        SisBatch.objects.filter(
            root_account=root_account,
            dry_run=False,
            workflow_state__in=[SisBatch.State.IMPORTED, SisBatch.State.IMPORTED_WITH_ERRORS],
        )
        .order_by("-finished_at", "-id")
        .first()
    )


def _is_hidden_or_partial(name: str) -> bool:
    return name.startswith(".") or name.lower().endswith(PARTIAL_SUFFIXES)


def _bundle_files(directory: Path) -> list[Path]:
    return sorted(
        (
            child
            for child in directory.iterdir()
            if child.is_file() and child.name.lower().endswith(_BUNDLE_FILE_SUFFIXES)
        ),
        key=lambda child: child.name,
    )


def _settled_directory_mtime(directory: Path) -> float | None:
    """The latest modification time of the directory and its entries.

    None when it is not a bundle (no CSV file) or holds a partial file: an
    upload that is still going on, or one that broke off half-way.
    """
    latest = directory.stat().st_mtime
    has_csv = False
    for child in directory.iterdir():
        name = child.name.lower()
        if name.endswith(PARTIAL_SUFFIXES):
            return None
        latest = max(latest, child.stat().st_mtime)
        if child.is_file() and not name.startswith(".") and name.endswith(".csv"):
            has_csv = True
    return latest if has_csv else None


def _update_from_file(digest, path: Path) -> None:
    with path.open("rb") as stream:
        while block := stream.read(_READ_SIZE):
            digest.update(block)
