"""GET/PUT/DELETE /api/v1/users/:user_id/observees/:observee_id (§7 items 31-37, 45-66)."""

from linking.models import AuditAction, AuditEvent, Enrollment, EnrollmentType, ObservationLink
from linking.services import accounts as account_services
from linking.services.enrollments import enroll_user
from tests.api.conftest import EXTERNAL_HOST
from tests.api.helpers import (
    assert_not_found,
    assert_unauthorized,
    link_root_ids,
    linked_student_ids,
)

# --- show ----------------------------------------------------------------------------------


def test_admin_shows_observee(api, allowed_admin, parent, student, default_account, link):
    link(parent, student, default_account)
    response = api(allowed_admin).get(f"/api/v1/users/{parent.pk}/observees/{student.pk}")
    assert response.status_code == 200
    assert response.json()["id"] == student.pk
    assert response.json()["observation_link_root_account_ids"] == [default_account.pk]
    assert "sis_user_id" not in response.json()


def test_parent_shows_own_observee(api, parent, student, default_account, link):
    link(parent, student, default_account)
    response = api(parent).get(f"/api/v1/users/self/observees/{student.pk}")
    assert response.status_code == 200
    assert response.json()["id"] == student.pk


def test_multi_admin_shows_external_observee(
    api, multi_admin, external_parent, external_student, external_account, link
):
    link(external_parent, external_student, external_account)
    response = api(multi_admin, host=EXTERNAL_HOST).get(
        f"/api/v1/users/{external_parent.pk}/observees/{external_student.pk}"
    )
    assert response.status_code == 200
    assert response.json()["id"] == external_student.pk


def test_show_unknown_observer_is_404(api, allowed_admin, student):
    assert_not_found(api(allowed_admin).get(f"/api/v1/users/0/observees/{student.pk}"))


def test_show_unlinked_student_is_404(
    api, allowed_admin, parent, student, student2, default_account, link
):
    link(parent, student, default_account)
    assert_not_found(api(allowed_admin).get(f"/api/v1/users/{parent.pk}/observees/{student2.pk}"))


def test_show_admin_of_other_school_is_refused(
    api, allowed_admin, external_parent, external_student, external_account, link
):
    link(external_parent, external_student, external_account)
    response = api(allowed_admin, host=EXTERNAL_HOST).get(
        f"/api/v1/users/{external_parent.pk}/observees/{external_student.pk}"
    )
    assert_unauthorized(response)


def test_show_disallowed_admin_is_refused(
    api, disallowed_admin, parent, student, default_account, link
):
    link(parent, student, default_account)
    assert_unauthorized(
        api(disallowed_admin).get(f"/api/v1/users/{parent.pk}/observees/{student.pk}")
    )


def test_show_by_sis_ids(
    api, allowed_admin, parent, student, default_account, external_account, link
):
    login = student.logins.get()
    login.sis_user_id = "SIS-42"
    login.integration_id = "INT-42"
    login.save()
    link(parent, student, default_account)
    client = api(allowed_admin)
    for reference in [
        "sis_user_id:SIS-42",
        "sis_integration_id:INT-42",
        f"sis_login_id:{login.unique_id.upper()}",
    ]:
        response = client.get(f"/api/v1/users/{parent.pk}/observees/{reference}")
        assert response.status_code == 200, reference
        assert response.json()["id"] == student.pk
    # SIS ids are looked up in the request's school only
    response = api(allowed_admin, host=EXTERNAL_HOST).get(
        f"/api/v1/users/{parent.pk}/observees/sis_user_id:SIS-42"
    )
    assert response.status_code == 404


# --- update (PUT) ----------------------------------------------------------------------------


def test_put_links_by_id(api, allowed_admin, parent, student, default_account):
    response = api(allowed_admin).put(f"/api/v1/users/{parent.pk}/observees/{student.pk}")
    assert response.status_code == 200, response.content
    assert response.json()["id"] == student.pk
    assert response.json()["observation_link_root_account_ids"] == [default_account.pk]
    assert linked_student_ids(parent) == [student.pk]
    event = AuditEvent.objects.get(action=AuditAction.LINK_CREATED)
    assert (event.actor_id, event.source, event.ip_address) == (
        allowed_admin.pk,
        "api",
        "203.0.113.7",
    )


def test_put_existing_link_is_idempotent(
    api, allowed_admin, parent, student, default_account, link
):
    link(parent, student, default_account)
    response = api(allowed_admin).put(f"/api/v1/users/{parent.pk}/observees/{student.pk}")
    assert response.status_code == 200
    assert response.json()["id"] == student.pk
    assert ObservationLink.objects.filter(observer=parent).count() == 1


def test_put_multi_admin_external(api, multi_admin, external_parent, external_student):
    response = api(multi_admin, host=EXTERNAL_HOST).put(
        f"/api/v1/users/{external_parent.pk}/observees/{external_student.pk}"
    )
    assert response.status_code == 200
    assert linked_student_ids(external_parent) == [external_student.pk]


def test_put_unknown_observer_is_404(api, allowed_admin, student):
    assert_not_found(api(allowed_admin).put(f"/api/v1/users/0/observees/{student.pk}"))


def test_put_unknown_student_is_404(api, allowed_admin, parent):
    assert_not_found(api(allowed_admin).put(f"/api/v1/users/{parent.pk}/observees/0"))
    assert linked_student_ids(parent) == []


def test_put_student_of_other_school_is_404(api, allowed_admin, parent, external_student):
    response = api(allowed_admin).put(f"/api/v1/users/{parent.pk}/observees/{external_student.pk}")
    assert_not_found(response)
    assert linked_student_ids(parent) == []


def test_put_self_link_is_404(api, allowed_admin, parent):
    assert_not_found(api(allowed_admin).put(f"/api/v1/users/{parent.pk}/observees/{parent.pk}"))


def test_put_admin_of_other_school_is_refused(
    api, allowed_admin, external_parent, external_student
):
    response = api(allowed_admin, host=EXTERNAL_HOST).put(
        f"/api/v1/users/{external_parent.pk}/observees/{external_student.pk}"
    )
    assert_unauthorized(response)
    assert linked_student_ids(external_parent) == []


def test_put_by_the_parent_is_refused(api, parent, student):
    assert_unauthorized(api(parent).put(f"/api/v1/users/{parent.pk}/observees/{student.pk}"))
    assert linked_student_ids(parent) == []


def test_put_disallowed_admin_is_refused(api, disallowed_admin, parent, student):
    response = api(disallowed_admin).put(f"/api/v1/users/{parent.pk}/observees/{student.pk}")
    assert_unauthorized(response)
    assert linked_student_ids(parent) == []


def test_put_defaults_to_the_domain_school(
    api, multi_admin, multi_parent, multi_student, default_account
):
    response = api(multi_admin).put(f"/api/v1/users/{multi_parent.pk}/observees/{multi_student.pk}")
    assert response.json()["observation_link_root_account_ids"] == [default_account.pk]
    assert link_root_ids(multi_parent, multi_student) == {default_account.pk}


def test_put_named_school(api, multi_admin, multi_parent, multi_student, external_account):
    response = api(multi_admin).put(
        f"/api/v1/users/{multi_parent.pk}/observees/{multi_student.pk}",
        {"root_account_id": external_account.pk},
    )
    assert response.status_code == 200
    assert link_root_ids(multi_parent, multi_student) == {external_account.pk}


def test_put_all_schools(
    api, multi_admin, multi_parent, multi_student, default_account, external_account
):
    response = api(multi_admin).put(
        f"/api/v1/users/{multi_parent.pk}/observees/{multi_student.pk}?root_account_id=all"
    )
    assert set(response.json()["observation_link_root_account_ids"]) == {
        default_account.pk,
        external_account.pk,
    }
    assert link_root_ids(multi_parent, multi_student) == {default_account.pk, external_account.pk}


def test_put_all_with_single_school_student(
    api, multi_admin, multi_parent, student, default_account
):
    api(multi_admin).put(
        f"/api/v1/users/{multi_parent.pk}/observees/{student.pk}", {"root_account_id": "all"}
    )
    assert link_root_ids(multi_parent, student) == {default_account.pk}


def test_put_all_limited_to_admins_schools(
    api, allowed_admin, multi_parent, multi_student, default_account
):
    response = api(allowed_admin).put(
        f"/api/v1/users/{multi_parent.pk}/observees/{multi_student.pk}",
        {"root_account_id": "all"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["observation_link_root_account_ids"] == [default_account.pk]
    assert link_root_ids(multi_parent, multi_student) == {default_account.pk}


# --- destroy (DELETE) ------------------------------------------------------------------------


def test_delete_removes_link_and_observer_enrollment(
    api, allowed_admin, parent, enrolled_student, default_account, link
):
    link(parent, enrolled_student, default_account)
    observer_enrollment = Enrollment.objects.get(user=parent, type=EnrollmentType.OBSERVER)
    assert observer_enrollment.workflow_state == "active"
    response = api(allowed_admin).delete(
        f"/api/v1/users/{parent.pk}/observees/{enrolled_student.pk}"
    )
    assert response.status_code == 200
    assert response.json()["id"] == enrolled_student.pk
    assert response.json()["observation_link_root_account_ids"] == []
    assert linked_student_ids(parent) == []
    observer_enrollment.refresh_from_db()
    assert observer_enrollment.workflow_state == "deleted"
    event = AuditEvent.objects.get(action=AuditAction.LINK_DELETED)
    assert (event.actor_id, event.source) == (allowed_admin.pk, "api")


def test_delete_on_external_school(
    api, multi_admin, external_parent, external_student, external_account, link
):
    course = account_services.create_course(account=external_account, name="Ext course")
    enroll_user(user=external_student, course=course, type=EnrollmentType.STUDENT)
    link(external_parent, external_student, external_account)
    response = api(multi_admin, host=EXTERNAL_HOST).delete(
        f"/api/v1/users/{external_parent.pk}/observees/{external_student.pk}"
    )
    assert response.status_code == 200
    assert linked_student_ids(external_parent) == []
    assert (
        Enrollment.objects.get(user=external_parent, type=EnrollmentType.OBSERVER).workflow_state
        == "deleted"
    )


def test_delete_unlinked_student_is_404(
    api, allowed_admin, parent, student, student2, default_account, link
):
    link(parent, student, default_account)
    assert_not_found(
        api(allowed_admin).delete(f"/api/v1/users/{parent.pk}/observees/{student2.pk}")
    )
    assert linked_student_ids(parent) == [student.pk]


def test_delete_unknown_observer_is_404(api, allowed_admin, student):
    assert_not_found(api(allowed_admin).delete(f"/api/v1/users/0/observees/{student.pk}"))


def test_delete_unknown_student_is_404(api, allowed_admin, parent):
    assert_not_found(api(allowed_admin).delete(f"/api/v1/users/{parent.pk}/observees/0"))


def test_delete_admin_of_other_school_is_refused(api, allowed_admin, external_parent, student):
    response = api(allowed_admin, host=EXTERNAL_HOST).delete(
        f"/api/v1/users/{external_parent.pk}/observees/{student.pk}"
    )
    assert_unauthorized(response)


def test_delete_disallowed_admin_is_refused(
    api, disallowed_admin, parent, student, default_account, link
):
    link(parent, student, default_account)
    response = api(disallowed_admin).delete(f"/api/v1/users/{parent.pk}/observees/{student.pk}")
    assert_unauthorized(response)
    assert linked_student_ids(parent) == [student.pk]


def test_student_cannot_remove_their_observer(api, parent, student, default_account, link):
    link(parent, student, default_account)
    assert_unauthorized(api(student).delete(f"/api/v1/users/{parent.pk}/observees/{student.pk}"))
    assert linked_student_ids(parent) == [student.pk]


def test_parent_removes_own_observee_softly(api, parent, student, default_account, link):
    made = link(parent, student, default_account)
    response = api(parent).delete(f"/api/v1/users/self/observees/{student.pk}")
    assert response.status_code == 200
    assert linked_student_ids(parent) == []
    made.refresh_from_db()
    assert made.workflow_state == "deleted"


def test_delete_honours_root_account_id(
    api, multi_parent, multi_student, default_account, external_account, link
):
    """Difference from Canvas (ignores it): only the named school's link goes."""
    link(multi_parent, multi_student, default_account)
    link(multi_parent, multi_student, external_account)
    response = api(multi_parent).delete(
        f"/api/v1/users/self/observees/{multi_student.pk}?root_account_id={external_account.pk}"
    )
    assert response.status_code == 200
    assert response.json()["observation_link_root_account_ids"] == [default_account.pk]
    assert link_root_ids(multi_parent, multi_student) == {default_account.pk}


def test_delete_without_root_account_id_removes_every_link(
    api, multi_parent, multi_student, default_account, external_account, link
):
    link(multi_parent, multi_student, default_account)
    link(multi_parent, multi_student, external_account)
    response = api(multi_parent).delete(f"/api/v1/users/self/observees/{multi_student.pk}")
    assert response.status_code == 200
    assert link_root_ids(multi_parent, multi_student) == set()


def test_delete_by_admin_only_touches_their_schools(
    api, allowed_admin, multi_parent, multi_student, default_account, external_account, link
):
    link(multi_parent, multi_student, default_account)
    link(multi_parent, multi_student, external_account)
    response = api(allowed_admin).delete(
        f"/api/v1/users/{multi_parent.pk}/observees/{multi_student.pk}"
    )
    assert response.status_code == 200
    assert response.json()["observation_link_root_account_ids"] == []
    assert link_root_ids(multi_parent, multi_student) == {external_account.pk}


def test_delete_named_school_without_link_is_404(
    api, multi_parent, multi_student, default_account, external_account, link
):
    link(multi_parent, multi_student, default_account)
    response = api(multi_parent).delete(
        f"/api/v1/users/self/observees/{multi_student.pk}",
        {"root_account_id": external_account.pk},
        format="json",
    )
    assert_not_found(response)
    assert link_root_ids(multi_parent, multi_student) == {default_account.pk}
