import pytest

from linking.models import AuditEvent, PairingCode
from linking.services import links as link_service
from linking.services.context import Actor
from linking.services.pairing import normalize_code

pytestmark = pytest.mark.django_db


def test_pairing_page_lists_codes_and_observers(
    signed_in, student, parent, root_account, issue_code
):
    link_service.link_observer(
        observer=parent, student=student, root_account=root_account, actor=Actor.system()
    )
    issued = issue_code(student, root_account)
    response = signed_in(student).get("/pairing/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Pat Parent" in html
    assert list(response.context["codes"]) == [issued.pairing_code]
    assert issued.plaintext not in html and issued.plaintext.replace("-", "") not in html


def test_student_creates_a_code_shown_once_with_qr(signed_in, student, root_account):
    web = signed_in(student)
    response = web.post("/pairing/codes/")
    assert response.status_code == 302 and response["Location"] == "/pairing/codes/new/"
    code = PairingCode.objects.get()
    assert code.student == student and code.workflow_state == "active"
    page = web.get("/pairing/codes/new/")
    assert page.status_code == 200
    plaintext = page.context["plaintext"]
    assert len(plaintext) == 9 and plaintext[4] == "-"
    assert normalize_code(plaintext) is not None
    html = page.content.decode()
    assert plaintext in html
    assert "<svg" in html and 'class="segno"' in html
    assert f"http://default.test/pair?code={plaintext.replace('-', '')}" in html
    assert AuditEvent.objects.filter(action="pairing_code.issued", source="portal").exists()
    # Shown once: a second visit goes back to the Pairing page.
    assert web.get("/pairing/codes/new/").url == "/pairing/"


def test_create_code_needs_post(signed_in, student):
    assert signed_in(student).get("/pairing/codes/").status_code == 405
    assert not PairingCode.objects.exists()


def test_create_code_when_codes_are_off(signed_in, student, root_account):
    root_account.pairing_codes_enabled = False
    root_account.save()
    web = signed_in(student)
    response = web.post("/pairing/codes/", follow=True)
    assert "Pairing codes are turned off at this school." in response.content.decode()
    assert not PairingCode.objects.exists()


def test_student_revokes_own_code(signed_in, student, root_account, issue_code):
    issued = issue_code(student, root_account)
    web = signed_in(student)
    response = web.post(f"/pairing/codes/{issued.pairing_code.pk}/revoke/")
    assert response.status_code == 302 and response["Location"] == "/pairing/"
    issued.pairing_code.refresh_from_db()
    assert issued.pairing_code.workflow_state == "revoked"
    assert AuditEvent.objects.filter(action="pairing_code.revoked", actor=student).exists()
    again = web.post(f"/pairing/codes/{issued.pairing_code.pk}/revoke/", follow=True)
    assert "That code was already used or revoked." in again.content.decode()


def test_student_cannot_revoke_another_students_code(
    signed_in, student, make_student, root_account, issue_code
):
    other = make_student("Olly Other")
    issued = issue_code(other, root_account)
    response = signed_in(student).post(f"/pairing/codes/{issued.pairing_code.pk}/revoke/")
    assert response.status_code == 404
    issued.pairing_code.refresh_from_db()
    assert issued.pairing_code.workflow_state == "active"


def test_parent_cannot_open_the_pairing_pages(signed_in, parent, student, root_account, issue_code):
    issued = issue_code(student, root_account)
    web = signed_in(parent)
    for response in [
        web.get("/pairing/"),
        web.post("/pairing/codes/"),
        web.get("/pairing/codes/new/"),
        web.post(f"/pairing/codes/{issued.pairing_code.pk}/revoke/"),
    ]:
        assert response.status_code == 403
        assert "This page is for students." in response.content.decode()
    assert PairingCode.objects.get().workflow_state == "active"


def test_student_of_another_school_is_not_a_student_here(
    root_account, other_root_account, make_student
):
    from django.test import Client

    from tests.factories import LoginFactory
    from tests.portal.conftest import BACKEND

    foreign = make_student("Fay Foreign", account=other_root_account)
    LoginFactory(user=foreign, root_account=root_account)
    web = Client(HTTP_HOST="default.test")
    web.force_login(foreign, backend=BACKEND)
    assert web.post("/pairing/codes/").status_code == 403
    assert not PairingCode.objects.exists()
