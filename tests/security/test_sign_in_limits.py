"""Password guessing on the sign-in pages is limited (issue 13, finding 1).

Both sign-in pages (the portal's /login/ and the staff admin's
/admin/login/) count every try against the login id tried (known or not)
and the client address. Within a budget the page says how many tries are
left; past it the answer is the 429 "too many tries" page with Retry-After
and even the right password is refused. A used-up window makes the next
one twice as long (a growing delay for the owner, not a wall). The
limiter's clock is moved by hand.
"""

import types

import pytest
from django.test import Client

from linking.models import Login, RateLimitCounter
from linking.services import ratelimit
from tests.security.conftest import HOST_A

PASSWORD = "a long test password"
PAGES = ["/login/", "/admin/login/"]


@pytest.fixture
def clock(monkeypatch, settings):
    settings.OBSERVERS_RATE_LIMIT_FAILURES = 10
    settings.OBSERVERS_RATE_LIMIT_ADDRESS_FAILURES = 100
    settings.OBSERVERS_RATE_LIMIT_WINDOW = 900
    settings.OBSERVERS_RATE_LIMIT_MAX_WINDOW = 86400
    now = types.SimpleNamespace(value=1_800_000_000.0)
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(time=lambda: now.value))
    return now


def _client(ip="198.51.100.20"):
    return Client(HTTP_HOST=HOST_A, REMOTE_ADDR=ip)


def _sign_in(client, page, login_id, password):
    return client.post(page, {"username": login_id, "password": password})


def _signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def _login_count(school, login_id) -> int:
    key = ratelimit.login_budget(school, login_id).key
    row = RateLimitCounter.objects.filter(key=key).first()
    return row.count if row else 0


@pytest.mark.parametrize("page", PAGES)
def test_wrong_passwords_are_limited_per_login_and_the_right_one_waits(schools, clock, page):
    school, admin = schools["a"]["school"], schools["a"]["admin"]
    login_id = f"admin@{HOST_A}"
    client = _client()
    for attempt in range(10):
        response = _sign_in(client, page, login_id, f"wrong {attempt}")
        assert response.status_code == 200
        left = 9 - attempt
        assert f"You can try {left} more time" in response.content.decode()
    assert _login_count(school, login_id) == 10

    # Past the limit: 429 with Retry-After, even for the right password, from any address.
    for ip in ("198.51.100.20", "203.0.113.5"):
        response = _sign_in(_client(ip), page, login_id, PASSWORD)
        assert response.status_code == 429
        assert int(response["Retry-After"]) == 900
        assert "Too many tries" in response.content.decode()
    assert _login_count(school, login_id) == 10
    assert Login.objects.get(user=admin).last_login_at is None

    # A growing delay, not a wall: after the window the owner signs in.
    clock.value += 900
    client = _client("203.0.113.5")
    response = _sign_in(client, page, login_id, PASSWORD)
    assert response.status_code == 302
    assert _signed_in(client)
    assert Login.objects.get(user=admin).last_login_at is not None
    assert _login_count(school, login_id) == 0  # the right password gave its try back


def test_a_used_up_window_doubles_the_next_pause(schools, clock):
    school = schools["a"]["school"]
    login_id = f"parent@{HOST_A}"
    pauses = []
    for _round in range(3):
        for attempt in range(10):
            assert _sign_in(_client(), "/login/", login_id, f"x{attempt}").status_code == 200
        refused = _sign_in(_client(), "/login/", login_id, PASSWORD)
        assert refused.status_code == 429
        pauses.append(int(refused["Retry-After"]))
        clock.value += pauses[-1]
    assert pauses == [900, 1800, 3600]
    response = _sign_in(client := _client(), "/login/", login_id, PASSWORD)
    assert response.status_code == 302 and _signed_in(client)
    assert _login_count(school, login_id) == 0


def test_unknown_login_ids_count_like_known_ones(schools, clock):
    school = schools["a"]["school"]
    for attempt in range(10):
        response = _sign_in(_client(), "/login/", "nobody@a.test", f"x{attempt}")
        assert response.status_code == 200
    assert _sign_in(_client(), "/login/", "NOBODY@a.test", "x").status_code == 429
    assert _login_count(school, "nobody@a.test") == 10
    # Another login id is not affected.
    client = _client()
    assert _sign_in(client, "/login/", f"parent@{HOST_A}", PASSWORD).status_code == 302


def test_one_address_guessing_many_logins_is_held_to_the_address_budget(schools, clock, settings):
    settings.OBSERVERS_RATE_LIMIT_ADDRESS_FAILURES = 25
    for attempt in range(25):
        response = _sign_in(_client(), "/admin/login/", f"user{attempt}@a.test", "x")
        assert response.status_code == 200
    refused = _sign_in(_client(), "/admin/login/", f"admin@{HOST_A}", PASSWORD)
    assert refused.status_code == 429
    # Another address signs in normally.
    client = _client("203.0.113.77")
    assert _sign_in(client, "/admin/login/", f"admin@{HOST_A}", PASSWORD).status_code == 302
    row = RateLimitCounter.objects.get(key=ratelimit.address_budget("198.51.100.20").key)
    assert row.count == 25


def test_staff_can_lift_a_pause_from_the_command_line(schools, clock):
    from django.core.management import CommandError, call_command

    school = schools["a"]["school"]
    login_id = f"parent@{HOST_A}"
    for attempt in range(10):
        _sign_in(_client(), "/login/", login_id, f"x{attempt}")
    assert _sign_in(_client(), "/login/", login_id, PASSWORD).status_code == 429

    call_command("lift_rate_limit", login_id.upper(), "--domain", HOST_A)

    assert _login_count(school, login_id) == 0
    client = _client("203.0.113.5")
    assert _sign_in(client, "/login/", login_id, PASSWORD).status_code == 302
    with pytest.raises(CommandError):
        call_command("lift_rate_limit", login_id)  # no --domain
    with pytest.raises(CommandError):
        call_command("lift_rate_limit", "--address", "not-an-address")
    call_command("lift_rate_limit", "--address", "2001:db8::1")
