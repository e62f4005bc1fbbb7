"""The rate-limit store unreachable: every guess fails closed with 503, logged once (finding 5).

The store is a real Redis address with nothing listening (a closed local
port), so the client really fails to connect. Before, every redemption,
credential check and sign-in answered 500.
"""

import logging
import socket

import pytest
from django.core.cache import cache
from django.test import Client

from linking.models import AuditEvent, ObservationLink, PairingCode
from linking.services import ratelimit
from linking.services.context import Actor
from linking.services.pairing import issue_pairing_code
from tests.security.conftest import HOST_A

PATH = "/api/v1/users/self/observees"
WORKING_REDIS = "redis://127.0.0.1:6379/5"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis(settings, url):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }


@pytest.fixture
def store_down(settings, monkeypatch):
    monkeypatch.setattr(ratelimit, "_outage_since", None)  # no outage seen by this process yet
    _redis(settings, f"redis://127.0.0.1:{_closed_port()}/5")


def _assert_503_canvas(response):
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) > 0
    body = response.json()
    assert isinstance(body["errors"][0]["message"], str) and body["errors"][0]["message"]


def test_api_guesses_answer_503_with_canvas_body_and_change_nothing(schools, bearer, store_down):
    a = schools["a"]
    school, system = a["school"], Actor.system()
    issued = issue_pairing_code(student=a["student"], root_account=school, actor=system)
    client = bearer(a["admin"], HOST_A)
    events_before = AuditEvent.objects.count()
    _assert_503_canvas(client.post(PATH, {"pairing_code": issued.plaintext}, format="json"))
    _assert_503_canvas(client.post(PATH, {"pairing_code": "ZZZZ-ZZZZ"}, format="json"))
    credentials = {"observee": {"unique_id": "student@a.test", "password": "wrong"}}
    _assert_503_canvas(client.post(PATH, credentials, format="json"))
    assert PairingCode.objects.get(pk=issued.pairing_code.pk).workflow_state == "active"
    assert not ObservationLink.objects.filter(observer=a["admin"]).exists()
    assert AuditEvent.objects.count() == events_before
    # Reads that guess nothing still work.
    assert client.get(PATH).status_code == 200


@pytest.mark.parametrize(
    "path, form",
    [
        ("/login/", {"username": "parent@a.test", "password": "a long test password"}),
        ("/admin/login/", {"username": "admin@a.test", "password": "a long test password"}),
        (
            "/signup/",
            {
                "name": "New Parent",
                "email": "new@example.org",
                "password1": "a long test password",
                "password2": "a long test password",
                "codes": "ZZZZ-ZZZZ",
            },
        ),
    ],
)
def test_pages_answer_the_503_page(schools, store_down, path, form):
    schools["a"]["school"].self_registration = "observer"
    schools["a"]["school"].save()
    client = Client(HTTP_HOST=HOST_A, REMOTE_ADDR="198.51.100.20")
    response = client.post(path, form)
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert "temporarily unavailable" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert not ObservationLink.objects.filter(observer__name="New Parent").exists()


def test_an_outage_is_logged_once_and_its_end_once(schools, bearer, store_down, settings, caplog):
    client = bearer(schools["a"]["parent"], HOST_A)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            _assert_503_canvas(client.post(PATH, {"pairing_code": "ZZZZ-ZZZZ"}, format="json"))
        _redis(settings, WORKING_REDIS)
        cache.clear()  # counts of an earlier run
        for _ in range(2):
            response = client.post(PATH, {"pairing_code": "ZZZZ-ZZZZ"}, format="json")
            assert response.status_code == 422
    records = [r for r in caplog.records if r.name == "linking.services.ratelimit"]
    assert [r.levelname for r in records] == ["ERROR", "WARNING"]
    assert "unreachable" in records[0].getMessage()
    assert "reachable again" in records[1].getMessage()
    # Nothing else logs the outage per request (Django's request logger included).
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == [records[0]]
