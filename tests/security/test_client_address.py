"""The per-address limit cannot be dodged with a forged X-Forwarded-For (issue 7)."""

import pytest
from rest_framework.test import APIClient

from linking.models import ObservationLink, PairingCode
from linking.services.context import Actor
from linking.services.pairing import issue_pairing_code
from linking.services.tokens import issue_access_token
from tests.security.conftest import HOST_A

PATH = "/api/v1/users/self/observees"


def _client(user, **meta):
    client = APIClient(HTTP_HOST=HOST_A, **meta)
    token = issue_access_token(user=user, actor=Actor.system())[1]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def limit_of_two(settings):
    settings.OBSERVERS_RATE_LIMIT_FAILURES = 2
    settings.OBSERVERS_RATE_LIMIT_ADDRESS_FAILURES = 2


def test_forged_forwarded_for_is_ignored_without_trusted_proxies(schools, limit_of_two, settings):
    settings.OBSERVERS_TRUSTED_PROXIES = 0
    a = schools["a"]
    for index in range(2):
        forged = {"HTTP_X_FORWARDED_FOR": f"192.0.2.{index + 1}", "REMOTE_ADDR": "198.51.100.9"}
        response = _client(a["parent"], **forged).post(
            PATH, {"pairing_code": "ZZZZ-ZZZZ"}, format="json"
        )
        assert response.status_code == 422
    # Another user from the same real address, with yet another forged header.
    issued = issue_pairing_code(
        student=a["student"], root_account=a["school"], actor=Actor.system()
    )
    response = _client(
        a["admin"], HTTP_X_FORWARDED_FOR="192.0.2.99", REMOTE_ADDR="198.51.100.9"
    ).post(PATH, {"pairing_code": issued.plaintext}, format="json")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert PairingCode.objects.get(pk=issued.pairing_code.pk).workflow_state == "active"
    assert not ObservationLink.objects.filter(observer=a["admin"]).exists()


def test_behind_one_proxy_only_the_address_it_added_counts(schools, limit_of_two, settings):
    settings.OBSERVERS_TRUSTED_PROXIES = 1
    a = schools["a"]
    # The client prepends a fresh fake address each time; the proxy appends the real one.
    for index in range(2):
        chain = f"192.0.2.{index + 1}, 203.0.113.50"
        response = _client(a["parent"], HTTP_X_FORWARDED_FOR=chain, REMOTE_ADDR="10.0.0.2").post(
            PATH, {"pairing_code": "ZZZZ-ZZZZ"}, format="json"
        )
        assert response.status_code == 422
    limited = _client(
        a["admin"], HTTP_X_FORWARDED_FOR="192.0.2.77, 203.0.113.50", REMOTE_ADDR="10.0.0.2"
    ).post(PATH, {"pairing_code": "ZZZZ-ZZZZ"}, format="json")
    assert limited.status_code == 429
    # A different real client behind the same proxy is not affected.
    other = _client(a["admin"], HTTP_X_FORWARDED_FOR="203.0.113.51", REMOTE_ADDR="10.0.0.2").post(
        PATH, {"pairing_code": "ZZZZ-ZZZZ"}, format="json"
    )
    assert other.status_code == 422
