"""``make run``: the development web server and a task worker, as one command.

    manage.py run_dev 127.0.0.1:8000

Starts ``runserver`` and ``run_worker`` as child processes, passes Ctrl+C /
SIGTERM on to both, and stops the other when either ends, so e-mails and
webhooks flow in the demo without a second terminal. Production runs the
web server (gunicorn) and ``run_worker`` as separate services instead.
"""

import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand, CommandError

GRACE_SECONDS = 10


class Command(BaseCommand):
    help = "Run the development server and a task worker together."

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument(
            "--noreload", action="store_true", help="Do not restart the web server on code changes."
        )

    def handle(self, *args, addrport: str, noreload: bool, **options):
        manage = [sys.executable, sys.argv[0]]
        web = [*manage, "runserver", addrport, *(["--noreload"] if noreload else [])]
        worker = [*manage, "run_worker"]
        children: list[subprocess.Popen] = []
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for command in (web, worker):
                children.append(subprocess.Popen(command))  # noqa: S603 - our own manage.py
            self.stdout.write(
                f"web server (pid {children[0].pid}) and worker (pid {children[1].pid})"
            )
            while not stopping:
                ended = [child for child in children if child.poll() is not None]
                if ended:
                    self.stderr.write(f"{ended[0].args[2]} ended (exit {ended[0].returncode})")
                    break
                time.sleep(0.2)
        finally:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + GRACE_SECONDS
            for child in children:
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if not stopping:
            raise CommandError("a child process ended; both were stopped")
