"""Liveness (``/health``) and readiness (``/ready``) for load balancers and orchestrators.

``/health`` says the process answers and reaches its database (one trivial
query). ``/ready`` also checks the shared cache and the rate-limit store
(the same Redis when CACHE_URL points at one, else the database's cache
table): a worker that cannot count failed guesses must not take traffic,
since every sign-in would answer 503. It checks the task queue's store too
(the database on the default backend; with TASK_BACKEND=rq, RQ's Redis): a
worker that cannot enqueue cannot hand work to the background. The queue's
depth and age are reported for information; a long queue does not make a
worker unready.
"""

import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import JsonResponse

from .services import ratelimit
from .services.errors import RateLimitStoreUnavailable
from .services.queue_status import queue_status


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return False
    return True


def health(request):
    if not _database_ok():
        return JsonResponse({"status": "unavailable", "database": "down"}, status=503)
    return JsonResponse({"status": "ok"})


def _cache_ok() -> bool:
    key = f"ready:{uuid.uuid4().hex}"
    try:
        cache.set(key, "1", timeout=10)
        found = cache.get(key) == "1"
        cache.delete(key)
    except Exception:
        return False
    return found


def _rate_limit_store_ok() -> bool:
    try:
        ratelimit.check_store()
    except (RateLimitStoreUnavailable, DatabaseError):
        return False
    return True


def _task_queue_ok(database_ok: bool) -> bool:
    """The task backend's store answers: the database, or RQ's Redis."""
    if settings.TASK_BACKEND != "rq":
        return database_ok  # "database" keeps the queue there; "immediate" has none
    import redis

    try:
        client = redis.Redis.from_url(
            settings.TASK_REDIS_URL, socket_connect_timeout=1, socket_timeout=1
        )
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False


def ready(request):
    checks = {"database": _database_ok()}
    checks["cache"] = _cache_ok()
    checks["rate_limit_store"] = _rate_limit_store_ok()
    checks["task_queue"] = _task_queue_ok(checks["database"])
    body = {
        "status": "ok" if all(checks.values()) else "unavailable",
        "checks": {name: "ok" if ok else "down" for name, ok in checks.items()},
    }
    if checks["database"]:
        status = queue_status()
        body["queue"] = {
            "depth": status.depth,
            "oldest_age_seconds": round(status.oldest_age_seconds(), 1),
        }
    return JsonResponse(body, status=200 if body["status"] == "ok" else 503)
