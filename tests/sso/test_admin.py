"""Staff set up their school's provider in the admin; the secret is write-only and encrypted."""

import pytest

from linking.models import AuditAction, AuditEvent, IdentityProvider
from linking.services import secret_box, sso
from tests.admin.conftest import SCHOOL_A, SCHOOL_B, client_for

pytestmark = pytest.mark.django_db

URL = "/admin/linking/identityprovider/"


def _form(root_account, **overrides):
    data = {
        "root_account": root_account.pk,
        "name": "Riverside Entra ID",
        "issuer": "https://login.microsoftonline.com/tenant-id/v2.0",
        "client_id": "abc-123",
        "client_secret": "the-client-secret",
        "match_by": "login_id",
        "claim": "email",
        "scopes": "openid email profile",
        "enabled": "on",
        "required_for_staff": "on",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def test_staff_add_their_schools_provider(staff_a, root_account):
    admin = client_for(staff_a, SCHOOL_A)
    response = admin.post(f"{URL}add/", _form(root_account))
    assert response.status_code == 302, response.content.decode()[:3000]
    provider = IdentityProvider.objects.get(root_account=root_account)
    assert provider.required_for_staff and not provider.required_for_students
    assert "the-client-secret" not in provider.client_secret_encrypted
    assert secret_box.decrypt(provider.client_secret_encrypted) == "the-client-secret"
    event = AuditEvent.objects.get(action=AuditAction.SSO_CONFIGURED)
    assert (event.actor_id, event.source, event.root_account_id) == (
        staff_a.pk,
        "admin",
        root_account.pk,
    )
    assert event.detail["client_secret_changed"] is True
    assert "the-client-secret" not in str(event.detail)
    page = admin.get(f"{URL}{provider.pk}/change/").content.decode()
    assert "the-client-secret" not in page
    assert provider.client_secret_encrypted not in page

    # Saving again without a secret keeps the stored one.
    response = admin.post(
        f"{URL}{provider.pk}/change/", _form(root_account, client_secret="", name="Entra")
    )
    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.name == "Entra"
    latest = AuditEvent.objects.filter(action=AuditAction.SSO_CONFIGURED).first()
    assert latest.detail["client_secret_changed"] is False
    assert secret_box.decrypt(provider.client_secret_encrypted) == "the-client-secret"


def test_form_explains_bad_settings(staff_a, root_account):
    admin = client_for(staff_a, SCHOOL_A)
    response = admin.post(
        f"{URL}add/",
        _form(root_account, issuer="http://idp.example.org", client_secret="", scopes="email"),
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "The issuer must be an https:// address." in body
    assert "The client secret is required." in body
    assert not IdentityProvider.objects.exists()


def test_staff_cannot_set_up_or_see_another_schools_provider(
    staff_a, staff_b, root_account, other_root_account
):
    provider_b = sso.save_identity_provider(
        root_account=other_root_account,
        name="External Clever",
        issuer="https://clever.com",
        client_id="b",
        client_secret="b-secret",
    )
    admin = client_for(staff_a, SCHOOL_A)
    assert "External Clever" not in admin.get(URL).content.decode()
    assert admin.get(f"{URL}{provider_b.pk}/change/").status_code == 404
    response = admin.post(f"{URL}add/", _form(other_root_account))
    assert response.status_code == 200
    assert IdentityProvider.objects.filter(root_account=other_root_account).count() == 1
    assert IdentityProvider.objects.get(pk=provider_b.pk).client_id == "b"
    # The other school's staff see theirs.
    assert "External Clever" in client_for(staff_b, SCHOOL_B).get(URL).content.decode()


def test_only_full_account_admins_may_set_up_single_sign_on(root_account, make_user):
    from linking.services.accounts import make_account_admin
    from tests import factories

    clerk = make_user("Carl Clerk", root_account)
    role = factories.RoleFactory(
        root_account=root_account, name="Office", manage_user_observers=True, read_sis=True
    )
    make_account_admin(user=clerk, account=root_account, role=role)
    admin = client_for(clerk, SCHOOL_A)

    assert admin.get(URL).status_code == 403
    assert admin.post(f"{URL}add/", _form(root_account)).status_code == 403
    assert not IdentityProvider.objects.exists()
    home = admin.get("/admin/").content.decode()
    assert "Single sign-on" not in home
    assert sso.may_configure(clerk, root_account) is False
