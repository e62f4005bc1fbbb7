"""Observation links in the staff admin: list, search, add, remove, restore, never delete."""

import pytest

from linking.models import (
    AuditAction,
    AuditEvent,
    AuditSource,
    Enrollment,
    EnrollmentState,
    EnrollmentType,
    LinkSource,
    ObservationLink,
)
from linking.services.context import Actor
from linking.services.links import link_observer
from tests import factories
from tests.admin.conftest import run_action

pytestmark = pytest.mark.django_db

LIST = "/admin/linking/observationlink/"
ADD = "/admin/linking/observationlink/add/"


@pytest.fixture
def family(root_account, make_user, enrolled_student):
    """A student of course A, a parent with a login in A, and their active link."""
    student = enrolled_student("Sam Student", sis_user_id="S-100")
    parent = make_user("Pat Parent", root_account, email="pat@example.test")
    link, _ = link_observer(
        observer=parent, student=student, root_account=root_account, actor=Actor.system()
    )
    return parent, student, link


def observer_enrollment(parent, student):
    return Enrollment.objects.get(
        user=parent, associated_user=student, type=EnrollmentType.OBSERVER
    )


def test_list_shows_the_schools_links_only(admin_a, family, other_root_account):
    factories.ObservationLinkFactory(root_account=other_root_account)
    response = admin_a.get(LIST)
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [family[2]]
    assert "Pat Parent" in response.content.decode()


@pytest.mark.parametrize("term", ["Pat Parent", "pat@example.test", "Sam", "S-100"])
def test_search_by_name_email_sis_id(admin_a, family, term):
    response = admin_a.get(LIST, {"q": term})
    assert list(response.context["cl"].result_list) == [family[2]]


def test_search_by_login_id(admin_a, family, root_account):
    unique_id = family[1].logins.get(root_account=root_account).unique_id
    response = admin_a.get(LIST, {"q": unique_id})
    assert list(response.context["cl"].result_list) == [family[2]]


def test_search_without_match_is_empty(admin_a, family):
    assert admin_a.get(LIST, {"q": "nobody-at-all"}).context["cl"].result_count == 0


def test_filters_by_state_and_source(admin_a, family):
    assert admin_a.get(LIST, {"workflow_state": "deleted"}).context["cl"].result_count == 0
    assert admin_a.get(LIST, {"workflow_state": "active"}).context["cl"].result_count == 1
    assert admin_a.get(LIST, {"source": "sis"}).context["cl"].result_count == 0


def test_superuser_filters_by_root_account(super_client, family, root_account, other_root_account):
    factories.ObservationLinkFactory(root_account=other_root_account)
    response = super_client.get(LIST, {"root_account__id__exact": root_account.pk})
    assert list(response.context["cl"].result_list) == [family[2]]


def test_add_link_through_the_service(admin_a, root_account, make_user, enrolled_student, staff_a):
    student = enrolled_student("Sue Student")
    parent = make_user("Paul Parent", root_account)
    response = admin_a.post(
        ADD, {"observer": parent.pk, "student": student.pk, "root_account": root_account.pk}
    )
    assert response.status_code == 302
    link = ObservationLink.objects.get(observer=parent, student=student)
    assert link.source == LinkSource.ADMIN
    assert link.created_by == staff_a
    assert observer_enrollment(parent, student).workflow_state == EnrollmentState.ACTIVE
    event = AuditEvent.objects.get(link=link)
    assert (event.action, event.source, event.actor) == (
        AuditAction.LINK_CREATED,
        AuditSource.ADMIN,
        staff_a,
    )


def test_add_form_refuses_a_self_link(admin_a, root_account, enrolled_student):
    student = enrolled_student("Sue Student")
    response = admin_a.post(
        ADD, {"observer": student.pk, "student": student.pk, "root_account": root_account.pk}
    )
    assert response.status_code == 200
    errors = list(response.context["adminform"].form.non_field_errors())
    # One message, in the staff's words; no constraint name leaks through.
    assert errors == [
        "The observer and the student are the same person: a person cannot observe themselves."
    ]
    assert "Constraint" not in response.content.decode()
    assert not ObservationLink.objects.exists()


def test_add_form_restores_a_removed_link_instead_of_refusing_it(admin_a, root_account, make_user):
    from linking.services import links
    from linking.services.context import Actor

    parent, student = make_user("Pat", root_account), make_user("Sam", root_account)
    link, _ = links.link_observer(
        observer=parent, student=student, root_account=root_account, actor=Actor.system()
    )
    links.unlink_observer(link=link, actor=Actor.system())

    response = admin_a.post(
        ADD, {"observer": parent.pk, "student": student.pk, "root_account": root_account.pk}
    )

    assert response.status_code == 302
    assert "already exists" not in response.content.decode()
    link.refresh_from_db()
    assert link.workflow_state == "active"
    assert ObservationLink.objects.count() == 1
    assert AuditEvent.objects.filter(link=link, action=AuditAction.LINK_RESTORED).count() == 1


def test_add_form_refuses_a_person_of_another_school(
    admin_a, root_account, other_root_account, make_user, enrolled_student
):
    student = enrolled_student("Sue Student")
    outsider = make_user("Olga Outsider", other_root_account)
    response = admin_a.post(
        ADD, {"observer": outsider.pk, "student": student.pk, "root_account": root_account.pk}
    )
    assert response.status_code == 200
    assert "observer" in response.context["adminform"].form.errors
    assert not ObservationLink.objects.exists()


def test_superuser_add_form_refuses_a_cross_tenant_link(
    super_client, root_account, other_root_account, make_user, enrolled_student
):
    student = enrolled_student("Sue Student")
    outsider = make_user("Olga Outsider", other_root_account)
    response = super_client.post(
        ADD, {"observer": outsider.pk, "student": student.pk, "root_account": root_account.pk}
    )
    assert response.status_code == 200
    errors = str(response.context["adminform"].form.non_field_errors())
    assert "must both belong to this institution" in errors
    assert not ObservationLink.objects.exists()


def test_add_form_refuses_another_schools_root_account(
    admin_a, root_account, other_root_account, make_user, enrolled_student
):
    student = enrolled_student("Sue Student")
    parent = make_user("Paul Parent", root_account)
    response = admin_a.post(
        ADD, {"observer": parent.pk, "student": student.pk, "root_account": other_root_account.pk}
    )
    assert "root_account" in response.context["adminform"].form.errors
    assert not ObservationLink.objects.exists()


def test_remove_and_restore_actions_move_enrollments(admin_a, family, staff_a):
    parent, student, link = family
    response = run_action(admin_a, LIST, "remove_links", [link])
    assert response.status_code == 302
    link.refresh_from_db()
    assert link.workflow_state == ObservationLink.State.DELETED
    assert observer_enrollment(parent, student).workflow_state == EnrollmentState.DELETED
    removed = AuditEvent.objects.get(link=link, action=AuditAction.LINK_DELETED)
    assert (removed.source, removed.actor) == (AuditSource.ADMIN, staff_a)

    run_action(admin_a, LIST, "restore_links", [link])
    link.refresh_from_db()
    assert link.workflow_state == ObservationLink.State.ACTIVE
    assert link.source == LinkSource.ADMIN
    assert observer_enrollment(parent, student).workflow_state == EnrollmentState.ACTIVE
    assert AuditEvent.objects.filter(link=link, action=AuditAction.LINK_RESTORED).count() == 1


def test_change_page_shows_the_audit_trail(admin_a, family):
    link = family[2]
    response = admin_a.get(f"{LIST}{link.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "audit trail" in page.lower()
    assert "link created" in page


def test_links_cannot_be_deleted(admin_a, super_client, family):
    link = family[2]
    assert admin_a.get(f"{LIST}{link.pk}/delete/").status_code == 403
    assert super_client.post(f"{LIST}{link.pk}/delete/", {"post": "yes"}).status_code == 403
    response = super_client.get(LIST)
    assert "delete_selected" not in dict(response.context["action_form"].fields["action"].choices)
    run_action(super_client, LIST, "delete_selected", [link], post="yes")
    assert ObservationLink.objects.filter(pk=link.pk).exists()


def test_other_school_cannot_see_or_change_the_link(admin_b, family):
    parent, student, link = family
    assert admin_b.get(f"{LIST}{link.pk}/change/").status_code == 404
    assert admin_b.get(LIST).context["cl"].result_count == 0
    assert admin_b.get(LIST, {"q": "Pat"}).context["cl"].result_count == 0
    run_action(admin_b, LIST, "remove_links", [link])
    link.refresh_from_db()
    assert link.workflow_state == ObservationLink.State.ACTIVE
    assert observer_enrollment(parent, student).workflow_state == EnrollmentState.ACTIVE


def test_other_school_cannot_link_this_schools_people(admin_b, family, other_root_account):
    parent = family[0]
    other_student = factories.UserFactory()
    response = admin_b.post(
        ADD,
        {"observer": parent.pk, "student": other_student.pk, "root_account": other_root_account.pk},
    )
    assert response.status_code == 200
    assert ObservationLink.objects.count() == 1


def test_autocomplete_offers_only_this_schools_people(admin_a, admin_b, family):
    url = "/admin/autocomplete/"
    params = {
        "term": "Pat",
        "app_label": "linking",
        "model_name": "observationlink",
        "field_name": "observer",
    }
    found_a = admin_a.get(url, params).json()["results"]
    assert [row["text"] for row in found_a] == ["Pat Parent"]
    assert admin_b.get(url, params).json()["results"] == []


def test_search_never_matches_another_schools_login_ids(admin_a, family, other_root_account):
    parent = family[0]
    factories.LoginFactory(
        user=parent, root_account=other_root_account, unique_id="secret-elsewhere"
    )
    assert admin_a.get(LIST, {"q": "secret-elsewhere"}).context["cl"].result_count == 0
    assert (
        admin_a.get("/admin/linking/user/", {"q": "secret-elsewhere"}).context["cl"].result_count
        == 0
    )
