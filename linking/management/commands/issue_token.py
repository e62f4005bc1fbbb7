"""Issue an API access token for a login; the token is printed once and never stored."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from linking.models import Account, AuditSource
from linking.services.accounts import find_login
from linking.services.context import Actor
from linking.services.tokens import UnknownScope, issue_access_token


class Command(BaseCommand):
    help = "Issue an API access token for LOGIN_ID in the root account at --domain."

    def add_arguments(self, parser):
        parser.add_argument("login_id", help="The login id (case-insensitive).")
        parser.add_argument("--domain", required=True, help="Host name of the root account.")
        parser.add_argument("--purpose", default="", help="What the token is for.")
        parser.add_argument(
            "--expires-days", type=int, default=None, help="Days until it expires (default: never)."
        )
        parser.add_argument(
            "--scope",
            action="append",
            default=[],
            help="An endpoint the token may call, e.g. 'url:GET|/api/v1/users/:user_id/observees'"
            " (repeat it; none = every endpoint).",
        )

    def handle(self, *args, **options):
        domain = options["domain"].strip().lower()
        root_account = Account.objects.roots().filter(domain=domain).first()
        if root_account is None:
            raise CommandError(f"No root account is served at {domain!r}.")
        login = find_login(root_account=root_account, unique_id=options["login_id"])
        if login is None or not login.user.is_active:
            raise CommandError(f"No active login {options['login_id']!r} at {domain}.")
        expires_at = None
        if options["expires_days"] is not None:
            if options["expires_days"] < 1:
                raise CommandError("--expires-days must be at least 1.")
            expires_at = timezone.now() + timedelta(days=options["expires_days"])
        try:
            _token, plaintext = issue_access_token(
                user=login.user,
                actor=Actor.system(AuditSource.COMMAND),
                purpose=options["purpose"],
                expires_at=expires_at,
                scopes=options["scope"],
            )
        except UnknownScope as error:
            raise CommandError(error.message) from error
        self.stderr.write(
            f"Token for {login.unique_id} (user {login.user_id}) at {domain}; "
            "it is shown only this once:"
        )
        self.stdout.write(plaintext)
