"""Fixtures of the OAuth2 dance: a school's developer key, a browser signed in on that school."""

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from linking.services.context import Actor
from linking.services.developer_keys import create_developer_key
from tests import factories

REDIRECT_URI = "https://app.example.org/callback"
OBSERVEES_SCOPE = "url:GET|/api/v1/users/:user_id/observees"
ENROLLMENTS_SCOPE = "url:GET|/api/v1/users/:user_id/enrollments"


@pytest.fixture
def make_key(db):
    """make_key(root_account, **fields) -> (DeveloperKey, secret)."""

    def make(root_account, **fields):
        fields.setdefault("name", "Parent App")
        fields.setdefault("redirect_uris", REDIRECT_URI)
        fields.setdefault("scopes", [OBSERVEES_SCOPE, ENROLLMENTS_SCOPE])
        return create_developer_key(root_account=root_account, actor=Actor.system(), **fields)

    return make


@pytest.fixture
def key(make_key, root_account):
    return make_key(root_account)


@pytest.fixture
def parent(make_user, root_account):
    return make_user("Pat Parent", root_account)


def login_id(user, root_account) -> str:
    return user.logins.get(root_account=root_account).unique_id


@pytest.fixture
def browser(parent, root_account):
    """A browser on default.test, signed in as ``parent`` through the school's sign-in page."""
    client = Client(HTTP_HOST="default.test")
    response = client.post(
        "/login/",
        {"username": login_id(parent, root_account), "password": factories.TEST_PASSWORD},
    )
    assert response.status_code == 302
    return client


def query_of(location: str) -> dict:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def pkce_pair(verifier: str = "v" * 50) -> tuple[str, str]:
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture
def authorize():
    """authorize(browser, key, scope=..., state=..., **extra) -> the code (consent given)."""

    def run(browser, key, *, scope=OBSERVEES_SCOPE, state="xyz", **extra):
        params = {
            "client_id": key.pk,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "state": state,
            "scope": scope,
            **extra,
        }
        response = browser.get("/login/oauth2/auth", params)
        assert response.status_code == 302, response.content
        assert response["Location"] == "/login/oauth2/confirm"
        assert browser.get("/login/oauth2/confirm").status_code == 200
        response = browser.post("/login/oauth2/accept")
        assert response.status_code == 302
        assert response["Location"].startswith(REDIRECT_URI + "?")
        found = query_of(response["Location"])
        assert found["state"] == state
        return found["code"]

    return run


@pytest.fixture
def exchange():
    """exchange(key, secret, code, host=..., **extra) -> the token endpoint's response."""

    def run(key, secret, code, *, host="default.test", **extra):
        data = {
            "grant_type": "authorization_code",
            "client_id": key.pk,
            "client_secret": secret,
            "redirect_uri": REDIRECT_URI,
            "code": code,
            **extra,
        }
        data = {name: value for name, value in data.items() if value is not None}
        return Client(HTTP_HOST=host).post("/login/oauth2/token", data)

    return run
