"""Nothing lost (issue 7): links, pairing codes and audit events are never hard-deleted.

Every path that removes something (the staff admin, the API's DELETE, an SIS
file's ``deleted`` rows, deleting a user) only changes a state; a removed
link comes back as the same row with its whole history.
"""

import pytest
from django.contrib import admin
from django.db.models.signals import pre_delete
from django.test import RequestFactory

from linking.models import (
    AuditAction,
    AuditEvent,
    Enrollment,
    EnrollmentState,
    EnrollmentType,
    ObservationLink,
    PairingCode,
    User,
)
from linking.services import accounts as account_services
from linking.services.context import Actor
from linking.services.enrollments import enroll_user
from linking.services.links import delete_user, link_observer, restore_link, unlink_observer
from linking.services.pairing import issue_pairing_code, redeem_pairing_code
from linking.services.sis import import_sis
from tests import factories
from tests.security.conftest import HOST_A

KEPT = (ObservationLink, PairingCode, AuditEvent)


@pytest.fixture
def no_hard_delete():
    """Fails the test if any row of a kept model is deleted (queryset or instance delete)."""
    deleted = []

    def record(sender, instance, **kwargs):
        deleted.append(f"{sender.__name__} #{instance.pk}")

    for model in KEPT:
        pre_delete.connect(record, sender=model, weak=False)
    yield deleted
    for model in KEPT:
        pre_delete.disconnect(record, sender=model)
    assert deleted == []


def _superuser_request(school):
    request = RequestFactory().get("/admin/", HTTP_HOST=HOST_A)
    request.user = factories.UserFactory(name="Operator", is_staff=True, is_superuser=True)
    request.root_account = school
    return request


@pytest.mark.parametrize("model", KEPT, ids=lambda model: model.__name__)
def test_the_admin_can_never_delete_kept_rows(model, schools):
    """Not even a site superuser: no delete permission, no bulk delete action."""
    model_admin = admin.site._registry[model]
    request = _superuser_request(schools["a"]["school"])
    issue_pairing_code(
        student=schools["a"]["student"], root_account=schools["a"]["school"], actor=Actor.system()
    )
    row = model.objects.filter(root_account=schools["a"]["school"]).first()
    assert row is not None
    assert model_admin.has_delete_permission(request) is False
    assert model_admin.has_delete_permission(request, row) is False
    assert "delete_selected" not in model_admin.get_actions(request)


def test_users_are_never_hard_deleted_in_the_admin(schools):
    model_admin = admin.site._registry[User]
    request = _superuser_request(schools["a"]["school"])
    assert model_admin.has_delete_permission(request, schools["a"]["parent"]) is False
    assert "delete_selected" not in model_admin.get_actions(request)


def test_api_delete_soft_deletes_and_keeps_the_history(schools, bearer, no_hard_delete):
    a = schools["a"]
    link = ObservationLink.objects.get(observer=a["parent"], student=a["student"])
    client = bearer(a["admin"], HOST_A)

    response = client.delete(f"/api/v1/users/{a['parent'].pk}/observees/{a['student'].pk}")

    assert response.status_code == 200, response.content
    link.refresh_from_db()
    assert link.workflow_state == ObservationLink.State.DELETED and link.deleted_at is not None
    assert list(
        AuditEvent.objects.filter(link=link).order_by("id").values_list("action", flat=True)
    ) == [AuditAction.LINK_CREATED, AuditAction.LINK_DELETED]
    observer_enrollments = Enrollment.objects.filter(
        user=a["parent"], associated_user=a["student"], type=EnrollmentType.OBSERVER
    )
    assert observer_enrollments.exists()
    assert set(observer_enrollments.values_list("workflow_state", flat=True)) == {
        EnrollmentState.DELETED
    }


def test_sis_deleted_rows_soft_delete(schools, tmp_path, no_hard_delete):
    a = schools["a"]
    school = a["school"]
    for user, sis_id in ((a["parent"], "PARENT-A"), (a["student"], "STUDENT-A")):
        user.logins.filter(root_account=school).update(sis_user_id=sis_id)
    link = ObservationLink.objects.get(observer=a["parent"], student=a["student"])
    csv = tmp_path / "user_observers.csv"
    csv.write_text("observer_id,student_id,status\nPARENT-A,STUDENT-A,deleted\n")

    report = import_sis(
        paths=[csv], root_account=school, actor=Actor.system(), allow_mass_delete=True
    )

    assert report.error_count == 0, report.errors
    link.refresh_from_db()
    assert link.workflow_state == ObservationLink.State.DELETED
    assert ObservationLink.objects.filter(pk=link.pk).exists()
    assert AuditEvent.objects.filter(link=link, action=AuditAction.LINK_DELETED).count() == 1


def test_deleting_a_user_soft_deletes_links_codes_and_events(schools, no_hard_delete):
    a = schools["a"]
    school = a["school"]
    issued = issue_pairing_code(student=a["student"], root_account=school, actor=Actor.system())
    link = ObservationLink.objects.get(observer=a["parent"], student=a["student"])
    events_before = AuditEvent.objects.count()

    delete_user(user=a["student"], actor=Actor.system())

    a["student"].refresh_from_db()
    assert a["student"].workflow_state == User.State.DELETED
    link.refresh_from_db()
    assert link.workflow_state == ObservationLink.State.DELETED
    assert PairingCode.objects.filter(pk=issued.pairing_code.pk).exists()
    assert AuditEvent.objects.count() == events_before + 1  # the link's removal, nothing gone


def test_a_removed_link_is_restored_in_place_with_its_history(schools, no_hard_delete):
    a = schools["a"]
    school = a["school"]
    actor = Actor.system()
    link = ObservationLink.objects.get(observer=a["parent"], student=a["student"])
    created_at = link.created_at
    assert unlink_observer(link=link, actor=actor) is True

    restored, changed = restore_link(link=link, actor=actor)

    assert changed is True and restored.pk == link.pk and restored.created_at == created_at
    assert restored.workflow_state == ObservationLink.State.ACTIVE and restored.deleted_at is None
    assert list(
        AuditEvent.objects.filter(link=link).order_by("id").values_list("action", flat=True)
    ) == [AuditAction.LINK_CREATED, AuditAction.LINK_DELETED, AuditAction.LINK_RESTORED]
    assert (
        Enrollment.objects.filter(
            user=a["parent"], associated_user=a["student"], type=EnrollmentType.OBSERVER
        )
        .exclude(workflow_state=EnrollmentState.DELETED)
        .exists()
    )
    # Linking again by any path (here the service the API and pages call) reuses the row too.
    unlink_observer(link=link, actor=actor)
    again, _ = link_observer(
        observer=a["parent"], student=a["student"], root_account=school, actor=actor
    )
    assert again.pk == link.pk
    assert ObservationLink.objects.filter(observer=a["parent"], student=a["student"]).count() == 1


def test_a_redeemed_code_and_its_link_survive_unlinking(schools, no_hard_delete):
    a = schools["a"]
    school = a["school"]
    sibling = account_services.create_user_with_login(
        name="Sibling A", root_account=school, unique_id="sibling@a.test"
    )
    enroll_user(user=sibling, course=school.course, type=EnrollmentType.STUDENT)
    issued = issue_pairing_code(student=sibling, root_account=school, actor=Actor.system())
    _student, links = redeem_pairing_code(
        code=issued.plaintext, observer=a["parent"], root_account=school, actor=Actor.system()
    )

    unlink_observer(link=links[0], actor=Actor.system())

    code = PairingCode.objects.get(pk=issued.pairing_code.pk)
    assert code.workflow_state == PairingCode.State.REDEEMED and code.redeemed_by == a["parent"]
    assert AuditEvent.objects.filter(pairing_code=code).count() == 2  # issued, redeemed
