"""Failure limits per account and per client address, shared by every worker process.

Every guess (a sign-in, a credential check, a pairing code, an e-mail probed
on sign-up) first *reserves* one try under each budget it counts against,
in one atomic step that also checks the limit: a try is refused (RateLimited,
with the seconds to wait) when any of its budgets is used up, and nothing is
counted then. A try that succeeds *releases* its reservation; a failed one
keeps it. So however many guesses arrive at once, exactly ``limit`` of them
are let through per budget and window.

Budgets (docs/security.md holds the reasoning and the numbers):

- per account: the signed-in user acting (code redemption, credential
  linking) and the login id tried (sign-in, credential linking, sign-up's
  e-mail), RATE_LIMIT_FAILURES per window;
- per address: the client's IPv4 address, or its IPv6 /64 (one household or
  one customer gets a whole /64), RATE_LIMIT_ADDRESS_FAILURES per window,
  sized for a school's shared network.

A window opens with the first try and lasts RATE_LIMIT_WINDOW_SECONDS. When
a budget was used up in a window, the next window is twice as long (up to
RATE_LIMIT_MAX_WINDOW_SECONDS): a growing delay for a persistent guesser,
never a permanent lock for the owner.

Where the counters live depends on the shared cache (CACHE_URL): Redis
(one Lua script per reservation, atomic across all its budgets) or, for any
other cache, the RateLimitCounter table (rows locked in key order inside one
transaction). An unreachable Redis makes every guess fail closed with
RateLimitStoreUnavailable (a 503), logged once per outage per process.
"""

import hashlib
import ipaddress
import logging
import math
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction

from ..models import Account, RateLimitCounter, User
from . import instruments
from .errors import RateLimited, RateLimitStoreUnavailable

logger = logging.getLogger(__name__)

PRUNE_BATCH = 500


@dataclass(frozen=True)
class Budget:
    key: str
    limit: int


def user_budget(user: User) -> Budget:
    return Budget(f"rl:user:{user.pk}", settings.OBSERVERS_RATE_LIMIT_FAILURES)


def login_budget(root_account: Account, unique_id: str) -> Budget:
    """The login id tried in a school, known or not (hashed: typed text is not kept)."""
    typed = (unique_id or "").strip().lower()
    digest = hashlib.sha256(typed.encode()).hexdigest()[:32]
    return Budget(f"rl:login:{root_account.pk}:{digest}", settings.OBSERVERS_RATE_LIMIT_FAILURES)


def address_block(ip_address: str) -> str:
    """What one client is: an IPv4 address, or the /64 network of an IPv6 address."""
    address = ipaddress.ip_address(ip_address)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def address_budget(ip_address: str) -> Budget:
    return Budget(
        f"rl:addr:{address_block(ip_address)}", settings.OBSERVERS_RATE_LIMIT_ADDRESS_FAILURES
    )


def budgets_for(
    *,
    user: User | None = None,
    ip_address: str | None = None,
    root_account: Account | None = None,
    login_id: str | None = None,
) -> list[Budget]:
    """The budgets one guess counts against: the acting user, the login id tried, the address."""
    budgets = []
    if user is not None and user.pk:
        budgets.append(user_budget(user))
    if root_account is not None and login_id is not None:
        budgets.append(login_budget(root_account, login_id))
    if ip_address:
        budgets.append(address_budget(ip_address))
    return budgets


@dataclass
class Reservation:
    """One try counted under each budget; ``release()`` gives it back when the try succeeded."""

    windows: dict[str, str] = field(default_factory=dict)  # key -> the window it was counted in
    tries_left: int | None = None  # after this try, in the budget closest to its limit
    released: bool = False

    def release(self) -> None:
        if self.released or not self.windows:
            return
        self.released = True
        if _uses_redis():
            _redis_call(lambda client: _release_in_redis(client, self.windows))
        else:
            _release_in_table(self.windows)


def reserve(budgets: list[Budget]) -> Reservation:
    """Count one try under every budget, or none when any is used up (RateLimited).

    Atomic on both stores: of N concurrent tries against a budget with L
    left, exactly L get a reservation.
    """
    if not budgets:
        return Reservation()
    budgets = sorted({b.key: b for b in budgets}.values(), key=lambda b: b.key)
    now = time.time()
    try:
        if _uses_redis():
            return _redis_call(lambda client: _reserve_in_redis(client, budgets, now))
        return _reserve_in_table(budgets, now)
    except RateLimited:
        instruments.RATE_LIMIT_REFUSALS.inc()
        raise


def check_store() -> None:
    """Raise RateLimitStoreUnavailable (Redis) or DatabaseError (table) if the store is down."""
    if _uses_redis():
        _redis_call(lambda client: client.ping())
    else:
        RateLimitCounter.objects.exists()


def _windows() -> tuple[float, float]:
    base = float(settings.OBSERVERS_RATE_LIMIT_WINDOW)
    return base, max(base, float(settings.OBSERVERS_RATE_LIMIT_MAX_WINDOW))


def _next_window(count: int, limit: int, ends_at: float, length: float, now: float) -> float:
    """The length of the window a try opens once the previous one is over."""
    base, cap = _windows()
    if count >= limit and length > 0 and now - ends_at < cap:
        return min(length * 2, cap)
    return base


def _refused(wait: float) -> RateLimited:
    return RateLimited(retry_after=math.ceil(wait))


# --- Redis -------------------------------------------------------------------------

_RESERVE_LUA = """
local now = tonumber(ARGV[1])
local base = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local wait = 0
local state = {}
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[3 + i])
  local stored = redis.call('HMGET', key, 'c', 'e', 'w')
  local c = tonumber(stored[1]) or 0
  local e = stored[2] or '0'
  local w = tonumber(stored[3]) or 0
  if tonumber(e) <= now then
    local length = base
    if c >= limit and w > 0 and now - tonumber(e) < cap then
      length = math.min(w * 2, cap)
    end
    c = 0
    e = tostring(now + length)
    w = length
  end
  if c >= limit then
    wait = math.max(wait, tonumber(e) - now)
  end
  state[i] = {c, e, w, limit}
end
if wait > 0 then
  return {0, tostring(wait)}
end
local result = {1}
for i, key in ipairs(KEYS) do
  local s = state[i]
  redis.call('HSET', key, 'c', s[1] + 1, 'e', s[2], 'w', s[3])
  redis.call('PEXPIRE', key, math.ceil((tonumber(s[2]) - now + cap) * 1000))
  table.insert(result, s[2])
  table.insert(result, s[4] - s[1] - 1)
end
return result
"""

_RELEASE_LUA = """
for i, key in ipairs(KEYS) do
  if redis.call('HGET', key, 'e') == ARGV[i] and tonumber(redis.call('HGET', key, 'c')) > 0 then
    redis.call('HINCRBY', key, 'c', -1)
  end
end
return 0
"""


def _uses_redis() -> bool:
    return "redis" in settings.CACHES["default"]["BACKEND"].lower()


_outage_lock = threading.Lock()
_outage_since: float | None = None


def _redis_call(operation):
    """Run ``operation(client)``; an unreachable Redis becomes RateLimitStoreUnavailable.

    The outage is logged when this process first meets it and again when
    the store answers, never per request.
    """
    global _outage_since
    import redis

    try:
        result = operation(cache._cache.get_client(write=True))
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        with _outage_lock:
            first = _outage_since is None
            if first:
                _outage_since = time.monotonic()
        if first:
            logger.error(
                "rate-limit store unreachable (%s): guesses answer 503 until it is back", exc
            )
        raise RateLimitStoreUnavailable() from exc
    if _outage_since is not None:
        with _outage_lock:
            since, _outage_since = _outage_since, None
        if since is not None:
            logger.warning(
                "rate-limit store reachable again after %.0f s", time.monotonic() - since
            )
    return result


def _redis_key(key: str) -> str:
    return cache.make_key(key)


def _reserve_in_redis(client, budgets: list[Budget], now: float) -> Reservation:
    base, cap = _windows()
    keys = [_redis_key(b.key) for b in budgets]
    reply = client.eval(
        _RESERVE_LUA, len(keys), *keys, repr(now), base, cap, *[b.limit for b in budgets]
    )
    if int(reply[0]) == 0:
        raise _refused(float(reply[1]))
    windows, left = {}, []
    for index, budget in enumerate(budgets):
        end = reply[1 + 2 * index]
        windows[budget.key] = end.decode() if isinstance(end, bytes) else str(end)
        left.append(int(reply[2 + 2 * index]))
    return Reservation(windows=windows, tries_left=min(left))


def _release_in_redis(client, windows: dict[str, str]) -> None:
    keys = list(windows)
    client.eval(_RELEASE_LUA, len(keys), *[_redis_key(k) for k in keys], *windows.values())


# --- the database store -------------------------------------------------------------


def _reserve_in_table(budgets: list[Budget], now: float) -> Reservation:
    keys = [b.key for b in budgets]
    for _attempt in range(5):
        try:
            with transaction.atomic():
                # Make sure every row exists, then lock them in key order (no
                # deadlock between two tries sharing budgets): concurrent tries
                # on one budget queue here and each sees the count before it.
                RateLimitCounter.objects.bulk_create(
                    [RateLimitCounter(key=k, count=0, window_ends_at=0) for k in keys],
                    ignore_conflicts=True,
                )
                rows = {
                    row.key: row
                    for row in RateLimitCounter.objects.select_for_update()
                    .filter(key__in=keys)
                    .order_by("key")
                }
                return _count_rows(budgets, rows, now)
        except IntegrityError:  # pragma: no cover - a row pruned between insert and lock
            continue
    raise RuntimeError("could not reserve a try")  # pragma: no cover


def _count_rows(budgets: list[Budget], rows: dict[str, RateLimitCounter], now: float):
    wait = 0.0
    opened = False
    for budget in budgets:
        row = rows[budget.key]
        if row.window_ends_at <= now:
            length = _next_window(
                row.count, budget.limit, row.window_ends_at, row.window_seconds, now
            )
            opened = True
            row.count, row.window_ends_at, row.window_seconds = 0, now + length, length
        if row.count >= budget.limit:
            wait = max(wait, row.window_ends_at - now)
    if wait > 0:
        raise _refused(wait)
    left = []
    for budget in budgets:
        row = rows[budget.key]
        row.count += 1
        row.save(update_fields=["count", "window_ends_at", "window_seconds"])
        left.append(budget.limit - row.count)
    if opened:
        _prune(now)
    return Reservation(
        windows={b.key: repr(rows[b.key].window_ends_at) for b in budgets}, tries_left=min(left)
    )


def _release_in_table(windows: dict[str, str]) -> None:
    from django.db.models import F

    for key, window in windows.items():
        RateLimitCounter.objects.filter(key=key, window_ends_at=float(window), count__gt=0).update(
            count=F("count") - 1
        )


def _prune(now: float) -> None:
    """Delete counters that no longer hold a window nor remember a lock, skipping locked rows."""
    _base, cap = _windows()
    with transaction.atomic():
        stale = list(
            RateLimitCounter.objects.select_for_update(skip_locked=True)
            .filter(window_ends_at__lte=now - cap)
            .values_list("pk", flat=True)[:PRUNE_BATCH]
        )
        if stale:
            RateLimitCounter.objects.filter(pk__in=stale).delete()


def reset(budgets: list[Budget]) -> None:
    """Forget the counts of these budgets (both stores): staff lifting a lock."""
    keys = [b.key for b in budgets]
    if _uses_redis():
        _redis_call(lambda client: client.delete(*[_redis_key(k) for k in keys]))
    RateLimitCounter.objects.filter(key__in=keys).delete()
