"""Staff manage their school's developer keys: create (secret once), scopes, on/off."""

import re

from linking.models import AccessToken, AuditAction, AuditEvent, DeveloperKey
from linking.services.context import Actor
from linking.services.developer_keys import create_developer_key, hash_secret
from linking.services.tokens import issue_access_token

OBSERVEES = "url:GET|/api/v1/users/:user_id/observees"
ENROLLMENTS = "url:GET|/api/v1/users/:user_id/enrollments"
ADD_URL = "/admin/linking/developerkey/add/"


def test_staff_create_a_key_and_see_the_secret_once(admin_a, root_account, staff_a):
    response = admin_a.post(
        ADD_URL,
        {
            "name": "Parent App",
            "redirect_uris": "https://app.example.org/cb\nhttps://app.example.org/cb2",
            "scopes": [OBSERVEES, ENROLLMENTS],
            "require_scopes": "on",
        },
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    key = DeveloperKey.objects.get()
    secret = re.search(r'id="client-secret"[^>]*>([^<]+)<', response.content.decode()).group(1)
    assert key.secret_hash == hash_secret(secret) and secret not in key.secret_hash
    assert f'id="client-id" style="font-size:1.2rem">{key.pk}<' in response.content.decode()
    assert key.root_account == root_account and key.created_by == staff_a
    assert key.scopes == [OBSERVEES, ENROLLMENTS] and key.require_scopes
    assert key.redirect_uri_list() == ["https://app.example.org/cb", "https://app.example.org/cb2"]
    assert AuditEvent.objects.filter(action=AuditAction.DEVELOPER_KEY_CREATED).count() == 1
    page = admin_a.get(f"/admin/linking/developerkey/{key.pk}/change/").content.decode()
    assert secret not in page


def test_bad_input_is_a_form_error(admin_a):
    for data, message in (
        (
            {"name": "X", "redirect_uris": "javascript:alert(1)", "scopes": [OBSERVEES]},
            "Not a valid",
        ),
        (
            {"name": "X", "redirect_uris": "https://a.test/cb", "require_scopes": "on"},
            "needs at least",
        ),
        (
            {"name": "X", "redirect_uris": "https://a.test/cb", "scopes": ["url:GET|/nope"]},
            "valid choice",
        ),
    ):
        response = admin_a.post(ADD_URL, data)
        assert response.status_code == 200
        assert message in response.content.decode()
    assert not DeveloperKey.objects.exists()


def test_removing_a_scope_revokes_tokens_and_turning_off_stops_them(admin_a, root_account, staff_a):
    key, _secret = create_developer_key(
        root_account=root_account,
        name="App",
        redirect_uris="https://app.example.org/cb",
        scopes=[OBSERVEES, ENROLLMENTS],
        actor=Actor.system(),
    )
    token = AccessToken.objects.create(
        user=staff_a, token_hash="h" * 64, token_hint="hhhh", developer_key=key, scopes=[OBSERVEES]
    )
    response = admin_a.post(
        f"/admin/linking/developerkey/{key.pk}/change/",
        {
            "name": "App",
            "redirect_uris": "https://app.example.org/cb",
            "scopes": [OBSERVEES],
            "require_scopes": "on",
            "workflow_state": "active",
        },
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    key.refresh_from_db()
    assert key.scopes == [OBSERVEES]
    response = admin_a.post(
        "/admin/linking/developerkey/",
        {"action": "turn_off", "_selected_action": [key.pk]},
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.workflow_state == DeveloperKey.State.INACTIVE


def test_other_schools_staff_do_not_see_the_key(admin_b, root_account):
    key, _secret = create_developer_key(
        root_account=root_account,
        name="Secret A app",
        redirect_uris="https://app.example.org/cb",
        scopes=[OBSERVEES],
        actor=Actor.system(),
    )
    assert "Secret A app" not in admin_b.get("/admin/linking/developerkey/").content.decode()
    assert admin_b.get(f"/admin/linking/developerkey/{key.pk}/change/").status_code == 404


def test_staff_issue_a_token_with_scopes(admin_a, staff_a):
    response = admin_a.post(
        "/admin/linking/accesstoken/add/",
        {"user": staff_a.pk, "purpose": "ci", "scopes": [ENROLLMENTS]},
    )
    assert response.status_code == 200
    token = AccessToken.objects.get(purpose="ci")
    assert token.scopes == [ENROLLMENTS]


def test_issue_token_scopes_are_checked(root_account, staff_a):
    import pytest

    from linking.services.tokens import UnknownScope

    with pytest.raises(UnknownScope):
        issue_access_token(user=staff_a, actor=Actor.system(), scopes=["url:GET|/nope"])
    assert not AccessToken.objects.exists()
