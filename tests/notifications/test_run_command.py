"""``make run`` (issue 17, defect 8): one command runs the web server and a worker, and links
in e-mails keep the port of the configured base URL."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from linking.services import notifications
from tests import factories

BASE_DIR = Path(__file__).resolve().parents[2]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

SETUP = """
import django; django.setup()
from linking.models import Account, WebhookEndpoint
from linking.services.context import Actor
from linking.services.links import link_observer
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_report_links_keep_the_base_urls_scheme_and_port(
    settings, link, student, observer, root_account
):
    settings.OBSERVERS_BASE_URL = "http://127.0.0.1:8123"
    root_account.domain = "127.0.0.1"
    root_account.save()
    link(observer, student, root_account)

    message = notifications.render_email(notifications.EmailNotification.objects.get())

    assert "http://127.0.0.1:8123/notifications/report/" in message.body_text
    assert "http://127.0.0.1:8123/notifications/preferences/" in message.body_text


def test_a_root_account_without_a_domain_uses_the_base_urls_host(settings, db):
    settings.OBSERVERS_BASE_URL = "https://observers.example.org:8443/prefix"
    school = factories.RootAccountFactory(domain=None)

    assert (
        notifications.absolute_url(school, "/notifications/x/")
        == "https://observers.example.org:8443/prefix/notifications/x/"
    )


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_run_dev_serves_pages_and_delivers_webhooks_then_stops_both(tmp_path, receiver):
    database = tmp_path / "run.sqlite3"
    port = free_port()
    env = {
        **{key: value for key, value in os.environ.items() if key != "DATABASE_URL"},
        "DATABASE_URL": f"sqlite:///{database}",
        "DJANGO_SETTINGS_MODULE": "observers_project.settings",
        "BASE_URL": f"http://127.0.0.1:{port}",
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }
    manage = [sys.executable, str(BASE_DIR / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], cwd=BASE_DIR, env=env, check=True, timeout=120)
    subprocess.run([*manage, "createcachetable"], cwd=BASE_DIR, env=env, check=True, timeout=60)
    seed = SETUP + (
        "school = Account.objects.create(name='Run School', domain='127.0.0.1')\n"
        f"WebhookEndpoint.objects.create(root_account=school, url={receiver.url!r}, "
        f"secret={SECRET!r}, events=['link.created'])\n"
    )
    subprocess.run([sys.executable, "-c", seed], cwd=BASE_DIR, env=env, check=True, timeout=60)

    server = subprocess.Popen(
        [*manage, "run_dev", f"127.0.0.1:{port}", "--noreload"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        health = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    health = r.status
                    break
            except OSError:
                time.sleep(0.2)
        assert health == 200

        # A change made while it runs (as a request would) reaches the receiver by itself.
        change = SETUP + (
            "school = Account.objects.get(name='Run School')\n"
            "from linking.models import User\n"
            "a = User.objects.create(name='Olive Observer')\n"
            "b = User.objects.create(name='Sam Student')\n"
            "link_observer(observer=a, student=b, root_account=school, actor=Actor.system())\n"
        )
        subprocess.run(
            [sys.executable, "-c", change], cwd=BASE_DIR, env=env, check=True, timeout=60
        )
        for _ in range(150):
            if receiver.requests:
                break
            time.sleep(0.2)
        (request,) = receiver.requests
        assert Webhook(SECRET).verify(request["body"], request["headers"])["type"] == (
            "link.created"
        )
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            output = server.communicate(timeout=30)[0].decode()
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            raise
    assert server.returncode == 0, output
    # Both children ended with it: nothing answers on the port any more.
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
