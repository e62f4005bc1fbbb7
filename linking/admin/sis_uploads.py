"""SIS files uploaded in the admin, kept on disk between the preview and the confirmation.

Each upload gets its own directory under one root (``observers-sis-uploads``
in the system's temporary directory). An upload that is previewed but never
confirmed is removed once it is older than SIS_UPLOAD_EXPIRY_SECONDS: every
new upload sweeps the root first, and the confirmation refuses an upload
whose files are gone.
"""

import shutil
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.utils.text import get_valid_filename

PREFIX = "upload-"


def upload_root() -> Path:
    root = Path(tempfile.gettempdir()) / "observers-sis-uploads"
    root.mkdir(mode=0o700, exist_ok=True)
    return root


def store_upload(upload) -> Path:
    """Write an uploaded file into a directory of its own; returns the file's path."""
    remove_expired_uploads()
    directory = Path(tempfile.mkdtemp(prefix=PREFIX, dir=upload_root()))
    stored = directory / (get_valid_filename(Path(upload.name).name) or "upload.csv")
    with stored.open("wb") as out:
        for piece in upload.chunks():
            out.write(piece)
    return stored


def is_live(stored: Path) -> bool:
    """Whether a stored upload may still be confirmed (inside the root, not expired)."""
    try:
        directory = stored.parent.resolve()
        age = time.time() - directory.stat().st_mtime
    except OSError:
        return False
    return directory.parent == upload_root().resolve() and age < _expiry() and stored.is_file()


def discard(stored: Path) -> None:
    shutil.rmtree(stored.parent, ignore_errors=True)


def remove_expired_uploads() -> int:
    """Delete the upload directories older than the expiry; returns how many were removed."""
    cutoff = time.time() - _expiry()
    removed = 0
    for directory in upload_root().glob(f"{PREFIX}*"):
        try:
            expired = directory.stat().st_mtime < cutoff
        except OSError:
            continue
        if expired:
            shutil.rmtree(directory, ignore_errors=True)
            removed += 1
    return removed


def _expiry() -> int:
    return settings.SIS_UPLOAD_EXPIRY_SECONDS
