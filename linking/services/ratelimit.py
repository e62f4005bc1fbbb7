"""Failure-based rate limits shared by every worker process (through the cache).

Failed pairing-code redemptions and failed credential checks count against
both the user and the client address; once either reaches the limit in the
current window, further attempts are refused until the window ends.
"""

import math
import time

from django.conf import settings
from django.core.cache import cache

from ..models import User
from .errors import RateLimited

SCOPE_LINKING = "linking"


def _keys(scope: str, user: User | None, ip_address: str | None) -> list[str]:
    keys = []
    if user is not None and user.pk:
        keys.append(f"rl:{scope}:user:{user.pk}")
    if ip_address:
        keys.append(f"rl:{scope}:ip:{ip_address}")
    return keys


def ensure_not_limited(*, user: User | None, ip_address: str | None, scope: str = SCOPE_LINKING):
    """Raise RateLimited (with seconds to wait) when the user or address is over the limit."""
    limit = settings.OBSERVERS_RATE_LIMIT_FAILURES
    keys = _keys(scope, user, ip_address)
    if not keys:
        return
    values = cache.get_many(keys + [f"{k}:reset" for k in keys])
    now = time.time()
    waits = [
        values.get(f"{key}:reset", now + 1) - now for key in keys if (values.get(key) or 0) >= limit
    ]
    if waits:
        raise RateLimited(retry_after=int(max(waits)) + 1)


def register_failure(*, user: User | None, ip_address: str | None, scope: str = SCOPE_LINKING):
    """Count one failed attempt for the user and the address in the current window.

    The counter expires with the window, not with the cache's default
    timeout: some backends' ``incr`` rewrites the key with that default, so
    its expiry is set again after counting. ``incr`` is atomic on Redis; on
    the database cache two failures counted at the same instant may count
    once, which is why production should use Redis (CACHE_URL).
    """
    window = settings.OBSERVERS_RATE_LIMIT_WINDOW
    now = time.time()
    for key in _keys(scope, user, ip_address):
        # add() only sets a missing key, so the first failure opens the window
        # and later ones in it do not extend it.
        cache.add(f"{key}:reset", now + window, window)
        reset_at = cache.get(f"{key}:reset") or now + window
        remaining = max(1, math.ceil(reset_at - now))
        cache.add(key, 0, remaining)
        try:
            cache.incr(key)
        except ValueError:  # expired between add() and incr()
            cache.set(key, 1, remaining)
        cache.touch(key, remaining)


def reset(*, user: User | None, ip_address: str | None, scope: str = SCOPE_LINKING) -> None:
    keys = _keys(scope, user, ip_address)
    cache.delete_many(keys + [f"{k}:reset" for k in keys])
