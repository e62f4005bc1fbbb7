"""Set up (or change) a school's single sign-on provider from the command line."""

import os

from django.core.management.base import BaseCommand, CommandError

from linking.models import Account, AuditSource, IdentityProvider, SsoMatch
from linking.services import sso
from linking.services.context import Actor


class Command(BaseCommand):
    help = (
        "Create or update the OpenID Connect provider of the school served at --domain. "
        "The client secret is read from the environment variable named by "
        "--client-secret-env (never from the command line, which ends up in shell history)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--domain", required=True, help="Host name of the school.")
        parser.add_argument("--name", help='Shown as "Sign in with <name>".')
        parser.add_argument("--issuer", help="The provider's issuer URL (https://...).")
        parser.add_argument("--client-id")
        parser.add_argument(
            "--client-secret-env",
            metavar="VARIABLE",
            help="Environment variable holding the client secret (required the first time).",
        )
        parser.add_argument("--match-by", choices=SsoMatch.values)
        parser.add_argument("--claim", help="ID token claim to match (default: email).")
        parser.add_argument("--scopes", help='Default: "openid email profile".')
        parser.add_argument("--disable", action="store_true", help="Turn the provider off.")
        parser.add_argument("--require-for-staff", choices=["yes", "no"])
        parser.add_argument("--require-for-students", choices=["yes", "no"])

    def handle(self, *args, **options):
        school = Account.objects.roots().filter(domain=options["domain"].strip().lower()).first()
        if school is None:
            raise CommandError(f"No school is served at {options['domain']}.")
        current = IdentityProvider.objects.filter(root_account=school).first()
        secret = None
        if options["client_secret_env"]:
            secret = os.environ.get(options["client_secret_env"])
            if not secret:
                raise CommandError(
                    f"The variable {options['client_secret_env']} is empty or unset."
                )

        def pick(option, attribute, default):
            if options[option] is not None:
                return options[option]
            return getattr(current, attribute) if current is not None else default

        def flag(option, attribute):
            if options[option] is not None:
                return options[option] == "yes"
            return getattr(current, attribute) if current is not None else False

        try:
            provider = sso.save_identity_provider(
                root_account=school,
                name=pick("name", "name", ""),
                issuer=pick("issuer", "issuer", ""),
                client_id=pick("client_id", "client_id", ""),
                client_secret=secret,
                match_by=pick("match_by", "match_by", SsoMatch.LOGIN_ID),
                claim=pick("claim", "claim", "email"),
                scopes=pick("scopes", "scopes", "openid email profile"),
                enabled=not options["disable"],
                required_for_staff=flag("require_for_staff", "required_for_staff"),
                required_for_students=flag("require_for_students", "required_for_students"),
                actor=Actor.system(AuditSource.COMMAND),
            )
        except sso.SsoError as error:
            raise CommandError(error.message) from error
        self.stdout.write(
            f"{school.name}: sign in with {provider.name} ({provider.issuer}), "
            f"{'on' if provider.enabled else 'off'}; callback URL "
            f"https://{school.domain}/login/sso/callback/"
        )
