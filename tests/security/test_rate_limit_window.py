"""The right code is refused until the failure window passes, then works (issue 7).

The clock is moved by hand: Django's timezone, the database cache's expiry
and the rate limiter's window all read the same fake time.
"""

import types

import pytest

from linking.models import EnrollmentType, ObservationLink, PairingCode
from linking.services import accounts as account_services
from linking.services.context import Actor
from linking.services.enrollments import enroll_user
from linking.services.pairing import issue_pairing_code
from tests.security.conftest import HOST_A

PATH = "/api/v1/users/self/observees"


@pytest.fixture
def clock(frozen_now, monkeypatch, settings):
    """The fake clock; also pins the database cache (the default shared store)."""
    import django.core.cache.backends.base as cache_base
    import django.core.cache.backends.db as cache_db

    import linking.services.ratelimit as ratelimit

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "observers_cache",
        }
    }
    fake_time = types.SimpleNamespace(time=lambda: frozen_now.now.timestamp())
    monkeypatch.setattr(cache_base, "time", fake_time)
    monkeypatch.setattr(ratelimit, "time", fake_time)
    monkeypatch.setattr(cache_db, "tz_now", lambda: frozen_now.now)
    settings.OBSERVERS_RATE_LIMIT_FAILURES = 3
    return frozen_now


def _limited_parent_and_code(schools, bearer):
    """School A's parent after three wrong codes, and a live code for an unlinked student."""
    a = schools["a"]
    client = bearer(a["parent"], HOST_A)
    for _ in range(3):
        assert client.post(PATH, {"pairing_code": "ZZZZ-ZZZZ"}, format="json").status_code == 422
    sibling = account_services.create_user_with_login(
        name="Sibling A", root_account=a["school"], unique_id="sibling@a.test"
    )
    enroll_user(user=sibling, course=a["school"].course, type=EnrollmentType.STUDENT)
    issued = issue_pairing_code(student=sibling, root_account=a["school"], actor=Actor.system())
    return client, issued, sibling


def test_right_code_refused_until_the_window_passes(schools, bearer, clock, settings):
    window = settings.OBSERVERS_RATE_LIMIT_WINDOW = 300
    client, issued, sibling = _limited_parent_and_code(schools, bearer)
    parent = schools["a"]["parent"]

    response = client.post(PATH, {"pairing_code": issued.plaintext}, format="json")
    assert response.status_code == 429
    assert int(response["Retry-After"]) == window
    assert not ObservationLink.objects.filter(observer=parent, student=sibling).exists()

    clock.advance(seconds=window // 2)
    response = client.post(PATH, {"pairing_code": issued.plaintext}, format="json")
    assert response.status_code == 429
    assert int(response["Retry-After"]) == window // 2
    assert PairingCode.objects.get(pk=issued.pairing_code.pk).workflow_state == "active"

    clock.advance(seconds=window // 2 + 1)
    response = client.post(PATH, {"pairing_code": issued.plaintext}, format="json")
    assert response.status_code == 200, response.content
    assert PairingCode.objects.get(pk=issued.pairing_code.pk).workflow_state == "redeemed"
    assert ObservationLink.objects.active().filter(observer=parent, student=sibling).exists()


def test_the_default_fifteen_minute_window_is_honoured(schools, bearer, clock, settings):
    settings.OBSERVERS_RATE_LIMIT_WINDOW = 900
    client, issued, _sibling = _limited_parent_and_code(schools, bearer)
    clock.advance(seconds=301)
    response = client.post(PATH, {"pairing_code": issued.plaintext}, format="json")
    assert response.status_code == 429, response.content
    assert PairingCode.objects.get(pk=issued.pairing_code.pk).workflow_state == "active"
