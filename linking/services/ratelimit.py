"""Failure-based rate limits shared by every worker process.

Failed pairing-code redemptions and failed credential checks count against
both the user and the client address; once either reaches the limit in the
current window, further attempts are refused until the window ends.

Where the counters live depends on the shared cache (CACHE_URL):

- Redis: in the cache, counted with its atomic ``INCR`` (TTL = the window).
- anything else (the database cache by default): in the RateLimitCounter
  table, counted with one ``UPDATE ... SET count = count + 1`` per key.
  Django's DatabaseCache.incr() is a get followed by a set, so failures
  registered at the same instant by different workers could be lost; the
  row update cannot lose one. Expired rows are pruned when a new window
  opens.
"""

import math
import time

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F

from ..models import RateLimitCounter, User
from .errors import RateLimited

SCOPE_LINKING = "linking"
PRUNE_BATCH = 500


def _keys(scope: str, user: User | None, ip_address: str | None) -> list[str]:
    keys = []
    if user is not None and user.pk:
        keys.append(f"rl:{scope}:user:{user.pk}")
    if ip_address:
        keys.append(f"rl:{scope}:ip:{ip_address}")
    return keys


def _uses_redis() -> bool:
    return "redis" in settings.CACHES["default"]["BACKEND"].lower()


def ensure_not_limited(*, user: User | None, ip_address: str | None, scope: str = SCOPE_LINKING):
    """Raise RateLimited (with seconds to wait) when the user or address is over the limit."""
    limit = settings.OBSERVERS_RATE_LIMIT_FAILURES
    keys = _keys(scope, user, ip_address)
    if not keys:
        return
    now = time.time()
    if _uses_redis():
        values = cache.get_many(keys + [f"{k}:reset" for k in keys])
        waits = [
            values.get(f"{key}:reset", now + 1) - now
            for key in keys
            if (values.get(key) or 0) >= limit
        ]
    else:
        waits = [
            ends_at - now
            for ends_at in RateLimitCounter.objects.filter(
                key__in=keys, count__gte=limit, window_ends_at__gt=now
            ).values_list("window_ends_at", flat=True)
        ]
    if waits:
        raise RateLimited(retry_after=int(max(waits)) + 1)


def register_failure(*, user: User | None, ip_address: str | None, scope: str = SCOPE_LINKING):
    """Count one failed attempt for the user and the address in the current window.

    The first failure opens a window of OBSERVERS_RATE_LIMIT_WINDOW seconds;
    later failures in it do not extend it. Counting is atomic on both
    stores, so N concurrent failures always count N.
    """
    window = settings.OBSERVERS_RATE_LIMIT_WINDOW
    now = time.time()
    for key in _keys(scope, user, ip_address):
        if _uses_redis():
            _count_in_redis(key, now, window)
        else:
            _count_in_table(key, now, window)


def _count_in_redis(key: str, now: float, window: int) -> None:
    # add() only sets a missing key, so the first failure opens the window.
    cache.add(f"{key}:reset", now + window, window)
    reset_at = cache.get(f"{key}:reset") or now + window
    remaining = max(1, math.ceil(reset_at - now))
    cache.add(key, 0, remaining)
    try:
        cache.incr(key)
    except ValueError:  # expired between add() and incr()
        cache.set(key, 1, remaining)
    cache.touch(key, remaining)


def _count_in_table(key: str, now: float, window: int) -> None:
    """One failure under ``key``: each step is a single statement, retried on a lost race."""
    live = RateLimitCounter.objects.filter(key=key, window_ends_at__gt=now)
    expired = RateLimitCounter.objects.filter(key=key, window_ends_at__lte=now)
    for _attempt in range(5):
        # PostgreSQL re-checks the WHERE clause after waiting for a row lock,
        # so a concurrent reset of an expired window is seen, never undone.
        if live.update(count=F("count") + 1):
            return
        if expired.update(count=1, window_ends_at=now + window):
            return
        try:
            with transaction.atomic():
                RateLimitCounter.objects.create(key=key, count=1, window_ends_at=now + window)
        except IntegrityError:  # another worker created it first: count in its row
            continue
        _prune(now)
        return
    raise RuntimeError(f"could not count a failure under {key}")  # pragma: no cover


def _prune(now: float) -> None:
    """Delete counters whose window has ended, skipping rows another worker holds."""
    with transaction.atomic():
        stale = list(
            RateLimitCounter.objects.select_for_update(skip_locked=True)
            .filter(window_ends_at__lte=now)
            .values_list("pk", flat=True)[:PRUNE_BATCH]
        )
        if stale:
            RateLimitCounter.objects.filter(pk__in=stale).delete()


def reset(*, user: User | None, ip_address: str | None, scope: str = SCOPE_LINKING) -> None:
    """Forget the failures of the user and the address (both stores)."""
    keys = _keys(scope, user, ip_address)
    cache.delete_many(keys + [f"{k}:reset" for k in keys])
    RateLimitCounter.objects.filter(key__in=keys).delete()
