import pytest
from django.test import Client

from linking.models import (
    AuditEvent,
    Enrollment,
    Login,
    ObservationLink,
    PairingCode,
    SelfRegistration,
    User,
)
from linking.services import registration
from linking.services.context import Actor
from linking.services.errors import FeatureDisabled, InvalidPairingCode
from tests.portal.conftest import HOST

pytestmark = pytest.mark.django_db

INVALID = "That code is not valid. Check it with your student, or ask them for a new one."
PASSWORD = "a-Long-enough-secret-9"


def _signup(client, data):
    """POST the sign-up form and, when it asks "is this your student?", answer yes."""
    response = client.post("/signup/", data)
    if response.status_code == 302 and response["Location"] == "/signup/confirm/":
        return client.post("/signup/confirm/", {"confirm": "1"})
    return response


def _form(codes, email="pat@example.test", **extra):
    data = {
        "name": "Pat Newparent",
        "email": email,
        "password1": PASSWORD,
        "password2": PASSWORD,
        "codes": codes,
    }
    data.update(extra)
    return data


def test_signup_page_prefills_the_code_from_the_qr_link(web, root_account):
    response = web.get("/pair?code=ABCDEFGH")
    assert response.status_code == 200
    html = response.content.decode()
    assert "ABCDEFGH</textarea>" in html
    assert 'href="/login/?next=%2Fpair%3Fcode%3DABCDEFGH"' in html


def test_signing_in_from_the_qr_page_returns_to_the_prefilled_add_form(web, parent):
    from linking.models import Login
    from tests.factories import TEST_PASSWORD

    login_id = Login.objects.get(user=parent).unique_id
    response = web.post(
        "/login/?next=%2Fpair%3Fcode%3DABCDEFGH",
        {"username": login_id, "password": TEST_PASSWORD, "next": "/pair?code=ABCDEFGH"},
    )
    assert response.status_code == 302 and response["Location"] == "/pair?code=ABCDEFGH"
    page = web.get(response["Location"])
    assert 'value="ABCDEFGH"' in page.content.decode()


def test_signup_creates_user_login_link_and_observer_enrollment(
    web, root_account, student, course, issue_code
):
    issued = issue_code(student, root_account)
    typed = issued.plaintext.lower().replace("-", "")
    response = _signup(web, _form(typed))
    assert response.status_code == 302 and response["Location"] == "/observing/"
    parent = User.objects.get(email="pat@example.test")
    login = Login.objects.get(user=parent)
    assert login.root_account == root_account and login.unique_id == "pat@example.test"
    assert login.check_password(PASSWORD)
    link = ObservationLink.objects.active().get(observer=parent, student=student)
    assert link.source == "self_registration" and link.root_account == root_account
    enrollment = Enrollment.objects.get(user=parent, type="observer")
    assert enrollment.course == course and enrollment.associated_user == student
    assert PairingCode.objects.get().workflow_state == "redeemed"
    # Signed in, and the page shows the student with the course.
    page = web.get("/observing/")
    assert page.context["user"] == parent
    assert "Sam Student" in page.content.decode() and "Biology 101" in page.content.decode()


def test_signup_with_several_codes_links_every_student(web, root_account, make_student, issue_code):
    first, second = make_student("Ann Kid"), make_student("Ben Kid")
    codes = (
        f"{issue_code(first, root_account).plaintext}\n{issue_code(second, root_account).plaintext}"
    )
    response = _signup(web, _form(codes))
    assert response.status_code == 302
    parent = User.objects.get(email="pat@example.test")
    assert set(
        ObservationLink.objects.active().filter(observer=parent).values_list("student", flat=True)
    ) == {first.pk, second.pk}


def test_one_bad_code_among_several_creates_nothing_and_consumes_nothing(
    web, root_account, make_student, issue_code
):
    good = issue_code(make_student("Ann Kid"), root_account)
    users_before = User.objects.count()
    response = _signup(web, _form(f"{good.plaintext}, ZZZZ-ZZZZ"))
    assert response.status_code == 200
    assert f"ZZZZ-ZZZZ: {INVALID}" in response.content.decode()
    assert User.objects.count() == users_before
    assert not Login.objects.filter(unique_id="pat@example.test").exists()
    assert not ObservationLink.objects.exists()
    assert not Enrollment.objects.filter(type="observer").exists()
    assert PairingCode.objects.get().workflow_state == "active"
    # The good code still works afterwards.
    response = _signup(web, _form(good.plaintext))
    assert response.status_code == 302
    assert PairingCode.objects.get().workflow_state == "redeemed"


def test_used_code_gets_the_one_clear_message(web, root_account, student, parent, issue_code):
    issued = issue_code(student, root_account)
    registration_actor = Actor(user=parent)
    from linking.services.pairing import redeem_pairing_code

    redeem_pairing_code(
        code=issued.plaintext, observer=parent, root_account=root_account, actor=registration_actor
    )
    response = _signup(web, _form(issued.plaintext))
    assert response.status_code == 200
    assert INVALID in response.content.decode()
    assert not User.objects.filter(email="pat@example.test").exists()


def test_code_of_another_school_is_not_redeemable_here(
    web, root_account, other_root_account, make_student, issue_code
):
    foreign = make_student("Fay Foreign", account=other_root_account)
    issued = issue_code(foreign, other_root_account)
    response = _signup(web, _form(issued.plaintext))
    assert response.status_code == 200
    assert INVALID in response.content.decode()
    assert not User.objects.filter(email="pat@example.test").exists()
    assert PairingCode.objects.get().workflow_state == "active"


def test_duplicate_login_id_is_a_form_error(web, root_account, student, issue_code, make_user):
    existing = make_user("Already Here", root_account)
    taken = Login.objects.get(user=existing).unique_id
    issued = issue_code(student, root_account)
    response = _signup(web, _form(issued.plaintext, email=taken.upper()))
    assert response.status_code == 200
    assert "There is already an account with this address here" in response.content.decode()
    assert User.objects.filter(email=taken.upper()).count() == 0
    assert PairingCode.objects.get().workflow_state == "active"


def test_password_rules_and_confirmation_are_checked(web, root_account, student, issue_code):
    issued = issue_code(student, root_account)
    response = web.post(
        "/signup/", _form(issued.plaintext, password1="12345678", password2="12345678")
    )
    assert response.status_code == 200
    assert "This password is too common." in response.content.decode()
    response = _signup(web, _form(issued.plaintext, password2="different-Secret-1"))
    assert "The two passwords differ." in response.content.decode()
    assert not User.objects.filter(email="pat@example.test").exists()


def test_empty_and_too_many_codes_are_form_errors(web, root_account):
    response = _signup(web, _form(" \n , "))
    assert "Enter at least one pairing code." in response.content.decode()
    response = _signup(web, _form(",".join(f"AAAA-AAA{n}" for n in range(6))))
    assert "Enter at most 5 pairing codes." in response.content.decode()
    assert not User.objects.filter(email="pat@example.test").exists()


def test_signup_is_closed_when_self_registration_is_none(web, root_account, student, issue_code):
    issued = issue_code(student, root_account)
    root_account.self_registration = SelfRegistration.NONE
    root_account.save()
    assert web.get("/signup/").status_code == 403
    response = _signup(web, _form(issued.plaintext))
    assert response.status_code == 403
    assert "Sign-up is closed" in response.content.decode()
    assert not User.objects.filter(email="pat@example.test").exists()
    assert PairingCode.objects.get().workflow_state == "active"


def test_signup_open_to_all_works(web, root_account, student, issue_code):
    root_account.self_registration = SelfRegistration.ALL
    root_account.save()
    response = _signup(web, _form(issue_code(student, root_account).plaintext))
    assert response.status_code == 302


def test_too_many_failed_codes_show_the_rate_limit_page(web, root_account, settings):
    settings.OBSERVERS_RATE_LIMIT_ADDRESS_FAILURES = 3
    for _ in range(3):
        assert _signup(web, _form("WRNG-CODE")).status_code == 200
    response = _signup(web, _form("WRNG-CODE"))
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "Too many tries. Try again in 15 minutes." in response.content.decode()
    assert not User.objects.filter(email="pat@example.test").exists()


def test_signed_in_person_is_sent_home_from_signup(signed_in, parent):
    assert signed_in(parent).get("/signup/").url == "/"


def test_register_observer_service_refuses_when_closed(root_account, system_actor):
    root_account.self_registration = SelfRegistration.NONE
    with pytest.raises(FeatureDisabled):
        registration.register_observer(
            name="X",
            email="x@example.test",
            password=PASSWORD,
            codes=["ABCD-EFGH"],
            root_account=root_account,
            actor=system_actor,
        )
    assert not User.objects.exists()


def test_register_observer_service_names_the_refused_code(
    root_account, student, issue_code, system_actor
):
    good = issue_code(student, root_account)
    with pytest.raises(InvalidPairingCode) as refused:
        registration.register_observer(
            name="X",
            email="x@example.test",
            password=PASSWORD,
            codes=[good.plaintext, "NOPE-NOPE"],
            root_account=root_account,
            actor=system_actor,
        )
    assert refused.value.position == 1
    assert not User.objects.filter(email="x@example.test").exists()
    assert not AuditEvent.objects.filter(action="pairing_code.redeemed").exists()
    assert PairingCode.objects.get().workflow_state == "active"


def test_signup_on_another_host_uses_that_school(root_account, other_root_account, make_student):
    from linking.services.pairing import issue_pairing_code

    foreign = make_student("Fay Foreign", account=other_root_account)
    issued = issue_pairing_code(
        student=foreign, root_account=other_root_account, actor=Actor(user=foreign)
    )
    there = Client(HTTP_HOST="external.test")
    assert _signup(there, _form(issued.plaintext)).status_code == 302
    assert Login.objects.get(unique_id="pat@example.test").root_account == other_root_account
    assert (
        Client(HTTP_HOST=HOST)
        .post("/login/", {"username": "pat@example.test", "password": PASSWORD})
        .status_code
        == 200
    )
