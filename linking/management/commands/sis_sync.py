"""Import the newest SIS bundle dropped in a folder, unless it was already imported (for cron)."""

from contextlib import nullcontext
from pathlib import Path

from django.core.management.base import CommandError

from linking.models import Account, AuditSource
from linking.services import notifications
from linking.services.context import Actor
from linking.services.sis.sync import DEFAULT_SETTLE_SECONDS, SyncOutcome, sync_folder

from .sis_import import Command as ImportCommand

# Exit status when the mass-delete guard stops the import (1 is rows or files failing).
EXIT_REFUSED = 2


class Command(ImportCommand):
    """sis_import's summary and progress, around the folder sync service."""

    help = (
        "Import the newest bundle (a .zip, or a sub-directory of CSV files) in FOLDER into the "
        "root account served at --domain, unless its content is what the last import applied. "
        "Exit status: 0 imported, skipped or no bundle; 1 rows or files failed; "
        "2 stopped by the mass-delete guard."
    )

    def add_arguments(self, parser):
        parser.add_argument("folder", help="The folder the SIS delivers its bundles to.")
        self.add_import_options(parser)
        parser.add_argument(
            "--settle-seconds",
            type=int,
            default=DEFAULT_SETTLE_SECONDS,
            help="Pass over bundles modified this recently: they may still be arriving "
            f"(default {DEFAULT_SETTLE_SECONDS}).",
        )

    def handle(self, *args, **options):
        root_account = Account.objects.roots().filter(domain=options["domain"].lower()).first()
        if root_account is None:
            raise CommandError(f"No root account is served at {options['domain']!r}.")
        share = options["max_delete_share"]
        if share is not None and not 0 <= share <= 1:
            raise CommandError("--max-delete-share must be between 0 and 1.")
        if options["settle_seconds"] < 0:
            raise CommandError("--settle-seconds must not be negative.")
        folder = options["folder"]
        if not Path(folder).is_dir():
            raise CommandError(f"{folder}: no such folder.")
        progress = self._progress if self.stdout.isatty() else None
        quiet = notifications.suppressed() if options["no_notifications"] else nullcontext()
        with quiet:
            result = sync_folder(
                folder=folder,
                root_account=root_account,
                actor=Actor(user=None, source=AuditSource.SIS),
                dry_run=options["dry_run"],
                allow_mass_delete=options["allow_mass_delete"],
                max_delete_share=share,
                settle_seconds=options["settle_seconds"],
                progress=progress,
            )
        if progress is not None and result.report is not None:
            self.stdout.write("")
        if result.outcome == SyncOutcome.NO_BUNDLE:
            self.stdout.write(f"no bundle in {folder}")
            return
        bundle = result.bundle
        if result.outcome == SyncOutcome.SKIPPED:
            self.stdout.write(f"skipped {bundle}: already imported as batch #{result.batch_id}")
            return
        if result.outcome == SyncOutcome.REFUSED:
            raise CommandError(
                f"refused {bundle}: the mass-delete guard stopped it (batch #{result.batch_id} "
                f"aborted). {result.refusal.message}",
                returncode=EXIT_REFUSED,
            )
        report = result.report
        if report.dry_run:
            self.stdout.write(f"dry run of {bundle}: nothing was written")
        else:
            self.stdout.write(f"imported {bundle} as batch #{report.batch_id} ({report.state})")
        self._summary(report)
        if report.failed:
            raise CommandError(
                f"{report.error_count} row(s) or file(s) failed in {bundle}.", returncode=1
            )
