"""Re-encrypts every stored SSO client secret under the current SSO_ENCRYPTION_KEY."""

from django.core.management.base import BaseCommand, CommandError

from linking.services import sso


class Command(BaseCommand):
    help = (
        "Re-encrypt the schools' single sign-on client secrets under SSO_ENCRYPTION_KEY "
        "(run after moving the old key to SSO_ENCRYPTION_PREVIOUS_KEYS)."
    )

    def handle(self, *args, **options):
        try:
            count = sso.rotate_client_secrets()
        except sso.SecretsUnreadable as error:
            raise CommandError(error.message) from error
        self.stdout.write(f"Re-encrypted {count} client secret(s).")
