"""Password reset on the school's host: Django's tokens, this school's logins, the same answer."""

import re

import pytest
from django.core import mail
from django.test import Client

from linking.models import AuditAction, AuditEvent, Login
from linking.services import passwords
from tests import factories
from tests.portal.conftest import HOST, OTHER_HOST

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "plum-Orchard-lantern-42"
SENT = "If the address you entered belongs to an account here"


@pytest.fixture(autouse=True)
def _locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def pat(root_account, make_user):
    user = make_user("Pat Parent", email="pat@family.test")
    factories.LoginFactory(user=user, root_account=root_account, unique_id="pat@family.test")
    return user


def _link_in(message) -> str:
    (link,) = re.findall(r"http://[^\s\"<]+/reset/[^\s\"<]+/", message.body)
    return link.split(HOST, 1)[1]


def test_sign_in_page_links_to_the_reset_page(web):
    html = web.get("/login/").content.decode()
    assert 'href="/password_reset/"' in html
    assert "Forgot your password?" in html


def test_known_address_gets_a_link_and_a_new_password_signs_in(web, pat, root_account):
    response = web.post("/password_reset/", {"email": "PAT@family.test"})
    assert response.status_code == 302 and response["Location"] == "/password_reset/done/"
    assert SENT in web.get(response["Location"]).content.decode()
    (message,) = mail.outbox
    assert message.to == ["PAT@family.test"]
    assert message.subject == "Reset your password at Default School"
    assert "pat@family.test" in message.body and "Hello Pat Parent," in message.body
    link = _link_in(message)

    # Django's view moves the token into the session and out of the address bar.
    opened = web.get(link)
    assert opened.status_code == 302 and opened["Location"].endswith("/set-password/")
    form = web.get(opened["Location"])
    assert form.status_code == 200 and "Choose a new password" in form.content.decode()
    done = web.post(
        opened["Location"], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    assert done.status_code == 302 and done["Location"] == "/reset/done/"

    login = Login.objects.get(user=pat)
    assert login.check_password(NEW_PASSWORD)
    assert not login.check_password(factories.TEST_PASSWORD)
    actions = list(
        AuditEvent.objects.filter(root_account=root_account)
        .order_by("id")
        .values_list("action", "detail")
    )
    assert actions == [
        (AuditAction.PASSWORD_RESET_REQUESTED, {"user_id": pat.pk, "login_id": login.pk}),
        (AuditAction.PASSWORD_RESET, {"user_id": pat.pk, "login_id": login.pk}),
    ]
    signed = Client(HTTP_HOST=HOST).post(
        "/login/", {"username": "pat@family.test", "password": NEW_PASSWORD}
    )
    assert signed.status_code == 302
    # The link worked once: the password hash it was keyed to changed.
    again = Client(HTTP_HOST=HOST).get(link)
    assert again.status_code == 200 and "This link does not work" in again.content.decode()


def test_unknown_address_gets_the_same_answer_and_no_email(web, pat):
    known = web.post("/password_reset/", {"email": "pat@family.test"})
    unknown = web.post("/password_reset/", {"email": "nobody@family.test"})
    assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])
    assert [m.to for m in mail.outbox] == [["pat@family.test"]]
    assert AuditEvent.objects.filter(action=AuditAction.PASSWORD_RESET_REQUESTED).count() == 1


def test_the_persons_school_email_finds_their_login_too(web, root_account, make_user):
    student = make_user("Sam Student", email="sam@home.test", locale="es")
    factories.LoginFactory(user=student, root_account=root_account, unique_id="s12345")
    web.post("/password_reset/", {"email": "sam@home.test"})
    (message,) = mail.outbox
    assert message.to == ["sam@home.test"]
    # In the person's language, naming the school.
    assert message.subject == "Restablecer su contraseña en Default School"
    assert "s12345" in message.body


def test_only_this_schools_logins_are_reset(pat, other_root_account):
    # Pat also has a login at another school, with the same address.
    factories.LoginFactory(user=pat, root_account=other_root_account, unique_id="pat@family.test")
    outsider = Client(HTTP_HOST=OTHER_HOST)
    outsider.post("/password_reset/", {"email": "pat@family.test"})
    (message,) = mail.outbox
    assert "External School" in message.subject
    other_login = Login.objects.get(user=pat, root_account=other_root_account)
    link = re.findall(r"/reset/[^\s\"<]+/", message.body)[0]
    # The other school's link does not open on this school's host.
    here = Client(HTTP_HOST=HOST).get(link)
    assert here.status_code == 200 and "This link does not work" in here.content.decode()
    there = outsider.get(link)
    assert there.status_code == 302
    outsider.post(there["Location"], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    other_login.refresh_from_db()
    assert other_login.check_password(NEW_PASSWORD)
    assert (
        Login.objects.exclude(pk=other_login.pk)
        .get(user=pat)
        .check_password(factories.TEST_PASSWORD)
    )


def test_a_password_like_the_persons_name_is_refused(web, pat):
    web.post("/password_reset/", {"email": "pat@family.test"})
    opened = web.get(_link_in(mail.outbox[0]))
    refused = web.post(
        opened["Location"], {"new_password1": "Pat Parent", "new_password2": "Pat Parent"}
    )
    assert refused.status_code == 200
    assert "too similar" in refused.content.decode()
    assert Login.objects.get(user=pat).check_password(factories.TEST_PASSWORD)
    mismatch = web.post(
        opened["Location"], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD + "x"}
    )
    assert mismatch.status_code == 200
    assert not AuditEvent.objects.filter(action=AuditAction.PASSWORD_RESET).exists()


def test_a_forged_or_foreign_link_changes_nothing(web, pat):
    for link in ("/reset/MQ/abc-123/", "/reset/%%%/abc/", "/reset/ZZZZ/set-password/"):
        response = web.get(link)
        assert (
            response.status_code == 200 and "This link does not work" in response.content.decode()
        )
        posted = web.post(link, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
        assert posted.status_code == 200
    assert Login.objects.get(user=pat).check_password(factories.TEST_PASSWORD)


def test_requests_are_limited_per_address_typed_without_using_sign_in_tries(
    web, pat, settings, root_account
):
    settings.OBSERVERS_RESET_REQUESTS = 2
    for _ in range(2):
        assert web.post("/password_reset/", {"email": "pat@family.test"}).status_code == 302
    paused = web.post("/password_reset/", {"email": "pat@family.test"})
    assert paused.status_code == 429 and int(paused["Retry-After"]) > 0
    assert "The pause ends at" in paused.content.decode()
    assert len(mail.outbox) == 2
    # Pat's sign-in budget is untouched.
    signed = Client(HTTP_HOST=HOST).post(
        "/login/", {"username": "pat@family.test", "password": factories.TEST_PASSWORD}
    )
    assert signed.status_code == 302


def test_a_reset_lifts_the_sign_in_pause_of_the_login(web, pat, settings):
    settings.OBSERVERS_RATE_LIMIT_FAILURES = 2
    guesser = Client(HTTP_HOST=HOST, REMOTE_ADDR="10.9.9.9")
    for _ in range(2):
        guesser.post("/login/", {"username": "pat@family.test", "password": "wrong"})
    assert (
        guesser.post("/login/", {"username": "pat@family.test", "password": "wrong"}).status_code
        == 429
    )
    web.post("/password_reset/", {"email": "pat@family.test"})
    opened = web.get(_link_in(mail.outbox[0]))
    web.post(opened["Location"], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    signed = Client(HTTP_HOST=HOST).post(
        "/login/", {"username": "pat@family.test", "password": NEW_PASSWORD}
    )
    assert signed.status_code == 302


def test_bad_input_gets_a_form_message(web, pat):
    response = web.post("/password_reset/", {"email": "not an address"})
    assert response.status_code == 200
    assert "Enter a valid email address." in response.content.decode()
    assert mail.outbox == []


def test_token_generator_is_keyed_to_the_login(pat, root_account):
    login = Login.objects.get(user=pat)
    token = passwords.token_generator.make_token(login)
    assert passwords.token_generator.check_token(login, token)
    login.set_password("something-else-entirely-7")
    login.save()
    assert not passwords.token_generator.check_token(login, token)
