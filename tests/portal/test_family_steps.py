"""Sign-up asks "is this your student?" first; codes told apart; "you already observe"; focus."""

import pytest

from linking.models import AuditEvent, Login, ObservationLink, PairingCode, User
from linking.services import links as link_service
from linking.services.context import Actor
from linking.services.pairing import redeem_pairing_code
from linking.views import PENDING_SIGNUP_KEY

pytestmark = pytest.mark.django_db

PASSWORD = "a-Long-enough-secret-9"


def _form(codes, email="pat@example.test"):
    return {
        "name": "Pat Newparent",
        "email": email,
        "password1": PASSWORD,
        "password2": PASSWORD,
        "codes": codes,
    }


def test_sign_up_shows_the_students_and_creates_nothing_before_yes(
    web, root_account, make_student, issue_code
):
    ann, ben = make_student("Ann Kid"), make_student("Ben Kid")
    codes = [issue_code(ann, root_account), issue_code(ben, root_account)]
    response = web.post("/signup/", _form("\n".join(c.plaintext for c in codes)))
    assert response.status_code == 302 and response["Location"] == "/signup/confirm/"
    assert not User.objects.filter(email="pat@example.test").exists()
    assert set(PairingCode.objects.values_list("workflow_state", flat=True)) == {"active"}
    # Only a hash of the password waits for the answer.
    pending = web.session[PENDING_SIGNUP_KEY]
    assert PASSWORD not in str(pending) and pending["password_hash"].startswith("md5$")

    page = web.get("/signup/confirm/")
    html = page.content.decode()
    assert page.status_code == 200 and "These codes belong to:" in html
    assert "Ann Kid" in html and "Ben Kid" in html

    done = web.post("/signup/confirm/", {"confirm": "1"})
    assert done.status_code == 302 and done["Location"] == "/observing/"
    parent = User.objects.get(email="pat@example.test")
    assert Login.objects.get(user=parent).check_password(PASSWORD)
    assert set(
        ObservationLink.objects.active().filter(observer=parent).values_list("student", flat=True)
    ) == {ann.pk, ben.pk}
    assert PENDING_SIGNUP_KEY not in web.session


def test_no_on_the_confirm_step_creates_nothing(web, root_account, student, issue_code):
    issued = issue_code(student, root_account)
    web.post("/signup/", _form(issued.plaintext))
    response = web.post("/signup/confirm/", {"cancel": "1"})
    assert response.status_code == 302 and response["Location"] == "/signup/"
    assert not User.objects.filter(email="pat@example.test").exists()
    assert PairingCode.objects.get().workflow_state == "active"
    assert web.get("/signup/confirm/")["Location"] == "/signup/"


def test_a_code_used_between_the_steps_sends_the_parent_back_to_the_form(
    web, root_account, student, parent, issue_code
):
    issued = issue_code(student, root_account)
    web.post("/signup/", _form(issued.plaintext))
    redeem_pairing_code(
        code=issued.plaintext, observer=parent, root_account=root_account, actor=Actor(user=parent)
    )
    response = web.post("/signup/confirm/", {"confirm": "1"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "That code is not valid" in html and 'value="pat@example.test"' in html
    assert not User.objects.filter(email="pat@example.test").exists()


def test_the_confirm_step_does_not_travel_to_another_school(
    web, root_account, other_root_account, student, issue_code
):
    from django.test import Client

    issued = issue_code(student, root_account)
    web.post("/signup/", _form(issued.plaintext))
    other = Client(HTTP_HOST="external.test")
    other.cookies = web.cookies
    response = other.post("/signup/confirm/", {"confirm": "1"})
    assert response.status_code == 302 and response["Location"] == "/signup/"
    assert not User.objects.filter(email="pat@example.test").exists()


def test_a_code_for_a_student_already_observed_says_so_and_stays_unused(
    signed_in, parent, student, root_account, issue_code
):
    link_service.link_observer(
        observer=parent, student=student, root_account=root_account, actor=Actor.system()
    )
    issued = issue_code(student, root_account)
    events = AuditEvent.objects.count()
    response = signed_in(parent).post("/observing/add/", {"code": issued.plaintext})
    assert response.status_code == 200
    html = response.content.decode()
    assert "You already observe Sam Student. This code was not used." in html
    assert PairingCode.objects.get().workflow_state == "active"
    assert AuditEvent.objects.count() == events


def test_codes_made_in_the_same_minute_are_told_apart(
    signed_in, student, root_account, issue_code, frozen_now
):
    first, second = issue_code(student, root_account), issue_code(student, root_account)
    html = signed_in(student).get("/pairing/").content.decode()
    for issued in (first, second):
        hint = issued.plaintext[-2:]
        assert issued.pairing_code.code_hint == hint
        assert f"…{hint}" in html
        assert f"Revoke the code ending in {hint}" in html
    assert first.plaintext not in html and second.plaintext not in html


def test_after_an_error_the_summary_takes_the_focus(web, signed_in, parent):
    page = web.post("/login/", {"username": "x@y.test", "password": "nope"}).content.decode()
    summary = page.index('role="alert" tabindex="-1" autofocus')
    assert summary < page.index('name="username"')
    added = signed_in(parent).post("/observing/add/", {"code": "ZZZZ-ZZZZ"}).content.decode()
    assert 'role="alert" tabindex="-1" autofocus' in added
