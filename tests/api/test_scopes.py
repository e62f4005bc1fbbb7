"""Scope enforcement on every endpoint: allowed with its scope, refused without (Canvas §2.4)."""

import pytest

from linking.models import Account, ObservationLink, PairingCode
from linking.services import oauth
from linking.services.context import Actor
from linking.services.developer_keys import create_developer_key
from linking.services.scopes import API_SCOPES
from linking.services.tokens import issue_access_token

INSUFFICIENT = {"errors": [{"message": "Insufficient scopes on access token."}]}


@pytest.fixture
def world(allowed_admin, parent, enrolled_student, course, default_account, link):
    link(parent, enrolled_student, default_account)
    return {"admin": allowed_admin, "parent": parent, "student": enrolled_student, "course": course}


def calls(world):
    """scope -> (method, path, data, status with the scope)."""
    p, s, c = world["parent"].pk, world["student"].pk, world["course"].pk
    return {
        "url:GET|/api/v1/users/:user_id/observees": ("get", f"/api/v1/users/{p}/observees", 200),
        "url:POST|/api/v1/users/:user_id/observees": ("post", f"/api/v1/users/{p}/observees", 400),
        "url:GET|/api/v1/users/:user_id/observees/:observee_id": (
            "get",
            f"/api/v1/users/{p}/observees/{s}",
            200,
        ),
        "url:PUT|/api/v1/users/:user_id/observees/:observee_id": (
            "put",
            f"/api/v1/users/{p}/observees/{s}",
            200,
        ),
        "url:DELETE|/api/v1/users/:user_id/observees/:observee_id": (
            "delete",
            f"/api/v1/users/{p}/observees/{s}",
            200,
        ),
        "url:GET|/api/v1/users/:user_id/observers": ("get", f"/api/v1/users/{s}/observers", 200),
        "url:GET|/api/v1/users/:user_id/observers/:observer_id": (
            "get",
            f"/api/v1/users/{s}/observers/{p}",
            200,
        ),
        "url:POST|/api/v1/users/:user_id/observer_pairing_codes": (
            "post",
            f"/api/v1/users/{s}/observer_pairing_codes",
            200,
        ),
        "url:GET|/api/v1/users/:id": ("get", f"/api/v1/users/{p}", 200),
        "url:GET|/api/v1/users/:user_id/enrollments": (
            "get",
            f"/api/v1/users/{p}/enrollments",
            200,
        ),
        "url:GET|/api/v1/courses/:course_id/enrollments": (
            "get",
            f"/api/v1/courses/{c}/enrollments",
            200,
        ),
        "url:GET|/api/v1/courses": ("get", "/api/v1/courses", 200),
        "url:GET|/api/v1/users/:user_id/courses": ("get", f"/api/v1/users/{p}/courses", 200),
    }


def state():
    return (
        sorted(ObservationLink.objects.values_list("pk", "workflow_state")),
        PairingCode.objects.count(),
    )


@pytest.mark.parametrize("scope", API_SCOPES)
def test_every_endpoint_needs_its_scope(api, world, scope):
    method, path, expected = calls(world)[scope]
    others = [other for other in API_SCOPES if other != scope]
    refused_token = issue_access_token(user=world["admin"], actor=Actor.system(), scopes=others)[1]
    client = api()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {refused_token}")
    before = state()
    response = getattr(client, method)(path)
    assert response.status_code == 401, response.content
    assert response.json() == INSUFFICIENT
    assert "WWW-Authenticate" not in response
    assert state() == before

    allowed_token = issue_access_token(user=world["admin"], actor=Actor.system(), scopes=[scope])[1]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {allowed_token}")
    response = getattr(client, method)(path)
    assert response.status_code == expected, response.content
    # A trailing slash and a format suffix are the same route (Canvas's matching).
    if method == "get":
        assert getattr(client, method)(path + "/").status_code == expected


def test_unscoped_token_may_call_everything(api, world):
    client = api(world["admin"])
    for method, path, expected in calls(world).values():
        if method == "get":
            assert getattr(client, method)(path).status_code == expected


def scoped_oauth_token(user, root_account, *, scopes, allow_includes) -> str:
    key, _secret = create_developer_key(
        root_account=root_account,
        name="App",
        redirect_uris="https://app.example.org/cb",
        scopes=scopes,
        allow_includes=allow_includes,
        actor=Actor.system(),
    )
    code = oauth.issue_authorization_code(
        key=key, user=user, scopes=scopes, redirect_uri="https://app.example.org/cb"
    )
    issued = oauth.exchange_authorization_code(
        key=key,
        code=code,
        client_authenticated=True,
        code_verifier=None,
        replace_tokens=False,
        actor=Actor.system(),
    )
    return issued.access_token


@pytest.mark.parametrize("allow_includes", [False, True])
def test_includes_are_dropped_unless_the_key_allows_them(
    api, world, default_account, allow_includes
):
    Account.objects.filter(pk=default_account.pk).update(avatars_enabled=True)
    token = scoped_oauth_token(
        world["parent"],
        default_account,
        scopes=["url:GET|/api/v1/users/:user_id/observees"],
        allow_includes=allow_includes,
    )
    client = api()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.get("/api/v1/users/self/observees", {"include[]": "avatar_url"})
    assert response.status_code == 200
    assert ("avatar_url" in response.json()[0]) is allow_includes
    refused = client.get("/api/v1/users/self/observers")
    assert refused.status_code == 401 and refused.json() == INSUFFICIENT


def test_unscoped_key_is_never_checked(api, world, default_account):
    key, _secret = create_developer_key(
        root_account=default_account,
        name="Open",
        redirect_uris="https://app.example.org/cb",
        scopes=[],
        require_scopes=False,
        actor=Actor.system(),
    )
    code = oauth.issue_authorization_code(
        key=key,
        user=world["parent"],
        scopes=["url:GET|/api/v1/users/:user_id/observees"],
        redirect_uri="https://app.example.org/cb",
    )
    token = oauth.exchange_authorization_code(
        key=key,
        code=code,
        client_authenticated=True,
        code_verifier=None,
        replace_tokens=False,
        actor=Actor.system(),
    ).access_token
    client = api()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/users/self/observers").status_code == 200
