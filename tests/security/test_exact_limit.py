"""Guesses released at the same instant get exactly the limit, on both stores (finding 6).

Threads start together on a barrier and each makes one wrong guess through
the services, on PostgreSQL. With the limit checked before the failure was
counted, most of them passed the check before any was counted; with the
reservation, exactly the limit is tried and the rest are refused.
"""

import pytest

from linking.models import AuditAction, AuditEvent
from linking.services import accounts as account_services
from linking.services.context import Actor
from linking.services.credentials import find_student_by_credentials
from linking.services.errors import InvalidCredentials, InvalidPairingCode, RateLimited
from linking.services.pairing import find_redeemable_code
from tests.security.test_concurrency import _run_threads

THREADS = 16
LIMIT = 5
REDIS = "redis://127.0.0.1:6379/6"  # its own: test_rate_limit_store_down flushes /5


@pytest.fixture(params=["database", "redis"])
def store(request, postgresql_only, settings):
    if request.param == "redis":
        settings.CACHES = {
            "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS}
        }
    else:
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.db.DatabaseCache",
                "LOCATION": "observers_cache",
            }
        }
    from django.core.cache import cache

    cache.clear()
    settings.OBSERVERS_RATE_LIMIT_FAILURES = LIMIT
    settings.OBSERVERS_RATE_LIMIT_ADDRESS_FAILURES = 1000
    yield request.param
    cache.clear()


def _burst(guess):
    outcomes = []

    def work(index):
        try:
            guess(index)
        except (InvalidPairingCode, InvalidCredentials) as error:
            outcomes.append(("tried", error.tries_left))
        except RateLimited as error:
            outcomes.append(("refused", error.retry_after))

    assert _run_threads(work, THREADS) == []
    return outcomes


def test_a_burst_of_wrong_codes_gets_exactly_the_limit(store):
    school = account_services.create_root_account(name="Burst School", domain="burst.test")
    parent = account_services.create_user_with_login(
        name="Parent", root_account=school, unique_id="parent@burst.test"
    )
    actor = Actor(user=parent, ip_address="198.51.100.1")

    outcomes = _burst(
        lambda i: find_redeemable_code(code=f"ZZZZ-ZZ{i:02d}", root_account=school, actor=actor)
    )

    tried = sorted(left for kind, left in outcomes if kind == "tried")
    assert tried == list(range(LIMIT))  # each try saw its own count: 4, 3, 2, 1, 0 left
    assert [kind for kind, _ in outcomes].count("refused") == THREADS - LIMIT
    failed = AuditEvent.objects.filter(action=AuditAction.CODE_FAILED, actor=parent)
    assert failed.count() == LIMIT


def test_a_burst_of_wrong_passwords_gets_exactly_the_limit(store):
    school = account_services.create_root_account(name="Burst School", domain="burst.test")
    account_services.create_user_with_login(
        name="Student", root_account=school, unique_id="student@burst.test", password="right 1"
    )

    def guess(index):
        prober = Actor(user=None, ip_address=f"198.51.100.{index + 1}")
        find_student_by_credentials(
            unique_id="student@burst.test",
            password=f"wrong {index}",
            root_account=school,
            actor=prober,
        )

    outcomes = _burst(guess)

    assert sorted(left for kind, left in outcomes if kind == "tried") == list(range(LIMIT))
    assert [kind for kind, _ in outcomes].count("refused") == THREADS - LIMIT
    assert AuditEvent.objects.filter(action=AuditAction.CREDENTIALS_FAILED).count() == LIMIT
