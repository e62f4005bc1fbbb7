"""Restrictions (court and no-contact orders): recording ends links, matching, lifting."""

import datetime as dt
import re

import pytest
from django.test import Client

from linking.models import (
    AuditAction,
    AuditEvent,
    AuditSource,
    EmailNotification,
    Enrollment,
    EnrollmentType,
    ObservationLink,
    ObservationRestriction,
)
from linking.services import notifications, rules, safeguarding
from linking.services.context import Actor
from linking.services.errors import InvalidPairingCode, LinkingError, LinkRefused
from linking.services.links import link_observer, restore_link, unlink_observer
from linking.services.pairing import issue_pairing_code, redeem_pairing_code
from tests import factories
from tests.rules.conftest import HOST, REASON

pytestmark = pytest.mark.django_db

INVALID_CODE = "That code is not valid. Check it with your student, or ask them for a new one."


def _staff(w):
    return Actor(user=w.staff, source=AuditSource.ADMIN)


def _restrict(w, **person):
    return safeguarding.record_restriction(
        root_account=w.root, student=w.student, reason=REASON, actor=_staff(w), **person
    )


def _observer_enrollments(observer, student):
    return Enrollment.objects.filter(
        user=observer, associated_user=student, type=EnrollmentType.OBSERVER
    ).exclude(workflow_state="deleted")


def test_recording_ends_the_link_at_once_and_tells_no_reason(w):
    link, _ = link_observer(
        observer=w.parent, student=w.student, root_account=w.root, actor=Actor.system()
    )
    assert _observer_enrollments(w.parent, w.student).exists()

    restriction, ended = _restrict(w, observer=w.parent)

    assert ended == 1
    link.refresh_from_db()
    assert (link.workflow_state, link.end_reason) == ("deleted", "restriction")
    assert not _observer_enrollments(w.parent, w.student).exists()
    deleted = AuditEvent.objects.get(link=link, action=AuditAction.LINK_DELETED)
    assert deleted.detail == {"reason": "restriction"}
    recorded = AuditEvent.objects.get(action=AuditAction.RESTRICTION_RECORDED)
    assert recorded.detail == {"restriction": restriction.pk}
    assert restriction.recorded_by == w.staff
    # The observer is told the link was removed, like any removal, and nothing more.
    notifications.plan_all_pending()
    email = EmailNotification.objects.get(recipient=w.parent)
    notifications.render_email(email)
    assert email.kind == EmailNotification.Kind.LINK_REMOVED_TO_OBSERVER
    for text in (email.subject, email.body_text, email.body_html):
        assert "Secret reason" not in text and "restriction" not in text.lower()


def test_an_e_mail_matches_a_second_account_and_a_login_id(w, make_user):
    _restrict(w, observer_email="PAT@example.test")
    same_email = make_user("Pat Again", w.root, email="pat@example.test")
    by_login = make_user("Pat Login", w.root, email="other@example.test")
    by_login.logins.update(unique_id="Pat@Example.test")
    code_owner = Actor.system()
    for person in (same_email, by_login, w.parent):
        code = issue_pairing_code(student=w.student, root_account=w.root, actor=code_owner)
        with pytest.raises(InvalidPairingCode):
            redeem_pairing_code(
                code=code.plaintext, observer=person, root_account=w.root, actor=Actor(user=person)
            )
    assert not ObservationLink.objects.exists()
    refused = AuditEvent.objects.filter(action=AuditAction.LINK_REFUSED)
    assert refused.count() == 3
    assert {event.detail["rule"] for event in refused} == {rules.RESTRICTION}


def test_a_lifted_or_ended_restriction_no_longer_refuses(w, frozen_now):
    restriction, _ = _restrict(w, observer=w.parent)
    with pytest.raises(LinkRefused):
        link_observer(observer=w.parent, student=w.student, root_account=w.root, actor=_staff(w))
    assert safeguarding.lift_restriction(restriction=restriction, actor=_staff(w))
    assert not safeguarding.lift_restriction(restriction=restriction, actor=_staff(w))
    link, _ = link_observer(
        observer=w.parent, student=w.student, root_account=w.root, actor=_staff(w)
    )
    assert link.workflow_state == "active"
    assert AuditEvent.objects.filter(action=AuditAction.RESTRICTION_LIFTED).count() == 1

    other = factories.UserFactory(name="Olly Other")
    factories.LoginFactory(user=other, root_account=w.root)
    safeguarding.record_restriction(
        root_account=w.root,
        student=w.student,
        observer=other,
        reason=REASON,
        actor=_staff(w),
        ends_at=frozen_now.now + dt.timedelta(days=1),
    )
    with pytest.raises(LinkRefused):
        link_observer(observer=other, student=w.student, root_account=w.root, actor=_staff(w))
    frozen_now.advance(days=1, seconds=1)
    link, _ = link_observer(observer=other, student=w.student, root_account=w.root, actor=_staff(w))
    assert link.workflow_state == "active"


def test_a_restriction_binds_its_own_school_only(w, other_root_account, make_user):
    both = make_user("Both Schools", w.root, other_root_account)
    student_b = w.student
    factories.LoginFactory(user=student_b, root_account=other_root_account)
    safeguarding.record_restriction(
        root_account=w.root, student=student_b, observer=both, reason=REASON, actor=_staff(w)
    )
    link, _ = link_observer(
        observer=both, student=student_b, root_account=other_root_account, actor=Actor.system()
    )
    assert link.workflow_state == "active"
    with pytest.raises(LinkRefused):
        link_observer(observer=both, student=student_b, root_account=w.root, actor=Actor.system())


def test_restoring_a_removed_link_is_refused_too(w):
    link, _ = link_observer(
        observer=w.parent, student=w.student, root_account=w.root, actor=Actor.system()
    )
    unlink_observer(link=link, actor=Actor.system())
    _restrict(w, observer=w.parent)
    with pytest.raises(LinkRefused) as refused:
        restore_link(link=link, actor=_staff(w))
    assert "Secret" not in refused.value.message
    link.refresh_from_db()
    assert link.workflow_state == "deleted"
    event = AuditEvent.objects.get(action=AuditAction.LINK_REFUSED)
    assert (event.observer, event.student, event.source) == (w.parent, w.student, "admin")


def test_a_refused_code_counts_as_a_wrong_code_on_the_page(w):
    """The page's answer (with the tries left) is the same for a wrong code and a restriction."""
    _restrict(w, observer=w.parent)
    code = issue_pairing_code(student=w.student, root_account=w.root, actor=Actor.system())
    web = Client(HTTP_HOST=HOST, REMOTE_ADDR="10.1.1.1")
    web.force_login(w.parent, backend="linking.auth_backends.LoginBackend")
    wrong = web.post("/observing/add/", {"code": "ZZZZ-ZZZZ"}).content.decode()
    refused = web.post("/observing/add/", {"code": code.plaintext}).content.decode()
    assert INVALID_CODE in wrong and INVALID_CODE in refused
    # Both tries counted: the second answer has one try fewer left.
    left = [int(re.search(r"try (\d+) more time", page).group(1)) for page in (wrong, refused)]
    assert left[1] == left[0] - 1
    assert "Sam Student" not in refused
    assert ObservationLink.objects.count() == 0
    code.pairing_code.refresh_from_db()
    assert code.pairing_code.workflow_state == "active"


def test_the_rules_of_a_restriction_record(w):
    for person, reason in (({}, REASON), ({"observer": w.parent}, " ")):
        with pytest.raises(LinkingError):
            safeguarding.record_restriction(
                root_account=w.root, student=w.student, reason=reason, actor=_staff(w), **person
            )
    with pytest.raises(LinkingError):
        _restrict(w, observer=w.student)
    assert not ObservationRestriction.objects.exists()


# The admin ----------------------------------------------------------------------------

ADD = "/admin/linking/observationrestriction/add/"


def test_admin_records_a_restriction_and_the_link_ends(w, admin_a):
    link_observer(observer=w.parent, student=w.student, root_account=w.root, actor=Actor.system())
    response = admin_a.post(
        ADD,
        {
            "root_account": w.root.pk,
            "student": w.student.pk,
            "observer": w.parent.pk,
            "observer_email": "",
            "reason": REASON,
            "document_reference": "File 17",
        },
    )
    assert response.status_code == 302, response.content
    restriction = ObservationRestriction.objects.get()
    assert (restriction.observer, restriction.recorded_by) == (w.parent, w.staff)
    assert not ObservationLink.objects.active().exists()
    # The refused admin add names the rule, never the reason.
    response = admin_a.post(
        "/admin/linking/observationlink/add/",
        {"observer": w.parent.pk, "student": w.student.pk, "root_account": w.root.pk},
    )
    errors = str(response.context["adminform"].form.non_field_errors())
    assert "restriction on record" in errors and "Secret" not in errors


def test_admin_restriction_form_needs_a_person_and_a_reason(w, admin_a):
    response = admin_a.post(
        ADD, {"root_account": w.root.pk, "student": w.student.pk, "reason": REASON}
    )
    assert response.status_code == 200
    assert "Name the person" in str(response.context["adminform"].form.non_field_errors())
    assert not ObservationRestriction.objects.exists()


def test_admin_lifts_restrictions(w, admin_a):
    restriction, _ = _restrict(w, observer=w.parent)
    response = admin_a.post(
        "/admin/linking/observationrestriction/",
        {"action": "lift_restrictions", "_selected_action": [restriction.pk]},
    )
    assert response.status_code == 302
    restriction.refresh_from_db()
    assert restriction.lifted_at is not None and restriction.lifted_by == w.staff


def test_other_schools_staff_do_not_see_the_restriction(w, admin_b):
    restriction, _ = _restrict(w, observer=w.parent)
    assert admin_b.get("/admin/linking/observationrestriction/").context["cl"].result_count == 0
    response = admin_b.get(f"/admin/linking/observationrestriction/{restriction.pk}/change/")
    assert response.status_code in (302, 404)


def test_staff_without_manage_user_observers_do_not_see_restrictions(w, make_user):
    from django.test import Client

    from linking.services.accounts import make_account_admin

    _restrict(w, observer=w.parent)
    role = factories.RoleFactory(
        name="SIS uploads", root_account=w.root, manage_user_observers=False, read_sis=True
    )
    clerk = make_user("Cleo Clerk", w.root)
    make_account_admin(user=clerk, account=w.root, role=role)
    client = Client(HTTP_HOST=HOST)
    client.force_login(clerk)
    assert client.get("/admin/linking/observationrestriction/").status_code == 403
    assert client.get("/admin/linking/protectedstudent/add/").status_code == 403
    assert "Restrictions" not in client.get("/admin/").content.decode()
