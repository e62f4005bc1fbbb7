"""Create a root account (a school, one tenant), optionally with its first admin."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from linking.models import SelfRegistration
from linking.services.accounts import (
    create_root_account,
    create_user_with_login,
    make_account_admin,
)
from linking.services.errors import LinkingError


class Command(BaseCommand):
    help = "Create a root account served at --domain, optionally with an admin login."

    def add_arguments(self, parser):
        parser.add_argument("name", help="The institution's name.")
        parser.add_argument("--domain", required=True, help="Host name serving it.")
        parser.add_argument(
            "--self-registration",
            choices=SelfRegistration.values,
            default=SelfRegistration.OBSERVER,
            help="Who may sign up on their own (default: observer).",
        )
        parser.add_argument(
            "--no-pairing-codes", action="store_true", help="Turn pairing codes off."
        )
        parser.add_argument(
            "--code-lifetime-hours",
            type=int,
            default=24 * 7,
            help="How long a pairing code stays valid (1..2160, default 168).",
        )
        parser.add_argument(
            "--no-credential-linking",
            action="store_true",
            help="Refuse linking by the student's login and password.",
        )
        parser.add_argument("--avatars", action="store_true", help="Turn avatars on.")
        parser.add_argument(
            "--time-zone",
            default="UTC",
            help="The school's time zone, an IANA name such as America/Chicago (default UTC).",
        )
        parser.add_argument("--admin-login", help="Login id of a first account admin.")
        parser.add_argument("--admin-password", help="Password of that admin.")
        parser.add_argument("--admin-name", help="Display name of that admin.")

    def handle(self, *args, **options):
        admin_login = (options["admin_login"] or "").strip()
        if (options["admin_password"] or options["admin_name"]) and not admin_login:
            raise CommandError("--admin-password and --admin-name need --admin-login.")
        if admin_login and not options["admin_password"]:
            raise CommandError("--admin-login needs --admin-password.")
        try:
            with transaction.atomic():
                account = create_root_account(
                    name=options["name"],
                    domain=options["domain"],
                    self_registration=options["self_registration"],
                    pairing_codes_enabled=not options["no_pairing_codes"],
                    pairing_code_lifetime_hours=options["code_lifetime_hours"],
                    credential_linking_allowed=not options["no_credential_linking"],
                    avatars_enabled=options["avatars"],
                    time_zone=options["time_zone"],
                )
                admin = None
                if admin_login:
                    admin = create_user_with_login(
                        name=options["admin_name"] or admin_login,
                        root_account=account,
                        unique_id=admin_login,
                        password=options["admin_password"],
                        is_staff=True,
                    )
                    make_account_admin(user=admin, account=account)
        except LinkingError as error:
            raise CommandError(error.message) from error
        self.stdout.write(
            self.style.SUCCESS(f"Created root account {account.name!r} (id {account.pk}) ")
            + f"at {account.domain}"
        )
        if admin is not None:
            self.stdout.write(f"Account admin: {admin_login} (user id {admin.pk})")
