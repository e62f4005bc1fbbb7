"""/health, /ready (database, cache, rate-limit store), request ids in responses and audit."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.test import Client

from linking.models import AuditAction, AuditEvent
from linking.services.enrollments import enroll_user
from tests import factories

pytestmark = pytest.mark.django_db

HOST = "default.test"
ROOT = Path(__file__).resolve().parents[2]
REDIS_DB4 = "redis://127.0.0.1:6379/4"


def _redis_cache(location):
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": location,
            "KEY_PREFIX": "h18-tests",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }


def test_health_and_ready_answer_without_a_tenant(root_account):
    client = Client(HTTP_HOST="unknown.example")
    assert client.get("/health").json() == {"status": "ok"}
    response = client.get("/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {
        "database": "ok",
        "cache": "ok",
        "rate_limit_store": "ok",
        "task_queue": "ok",
    }
    assert body["queue"] == {"depth": 0, "oldest_age_seconds": 0.0}


def _redis_reachable() -> bool:
    import redis

    try:
        return redis.Redis.from_url(REDIS_DB4, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        return False


def test_ready_with_redis_up_and_down(root_account, settings):
    if not _redis_reachable():
        pytest.skip("needs Redis on 127.0.0.1:6379 (CI starts it)")
    settings.CACHES = _redis_cache(REDIS_DB4)
    client = Client(HTTP_HOST=HOST)
    up = client.get("/ready")
    assert up.status_code == 200, up.content
    assert up.json()["checks"]["rate_limit_store"] == "ok"

    # Nothing listens on port 1: the cache and the rate-limit store are down.
    settings.CACHES = _redis_cache("redis://127.0.0.1:1/4")
    down = client.get("/ready")
    assert down.status_code == 503
    assert down.json()["status"] == "unavailable"
    assert down.json()["checks"] == {
        "database": "ok",
        "cache": "down",
        "rate_limit_store": "down",
        "task_queue": "ok",
    }
    # Liveness does not depend on the cache.
    assert client.get("/health").status_code == 200


def test_ready_checks_the_rq_task_queue(root_account, settings):
    """With TASK_BACKEND=rq the queue is Redis: unreachable, the worker is not ready."""
    if not _redis_reachable():
        pytest.skip("needs Redis on 127.0.0.1:6379 (CI starts it)")
    settings.TASK_BACKEND = "rq"
    settings.TASK_REDIS_URL = REDIS_DB4
    client = Client(HTTP_HOST=HOST)
    up = client.get("/ready")
    assert up.status_code == 200, up.content
    assert up.json()["checks"]["task_queue"] == "ok"

    settings.TASK_REDIS_URL = "redis://127.0.0.1:1/4"  # nothing listens on port 1
    down = client.get("/ready")
    assert down.status_code == 503
    assert down.json()["status"] == "unavailable"
    assert down.json()["checks"] == {
        "database": "ok",
        "cache": "ok",
        "rate_limit_store": "ok",
        "task_queue": "down",
    }


def test_every_response_carries_a_request_id_that_reaches_the_audit_trail(root_account):
    student = factories.UserFactory(name="Sam Student")
    factories.LoginFactory(user=student, root_account=root_account)
    enroll_user(user=student, course=factories.CourseFactory(account=root_account), type="student")
    client = Client(HTTP_HOST=HOST)
    client.force_login(student)

    sent = str(uuid.uuid4())
    response = client.post("/pairing/codes/", HTTP_X_REQUEST_ID=sent)
    assert response.status_code == 302
    assert response["X-Request-ID"] == sent
    event = AuditEvent.objects.get(action=AuditAction.CODE_ISSUED)
    assert event.request_id == sent

    # A header that is not a UUID is replaced by a fresh id, not trusted.
    response = client.get("/login/", HTTP_X_REQUEST_ID="<script>x</script>")
    assert response["X-Request-ID"] != "<script>x</script>"
    assert len(response["X-Request-ID"]) == 32


def _production_env(**extra) -> dict:
    env = dict(os.environ)
    env.update(
        OBSERVERS_ENV="production",
        SECRET_KEY="k" * 20 + uuid.uuid4().hex,
        ALLOWED_HOSTS="school.example.org",
        DATABASE_URL="sqlite:///" + str(ROOT / "tests" / "artifacts" / "deploy-check.sqlite3"),
        CACHE_URL="locmem://",
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(extra)
    return env


def test_production_logs_are_json_with_the_request_id():
    script = (
        "import logging\n"
        "from django_guid import set_guid\n"
        "set_guid('0123456789abcdef0123456789abcdef')\n"
        "logging.getLogger('linking.test').warning('link %s made', 7)\n"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=_production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("{")]
    record = json.loads(lines[-1])
    assert record["message"] == "link 7 made"
    assert record["level"] == "WARNING"
    assert record["logger"] == "linking.test"
    assert record["request_id"] == "0123456789abcdef0123456789abcdef"
    assert "time" in record
