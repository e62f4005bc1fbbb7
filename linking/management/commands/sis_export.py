"""Export a root account's users and active observer links as Canvas SIS CSV files."""

from django.core.management.base import BaseCommand, CommandError

from linking.models import Account
from linking.services.sis import export_to_directory


class Command(BaseCommand):
    help = "Write users.csv and user_observers.csv for the root account at --domain."

    def add_arguments(self, parser):
        parser.add_argument("--domain", required=True, help="Host name of the root account.")
        parser.add_argument("--output", default=".", help="Directory to write into (default: .).")

    def handle(self, *args, **options):
        root_account = Account.objects.roots().filter(domain=options["domain"].lower()).first()
        if root_account is None:
            raise CommandError(f"No root account is served at {options['domain']!r}.")
        try:
            counts = export_to_directory(root_account=root_account, directory=options["output"])
        except OSError as exc:
            raise CommandError(f"Cannot write to {options['output']}: {exc}") from exc
        self.stdout.write(
            f"users.csv: {counts.users} rows; user_observers.csv: {counts.user_observers} rows"
            + (
                f"; {counts.skipped_links} active links skipped (a side has no SIS user id)"
                if counts.skipped_links
                else ""
            )
        )
