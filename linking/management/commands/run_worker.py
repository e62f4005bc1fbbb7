"""Run a task worker: the configured backend's worker, with the periodic scheduler beside it.

    manage.py run_worker               # until stopped (Ctrl+C / SIGTERM)
    manage.py run_worker --burst       # run what is queued (and due now), then exit

TASK_BACKEND=database runs django-tasks-db's worker on this database;
TASK_BACKEND=rq runs an RQ worker on TASK_REDIS_URL. Any number of workers
may run at once, on any hosts: tasks are claimed by the backend, and each
periodic slot is enqueued by one scheduler only (``services.scheduling``).
"""

import os
import socket
import threading

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections, connections

from linking.services import scheduling


class Command(BaseCommand):
    help = "Run a background task worker with the periodic-task scheduler."

    def add_arguments(self, parser):
        parser.add_argument(
            "--burst",
            action="store_true",
            help="Enqueue what is due, run every queued task, then exit (cron, tests).",
        )
        parser.add_argument(
            "--no-scheduler",
            action="store_true",
            help="Run tasks only; another worker's scheduler enqueues periodic work.",
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=0.5,
            help="Seconds between polls of an empty database queue (default 0.5).",
        )

    def handle(self, *args, burst: bool, no_scheduler: bool, interval: float, **options):
        if settings.TASK_BACKEND == "immediate":
            raise CommandError("TASK_BACKEND=immediate runs tasks when enqueued: no worker needed")
        if interval <= 0:
            raise CommandError("--interval must be positive")
        scheduling.autodiscover()
        stop = threading.Event()
        scheduler = None
        if burst:
            scheduling.run_due()
        elif not no_scheduler:
            scheduler = threading.Thread(
                target=self._schedule, args=(stop,), name="scheduler", daemon=True
            )
            scheduler.start()
        worker_id = f"{socket.gethostname()}-{os.getpid()}"[:64]
        try:
            if settings.TASK_BACKEND == "rq":
                call_command(
                    "rqworker",
                    "default",
                    job_class="django_tasks_rq.Job",
                    burst=burst,
                    name=worker_id,
                )
            else:
                call_command(
                    "db_worker",
                    queue_name="default",
                    interval=interval,
                    batch=burst,
                    startup_delay=False,
                    worker_id=worker_id,
                    verbosity=options["verbosity"],
                )
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            if scheduler is not None:
                scheduler.join(timeout=5)

    def _schedule(self, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            try:
                scheduling.run_due()
            except Exception:  # a database hiccup must not end the scheduler
                self.stderr.write("scheduler: could not enqueue periodic tasks (retrying)")
            finally:
                close_old_connections()
        connections.close_all()
