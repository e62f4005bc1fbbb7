"""Invite by e-mail every guardian the SIS gives for a course, an account or the whole school."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import translation

from linking.models import Account, AuditSource, Login
from linking.services import bulk_invitations
from linking.services.context import Actor
from linking.services.errors import LinkingError

PREVIEW_ROWS = 20


class Command(BaseCommand):
    help = (
        "Invite every guardian with an e-mail in the SIS and no link yet, for the students of "
        "a course (--course SIS_ID), an account and the accounts below it (--account SIS_ID; "
        "the root account's own SIS id means the whole school) or the whole school (--all). "
        "The e-mails go out through the task worker. Running it again invites nobody twice."
    )

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--course", metavar="SIS_ID", help="SIS id of the course.")
        target.add_argument("--account", metavar="SIS_ID", help="SIS id of the account.")
        target.add_argument("--all", action="store_true", help="Every student of the school.")
        parser.add_argument(
            "--domain", help="Host name of the root account (needed when there are several)."
        )
        parser.add_argument(
            "--run-by",
            metavar="LOGIN_ID",
            help="Login id of the staff member inviting (must hold manage_user_observers); "
            "without it the command acts as the server's operator.",
        )
        parser.add_argument(
            "--language",
            choices=[code for code, _name in settings.LANGUAGES],
            help="Language of the e-mails for guardians who have not chosen one here "
            f"(default: {settings.LANGUAGE_CODE}).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Show who would be invited; change nothing."
        )

    def handle(self, *args, **options):
        translation.activate("en")
        root_account = self._root_account(options["domain"])
        actor = Actor(
            user=self._runner(root_account, options["run_by"]), source=AuditSource.COMMAND
        )
        try:
            scope = bulk_invitations.scope_for(
                root_account=root_account,
                course_sis_id=options["course"],
                account_sis_id=options["account"],
            )
            result = bulk_invitations.invite_guardians(
                scope=scope,
                actor=actor,
                dry_run=options["dry_run"],
                language=options["language"],
            )
        except LinkingError as error:
            raise CommandError(error.message) from error
        plan = result.plan
        verb = "would be invited" if options["dry_run"] else "invited"
        self.stdout.write(
            f"{scope}: {len(plan.to_invite)} {verb}, {plan.skipped_total} skipped "
            f"({plan.students} students)"
        )
        for code, reason, count in plan.skipped_rows():
            self.stdout.write(f"  skipped {count}: {reason} [{code}]")
        if options["dry_run"]:
            for candidate in plan.to_invite[:PREVIEW_ROWS]:
                self.stdout.write(
                    f"  {candidate.guardian.name} <{candidate.email}> for {candidate.student.name}"
                )
            if len(plan.to_invite) > PREVIEW_ROWS:
                self.stdout.write(f"  ... and {len(plan.to_invite) - PREVIEW_ROWS} more")

    def _root_account(self, domain: str | None) -> Account:
        roots = Account.objects.roots()
        if domain:
            root_account = roots.filter(domain=domain.lower()).first()
            if root_account is None:
                raise CommandError(f"No root account is served at {domain!r}.")
            return root_account
        found = list(roots[:2])
        if len(found) != 1:
            raise CommandError("There are several root accounts: say which with --domain.")
        return found[0]

    def _runner(self, root_account: Account, run_by: str | None):
        if not run_by:
            return None
        login = (
            Login.objects.active()
            .filter(root_account=root_account, unique_id__iexact=run_by)
            .select_related("user")
            .first()
        )
        if login is None:
            raise CommandError(f"No active login {run_by!r} in {root_account}.")
        return login.user
