"""Import Canvas SIS CSV files (a directory, a zip or single files) into one root account."""

import getpass
from contextlib import nullcontext

from django.core.management.base import BaseCommand, CommandError

from linking.models import Account, AuditSource, Login
from linking.services import notifications
from linking.services.context import Actor
from linking.services.errors import LinkingError
from linking.services.sis import ImportReport, import_sis

COLUMNS = ("rows", "created", "restored", "updated", "deleted", "unchanged", "errors")
SHOWN_ERRORS = 50


class Command(BaseCommand):
    help = (
        "Import accounts.csv, users.csv, courses.csv, enrollments.csv, admins.csv and "
        "user_observers.csv (recognised by header) into the root account served at --domain. "
        "Exits with status 1 when any row or file failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="CSV files, zips or directories.")
        parser.add_argument("--domain", required=True, help="Host name of the root account.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would change; write nothing."
        )
        parser.add_argument(
            "--allow-mass-delete",
            action="store_true",
            help="Allow deleting more than the allowed share of the account's active links.",
        )
        parser.add_argument(
            "--max-delete-share",
            type=float,
            default=None,
            help="Share of active links an import may delete (default SIS_MASS_DELETE_SHARE, 0.1).",
        )
        parser.add_argument(
            "--no-notifications",
            action="store_true",
            help="Queue no e-mails about the links this import changes (webhooks still go).",
        )
        parser.add_argument(
            "--run-by", help="Login id (in this root account) of the person running the import."
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
                )
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
                    *(str(file.counts[column]) for column in COLUMNS[1:-1]),
                    str(file.errors),
                )
            )
        totals = report.totals()
        table.append(("total", "", *(str(totals[column]) for column in COLUMNS)))
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for index, row in enumerate(table):
            cells = [
                cell.ljust(width) if i < 2 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            ]
            self.stdout.write("  ".join(cells))
            if index == 0 or index == len(table) - 2:
                self.stdout.write("  ".join("-" * width for width in widths))
        guard = report.mass_delete
        if guard and guard.get("over_limit"):
            self.stdout.write(
                f"Mass delete: {guard['would_delete']} of {guard['active_links']} active links "
                f"(limit {guard['share']:.0%}); the import needs --allow-mass-delete."
            )
        for error in report.errors[:SHOWN_ERRORS]:
            where = f"{error['file']}:{error['line']}" if error["line"] else error["file"]
            self.stderr.write(f"{where}: {error['message']}")
        if report.error_count > SHOWN_ERRORS:
            shown = min(len(report.errors), SHOWN_ERRORS)
            self.stderr.write(f"... and {report.error_count - shown} more errors")
