"""Access tokens, account creation rules and signing in per root account."""

from datetime import timedelta

import pytest
from django.contrib.auth import authenticate
from django.test import RequestFactory

from linking.models import AccessToken, AuditAction, AuditEvent, Login
from linking.services import accounts, tokens
from linking.services.errors import DomainTaken, LinkingError, LoginTaken
from tests import factories


@pytest.fixture
def issued(parent, system_actor):
    return tokens.issue_access_token(user=parent, actor=system_actor, purpose="phone app")


def test_token_is_stored_only_as_a_hash(issued, parent):
    token, plaintext = issued
    stored = AccessToken.objects.get(pk=token.pk)
    assert stored.token_hash == tokens.hash_token(plaintext) != plaintext
    assert plaintext not in stored.token_hash
    assert stored.token_hint == plaintext[-4:] and stored.purpose == "phone app"
    assert len(plaintext) >= 40
    assert AuditEvent.objects.filter(action=AuditAction.TOKEN_ISSUED).count() == 1


def test_authenticate_and_last_used(issued, parent, frozen_now):
    token, plaintext = issued
    found = tokens.authenticate_access_token(plaintext)
    assert found.pk == token.pk and found.user == parent
    token.refresh_from_db()
    assert token.last_used_at == frozen_now.now
    first_use = frozen_now.now
    frozen_now.advance(seconds=30)
    tokens.authenticate_access_token(plaintext)
    token.refresh_from_db()
    assert token.last_used_at == first_use  # written at most once a minute
    frozen_now.advance(minutes=2)
    tokens.authenticate_access_token(plaintext)
    token.refresh_from_db()
    assert token.last_used_at == frozen_now.now


@pytest.mark.parametrize("bearer", [None, "", "not a token", "x" * 300])
def test_unknown_tokens_do_not_authenticate(issued, bearer):
    assert tokens.authenticate_access_token(bearer) is None


def test_expired_token_does_not_authenticate(parent, system_actor, frozen_now):
    _, plaintext = tokens.issue_access_token(
        user=parent, actor=system_actor, expires_at=frozen_now.now + timedelta(days=1)
    )
    assert tokens.authenticate_access_token(plaintext) is not None
    frozen_now.advance(days=1)
    assert tokens.authenticate_access_token(plaintext) is None


def test_revoked_token_does_not_authenticate(issued, system_actor):
    token, plaintext = issued
    assert tokens.revoke_access_token(token=token, actor=system_actor)
    assert not tokens.revoke_access_token(token=token, actor=system_actor)
    assert tokens.authenticate_access_token(plaintext) is None
    assert AuditEvent.objects.filter(action=AuditAction.TOKEN_REVOKED).count() == 1


def test_deleted_users_token_does_not_authenticate(issued, parent):
    parent.workflow_state = "deleted"
    parent.save()
    assert tokens.authenticate_access_token(issued[1]) is None


def test_revoke_tokens_by_purpose(parent, system_actor):
    keep, keep_plain = tokens.issue_access_token(user=parent, actor=system_actor, purpose="keep")
    for _ in range(2):
        tokens.issue_access_token(user=parent, actor=system_actor, purpose="demo")
    assert tokens.revoke_access_tokens(user=parent, actor=system_actor, purpose="demo") == 2
    assert tokens.revoke_access_tokens(user=parent, actor=system_actor, purpose="demo") == 0
    assert list(AccessToken.objects.usable().filter(user=parent)) == [keep]
    assert tokens.authenticate_access_token(keep_plain) == keep


# --- accounts ------------------------------------------------------------------


def test_create_root_account_normalises_the_domain(db):
    account = accounts.create_root_account(name="School", domain=" School.Example.ORG. ")
    assert account.domain == "school.example.org" and account.is_root
    assert account.pairing_code_lifetime_hours == 168 and account.self_registration == "observer"


def test_duplicate_domain_is_refused(root_account):
    with pytest.raises(DomainTaken):
        accounts.create_root_account(name="Copy", domain="DEFAULT.test")


@pytest.mark.parametrize("domain", ["", "bad domain", "-x.test", "a..b", "x/y"])
def test_invalid_domain_is_refused(db, domain):
    with pytest.raises(LinkingError) as caught:
        accounts.create_root_account(name="School", domain=domain)
    assert caught.value.code == "invalid_domain"


@pytest.mark.parametrize(
    "settings_", [{"self_registration": "anyone"}, {"pairing_code_lifetime_hours": 0}]
)
def test_invalid_settings_are_refused(db, settings_):
    with pytest.raises(LinkingError) as caught:
        accounts.create_root_account(name="School", domain="ok.test", **settings_)
    assert caught.value.code == "invalid_setting"


def test_login_ids_are_unique_per_root_account_case_insensitively(root_account, other_root_account):
    accounts.create_user_with_login(
        name="Ann", root_account=root_account, unique_id="Ann@x.test", password="pw-123456"
    )
    with pytest.raises(LoginTaken):
        accounts.create_user_with_login(
            name="Ann 2", root_account=root_account, unique_id="ann@X.test"
        )
    other = accounts.create_user_with_login(
        name="Ann", root_account=other_root_account, unique_id="ann@x.test"
    )
    assert other.logins.get().password == ""  # no password: cannot sign in
    assert Login.objects.filter(unique_id__iexact="ann@x.test").count() == 2


def test_sis_ids_are_unique_per_root_account(root_account):
    accounts.create_user_with_login(
        name="A", root_account=root_account, unique_id="a", sis_user_id="S1"
    )
    with pytest.raises(LoginTaken):
        accounts.create_user_with_login(
            name="B", root_account=root_account, unique_id="b", sis_user_id="S1"
        )


def test_make_account_admin_makes_staff(parent, root_account):
    membership = accounts.make_account_admin(user=parent, account=root_account)
    parent.refresh_from_db()
    assert parent.is_staff and membership.role.manage_user_observers
    assert membership.root_account == root_account
    again = accounts.make_account_admin(user=parent, account=root_account)
    assert again.pk == membership.pk


# --- signing in ------------------------------------------------------------------


def request_for(root_account):
    request = RequestFactory().post("/login/")
    request.root_account = root_account
    return request


def test_login_is_scoped_to_the_requests_root_account(make_user, root_account, other_root_account):
    here = make_user("Here")
    factories.LoginFactory(user=here, root_account=root_account, unique_id="pat", password="one-pw")
    there = make_user("There")
    factories.LoginFactory(
        user=there, root_account=other_root_account, unique_id="pat", password="two-pw"
    )
    assert authenticate(request_for(root_account), username="PAT ", password="one-pw") == here
    assert authenticate(request_for(other_root_account), username="pat", password="two-pw") == there
    assert authenticate(request_for(root_account), username="pat", password="two-pw") is None
    assert authenticate(request_for(None), username="pat", password="one-pw") is None
    assert Login.objects.get(user=here).last_login_at is not None
    assert Login.objects.get(user=there).last_login_at is not None


def test_login_refused_for_suspended_logins_and_deleted_users(make_user, root_account):
    user = make_user("Someone")
    login = factories.LoginFactory(
        user=user, root_account=root_account, unique_id="someone", password="pw-9876"
    )
    assert authenticate(request_for(root_account), username="someone", password="wrong") is None
    login.workflow_state = "suspended"
    login.save()
    assert authenticate(request_for(root_account), username="someone", password="pw-9876") is None
    login.workflow_state = "active"
    login.save()
    user.workflow_state = "deleted"
    user.save()
    assert authenticate(request_for(root_account), username="someone", password="pw-9876") is None
