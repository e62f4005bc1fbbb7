"""Lift a rate-limit pause: for a login id of a school (and its user), or for a client address."""

from django.core.management.base import BaseCommand, CommandError

from linking.models import Account
from linking.services import ratelimit
from linking.services.accounts import find_login


class Command(BaseCommand):
    help = (
        "Forget the failed guesses counted against LOGIN_ID at --domain (its login id and its "
        "user), or against --address (an IPv4 address, or the /64 of an IPv6 address)."
    )

    def add_arguments(self, parser):
        parser.add_argument("login_id", nargs="?", help="The login id (case-insensitive).")
        parser.add_argument("--domain", help="Host name of the root account of LOGIN_ID.")
        parser.add_argument("--address", help="A client address whose budget to clear.")

    def handle(self, *args, **options):
        budgets = []
        if options["login_id"]:
            budgets += self._login_budgets(options["login_id"], options["domain"])
        if options["address"]:
            try:
                budgets.append(ratelimit.address_budget(options["address"].strip()))
            except ValueError as exc:
                raise CommandError(f"{options['address']!r} is not an IP address.") from exc
        if not budgets:
            raise CommandError("Give a LOGIN_ID with --domain, or --address.")
        ratelimit.reset(budgets)
        self.stdout.write(f"Cleared {len(budgets)} budget(s).")

    def _login_budgets(self, login_id: str, domain: str | None) -> list:
        if not domain:
            raise CommandError("LOGIN_ID needs --domain.")
        root_account = Account.objects.roots().filter(domain=domain.strip().lower()).first()
        if root_account is None:
            raise CommandError(f"No root account is served at {domain!r}.")
        budgets = [ratelimit.login_budget(root_account, login_id)]
        login = find_login(root_account=root_account, unique_id=login_id)
        if login is not None:
            budgets.append(ratelimit.user_budget(login.user))
        return budgets
