"""Bounds on what an uploaded SIS zip may expand to, checked before a byte is extracted.

A 146 KB zip holding one 150 MB line raised a worker from 88 MB to 232 MB
and kept it there. A zip is refused (SisFileError, shown in the preview,
the command's output and the batch report) when it declares

- more than SIS_ARCHIVE_MAX_ENTRIES members,
- more than SIS_ARCHIVE_MAX_BYTES uncompressed in all, or
- a member over 1 MiB that expands more than SIS_ARCHIVE_MAX_RATIO times
  its compressed size (CSV files compress 5-20 times; a bomb thousands).

The declared sizes are what bound the extraction: Python's zipfile never
returns more than a member's declared ``file_size`` and checks its CRC.
"""

import zipfile
from pathlib import Path

from django.conf import settings

# reader imports this module while it loads: its names are looked up at call time.
from . import reader

# Members smaller than this are never refused for their ratio: a short
# file of repeated rows can compress very well and still be harmless.
RATIO_FLOOR_BYTES = 1024 * 1024


def check_archive(path: str | Path) -> None:
    """Raise SisFileError when the zip at ``path`` would expand past the configured bounds."""
    path = Path(path)
    max_entries = settings.SIS_ARCHIVE_MAX_ENTRIES
    max_bytes = settings.SIS_ARCHIVE_MAX_BYTES
    max_ratio = settings.SIS_ARCHIVE_MAX_RATIO
    try:
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        raise reader.SisFileError(f"{path.name}: not a readable zip file ({exc})") from exc
    if len(members) > max_entries:
        raise reader.SisFileError(
            f"{path.name}: the zip holds {len(members):,} files; at most {max_entries:,} are read"
        )
    total = sum(info.file_size for info in members)
    if total > max_bytes:
        raise reader.SisFileError(
            f"{path.name}: the zip expands to {total:,} bytes; at most {max_bytes:,} bytes are read"
        )
    for info in members:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_FLOOR_BYTES and ratio > max_ratio:
            raise reader.SisFileError(
                f"{path.name}/{info.filename}: expands {ratio:,.0f} times "
                f"({info.compress_size:,} to {info.file_size:,} bytes); "
                f"at most {max_ratio:,} times is read"
            )
