"""Import Canvas SIS CSV files or a OneRoster bundle into one root account."""

import getpass
from contextlib import nullcontext

from django.core.management.base import BaseCommand, CommandError

from linking.models import Account, AuditSource, Login
from linking.services import notifications
from linking.services.context import Actor
from linking.services.errors import LinkingError
from linking.services.sis import ImportReport, MassDeleteRefused, import_sis

COLUMNS = (
    "rows",
    "created",
    "restored",
    "updated",
    "deleted",
    "unchanged",
    "errors",
    "warnings",
    "seconds",
)
SHOWN_ERRORS = 50
SHOWN_CHANGES = 10


class Command(BaseCommand):
    help = (
        "Import Canvas SIS CSV files (accounts.csv, users.csv, courses.csv, enrollments.csv, "
        "admins.csv, user_observers.csv, recognised by header) or a OneRoster 1.1/1.2 bundle "
        "(a zip or directory with manifest.csv) into the root account served at --domain. "
        "Exits with status 1 when any row or file failed, 2 when a mass-delete guard stopped it."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="CSV files, zips or directories.")
        self.add_import_options(parser)
        parser.add_argument(
            "--run-by", help="Login id (in this root account) of the person running the import."
        )
        parser.add_argument(
            "--changes-csv",
            metavar="FILE",
            help="Write every change (links, enrollments, users, ...) to this CSV file.",
        )

    @staticmethod
    def add_import_options(parser) -> None:
        """The options sis_import and sis_sync share."""
        parser.add_argument("--domain", required=True, help="Host name of the root account.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would change; write nothing."
        )
        parser.add_argument(
            "--allow-mass-delete",
            action="store_true",
            help="Allow deleting more than the allowed share of the account's active links, "
            "enrollments or users.",
        )
        parser.add_argument(
            "--max-delete-share",
            type=float,
            default=None,
            help="Share of active records of a kind an import may delete "
            "(default SIS_MASS_DELETE_SHARE, 0.1).",
        )
        parser.add_argument(
            "--no-notifications",
            action="store_true",
            help="Queue no e-mails about the links this import changes (webhooks still go).",
        )

    def handle(self, *args, **options):
        root_account = Account.objects.roots().filter(domain=options["domain"].lower()).first()
        if root_account is None:
            raise CommandError(f"No root account is served at {options['domain']!r}.")
        share = options["max_delete_share"]
        if share is not None and not 0 <= share <= 1:
            raise CommandError("--max-delete-share must be between 0 and 1.")
        runner = None
        if options["run_by"]:
            login = (
                Login.objects.active()
                .filter(root_account=root_account, unique_id__iexact=options["run_by"])
                .select_related("user")
                .first()
            )
            if login is None:
                raise CommandError(f"No active login {options['run_by']!r} in {root_account}.")
            runner = login.user
        progress = self._progress if self.stdout.isatty() else None
        quiet = notifications.suppressed() if options["no_notifications"] else nullcontext()
        try:
            with quiet:
                report = import_sis(
                    paths=options["paths"],
                    root_account=root_account,
                    actor=Actor(user=runner, source=AuditSource.SIS),
                    dry_run=options["dry_run"],
                    allow_mass_delete=options["allow_mass_delete"],
                    max_delete_share=share,
                    source_name=f"command line ({getpass.getuser()}): {' '.join(options['paths'])}",
                    progress=progress,
                    changes_path=options["changes_csv"],
                )
        except MassDeleteRefused as exc:
            raise CommandError(exc.message, returncode=2) from exc
        except LinkingError as exc:
            raise CommandError(exc.message) from exc
        if progress is not None:
            self.stdout.write("")
        self._summary(report)
        if report.failed:
            raise CommandError(f"{report.error_count} row(s) or file(s) failed.", returncode=1)

    def _progress(self, name: str, rows: int) -> None:
        self.stdout.write(f"\r{name}: {rows:,} rows", ending="")
        self.stdout.flush()

    def _summary(self, report: ImportReport) -> None:
        title = (
            "Dry run: nothing was written" if report.dry_run else f"SIS batch #{report.batch_id}"
        )
        self.stdout.write(f"{title} ({report.state})")
        table = [("file", "kind", *COLUMNS)]
        for file in report.files:
            table.append(
                (
                    file.name,
                    file.kind or "?",
                    str(file.rows),
                    *(str(file.counts[column]) for column in COLUMNS[1:-3]),
                    str(file.errors),
                    str(file.warnings),
                    f"{file.seconds:.2f}",
                )
            )
        totals = report.totals()
        seconds = sum(file.seconds for file in report.files)
        table.append(
            ("total", "", *(str(totals[column]) for column in COLUMNS[:-1]), f"{seconds:.2f}")
        )
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for index, row in enumerate(table):
            cells = [
                cell.ljust(width) if i < 2 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            ]
            self.stdout.write("  ".join(cells))
            if index == 0 or index == len(table) - 2:
                self.stdout.write("  ".join("-" * width for width in widths))
        for kind, check in report.mass_delete.get("kinds", {}).items():
            if check.get("over_limit"):
                self.stdout.write(
                    f"Mass delete: {check['would_delete']} of {check['active']} active {kind} "
                    f"(limit {check['share']:.0%}): over the guard's limit; without "
                    "--allow-mass-delete the import is refused."
                )
        if report.changes is not None:
            self._changes(report)
        for level, entries, count in (
            ("error", report.errors, report.error_count),
            ("warning", report.warnings, report.warning_count),
        ):
            for entry in entries[:SHOWN_ERRORS]:
                where = f"{entry['file']}:{entry['line']}" if entry["line"] else entry["file"]
                sourced = f" [{entry['sourced_id']}]" if entry.get("sourced_id") else ""
                prefix = "warning: " if level == "warning" else ""
                self.stderr.write(f"{where}{sourced}: {prefix}{entry['message']}")
            if count > SHOWN_ERRORS:
                shown = min(len(entries), SHOWN_ERRORS)
                self.stderr.write(f"... and {count - shown} more {level}s")

    def _changes(self, report: ImportReport) -> None:
        """The first changes of each kind (the preview); all of them are in --changes-csv."""
        changes = report.changes
        if not changes.counts:
            self.stdout.write("Changes: none")
            return
        self.stdout.write("Changes:")
        for kind, rows in changes.first.items():
            total = sum(n for (k, _), n in changes.counts.items() if k == kind)
            self.stdout.write(f"  {kind} ({total}):")
            for row in rows[:SHOWN_CHANGES]:
                self.stdout.write(f"    {row['action']:<9} {row['sis_id']}  {row['description']}")
            if total > SHOWN_CHANGES:
                self.stdout.write(f"    ... and {total - SHOWN_CHANGES} more")
        if changes.path is not None:
            self.stdout.write(f"Every change: {changes.path}")
