"""Signed-out guesses are counted per IPv6 /64, not per exact address (finding 2).

Behind a trusted proxy, 30 wrong codes on /signup/ from 30 addresses of one
/64 used to get 30 answers and no 429. A /64 is what one household or one
customer gets; an IPv4 address is still counted alone.
"""

import pytest
from django.test import Client

from linking.models import AuditAction, AuditEvent, Login, RateLimitCounter
from linking.services import ratelimit
from tests.security.conftest import HOST_A

LIMIT = 10


@pytest.fixture
def open_signup(schools, settings):
    settings.OBSERVERS_TRUSTED_PROXIES = 1
    settings.OBSERVERS_RATE_LIMIT_ADDRESS_FAILURES = LIMIT
    school = schools["a"]["school"]
    school.self_registration = "observer"
    school.save()
    return school


def _signup(client_address, n):
    client = Client(HTTP_HOST=HOST_A, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=client_address)
    return client.post(
        "/signup/",
        {
            "name": f"Guesser {n}",
            "email": f"guesser{n}@example.org",
            "password1": "a long test password",
            "password2": "a long test password",
            "codes": "ZZZZ-ZZZZ",
        },
    )


def test_addresses_of_one_ipv6_64_share_one_budget(open_signup):
    statuses = [_signup(f"2001:db8:1:2::{n + 1:x}", n).status_code for n in range(30)]
    assert statuses == [200] * LIMIT + [429] * (30 - LIMIT)
    assert AuditEvent.objects.filter(action=AuditAction.CODE_FAILED).count() == LIMIT
    row = RateLimitCounter.objects.get(key=ratelimit.address_budget("2001:db8:1:2::1").key)
    assert row.count == LIMIT and row.key == "rl:addr:2001:db8:1:2::/64"
    # The neighbouring /64 has its own budget.
    assert _signup("2001:db8:1:3::1", 99).status_code == 200
    assert not Login.objects.filter(unique_id__startswith="guesser").exists()


def test_ipv4_addresses_are_counted_alone_and_mapped_ipv6_is_ipv4(open_signup):
    for n in range(LIMIT):
        assert _signup("203.0.113.7", n).status_code == 200
    assert _signup("::ffff:203.0.113.7", 50).status_code == 429
    assert _signup("203.0.113.8", 51).status_code == 200
