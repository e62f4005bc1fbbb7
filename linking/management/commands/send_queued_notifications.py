"""Plan pending events and deliver what is due, now, in this process.

The task worker (``manage.py run_worker``, started by ``make run``) does
this continuously; this command is for one-off use (a shell, a script, a
test) and runs the very same services. Several may run at once, and beside
workers: every row is claimed before it is sent.
"""

import time

from django.core.management.base import BaseCommand, CommandError

from linking.services import notifications


class Command(BaseCommand):
    help = "Send queued e-mail notifications and webhook deliveries that are due."

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch", type=int, default=100, help="Messages of each kind per pass (default 100)."
        )
        parser.add_argument(
            "--loop", action="store_true", help="Keep running, sleeping when nothing is due."
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=10.0,
            help="Seconds to sleep between passes with --loop when the queue is empty.",
        )

    def handle(self, *args, batch: int, loop: bool, interval: float, **options):
        if batch < 1:
            raise CommandError("--batch must be at least 1")
        if interval < 0:
            raise CommandError("--interval must not be negative")
        try:
            while True:
                report = notifications.deliver_due(batch=batch)
                if report.processed or not loop:
                    self.stdout.write(
                        f"sent {report.sent}, retrying {report.retrying}, failed {report.failed}"
                    )
                if not loop:
                    return
                if report.processed < batch:
                    time.sleep(interval)
        except KeyboardInterrupt:
            self.stdout.write("stopped")
