"""Sign-up's "there is already an account with this address" is a counted guess.

With one valid pairing code, a signed-out visitor could ask about any
number of e-mail addresses. Each such answer now counts against the e-mail
tried and the client address, like a wrong password, and the page says how
many tries are left; the code is never consumed by a refused sign-up.
"""

import pytest
from django.test import Client

from linking.models import Login, PairingCode, User
from linking.services.context import Actor
from linking.services.pairing import issue_pairing_code
from tests.security.conftest import HOST_A

TAKEN = "parent@a.test"


@pytest.fixture
def code(schools, settings):
    settings.OBSERVERS_RATE_LIMIT_FAILURES = 10
    settings.OBSERVERS_RATE_LIMIT_ADDRESS_FAILURES = 25
    a = schools["a"]
    a["school"].self_registration = "observer"
    a["school"].save()
    return issue_pairing_code(student=a["student"], root_account=a["school"], actor=Actor.system())


def _signup(email, code, ip="198.51.100.20"):
    client = Client(HTTP_HOST=HOST_A, REMOTE_ADDR=ip)
    response = client.post(
        "/signup/",
        {
            "name": "Prober",
            "email": email,
            "password1": "a long test password",
            "password2": "a long test password",
            "codes": code.plaintext,
        },
    )
    if response.status_code == 302:  # "Is this your student?" - yes.
        response = client.post("/signup/confirm/", {"confirm": "1"})
    return response


def test_probing_one_email_is_held_to_the_account_budget(code):
    for attempt in range(10):
        response = _signup(TAKEN, code)
        assert response.status_code == 200
        page = response.content.decode()
        assert "already an account with this address" in page
        assert f"You can try {9 - attempt} more time" in page
    # From anywhere, the same e-mail is paused now.
    assert _signup(TAKEN, code, ip="203.0.113.9").status_code == 429
    assert PairingCode.objects.get(pk=code.pairing_code.pk).workflow_state == "active"
    assert User.objects.filter(name="Prober").count() == 0


def test_probing_many_emails_is_held_to_the_address_budget(code, make_user, schools):
    school = schools["a"]["school"]
    emails = [f"known{n}@a.test" for n in range(30)]
    for email in emails:
        Login.objects.filter(user=make_user("Known", school)).update(unique_id=email)
    statuses = [_signup(email, code).status_code for email in emails]
    assert statuses == [200] * 25 + [429] * 5
    # A new parent from another address still signs up with the code.
    response = _signup("new.parent@example.org", code, ip="203.0.113.9")
    assert response.status_code == 302
    assert PairingCode.objects.get(pk=code.pairing_code.pk).workflow_state == "redeemed"
