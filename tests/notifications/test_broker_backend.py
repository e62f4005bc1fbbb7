"""The broker backend (TASK_BACKEND=rq): the same tasks, queued on Redis, run by RQ workers.

Runs in fresh processes (the backend is chosen when settings load) against
the Redis on 127.0.0.1 (``TEST_REDIS_URL``, database 3 by default, emptied
first) and a SQLite file of its own.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from standardwebhooks.webhooks import Webhook

BASE_DIR = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/3")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def broker():
    connection = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        connection.ping()
    except redis.ConnectionError:
        pytest.skip(f"needs Redis at {REDIS_URL} (.ci/run starts one)")
    connection.flushdb()
    yield connection
    connection.flushdb()


def test_rq_workers_plan_and_deliver(broker, receiver, tmp_path):
    env = {
        **{key: value for key, value in os.environ.items() if key != "DATABASE_URL"},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'rq.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "observers_project.settings",
        "TASK_BACKEND": "rq",
        "TASK_REDIS_URL": REDIS_URL,
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }
    manage = [sys.executable, str(BASE_DIR / "manage.py")]

    def run(*command, timeout=120):
        result = subprocess.run(
            command, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    run(*manage, "migrate", "-v0")
    run(
        sys.executable,
        "-c",
        "import django; django.setup()\n"
        "from linking.models import Account, User, WebhookEndpoint\n"
        "from linking.services.context import Actor\n"
        "from linking.services.links import link_observer\n"
        "school = Account.objects.create(name='Broker School', domain='broker.test')\n"
        f"WebhookEndpoint.objects.create(root_account=school, url={receiver.url!r}, "
        f"secret={SECRET!r}, events=['link.created'])\n"
        "for n in range(3):\n"
        "    link_observer(observer=User.objects.create(name=f'Observer {n}'),\n"
        "                  student=User.objects.create(name=f'Student {n}'),\n"
        "                  root_account=school, actor=Actor.system())\n",
    )

    # The scheduler puts the planner on Redis; the RQ worker runs it and the
    # delivery task it queues, then (--burst) exits.
    run(*manage, "run_worker", "--burst")

    assert broker.keys("rq:job:*"), "the tasks went through Redis"
    assert len(receiver.requests) == 3
    for request in receiver.requests:
        assert Webhook(SECRET).verify(request["body"], request["headers"])["type"] == (
            "link.created"
        )
    states = run(
        sys.executable,
        "-c",
        "import django; django.setup()\n"
        "from linking.models import WebhookDelivery\n"
        "print(sorted(WebhookDelivery.objects.values_list('status', flat=True)))",
    )
    assert states.stdout.strip() == "['sent', 'sent', 'sent']"
