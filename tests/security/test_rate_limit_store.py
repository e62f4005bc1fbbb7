"""The database store of the rate limiter: counts in rows, windows grow after a lock, rows pruned.

Runs on every database (the concurrent proofs are in
tests/security/test_concurrency.py and tests/security/test_rate_limit_across_workers.py,
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
    settings.OBSERVERS_RATE_LIMIT_ADDRESS_FAILURES = 3
    settings.OBSERVERS_RATE_LIMIT_WINDOW = 900
    settings.OBSERVERS_RATE_LIMIT_MAX_WINDOW = 3600
    now = types.SimpleNamespace(value=1_800_000_000.0)
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(time=lambda: now.value))
    return now


def _try(ip=IP):
    return ratelimit.reserve(ratelimit.budgets_for(ip_address=ip))


def _row(ip=IP):
    return RateLimitCounter.objects.get(key=ratelimit.address_budget(ip).key)


def test_tries_count_in_one_row_until_the_window_ends(clock):
    assert [_try().tries_left for _ in range(3)] == [2, 1, 0]
    row = _row()
    assert row.count == 3 and row.window_ends_at == clock.value + 900
    clock.value += 600  # tries later in the window do not extend it
    with pytest.raises(RateLimited) as refused:
        _try()
    assert refused.value.retry_after == 300
    assert _row().count == 3  # a refused try counts nothing


def test_a_released_try_gives_its_place_back(clock):
    _try()
    _try().release()
    assert _row().count == 1
    _try(), _try()
    with pytest.raises(RateLimited):
        _try()


def test_a_release_after_the_window_ended_does_not_touch_the_next_window(clock):
    late = _try()
    clock.value += 901
    _try()
    late.release()
    assert _row().count == 1


def test_a_used_up_window_makes_the_next_one_twice_as_long_up_to_the_cap(clock):
    lengths = []
    for _ in range(4):
        for _ in range(3):
            _try()
        row = _row()
        lengths.append(row.window_seconds)
        clock.value = row.window_ends_at
    assert lengths == [900, 1800, 3600, 3600]
    # A window that was not used up brings the length back to the first one.
    _try()
    clock.value = _row().window_ends_at
    _try()
    assert _row().window_seconds == 900


def test_expired_counters_are_pruned_once_they_remember_nothing(clock):
    for n in range(5):
        _try(f"198.51.100.{n}")
    clock.value += 900 + 3600 + 1
    _try()
    assert list(RateLimitCounter.objects.values_list("key", flat=True)) == [
        ratelimit.address_budget(IP).key
    ]


def test_reset_forgets_the_counters(clock):
    for _ in range(3):
        _try()
    ratelimit.reset(ratelimit.budgets_for(ip_address=IP))
    assert not RateLimitCounter.objects.exists()
    _try()
