"""A self-registered parent confirms their address; until then no notification e-mails reach it."""

import re

import pytest
from django.core import mail
from django.test import Client

from linking.models import (
    AuditAction,
    AuditEvent,
    EmailNotification,
    LinkSource,
    ObservationLink,
    User,
)
from linking.services import notifications, verification
from linking.services.context import Actor
from linking.services.links import link_observer
from tests.portal.conftest import HOST, OTHER_HOST

pytestmark = pytest.mark.django_db

PASSWORD = "a-Long-enough-secret-9"


@pytest.fixture(autouse=True)
def _locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def _sign_up(web, code, **extra):
    data = {
        "name": "Pat Newparent",
        "email": "pat@family.test",
        "password1": PASSWORD,
        "password2": PASSWORD,
        "codes": code,
        **extra,
    }
    response = web.post("/signup/", data)
    if response.status_code == 302 and response["Location"] == "/signup/confirm/":
        return web.post("/signup/confirm/", {"confirm": "1"})
    return response


def _verify_path(message) -> str:
    (path,) = re.findall(r"/verify-email/[^\s\"<]+/", message.body)
    return path


@pytest.fixture
def new_parent(web, student, root_account, issue_code):
    response = _sign_up(web, issue_code(student, root_account).plaintext)
    assert response.status_code == 302
    return User.objects.get(name="Pat Newparent")


def test_sign_up_marks_the_address_unverified_and_sends_the_link(web, new_parent):
    assert new_parent.email_unverified_since is not None
    (message,) = mail.outbox
    assert message.to == ["pat@family.test"]
    assert message.subject == "Confirm your e-mail address for Default School"
    assert "It works for 3 days." in message.body
    page = web.get("/observing/").content.decode()
    assert "Confirm your e-mail address" in page and "Send the link again" in page


def test_opening_the_link_confirms_on_post_only(web, new_parent, root_account):
    path = _verify_path(mail.outbox[0])
    anonymous = Client(HTTP_HOST=HOST)
    shown = anonymous.get(path)
    assert shown.status_code == 200 and "Confirm my address" in shown.content.decode()
    new_parent.refresh_from_db()
    assert new_parent.email_unverified_since is not None  # a GET (a mail scanner) changes nothing

    confirmed = anonymous.post(path)
    assert confirmed.status_code == 302 and confirmed["Location"] == "/login/"
    new_parent.refresh_from_db()
    assert new_parent.email_unverified_since is None
    event = AuditEvent.objects.get(action=AuditAction.EMAIL_VERIFIED)
    assert event.observer == new_parent and event.root_account == root_account
    assert "Confirm your e-mail address" not in web.get("/observing/").content.decode()

    # Used once: the second try is refused like a forged one.
    again = anonymous.post(path)
    assert again.status_code == 200 and "This link does not work" in again.content.decode()
    assert AuditEvent.objects.filter(action=AuditAction.EMAIL_VERIFIED).count() == 1


def test_a_forged_link_or_another_schools_host_confirms_nothing(
    web, new_parent, other_root_account
):
    path = _verify_path(mail.outbox[0])
    uid = path.split("/")[2]
    shown = Client(HTTP_HOST=HOST).get(f"/verify-email/{uid}/bad-token/")
    assert "This link does not work" in shown.content.decode()
    forged = Client(HTTP_HOST=HOST).post(f"/verify-email/{uid}/bad-token/")
    assert forged.status_code == 200 and "This link does not work" in forged.content.decode()
    elsewhere = Client(HTTP_HOST=OTHER_HOST).post(path)
    assert elsewhere.status_code == 200 and "This link does not work" in elsewhere.content.decode()
    new_parent.refresh_from_db()
    assert new_parent.email_unverified_since is not None
    assert not AuditEvent.objects.filter(action=AuditAction.EMAIL_VERIFIED).exists()


def test_sending_again_is_limited(web, new_parent, settings):
    settings.OBSERVERS_RESET_REQUESTS = 2
    for _ in range(2):
        response = web.post("/verify-email/resend/")
        assert response.status_code == 302
    assert web.post("/verify-email/resend/").status_code == 429
    assert len(mail.outbox) == 3  # sign-up's own e-mail is not counted
    assert web.get("/verify-email/resend/").status_code == 405


def test_resending_needs_a_signed_in_person(web, root_account):
    response = Client(HTTP_HOST=HOST).post("/verify-email/resend/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert mail.outbox == []


def test_an_unverified_parent_still_links_with_codes_but_gets_no_notification_emails(
    web, new_parent, root_account, make_student, issue_code
):
    second = make_student("Ben Student")
    web.post("/observing/add/", {"code": issue_code(second, root_account).plaintext})
    assert web.post("/observing/add/confirm/", {"confirm": "1"}).status_code == 302
    assert ObservationLink.objects.active().filter(observer=new_parent).count() == 2
    staff_link_student = make_student("Cy Student")
    link_observer(
        observer=new_parent,
        student=staff_link_student,
        root_account=root_account,
        actor=Actor.system(),
        source=LinkSource.ADMIN,
    )
    notifications.plan_all_pending()
    assert not EmailNotification.objects.filter(recipient=new_parent).exists()

    # Once confirmed, the next change reaches the parent.
    user = User.objects.get(pk=new_parent.pk)
    token = verification.token_generator.make_token(user)
    verification.verify_email(user=user, token=token, root_account=root_account, actor=Actor(None))
    third = make_student("Di Student")
    link_observer(
        observer=user,
        student=third,
        root_account=root_account,
        actor=Actor.system(),
        source=LinkSource.ADMIN,
    )
    notifications.plan_all_pending()
    assert EmailNotification.objects.filter(recipient=user).count() == 1


def test_sign_up_refuses_a_password_like_the_parents_name(web, student, root_account, issue_code):
    code = issue_code(student, root_account).plaintext
    response = _sign_up(
        web,
        code,
        name="Patricia Newparent",
        password1="Patricia Newparent",
        password2="Patricia Newparent",
    )
    assert response.status_code == 200
    assert "The password is too similar to the name." in response.content.decode()
    assert not User.objects.filter(name="Patricia Newparent").exists()
    assert mail.outbox == []
