"""The OAuth2 dance end to end, the Canvas way (canvas-oauth-scopes-enrollments.md §1)."""

import base64
import datetime as dt

import pytest
from django.test import Client

from linking.models import AccessToken, AuditAction, AuditEvent, AuthorizationCode, DeveloperKey
from linking.services.context import Actor
from linking.services.developer_keys import update_developer_key
from linking.services.oauth import hash_code
from linking.services.tokens import hash_token
from tests.factories import TEST_PASSWORD

from .conftest import OBSERVEES_SCOPE, REDIRECT_URI, pkce_pair, query_of


def bearer(token: str, host: str = "default.test") -> Client:
    return Client(HTTP_HOST=host, HTTP_AUTHORIZATION=f"Bearer {token}")


def test_sign_in_consent_code_token_and_api_call(
    parent, root_account, key, authorize, exchange, frozen_now
):
    key, secret = key
    client = Client(HTTP_HOST="default.test")
    response = client.get(
        "/login/oauth2/auth",
        {
            "client_id": key.pk,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "state": "s1",
            "scope": OBSERVEES_SCOPE,
        },
    )
    # Not signed in: the school's sign-in page first, then consent.
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/login/oauth2/confirm")
    login = parent.logins.get()
    response = client.post(
        "/login/?next=/login/oauth2/confirm",
        {"username": login.unique_id, "password": TEST_PASSWORD, "next": "/login/oauth2/confirm"},
    )
    assert response["Location"] == "/login/oauth2/confirm"
    page = client.get("/login/oauth2/confirm")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Parent App is requesting access to your account." in text
    assert "You are authorizing this app as Pat Parent." in text
    assert "list the students you observe" in text
    response = client.post("/login/oauth2/accept")
    found = query_of(response["Location"])
    assert set(found) == {"code", "state"} and found["state"] == "s1"
    assert len(found["code"]) == 128
    stored = AuthorizationCode.objects.get()
    assert stored.code_hash == hash_code(found["code"]) and found["code"] not in stored.code_hash
    assert (stored.expires_at - frozen_now.now).total_seconds() == 600

    response = exchange(key, secret, found["code"])
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json; charset=utf-8"
    body = response.json()
    assert set(body) == {
        "access_token",
        "token_type",
        "user",
        "canvas_region",
        "refresh_token",
        "expires_in",
    }
    assert body["token_type"] == "Bearer"
    assert body["user"] == {
        "id": parent.pk,
        "name": "Pat Parent",
        "global_id": str(parent.pk),
        "effective_locale": "en",
    }
    assert body["expires_in"] == 3600
    token = AccessToken.objects.get(developer_key=key)
    assert token.token_hash == hash_token(body["access_token"])
    assert body["refresh_token"] not in (token.refresh_token_hash or "")
    assert token.scopes == [OBSERVEES_SCOPE] and token.user == parent
    assert AuthorizationCode.objects.get().used_at is not None
    assert AuditEvent.objects.filter(action=AuditAction.TOKEN_ISSUED).count() == 1

    listed = bearer(body["access_token"]).get("/api/v1/users/self/observees")
    assert listed.status_code == 200 and listed.json() == []


def test_refusal_sends_access_denied_with_state(browser, key):
    key, _secret = key
    response = browser.get(
        "/login/oauth2/auth",
        {
            "client_id": key.pk,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "state": "keep me",
            "scope": OBSERVEES_SCOPE,
        },
    )
    assert response["Location"] == "/login/oauth2/confirm"
    response = browser.get("/login/oauth2/deny")
    assert response.status_code == 302
    assert response["Location"] == f"{REDIRECT_URI}?error=access_denied&state=keep+me"
    assert AuthorizationCode.objects.count() == 0
    # The pending request is gone: accepting now is Canvas's plain-text 400.
    response = browser.post("/login/oauth2/accept")
    assert response.status_code == 400
    assert response.content == b"Invalid or missing session for oauth"


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example.org/callback",
        "https://app.example.org/callback/extra",
        "http://app.example.org/callback",
        "",
    ],
)
def test_wrong_redirect_uri_is_json_not_a_redirect(browser, key, redirect_uri):
    key, _secret = key
    response = browser.get(
        "/login/oauth2/auth",
        {"client_id": key.pk, "response_type": "code", "redirect_uri": redirect_uri},
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "redirect_uri does not match client settings",
    }
    assert "oauth2" not in browser.session


@pytest.mark.parametrize("client_id", ["", "abc", "999999", "-1"])
def test_unknown_client_is_401_json(browser, key, client_id):
    response = browser.get(
        "/login/oauth2/auth",
        {"client_id": client_id, "response_type": "code", "redirect_uri": REDIRECT_URI},
    )
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Canvas OAuth 2.0"
    assert response.json() == {"error": "invalid_client", "error_description": "unknown client"}


def test_scope_outside_the_key_is_invalid_scope_redirect(browser, key):
    key, _secret = key
    response = browser.get(
        "/login/oauth2/auth",
        {
            "client_id": key.pk,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "state": "s",
            "scope": f"{OBSERVEES_SCOPE} url:PUT|/api/v1/users/:user_id/observees/:observee_id",
        },
    )
    found = query_of(response["Location"])
    assert found["error"] == "invalid_scope"
    assert found["error_description"].endswith(
        "but not granted: url:PUT|/api/v1/users/:user_id/observees/:observee_id"
    )
    assert found["state"] == "s"


def test_response_type_must_be_code(browser, key):
    key, _secret = key
    response = browser.get(
        "/login/oauth2/auth",
        {
            "client_id": key.pk,
            "response_type": "token",
            "redirect_uri": REDIRECT_URI,
            "scope": OBSERVEES_SCOPE,
        },
    )
    found = query_of(response["Location"])
    assert found == {
        "error": "unsupported_response_type",
        "error_description": "Only response_type=code is permitted",
    }


def test_replayed_code_is_refused_and_revokes_its_token(browser, key, authorize, exchange):
    key, secret = key
    code = authorize(browser, key)
    first = exchange(key, secret, code)
    assert first.status_code == 200
    again = exchange(key, secret, code)
    assert again.status_code == 400
    assert again.json() == {
        "error": "invalid_grant",
        "error_description": "authorization_code not found",
    }
    token = AccessToken.objects.get(developer_key=key)
    assert token.revoked_at is not None
    assert bearer(first.json()["access_token"]).get("/api/v1/users/self/observees").status_code == (
        401
    )


def test_expired_code_is_refused(browser, key, authorize, exchange, frozen_now):
    key, secret = key
    code = authorize(browser, key)
    frozen_now.advance(minutes=10, seconds=1)
    response = exchange(key, secret, code)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert AccessToken.objects.filter(developer_key=key).count() == 0


def test_wrong_secret_and_other_clients_code(
    browser, key, make_key, root_account, authorize, exchange
):
    key, secret = key
    code = authorize(browser, key)
    response = exchange(key, "not the secret", code)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Canvas OAuth 2.0"
    assert response.json() == {"error": "invalid_client", "error_description": "invalid client"}
    other, other_secret = make_key(root_account, name="Other App")
    response = exchange(other, other_secret, code)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "incorrect client"}
    assert AccessToken.objects.count() == 0
    # The code is still good for its own client.
    assert exchange(key, secret, code).status_code == 200


def test_client_credentials_in_basic_auth(browser, key, authorize, parent):
    key, secret = key
    code = authorize(browser, key)
    basic = base64.b64encode(f"{key.pk}:{secret}".encode()).decode()
    response = Client(HTTP_HOST="default.test", HTTP_AUTHORIZATION=f"Basic {basic}").post(
        "/login/oauth2/token", {"grant_type": "authorization_code", "code": code}
    )
    assert response.status_code == 200, response.content
    assert AccessToken.objects.get(developer_key=key).user_id == parent.pk


def test_expired_access_token_is_refreshed(browser, key, authorize, exchange, frozen_now, parent):
    key, secret = key
    body = exchange(key, secret, authorize(browser, key)).json()
    frozen_now.advance(hours=1, seconds=1)
    expired = bearer(body["access_token"]).get("/api/v1/users/self/observees")
    assert expired.status_code == 401
    assert expired["WWW-Authenticate"] == 'Bearer realm="canvas-lms"'
    response = Client(HTTP_HOST="default.test").post(
        "/login/oauth2/token",
        {
            "grant_type": "refresh_token",
            "client_id": key.pk,
            "client_secret": secret,
            "refresh_token": body["refresh_token"],
        },
    )
    assert response.status_code == 200, response.content
    renewed = response.json()
    assert "refresh_token" not in renewed
    assert renewed["expires_in"] == 3600 and renewed["user"]["id"] == parent.pk
    assert renewed["access_token"] != body["access_token"]
    token = AccessToken.objects.get(developer_key=key)
    assert token.token_hash == hash_token(renewed["access_token"])
    assert token.expires_at == frozen_now.now + dt.timedelta(hours=1)
    assert bearer(renewed["access_token"]).get("/api/v1/users/self/observees").status_code == 200
    assert bearer(body["access_token"]).get("/api/v1/users/self/observees").status_code == 401


def test_refresh_needs_the_secret_and_a_known_token(browser, key, authorize, exchange):
    key, secret = key
    body = exchange(key, secret, authorize(browser, key)).json()
    client = Client(HTTP_HOST="default.test")
    response = client.post(
        "/login/oauth2/token",
        {
            "grant_type": "refresh_token",
            "client_id": key.pk,
            "refresh_token": body["refresh_token"],
        },
    )
    assert response.status_code == 401
    response = client.post(
        "/login/oauth2/token",
        {
            "grant_type": "refresh_token",
            "client_id": key.pk,
            "client_secret": secret,
            "refresh_token": "nope",
        },
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "refresh_token not found",
    }
    response = client.post(
        "/login/oauth2/token",
        {"grant_type": "refresh_token", "client_id": key.pk, "client_secret": secret},
    )
    assert response.json()["error_description"] == (
        "You must provide the refresh_token parameter when using the refresh_token grant type"
    )


def test_unsupported_grant_type(key):
    key, secret = key
    response = Client(HTTP_HOST="default.test").post(
        "/login/oauth2/token",
        {"grant_type": "password", "client_id": key.pk, "client_secret": secret},
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "unsupported_grant_type",
        "error_description": "The grant_type you requested is not currently supported",
    }


def test_turned_off_key_stops_tokens_at_once_and_refusing_refresh(
    browser, key, authorize, exchange
):
    key, secret = key
    body = exchange(key, secret, authorize(browser, key)).json()
    assert bearer(body["access_token"]).get("/api/v1/users/self/observees").status_code == 200
    update_developer_key(
        key=key,
        name=key.name,
        redirect_uris=key.redirect_uris,
        scopes=key.scopes,
        require_scopes=key.require_scopes,
        allow_includes=key.allow_includes,
        workflow_state=DeveloperKey.State.INACTIVE,
        actor=Actor.system(),
    )
    refused = bearer(body["access_token"]).get("/api/v1/users/self/observees")
    assert refused.status_code == 401
    response = Client(HTTP_HOST="default.test").post(
        "/login/oauth2/token",
        {
            "grant_type": "refresh_token",
            "client_id": key.pk,
            "client_secret": secret,
            "refresh_token": body["refresh_token"],
        },
    )
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client", "error_description": "unknown client"}
    # The token row itself is untouched: turning the key on again brings it back.
    assert AccessToken.objects.get(developer_key=key).revoked_at is None


def test_removing_a_scope_revokes_the_keys_tokens(browser, key, authorize, exchange):
    key, secret = key
    body = exchange(key, secret, authorize(browser, key)).json()
    revoked = update_developer_key(
        key=key,
        name=key.name,
        redirect_uris=key.redirect_uris,
        scopes=[OBSERVEES_SCOPE],
        require_scopes=True,
        allow_includes=False,
        workflow_state=DeveloperKey.State.ACTIVE,
        actor=Actor.system(),
    )
    assert revoked == 1
    assert AccessToken.objects.get(developer_key=key).revoked_at is not None
    assert bearer(body["access_token"]).get("/api/v1/users/self/observees").status_code == 401


def test_delete_token_logs_out(browser, key, authorize, exchange):
    key, secret = key
    body = exchange(key, secret, authorize(browser, key)).json()
    response = bearer(body["access_token"]).delete("/login/oauth2/token")
    assert response.status_code == 200
    assert response.content == b"{}"
    assert AccessToken.objects.get(developer_key=key).revoked_at is not None
    assert bearer(body["access_token"]).get("/api/v1/users/self/observees").status_code == 401
    response = Client(HTTP_HOST="default.test").delete("/login/oauth2/token")
    assert response.status_code == 400
    assert response.json() == {
        "message": "can't delete OAuth access token when not using an OAuth access token"
    }


def test_pkce_public_client_without_secret(browser, key, authorize, exchange):
    key, _secret = key
    verifier, challenge = pkce_pair()
    code = authorize(browser, key, code_challenge=challenge, code_challenge_method="S256")
    wrong = exchange(key, None, code, code_verifier="w" * 50)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert AccessToken.objects.count() == 0
    response = exchange(key, None, code, code_verifier=verifier)
    assert response.status_code == 200, response.content
    assert AccessToken.objects.get(developer_key=key).user.name == "Pat Parent"


def test_pkce_plain_method_is_refused(browser, key):
    key, _secret = key
    response = browser.get(
        "/login/oauth2/auth",
        {
            "client_id": key.pk,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "scope": OBSERVEES_SCOPE,
            "code_challenge": "a" * 43,
            "code_challenge_method": "plain",
        },
    )
    assert query_of(response["Location"])["error"] == "invalid_request"


def test_code_without_pkce_needs_the_secret(browser, key, authorize, exchange):
    key, _secret = key
    code = authorize(browser, key)
    response = exchange(key, None, code)
    assert response.status_code == 401
    assert AccessToken.objects.count() == 0


def test_out_of_band_redirect_lands_on_our_page(browser, make_key, root_account):
    key, _secret = make_key(root_account, redirect_uris="urn:ietf:wg:oauth:2.0:oob")
    browser.get(
        "/login/oauth2/auth",
        {
            "client_id": key.pk,
            "response_type": "code",
            "redirect_uri": "urn:ietf:wg:oauth:2.0:oob",
            "scope": OBSERVEES_SCOPE,
        },
    )
    response = browser.post("/login/oauth2/accept")
    assert response["Location"].startswith("/login/oauth2/auth?code=")
    page = browser.get(response["Location"])
    assert page.status_code == 200 and b"Authorization complete" in page.content


def test_prompt_none(browser, key):
    key, _secret = key
    params = {
        "client_id": key.pk,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": OBSERVEES_SCOPE,
        "prompt": "none",
    }
    assert query_of(browser.get("/login/oauth2/auth", params)["Location"])["error"] == (
        "interaction_required"
    )
    anonymous = Client(HTTP_HOST="default.test")
    assert query_of(anonymous.get("/login/oauth2/auth", params)["Location"])["error"] == (
        "login_required"
    )
    params["prompt"] = "login"
    assert query_of(browser.get("/login/oauth2/auth", params)["Location"])["error"] == (
        "unsupported_prompt_type"
    )


def test_codes_and_tokens_are_stored_hashed(browser, key, authorize, exchange):
    key, secret = key
    code = authorize(browser, key)
    body = exchange(key, secret, code).json()
    stored = DeveloperKey.objects.get(pk=key.pk)
    assert secret not in stored.secret_hash
    token = AccessToken.objects.get(developer_key=key)
    for plaintext in (body["access_token"], body["refresh_token"]):
        assert plaintext not in (token.token_hash, token.refresh_token_hash)
    assert not AuthorizationCode.objects.filter(code_hash=code).exists()


def test_codes_are_pruned_a_day_after_they_expired(browser, key, authorize, exchange, frozen_now):
    """The worker's hourly job forgets old codes; a replay within the day is still caught."""
    from linking import tasks
    from linking.models import AuthorizationCode

    key, secret = key
    used = authorize(browser, key)
    assert exchange(key, secret, used).status_code == 200
    authorize(browser, key)  # never exchanged
    assert AuthorizationCode.objects.count() == 2

    frozen_now.advance(hours=23)
    assert tasks.prune_authorization_codes.call() == 0
    assert exchange(key, secret, used).status_code == 400  # replay: its token is revoked
    assert AccessToken.objects.get(developer_key=key).revoked_at is not None

    frozen_now.advance(hours=1, minutes=11)
    assert tasks.prune_authorization_codes.call() == 2
    assert AuthorizationCode.objects.count() == 0
    response = exchange(key, secret, used)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
