"""Single sign-on in a real Chromium: the school's button, the provider's page, and back."""

import pytest
from django.contrib.sessions.models import Session

from linking.models import AuditAction, AuditEvent
from linking.services import sso
from linking.services.enrollments import enroll_user
from tests import factories
from tests.screenshots import save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def school(db):
    # live_server answers on "localhost": make that host this school's.
    return factories.RootAccountFactory(name="Riverside High", domain="localhost")


@pytest.fixture
def school_sso(school, live_server, oidc_provider):
    client_id, secret = oidc_provider.register_client(f"{live_server.url}/login/sso/callback/")
    return sso.save_identity_provider(
        root_account=school,
        name="Riverside Google",
        issuer=oidc_provider.url,
        client_id=client_id,
        client_secret=secret,
        required_for_students=True,
    )


def _student(school, login_id):
    user = factories.UserFactory(name="Sam Rivera")
    factories.LoginFactory(user=user, root_account=school, unique_id=login_id)
    enroll_user(user=user, course=factories.CourseFactory(account=school), type="student")
    return user


def test_student_signs_in_with_the_schools_provider(
    browser_page, live_server, school, school_sso, oidc_provider
):
    page, base = browser_page, live_server.url
    sam = _student(school, "sam@riverside.test")
    oidc_provider.set_person("google-sam", email="sam@riverside.test", email_verified=True)

    page.goto(f"{base}/login/")
    assert page.get_by_text("Students sign in with Riverside Google.").is_visible()
    save_screenshot(page, "sso-login")
    page.get_by_role("link", name="Sign in with Riverside Google").click()
    page.wait_for_url(f"{oidc_provider.url}/oauth2/authorize*")
    page.get_by_placeholder("sub").fill("google-sam")
    page.get_by_role("button", name="Authorize").click()

    page.wait_for_url(f"{base}/pairing/")
    assert page.get_by_role("button", name="Create a pairing code").is_visible()
    assert AuditEvent.objects.filter(action=AuditAction.SSO_SIGNED_IN, actor=sam).count() == 1
    assert Session.objects.count() == 1


def test_student_password_is_refused_and_stranger_gets_a_clear_page(
    browser_page, live_server, school, school_sso, oidc_provider
):
    page, base = browser_page, live_server.url
    _student(school, "sam@riverside.test")

    page.goto(f"{base}/login/")
    page.get_by_label("Login id").fill("sam@riverside.test")
    page.get_by_label("Password").fill(factories.TEST_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    assert page.get_by_text("Your school signs you in with Riverside Google").is_visible()

    oidc_provider.set_person("stranger", email="stranger@riverside.test")
    page.get_by_role("link", name="Sign in with Riverside Google").click()
    page.wait_for_url(f"{oidc_provider.url}/oauth2/authorize*")
    page.get_by_placeholder("sub").fill("stranger")
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{base}/login/sso/callback/*")
    assert page.get_by_role("heading", name="No account here for you yet").is_visible()
    save_screenshot(page, "sso-no-match")
    assert all("_auth_user_id" not in s.get_decoded() for s in Session.objects.all())
