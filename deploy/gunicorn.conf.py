"""gunicorn settings for observers (``gunicorn -c deploy/gunicorn.conf.py``).

Every value can be overridden from the environment (GUNICORN_BIND,
GUNICORN_WORKERS, ...) so the systemd unit and the environment file stay
the only places a site edits.
"""

import os
from pathlib import Path

wsgi_app = "observers_project.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Sync workers: every request is a few short queries; 2 per core plus one.
workers = int(os.environ.get("GUNICORN_WORKERS", str(2 * (os.cpu_count() or 1) + 1)))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so a slow leak never grows without bound.
max_requests = 5000
max_requests_jitter = 500
# Logs go to stderr (journald); the app's own logs are JSON in production.
accesslog = "-" if os.environ.get("GUNICORN_ACCESS_LOG", "false").lower() == "true" else None
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# The app is loaded before forking, so a broken configuration fails at
# start-up, once, with its message.
preload_app = True

# Prometheus counters of all workers are added up from files in this
# directory (linking.metrics). It must exist before the app is loaded.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _metrics_dir:
    Path(_metrics_dir).mkdir(parents=True, exist_ok=True)


def on_starting(server):
    # Once per start (not on reload): a previous run's files would be added
    # to this run's counters.
    if _metrics_dir:
        for stale in Path(_metrics_dir).glob("*.db"):
            stale.unlink(missing_ok=True)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
