"""Export a root account's users and active observer links as Canvas SIS CSV or OneRoster."""

from django.core.management.base import BaseCommand, CommandError

from linking.models import Account
from linking.services.sis import export_oneroster_directory, export_to_directory


class Command(BaseCommand):
    help = (
        "Write users.csv and user_observers.csv (Canvas SIS CSV), or with --format oneroster a "
        "OneRoster 1.1 bundle (manifest.csv, users.csv with agentSourcedIds), for the root "
        "account at --domain. Either re-imports to the same users and links."
    )

    def add_arguments(self, parser):
        parser.add_argument("--domain", required=True, help="Host name of the root account.")
        parser.add_argument("--output", default=".", help="Directory to write into (default: .).")
        parser.add_argument(
            "--format",
            choices=("canvas", "oneroster"),
            default="canvas",
            help="canvas (default) or oneroster.",
        )

    def handle(self, *args, **options):
        root_account = Account.objects.roots().filter(domain=options["domain"].lower()).first()
        if root_account is None:
            raise CommandError(f"No root account is served at {options['domain']!r}.")
        try:
            export = (
                export_oneroster_directory
                if options["format"] == "oneroster"
                else export_to_directory
            )
            counts = export(root_account=root_account, directory=options["output"])
        except OSError as exc:
            raise CommandError(f"Cannot write to {options['output']}: {exc}") from exc
        if options["format"] == "oneroster":
            self.stdout.write(
                f"manifest.csv; users.csv: {counts.users} rows with their agents"
                + (
                    f"; {counts.skipped_links} active links skipped (a side has no SIS user id)"
                    if counts.skipped_links
                    else ""
                )
                + (
                    f"; {counts.mixed_end_dates} observers' links end on different dates "
                    "(their latest end date was written)"
                    if counts.mixed_end_dates
                    else ""
                )
            )
            return
        self.stdout.write(
            f"users.csv: {counts.users} rows; user_observers.csv: {counts.user_observers} rows"
            + (
                f"; {counts.skipped_links} active links skipped (a side has no SIS user id)"
                if counts.skipped_links
                else ""
            )
        )
