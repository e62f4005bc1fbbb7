"""A real OpenID Connect provider (the oidc-provider-mock package) on 127.0.0.1, for the tests.

It serves discovery, JWKS, authorization, token and userinfo endpoints and
signs real ID tokens; clients must register (so a wrong client secret is
refused) and the nonce is required. Tests tell it who signs in by posting
the subject to its authorization form, as a person would.
"""

import threading
from urllib.parse import quote

import oidc_provider_mock
import pytest
import requests
import werkzeug.serving
from django.test import Client

from linking.services import sso
from tests import factories

HOST = "default.test"
OTHER_HOST = "external.test"


class Provider:
    def __init__(self, base_url: str):
        self.url = base_url

    def register_client(self, *redirect_uris: str) -> tuple[str, str]:
        response = requests.post(
            f"{self.url}/oauth2/clients", json={"redirect_uris": list(redirect_uris)}, timeout=5
        )
        response.raise_for_status()
        body = response.json()
        return body["client_id"], body["client_secret"]

    def set_person(self, sub: str, **claims) -> None:
        response = requests.put(f"{self.url}/users/{quote(sub)}", json=claims, timeout=5)
        assert response.status_code == 204

    def authorize(self, authorization_url: str, sub: str) -> str:
        """The person signs in at the provider as ``sub``; returns where the provider sends them."""
        response = requests.post(
            authorization_url, data={"sub": sub}, allow_redirects=False, timeout=5
        )
        assert response.status_code == 302, response.text
        return response.headers["Location"]


@pytest.fixture(scope="session")
def oidc_provider():
    app = oidc_provider_mock.app(require_client_registration=True, require_nonce=True)
    server = werkzeug.serving.make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield Provider(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def callback_url(host: str) -> str:
    return f"http://{host}/login/sso/callback/"


@pytest.fixture
def configure_sso(oidc_provider):
    """configure_sso(school, **settings) -> the school's IdentityProvider, registered."""

    def configure(school, *, hosts=None, **options):
        client_id, secret = oidc_provider.register_client(
            *[callback_url(host) for host in (hosts or [school.domain])]
        )
        options.setdefault("name", "Riverside Google")
        return sso.save_identity_provider(
            root_account=school,
            issuer=oidc_provider.url,
            client_id=client_id,
            client_secret=secret,
            **options,
        )

    return configure


@pytest.fixture
def web(root_account):
    return Client(HTTP_HOST=HOST, REMOTE_ADDR="10.1.1.1")


@pytest.fixture
def web_b(other_root_account):
    return Client(HTTP_HOST=OTHER_HOST, REMOTE_ADDR="10.1.1.2")


@pytest.fixture
def person(root_account):
    """make a person with a login at a school: person(school, login_id, sis_user_id=...)."""

    def make(school, login_id, *, sis_user_id=None, name="Sam Rivera"):
        user = factories.UserFactory(name=name)
        factories.LoginFactory(
            user=user, root_account=school, unique_id=login_id, sis_user_id=sis_user_id
        )
        return user

    return make


def sign_in_with_provider(web, provider: Provider, sub: str, *, next_url: str = ""):
    """The whole round trip in Django's test client; returns the callback's response."""
    start = web.get("/login/sso/" + (f"?next={quote(next_url)}" if next_url else ""))
    assert start.status_code == 302, start.content
    back = provider.authorize(start["Location"], sub)
    path = back.split("://", 1)[1].split("/", 1)[1]
    return web.get("/" + path)
