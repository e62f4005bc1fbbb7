import pytest
from django.test import Client

from linking.models import AuditEvent, Enrollment, ObservationLink, PairingCode
from linking.services import links as link_service
from linking.services.context import Actor
from linking.views import PENDING_CODE_KEY
from tests import factories
from tests.portal.conftest import BACKEND, OTHER_HOST

pytestmark = pytest.mark.django_db

INVALID = "That code is not valid. Check it with your student, or ask them for a new one."


def _link(parent, student, root_account):
    link, _ = link_service.link_observer(
        observer=parent, student=student, root_account=root_account, actor=Actor.system()
    )
    return link


def test_observing_page_lists_linked_students_with_their_courses(
    signed_in, parent, student, make_student, root_account, other_root_account
):
    _link(parent, student, root_account)
    unlinked = make_student("Una Unlinked")
    removed = make_student("Rita Removed")
    link_service.unlink_observer(link=_link(parent, removed, root_account), actor=Actor.system())
    response = signed_in(parent).get("/observing/")
    assert response.status_code == 200
    html = response.content.decode()
    # The removed student may be named in a notification below; the list ends first.
    students_section = html.split('id="students-heading"', 1)[1].split("</section>", 1)[0]
    assert "Sam Student" in students_section and "Biology 101" in students_section
    assert unlinked.name not in html and removed.name not in students_section
    assert [link.student for link, _ in response.context["students"]] == [student]


def test_links_of_another_school_are_not_shown(
    signed_in, parent, root_account, other_root_account, make_student
):
    factories.LoginFactory(user=parent, root_account=other_root_account)
    foreign = make_student("Fay Foreign", account=other_root_account)
    _link(parent, foreign, other_root_account)
    response = signed_in(parent).get("/observing/")
    assert "Fay Foreign" not in response.content.decode()


def test_student_cannot_open_the_observing_pages(signed_in, student, parent, root_account):
    link = _link(parent, student, root_account)
    web = signed_in(student)
    for url in ["/observing/", "/observing/add/", f"/observing/{link.pk}/remove/"]:
        response = web.get(url)
        assert response.status_code == 403
        assert "This page is for parents and guardians." in response.content.decode()
    assert web.post("/observing/add/", {"code": "ABCD-EFGH"}).status_code == 403
    assert ObservationLink.objects.active().count() == 1


def test_add_student_confirm_step_then_link(
    signed_in, parent, make_student, root_account, course, issue_code
):
    second = make_student("Tia Second")
    issued = issue_code(second, root_account)
    web = signed_in(parent)
    typed = issued.plaintext.lower().replace("-", "")
    response = web.post("/observing/add/", {"code": typed})
    assert response.status_code == 302 and response["Location"] == "/observing/add/confirm/"
    assert typed not in response["Location"].lower()
    # Nothing linked and nothing consumed before the parent confirms.
    assert not ObservationLink.objects.exists()
    assert PairingCode.objects.get().workflow_state == "active"
    confirm = web.get("/observing/add/confirm/")
    assert confirm.status_code == 200
    assert "Tia Second" in confirm.content.decode()
    assert 'name="code"' not in confirm.content.decode()
    response = web.post("/observing/add/confirm/", {"confirm": "1"})
    assert response.status_code == 302 and response["Location"] == "/observing/"
    link = ObservationLink.objects.active().get(observer=parent, student=second)
    assert link.source == "pairing_code"
    assert Enrollment.objects.filter(user=parent, type="observer", associated_user=second).exists()
    assert PairingCode.objects.get().workflow_state == "redeemed"
    assert PENDING_CODE_KEY not in web.session
    assert AuditEvent.objects.filter(action="pairing_code.redeemed", source="portal").exists()
    assert "You are now observing Tia Second." in web.get("/observing/").content.decode()


def test_cancel_on_the_confirm_step_changes_nothing(
    signed_in, parent, student, root_account, issue_code
):
    issue_code(student, root_account)
    web = signed_in(parent)
    code = issue_code(student, root_account).plaintext
    web.post("/observing/add/", {"code": code})
    response = web.post("/observing/add/confirm/", {"cancel": "1"})
    assert response.status_code == 302
    assert not ObservationLink.objects.exists()
    assert not PairingCode.objects.filter(workflow_state="redeemed").exists()
    assert web.get("/observing/add/confirm/").url == "/observing/add/"


def test_wrong_code_gets_the_one_clear_message(signed_in, parent, student, root_account):
    response = signed_in(parent).post("/observing/add/", {"code": "ABCD-EFGH"})
    assert response.status_code == 200
    assert INVALID in response.content.decode()
    assert AuditEvent.objects.filter(action="pairing_code.failed").count() == 1


def test_expired_code_gets_the_one_clear_message(
    signed_in, parent, student, root_account, issue_code, frozen_now
):
    issued = issue_code(student, root_account)
    frozen_now.advance(hours=root_account.pairing_code_lifetime_hours + 1)
    response = signed_in(parent).post("/observing/add/", {"code": issued.plaintext})
    assert INVALID in response.content.decode()
    assert not ObservationLink.objects.exists()


def test_code_used_between_the_steps_is_refused_on_confirm(
    signed_in, parent, student, root_account, issue_code, make_user
):
    issued = issue_code(student, root_account)
    web = signed_in(parent)
    web.post("/observing/add/", {"code": issued.plaintext})
    other_parent = make_user("Quick Parent", root_account)
    Client(HTTP_HOST="default.test").force_login(other_parent, backend=BACKEND)
    from linking.services.pairing import redeem_pairing_code

    redeem_pairing_code(
        code=issued.plaintext,
        observer=other_parent,
        root_account=root_account,
        actor=Actor(user=other_parent),
    )
    response = web.post("/observing/add/confirm/", {"confirm": "1"})
    assert response.status_code == 200
    assert INVALID in response.content.decode()
    assert not ObservationLink.objects.filter(observer=parent).exists()


def test_code_of_another_school_cannot_be_added_here(
    signed_in, parent, other_root_account, make_student, issue_code
):
    foreign = make_student("Fay Foreign", account=other_root_account)
    issued = issue_code(foreign, other_root_account)
    response = signed_in(parent).post("/observing/add/", {"code": issued.plaintext})
    assert INVALID in response.content.decode()
    assert PairingCode.objects.get().workflow_state == "active"


def test_pending_code_does_not_travel_to_another_school(
    parent, student, root_account, other_root_account, issue_code
):
    factories.LoginFactory(user=parent, root_account=other_root_account)
    here = Client(HTTP_HOST="default.test")
    here.force_login(parent, backend=BACKEND)
    here.post("/observing/add/", {"code": issue_code(student, root_account).plaintext})
    # Same session cookie presented on the other school's host.
    there = Client(HTTP_HOST=OTHER_HOST)
    there.cookies = here.cookies
    response = there.post("/observing/add/confirm/", {"confirm": "1"})
    assert response.status_code == 302 and response["Location"] == "/observing/add/"
    assert not ObservationLink.objects.exists()


def test_too_many_wrong_codes_show_the_rate_limit_page(signed_in, parent, root_account, settings):
    settings.OBSERVERS_RATE_LIMIT_FAILURES = 2
    web = signed_in(parent)
    for _ in range(2):
        web.post("/observing/add/", {"code": "WRNG-CODE"})
    response = web.post("/observing/add/", {"code": "WRNG-CODE"})
    assert response.status_code == 429
    minutes = -(-int(response["Retry-After"]) // 60)
    assert f"Too many tries. Try again in {minutes} minutes." in response.content.decode()


def test_qr_landing_page_prefills_the_add_form_for_a_signed_in_parent(signed_in, parent):
    response = signed_in(parent).get("/pair?code=ABCDEFGH")
    assert response.status_code == 200
    assert 'value="ABCDEFGH"' in response.content.decode()
    assert 'action="/observing/add/"' in response.content.decode()


def test_qr_landing_page_refuses_students_politely(signed_in, student):
    response = signed_in(student).get("/pair?code=ABCDEFGH")
    assert response.status_code == 403


def test_remove_student_asks_then_unlinks(signed_in, parent, student, root_account):
    link = _link(parent, student, root_account)
    web = signed_in(parent)
    page = web.get(f"/observing/{link.pk}/remove/")
    assert page.status_code == 200 and "Remove Sam Student?" in page.content.decode()
    assert ObservationLink.objects.active().count() == 1
    response = web.post(f"/observing/{link.pk}/remove/")
    assert response.status_code == 302 and response["Location"] == "/observing/"
    link.refresh_from_db()
    assert link.workflow_state == "deleted"
    assert not Enrollment.objects.live().filter(user=parent, type="observer").exists()
    assert AuditEvent.objects.filter(action="link.deleted", source="portal").exists()


def test_parent_cannot_remove_somebody_elses_link(
    signed_in, parent, student, root_account, make_user
):
    other = make_user("Other Parent", root_account)
    link = _link(other, student, root_account)
    web = signed_in(parent)
    assert web.get(f"/observing/{link.pk}/remove/").status_code == 404
    assert web.post(f"/observing/{link.pk}/remove/").status_code == 404
    link.refresh_from_db()
    assert link.workflow_state == "active"


def test_remove_requires_csrf_token(parent, student, root_account):
    link = _link(parent, student, root_account)
    strict = Client(HTTP_HOST="default.test", enforce_csrf_checks=True)
    strict.force_login(parent, backend=BACKEND)
    assert strict.post(f"/observing/{link.pk}/remove/").status_code == 403
    link.refresh_from_db()
    assert link.workflow_state == "active"


def test_bad_input_never_errors(signed_in, parent, student, root_account):
    web = signed_in(parent)
    assert web.get("/observing/99999999999999999999999/remove/").status_code == 404
    assert web.post("/observing/add/", {"code": "x" * 5000}).status_code == 200
    response = web.post("/observing/add/", {"code": "ÄÖÜ-💥\x00"})
    assert response.status_code == 200
    assert web.get("/pair?code=" + "Z" * 5000).status_code == 200
    student_web = signed_in(student)
    assert student_web.post("/pairing/codes/99999999999999999999999/revoke/").status_code == 404
    assert not ObservationLink.objects.exists()
