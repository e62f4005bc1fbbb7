"""The database store of the rate limiter: counts in rows, windows expire, old rows are pruned.

Runs on every database (the concurrent N-failures-count-N proof is
tests/security/test_concurrency.py::test_concurrent_failures_are_all_counted_on_the_database_store,
PostgreSQL only). The limiter's clock is moved by hand.
"""

import types

import pytest

from linking.models import RateLimitCounter
from linking.services import ratelimit
from linking.services.errors import RateLimited

IP = "203.0.113.9"


@pytest.fixture
def clock(monkeypatch, settings, db):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "observers_cache",
        }
    }
    settings.OBSERVERS_RATE_LIMIT_FAILURES = 3
    settings.OBSERVERS_RATE_LIMIT_WINDOW = 900
    now = types.SimpleNamespace(value=1_800_000_000.0)
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(time=lambda: now.value))
    return now


def _key(ip):
    return f"rl:{ratelimit.SCOPE_LINKING}:ip:{ip}"


def test_failures_count_in_one_row_until_the_window_ends(clock):
    for _ in range(3):
        ratelimit.register_failure(user=None, ip_address=IP)
    row = RateLimitCounter.objects.get(key=_key(IP))
    assert row.count == 3 and row.window_ends_at == clock.value + 900
    clock.value += 600  # failures later in the window do not extend it
    with pytest.raises(RateLimited) as refused:
        ratelimit.ensure_not_limited(user=None, ip_address=IP)
    assert refused.value.retry_after == 301

    clock.value += 300
    ratelimit.ensure_not_limited(user=None, ip_address=IP)  # the window has passed
    ratelimit.register_failure(user=None, ip_address=IP)
    row.refresh_from_db()
    assert row.count == 1 and row.window_ends_at == clock.value + 900
    assert RateLimitCounter.objects.count() == 1


def test_expired_counters_are_pruned_when_a_new_window_opens(clock):
    for n in range(5):
        ratelimit.register_failure(user=None, ip_address=f"198.51.100.{n}")
    clock.value += 901
    ratelimit.register_failure(user=None, ip_address=IP)
    assert list(RateLimitCounter.objects.values_list("key", flat=True)) == [_key(IP)]


def test_reset_forgets_the_counters(clock):
    for _ in range(3):
        ratelimit.register_failure(user=None, ip_address=IP)
    ratelimit.reset(user=None, ip_address=IP)
    assert not RateLimitCounter.objects.exists()
    ratelimit.ensure_not_limited(user=None, ip_address=IP)
