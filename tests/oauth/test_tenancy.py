"""A developer key of school A works only on school A's host (both directions)."""

from django.test import Client

from linking.models import AccessToken

from .conftest import OBSERVEES_SCOPE, REDIRECT_URI, query_of


def test_key_of_another_school_is_refused_at_authorization(
    key, make_user, other_root_account, make_key
):
    key, _secret = key
    outsider_browser = Client(HTTP_HOST="external.test")
    response = outsider_browser.get(
        "/login/oauth2/auth",
        {
            "client_id": key.pk,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "state": "s",
            "scope": OBSERVEES_SCOPE,
        },
    )
    assert response.status_code == 302
    assert query_of(response["Location"]) == {
        "error": "unauthorized_client",
        "error_description": "Client does not have access to the specified Canvas account.",
        "state": "s",
    }
    assert "oauth2" not in outsider_browser.session


def test_code_of_school_a_cannot_be_exchanged_on_school_b(
    browser, key, authorize, exchange, other_root_account
):
    key, secret = key
    code = authorize(browser, key)
    response = exchange(key, secret, code, host="external.test")
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client", "error_description": "unknown client"}
    assert AccessToken.objects.count() == 0
    assert exchange(key, secret, code).status_code == 200


def test_token_of_school_a_is_refused_on_school_b(
    browser, key, authorize, exchange, parent, other_root_account
):
    key, secret = key
    body = exchange(key, secret, authorize(browser, key)).json()
    here = Client(HTTP_HOST="default.test", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    there = Client(HTTP_HOST="external.test", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert here.get("/api/v1/users/self/observees").status_code == 200
    response = there.get("/api/v1/users/self/observees")
    assert response.status_code == 401
    assert response.json()["status"] == "unauthenticated"
    # Logging out is refused there too; the token stays live at home.
    assert there.delete("/login/oauth2/token").status_code == 401
    assert AccessToken.objects.get().revoked_at is None


def test_refresh_on_another_school_is_unknown_client(
    browser, key, authorize, exchange, other_root_account
):
    key, secret = key
    body = exchange(key, secret, authorize(browser, key)).json()
    response = Client(HTTP_HOST="external.test").post(
        "/login/oauth2/token",
        {
            "grant_type": "refresh_token",
            "client_id": key.pk,
            "client_secret": secret,
            "refresh_token": body["refresh_token"],
        },
    )
    assert response.status_code == 401
    assert response.json()["error_description"] == "unknown client"
