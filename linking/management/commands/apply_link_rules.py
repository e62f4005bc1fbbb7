"""Apply the scheduled rules of who may observe: end dates and coming of age.

Run it daily (cron, or the task queue): links whose end date has passed end,
and students who came of age get their school's policy (keep, ask, end).
Each change is audited and notified like any other. ``--now`` runs it as of
another moment (to catch up, or to rehearse a date).
"""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from linking.models import AuditSource
from linking.services import safeguarding
from linking.services.context import Actor


class Command(BaseCommand):
    help = "End links past their end date and apply the coming-of-age policy."

    def add_arguments(self, parser):
        parser.add_argument(
            "--now",
            help="Run as of this ISO 8601 moment instead of now (e.g. 2027-06-01T00:00Z).",
        )

    def handle(self, *args, now: str | None = None, **options):
        moment = timezone.now()
        if now:
            moment = parse_datetime(now)
            if moment is None:
                raise CommandError(f"--now is not an ISO 8601 date and time: {now!r}")
            if timezone.is_naive(moment):
                moment = timezone.make_aware(moment)
        run = safeguarding.apply_link_rules(now=moment, actor=Actor.system(AuditSource.COMMAND))
        self.stdout.write(
            f"ended {run.ended_by_date} link(s) past their end date; "
            f"coming of age changed {run.changed_by_coming_of_age} link(s)"
        )
