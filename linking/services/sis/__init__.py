"""SIS import and export (Canvas's SIS CSV and OneRoster): the only place SIS rules live."""

from .exporter import (
    ExportCounts,
    export_oneroster_directory,
    export_oneroster_zip,
    export_to_directory,
    export_zip,
)
from .guard import MassDeleteRefused, mass_delete_share
from .importer import import_sis
from .reader import SisFileError
from .report import FileReport, ImportReport
from .rows import RowError

__all__ = [
    "ExportCounts",
    "FileReport",
    "ImportReport",
    "MassDeleteRefused",
    "RowError",
    "SisFileError",
    "export_oneroster_directory",
    "export_oneroster_zip",
    "export_to_directory",
    "export_zip",
    "import_sis",
    "mass_delete_share",
]
