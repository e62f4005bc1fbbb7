"""Single sign-on end to end in Django's test client, against a real OpenID Connect provider."""

import pytest
from django.contrib.auth import SESSION_KEY

from linking.models import AuditAction, AuditEvent, IdentityProvider, Login, SsoMatch, User
from linking.services import secret_box, sso
from linking.services.accounts import make_account_admin
from linking.services.enrollments import enroll_user
from tests import factories

from .conftest import OTHER_HOST, sign_in_with_provider

pytestmark = pytest.mark.django_db


def signed_in_user_id(client):
    value = client.session.get(SESSION_KEY)
    return int(value) if value is not None else None


def test_sign_in_page_offers_the_schools_provider(web, root_account, configure_sso):
    assert b"Sign in with" not in web.get("/login/").content
    configure_sso(root_account, name="Riverside Google")
    page = web.get("/login/")
    assert page.status_code == 200
    assert "Sign in with Riverside Google" in page.content.decode()


def test_disabled_provider_is_not_offered(web, root_account, configure_sso):
    provider = configure_sso(root_account)
    IdentityProvider.objects.filter(pk=provider.pk).update(enabled=False)
    assert b"Sign in with" not in web.get("/login/").content
    response = web.get("/login/sso/")
    assert response.status_code == 404
    assert b"Single sign-on is not set up" in response.content


def test_person_signs_in_by_email_matched_to_login_id(
    web, root_account, configure_sso, oidc_provider, person
):
    configure_sso(root_account)
    sam = person(root_account, "Sam.Rivera@Riverside.test")
    oidc_provider.set_person("google-sam", email="sam.rivera@riverside.test", email_verified=True)

    response = sign_in_with_provider(web, oidc_provider, "google-sam")

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert signed_in_user_id(web) == sam.pk
    assert Login.objects.get(user=sam).last_login_at is not None
    event = AuditEvent.objects.get(action=AuditAction.SSO_SIGNED_IN)
    assert event.actor_id == sam.pk
    assert event.root_account_id == root_account.pk
    assert event.detail["login_id"] == "Sam.Rivera@Riverside.test"
    # The signed-in person reaches their page.
    assert web.get("/", follow=True).status_code == 200


def test_person_signs_in_by_sis_id_claim(web, root_account, configure_sso, oidc_provider, person):
    configure_sso(root_account, match_by=SsoMatch.SIS_USER_ID, claim="student_number")
    sam = person(root_account, "sam01", sis_user_id="S-1001")
    oidc_provider.set_person("clever-1", student_number="S-1001", email="other@x.test")

    response = sign_in_with_provider(web, oidc_provider, "clever-1")

    assert response.status_code == 302
    assert signed_in_user_id(web) == sam.pk


def test_nobody_is_created_when_no_login_matches(
    web, root_account, configure_sso, oidc_provider, person
):
    configure_sso(root_account)
    person(root_account, "someone.else@riverside.test")
    oidc_provider.set_person("stranger", email="new.kid@riverside.test", email_verified=True)
    users_before = User.objects.count()

    response = sign_in_with_provider(web, oidc_provider, "stranger")

    assert response.status_code == 403
    assert "No account here for you yet" in response.content.decode()
    assert signed_in_user_id(web) is None
    assert User.objects.count() == users_before
    assert Login.objects.filter(unique_id__iexact="new.kid@riverside.test").count() == 0
    refused = AuditEvent.objects.get(action=AuditAction.SSO_REFUSED)
    assert refused.detail == {
        "reason": "no_login",
        "claim": "email",
        "value": "new.kid@riverside.test",
    }


def test_unverified_email_is_refused(web, root_account, configure_sso, oidc_provider, person):
    configure_sso(root_account)
    person(root_account, "sam@riverside.test")
    oidc_provider.set_person("sam", email="sam@riverside.test", email_verified=False)

    response = sign_in_with_provider(web, oidc_provider, "sam")

    assert response.status_code == 403
    assert signed_in_user_id(web) is None
    assert AuditEvent.objects.get(action=AuditAction.SSO_REFUSED).detail["reason"] == (
        "email_unverified"
    )


def test_suspended_login_is_refused(web, root_account, configure_sso, oidc_provider, person):
    configure_sso(root_account)
    sam = person(root_account, "sam@riverside.test")
    Login.objects.filter(user=sam).update(workflow_state=Login.State.SUSPENDED)
    oidc_provider.set_person("sam", email="sam@riverside.test")

    response = sign_in_with_provider(web, oidc_provider, "sam")

    assert response.status_code == 403
    assert signed_in_user_id(web) is None


def test_missing_claim_is_refused(web, root_account, configure_sso, oidc_provider, person):
    configure_sso(root_account, match_by=SsoMatch.SIS_USER_ID, claim="employee_id")
    person(root_account, "sam@riverside.test", sis_user_id="E-1")
    oidc_provider.set_person("sam", email="sam@riverside.test")

    response = sign_in_with_provider(web, oidc_provider, "sam")

    assert response.status_code == 403
    assert signed_in_user_id(web) is None
    assert AuditEvent.objects.get(action=AuditAction.SSO_REFUSED).detail["reason"] == (
        "claim_missing"
    )


def test_next_page_is_kept_and_foreign_addresses_are_not(
    web, root_account, configure_sso, oidc_provider, person
):
    configure_sso(root_account)
    person(root_account, "sam@riverside.test")
    oidc_provider.set_person("sam", email="sam@riverside.test")

    response = sign_in_with_provider(web, oidc_provider, "sam", next_url="/observing/")
    assert response["Location"] == "/observing/"

    web.logout()
    response = sign_in_with_provider(web, oidc_provider, "sam", next_url="https://evil.test/")
    assert response["Location"] == "/"


def test_a_callback_cannot_be_replayed(web, root_account, configure_sso, oidc_provider, person):
    configure_sso(root_account)
    person(root_account, "sam@riverside.test")
    oidc_provider.set_person("sam", email="sam@riverside.test")
    start = web.get("/login/sso/")
    back = oidc_provider.authorize(start["Location"], "sam")
    path = "/" + back.split("://", 1)[1].split("/", 1)[1]
    assert web.get(path).status_code == 302
    web.logout()

    replay = web.get(path)

    assert replay.status_code == 502
    assert "did not complete" in replay.content.decode()
    assert signed_in_user_id(web) is None


def test_person_who_denies_at_the_provider_gets_a_clear_page(
    web, root_account, configure_sso, oidc_provider
):
    import requests

    configure_sso(root_account)
    start = web.get("/login/sso/")
    denied = requests.post(
        start["Location"], data={"action": "deny"}, allow_redirects=False, timeout=5
    )
    path = "/" + denied.headers["Location"].split("://", 1)[1].split("/", 1)[1]

    response = web.get(path)

    assert response.status_code == 502
    assert "Sign-in with Riverside Google did not complete" in response.content.decode()
    assert signed_in_user_id(web) is None


def test_wrong_client_secret_signs_nobody_in(
    web, root_account, configure_sso, oidc_provider, person
):
    provider = configure_sso(root_account)
    sso.save_identity_provider(
        root_account=root_account,
        name=provider.name,
        issuer=provider.issuer,
        client_id=provider.client_id,
        client_secret="not-the-secret",
    )
    person(root_account, "sam@riverside.test")
    oidc_provider.set_person("sam", email="sam@riverside.test")

    response = sign_in_with_provider(web, oidc_provider, "sam")

    assert response.status_code == 502
    assert signed_in_user_id(web) is None
    assert not AuditEvent.objects.filter(action=AuditAction.SSO_SIGNED_IN).exists()


def test_unreachable_provider_gives_a_page_not_a_500(web, root_account, person):
    sso.save_identity_provider(
        root_account=root_account,
        name="Gone",
        issuer="http://127.0.0.1:9",
        client_id="x",
        client_secret="y",
    )
    response = web.get("/login/sso/")
    assert response.status_code == 502
    assert "Sign-in with Gone did not complete" in response.content.decode()


# --- tenants -------------------------------------------------------------------------


def test_school_a_provider_never_signs_in_a_person_of_school_b(
    web, root_account, other_root_account, configure_sso, oidc_provider, person
):
    configure_sso(root_account)
    only_at_b = person(other_root_account, "pat@external.test")
    oidc_provider.set_person("pat", email="pat@external.test")

    response = sign_in_with_provider(web, oidc_provider, "pat")

    assert response.status_code == 403
    assert signed_in_user_id(web) is None
    refused = AuditEvent.objects.get(action=AuditAction.SSO_REFUSED)
    assert refused.root_account_id == root_account.pk
    assert not Login.objects.filter(user=only_at_b, root_account=root_account).exists()


def test_a_sign_in_started_at_school_a_cannot_finish_at_school_b(
    web, web_b, root_account, other_root_account, configure_sso, oidc_provider, person
):
    from .conftest import HOST

    # One registration with both callbacks, as a careless district might set it up.
    configure_sso(root_account, hosts=[HOST, OTHER_HOST])
    configure_sso(other_root_account, hosts=[OTHER_HOST])
    person(root_account, "pat@both.test")
    person(other_root_account, "pat@both.test")
    oidc_provider.set_person("pat", email="pat@both.test")
    start = web.get("/login/sso/")
    back = oidc_provider.authorize(start["Location"], "pat")
    path = "/" + back.split("://", 1)[1].split("/", 1)[1]

    response = web_b.get(path)

    assert response.status_code == 502
    assert signed_in_user_id(web_b) is None
    assert not AuditEvent.objects.filter(action=AuditAction.SSO_SIGNED_IN).exists()


def test_school_without_provider_refuses_the_callback(web_b, other_root_account):
    response = web_b.get("/login/sso/callback/?code=x&state=y")
    assert response.status_code == 404
    assert signed_in_user_id(web_b) is None


# --- who must use single sign-on -------------------------------------------------------


@pytest.fixture
def school_people(root_account, person):
    course = factories.CourseFactory(account=root_account)
    student = person(root_account, "student@riverside.test", name="Sam Student")
    enroll_user(user=student, course=course, type="student")
    staff = person(root_account, "staff@riverside.test", name="Stella Staff")
    User.objects.filter(pk=staff.pk).update(is_staff=True)
    make_account_admin(user=staff, account=root_account)
    parent = person(root_account, "parent@family.test", name="Pat Parent")
    return {"student": student, "staff": staff, "parent": parent}


def _password_sign_in(web, login_id):
    return web.post("/login/", {"username": login_id, "password": factories.TEST_PASSWORD})


def test_required_sso_refuses_staff_and_student_passwords_but_not_parents(
    web, root_account, configure_sso, school_people
):
    configure_sso(root_account, required_for_staff=True, required_for_students=True)

    for login_id in ["student@riverside.test", "staff@riverside.test"]:
        response = _password_sign_in(web, login_id)
        assert response.status_code == 200
        body = response.content.decode()
        assert "Your school signs you in with Riverside Google" in body
        assert signed_in_user_id(web) is None
    assert Login.objects.get(unique_id="staff@riverside.test").last_login_at is None

    response = _password_sign_in(web, "parent@family.test")
    assert response.status_code == 302
    assert signed_in_user_id(web) == school_people["parent"].pk


def test_required_for_students_only_leaves_staff_passwords(
    web, root_account, configure_sso, school_people
):
    configure_sso(root_account, required_for_students=True)
    assert _password_sign_in(web, "staff@riverside.test").status_code == 302
    assert signed_in_user_id(web) == school_people["staff"].pk


def test_required_sso_at_school_a_leaves_school_b_passwords(
    web_b, root_account, other_root_account, configure_sso, person
):
    configure_sso(root_account, required_for_staff=True, required_for_students=True)
    staff_b = person(other_root_account, "staff@external.test")
    User.objects.filter(pk=staff_b.pk).update(is_staff=True)
    make_account_admin(user=staff_b, account=other_root_account)
    assert _password_sign_in(web_b, "staff@external.test").status_code == 302
    assert signed_in_user_id(web_b) == staff_b.pk


def test_wrong_password_still_reads_as_wrong_when_sso_is_required(
    web, root_account, configure_sso, school_people
):
    configure_sso(root_account, required_for_staff=True)
    response = web.post("/login/", {"username": "staff@riverside.test", "password": "nope"})
    body = response.content.decode()
    assert "That login id and password do not match" in body
    assert "Your school signs you in" not in body
    assert signed_in_user_id(web) is None


def test_staff_admin_sign_in_page_offers_sso_and_refuses_the_password(
    web, root_account, configure_sso, school_people, oidc_provider
):
    configure_sso(root_account, required_for_staff=True)
    page = web.get("/admin/login/?next=/admin/")
    assert "Sign in with Riverside Google" in page.content.decode()
    refused = web.post(
        "/admin/login/?next=/admin/",
        {"username": "staff@riverside.test", "password": factories.TEST_PASSWORD},
    )
    assert refused.status_code == 200
    assert "Your school signs you in with Riverside Google" in refused.content.decode()
    assert signed_in_user_id(web) is None

    oidc_provider.set_person("stella", email="staff@riverside.test")
    response = sign_in_with_provider(web, oidc_provider, "stella", next_url="/admin/")
    assert response["Location"] == "/admin/"
    assert web.get("/admin/").status_code == 200


# --- the stored secret ---------------------------------------------------------------


def test_client_secret_is_stored_encrypted_and_rotatable(root_account, settings):
    provider = sso.save_identity_provider(
        root_account=root_account,
        name="Entra",
        issuer="https://login.microsoftonline.com/tenant/v2.0",
        client_id="client",
        client_secret="s3cret-value",
    )
    stored = IdentityProvider.objects.get(pk=provider.pk).client_secret_encrypted
    assert "s3cret-value" not in stored
    assert secret_box.decrypt(stored) == "s3cret-value"

    # Rotation: the old key still decrypts until the command re-encrypts.
    from django.core.management import call_command

    old_key = settings.SSO_ENCRYPTION_KEY
    settings.SSO_ENCRYPTION_KEY = "a-brand-new-encryption-key-for-sso-secrets"
    settings.SSO_ENCRYPTION_PREVIOUS_KEYS = [old_key]
    assert secret_box.decrypt(stored) == "s3cret-value"
    call_command("rotate_sso_secrets")
    rotated = IdentityProvider.objects.get(pk=provider.pk).client_secret_encrypted
    assert rotated != stored
    settings.SSO_ENCRYPTION_PREVIOUS_KEYS = []
    assert secret_box.decrypt(rotated) == "s3cret-value"
    with pytest.raises(secret_box.SecretUnreadable):
        secret_box.decrypt(stored)


@pytest.mark.parametrize(
    ("issuer", "ok"),
    [
        ("https://accounts.google.com", True),
        ("http://127.0.0.1:8080", True),
        ("http://idp.example.org", False),
        ("ftp://idp.example.org", False),
    ],
)
def test_issuer_must_be_https_except_on_this_machine(root_account, issuer, ok):
    if ok:
        assert sso.check_issuer(issuer) == issuer
    else:
        with pytest.raises(sso.InvalidProviderSettings):
            sso.check_issuer(issuer)


def test_issuer_on_this_machine_is_refused_in_production(settings):
    settings.PRODUCTION = True
    with pytest.raises(sso.InvalidProviderSettings):
        sso.check_issuer("http://127.0.0.1:8080")


def test_a_provider_that_never_answers_times_out_into_a_page(web, root_account, settings):
    import socket
    import time

    settings.SSO_HTTP_TIMEOUT_SECONDS = 1
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        sso.save_identity_provider(
            root_account=root_account,
            name="Slow",
            issuer=f"http://127.0.0.1:{port}",
            client_id="x",
            client_secret="y",
        )
        started = time.monotonic()
        response = web.get("/login/sso/")
        elapsed = time.monotonic() - started
    assert response.status_code == 502
    assert "Sign-in with Slow did not complete" in response.content.decode()
    assert elapsed < 10


def test_sign_in_page_and_refusal_in_spanish(web, root_account, configure_sso, oidc_provider):
    configure_sso(root_account, name="Google", required_for_students=True)
    page = web.get("/login/", HTTP_ACCEPT_LANGUAGE="es")
    body = page.content.decode()
    assert "Iniciar sesión con Google" in body
    assert "Los estudiantes inician sesión con Google." in body

    oidc_provider.set_person("nadie", email="nadie@riverside.test")
    web.defaults["HTTP_ACCEPT_LANGUAGE"] = "es"
    response = sign_in_with_provider(web, oidc_provider, "nadie")
    assert response.status_code == 403
    assert "Todavía no tiene una cuenta aquí" in response.content.decode()
    assert signed_in_user_id(web) is None


def test_teachers_count_as_staff_when_sso_is_required(web, root_account, configure_sso, person):
    configure_sso(root_account, required_for_staff=True)
    teacher = person(root_account, "teacher@riverside.test", name="Tess Teacher")
    enroll_user(user=teacher, course=factories.CourseFactory(account=root_account), type="teacher")

    response = _password_sign_in(web, "teacher@riverside.test")

    assert response.status_code == 200
    assert "Your school signs you in with Riverside Google" in response.content.decode()
    assert signed_in_user_id(web) is None


def test_a_forged_callback_is_refused_with_a_page(web, root_account, configure_sso):
    configure_sso(root_account)
    response = web.get("/login/sso/callback/?code=forged&state=forged")
    assert response.status_code == 502
    assert signed_in_user_id(web) is None
    assert not AuditEvent.objects.filter(action=AuditAction.SSO_SIGNED_IN).exists()
