"""Age of majority and the student's voice: pending links, approving, declining, ending."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from linking.models import (
    AuditAction,
    AuditEvent,
    EmailNotification,
    Enrollment,
    EnrollmentType,
    LinkEnd,
    ObservationLink,
)
from linking.services import notifications, rules, safeguarding
from linking.services.context import Actor
from linking.services.errors import NotAuthorized
from linking.services.links import link_observer, unlink_observer
from linking.services.pairing import issue_pairing_code, redeem_pairing_code
from linking.services.tokens import issue_access_token
from tests.rules.conftest import HOST, years_ago

pytestmark = pytest.mark.django_db


def _adult(w):
    w.student.birth_date = years_ago(18)
    w.student.save()


def _web(user):
    client = Client(HTTP_HOST=HOST)
    client.force_login(user, backend="linking.auth_backends.LoginBackend")
    return client


def _enrolled(observer, student) -> bool:
    return (
        Enrollment.objects.filter(
            user=observer, associated_user=student, type=EnrollmentType.OBSERVER
        )
        .exclude(workflow_state="deleted")
        .exists()
    )


def _pending_link(w):
    _adult(w)
    link, _ = link_observer(
        observer=w.parent, student=w.student, root_account=w.root, actor=Actor.system()
    )
    assert link.workflow_state == "pending"
    return link


@pytest.mark.parametrize(
    ("age", "birth_years", "adult"),
    [(18, 18, True), (18, 17, False), (21, 20, False), (None, 40, False)],
)
def test_age_of_majority_is_a_school_setting(w, age, birth_years, adult):
    w.root.age_of_majority = age
    w.root.save()
    w.student.birth_date = years_ago(birth_years)
    w.student.save()
    assert rules.is_adult(w.student, w.root) is adult
    link, _ = link_observer(
        observer=w.parent, student=w.student, root_account=w.root, actor=Actor.system()
    )
    assert link.workflow_state == ("pending" if adult else "active")


def test_a_student_without_a_birth_date_is_not_an_adult(w):
    assert w.student.birth_date is None
    assert not rules.is_adult(w.student, w.root)


def test_pending_link_is_invisible_to_canvas_lists_and_mails_the_student(w):
    _pending_link(w)
    assert not _enrolled(w.parent, w.student)
    api = APIClient(HTTP_HOST=HOST)
    api.credentials(
        HTTP_AUTHORIZATION=f"Bearer {issue_access_token(user=w.parent, actor=Actor.system())[1]}"
    )
    assert api.get("/api/v1/users/self/observees").json() == []
    notifications.plan_all_pending()
    email = EmailNotification.objects.get(recipient=w.student)
    assert email.kind == EmailNotification.Kind.APPROVAL_TO_STUDENT
    notifications.render_email(email)
    assert "Pat Parent asks to observe you" in email.subject


def test_student_approves_on_their_page(w):
    link = _pending_link(w)
    web = _web(w.student)
    page = web.get("/pairing/").content.decode()
    assert "Waiting for your approval" in page and "Approve Pat Parent" in page
    response = web.post(f"/pairing/observers/{link.pk}/approve/")
    assert response.status_code == 302
    link.refresh_from_db()
    assert link.workflow_state == "active"
    assert _enrolled(w.parent, w.student)
    event = AuditEvent.objects.filter(link=link).order_by("-id").first()
    assert (event.action, event.actor, event.detail["approved_by_student"]) == (
        AuditAction.LINK_CREATED,
        w.student,
        True,
    )


def test_student_approves_through_the_apis_put(w):
    link = _pending_link(w)
    api = APIClient(HTTP_HOST=HOST)
    api.credentials(
        HTTP_AUTHORIZATION=f"Bearer {issue_access_token(user=w.student, actor=Actor.system())[1]}"
    )
    response = api.put(f"/api/v1/users/{w.parent.pk}/observees/{w.student.pk}")
    assert response.status_code == 200, response.content
    assert response.json()["id"] == w.student.pk
    link.refresh_from_db()
    assert link.workflow_state == "active"
    # Nothing pending: the student's PUT is an ordinary PUT, refused to a non-admin.
    other = APIClient(HTTP_HOST=HOST)
    other.credentials(
        HTTP_AUTHORIZATION=f"Bearer {issue_access_token(user=w.student, actor=Actor.system())[1]}"
    )
    assert other.put(f"/api/v1/users/{w.parent.pk}/observees/{w.student.pk}").status_code == 401


def test_student_declines_and_the_observer_cannot_silently_relink(w):
    link = _pending_link(w)
    web = _web(w.student)
    assert web.post(f"/pairing/observers/{link.pk}/decline/").status_code == 302
    link.refresh_from_db()
    assert (link.workflow_state, link.end_reason) == ("deleted", LinkEnd.DECLINED)
    # Even once the student's birth date is gone, the decline stands.
    w.student.birth_date = None
    w.student.save()
    again, _ = link_observer(
        observer=w.parent, student=w.student, root_account=w.root, actor=Actor.system()
    )
    assert again.pk == link.pk and again.workflow_state == "pending"


def test_a_code_the_adult_student_issued_is_their_consent(w):
    _adult(w)
    code = issue_pairing_code(student=w.student, root_account=w.root, actor=Actor(user=w.student))
    _student, links = redeem_pairing_code(
        code=code.plaintext, observer=w.parent, root_account=w.root, actor=Actor(user=w.parent)
    )
    assert [link.workflow_state for link in links] == ["active"]
    assert _enrolled(w.parent, w.student)


def test_minor_ends_a_link_only_where_the_school_allows(w):
    link, _ = link_observer(
        observer=w.parent, student=w.student, root_account=w.root, actor=Actor.system()
    )
    web = _web(w.student)
    page = web.get("/pairing/").content.decode()
    assert "Pat Parent" in page and "End Pat Parent" not in page
    assert web.post(f"/pairing/observers/{link.pk}/end/").status_code == 403
    with pytest.raises(NotAuthorized):
        safeguarding.end_link_as_student(
            link_id=link.pk, student=w.student, root_account=w.root, actor=Actor(user=w.student)
        )
    link.refresh_from_db()
    assert link.workflow_state == "active"

    w.root.students_may_end_links = True
    w.root.save()
    assert "End Pat Parent" in web.get("/pairing/").content.decode()
    assert web.post(f"/pairing/observers/{link.pk}/end/").status_code == 302
    link.refresh_from_db()
    assert (link.workflow_state, link.end_reason) == ("deleted", LinkEnd.STUDENT)
    assert not _enrolled(w.parent, w.student)
    deleted = AuditEvent.objects.get(link=link, action=AuditAction.LINK_DELETED)
    assert (deleted.actor, deleted.detail) == (w.student, {"reason": "student"})


def test_adult_always_may_end_and_sees_kind_and_since(w):
    link, _ = link_observer(
        observer=w.parent,
        student=w.student,
        root_account=w.root,
        actor=Actor.system(),
        kind="guardian",
    )
    _adult(w)
    page = _web(w.student).get("/pairing/").content.decode()
    assert "guardian" in page and "End Pat Parent" in page
    safeguarding.end_link_as_student(
        link_id=link.pk, student=w.student, root_account=w.root, actor=Actor(user=w.student)
    )
    assert ObservationLink.objects.get(pk=link.pk).workflow_state == "deleted"


def test_after_the_student_ended_it_only_their_fresh_code_relinks_at_once(w, frozen_now):
    w.root.students_may_end_links = True
    w.root.save()
    link, _ = link_observer(
        observer=w.parent, student=w.student, root_account=w.root, actor=Actor.system()
    )
    safeguarding.end_link_as_student(
        link_id=link.pk, student=w.student, root_account=w.root, actor=Actor(user=w.student)
    )
    frozen_now.advance(minutes=1)
    staff_code = issue_pairing_code(student=w.student, root_account=w.root, actor=Actor.system())
    redeem_pairing_code(
        code=staff_code.plaintext,
        observer=w.parent,
        root_account=w.root,
        actor=Actor(user=w.parent),
    )
    link.refresh_from_db()
    assert link.workflow_state == "pending"
    # The observer withdraws; the student's ending is still remembered.
    unlink_observer(link=link, actor=Actor(user=w.parent))
    link.refresh_from_db()
    assert link.end_reason == LinkEnd.STUDENT
    again = issue_pairing_code(student=w.student, root_account=w.root, actor=Actor.system())
    redeem_pairing_code(
        code=again.plaintext, observer=w.parent, root_account=w.root, actor=Actor(user=w.parent)
    )
    link.refresh_from_db()
    assert link.workflow_state == "pending"
    unlink_observer(link=link, actor=Actor(user=w.parent))
    frozen_now.advance(minutes=1)
    own = issue_pairing_code(student=w.student, root_account=w.root, actor=Actor(user=w.student))
    redeem_pairing_code(
        code=own.plaintext, observer=w.parent, root_account=w.root, actor=Actor(user=w.parent)
    )
    link.refresh_from_db()
    assert link.workflow_state == "active"


def test_observer_sees_and_withdraws_a_pending_request(w):
    link = _pending_link(w)
    web = _web(w.parent)
    page = web.get("/observing/").content.decode()
    assert "Awaiting the student" in page and "Sam Student" in page
    assert web.post(f"/observing/{link.pk}/remove/").status_code == 302
    link.refresh_from_db()
    assert link.workflow_state == "deleted"


def test_a_second_request_does_not_activate_what_the_student_ended(w):
    """Pending after the student ended it; staff or the SIS linking again keep it pending."""
    w.root.students_may_end_links = True
    w.root.save()
    link, _ = link_observer(
        observer=w.parent, student=w.student, root_account=w.root, actor=Actor.system()
    )
    safeguarding.end_link_as_student(
        link_id=link.pk, student=w.student, root_account=w.root, actor=Actor(user=w.student)
    )
    for _attempt in range(2):
        again, _ = link_observer(
            observer=w.parent,
            student=w.student,
            root_account=w.root,
            actor=Actor(user=w.staff, source="admin"),
            source="admin",
        )
        assert again.workflow_state == "pending"
    assert not _enrolled(w.parent, w.student)


def test_the_new_page_parts_and_the_approval_e_mail_are_in_spanish(w):
    link = _pending_link(w)
    w.student.locale = "es"
    w.student.save()
    web = Client(HTTP_HOST=HOST, HTTP_ACCEPT_LANGUAGE="es")
    web.force_login(w.student, backend="linking.auth_backends.LoginBackend")
    page = web.get("/pairing/").content.decode()
    assert "Pendientes de su aprobación" in page and "Aprobar a Pat Parent" in page
    notifications.plan_all_pending()
    email = notifications.render_email(EmailNotification.objects.get(recipient=w.student))
    assert email.subject == "Pat Parent pide observarle"
    assert link.workflow_state == "pending"
