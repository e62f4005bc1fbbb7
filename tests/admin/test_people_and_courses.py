"""Users, courses with enrollments, accounts, roles and memberships in the staff admin."""

import pytest

from linking.models import (
    Account,
    AccountAdmin,
    Course,
    Enrollment,
    EnrollmentState,
    EnrollmentType,
    Login,
    Role,
    User,
)
from linking.services.context import Actor
from linking.services.links import link_observer
from tests import factories
from tests.admin.conftest import changeform_data

pytestmark = pytest.mark.django_db

USERS = "/admin/linking/user/"
COURSES = "/admin/linking/course/"


def test_user_page_shows_logins_enrollments_and_links(
    admin_a, enrolled_student, make_user, root_account
):
    student = enrolled_student("Sam Student")
    parent = make_user("Pat Parent", root_account)
    link_observer(observer=parent, student=student, root_account=root_account, actor=Actor.system())
    response = admin_a.get(f"{USERS}{student.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert student.logins.get().unique_id in page
    assert "Biology 101" in page
    assert "Pat Parent" in page
    assert "observers of this user" in page.lower()


def test_user_list_and_search_are_scoped(admin_a, make_user, root_account, other_root_account):
    make_user("Ann Inside", root_account)
    make_user("Otto Outside", other_root_account)
    names = {u.name for u in admin_a.get(USERS).context["cl"].result_list}
    assert "Ann Inside" in names
    assert "Otto Outside" not in names
    assert admin_a.get(USERS, {"q": "Otto"}).context["cl"].result_count == 0


def test_edit_a_user_and_their_login(admin_a, make_user, root_account):
    person = make_user("Ann Inside", root_account)
    page = admin_a.get(f"{USERS}{person.pk}/change/")
    data = changeform_data(page)
    data["email"] = "ann@example.test"
    data["logins-0-sis_user_id"] = "SIS-ANN"
    response = admin_a.post(f"{USERS}{person.pk}/change/", data)
    assert response.status_code == 302, response.context and response.context["errors"]
    person.refresh_from_db()
    assert person.email == "ann@example.test"
    assert person.logins.get().sis_user_id == "SIS-ANN"


def test_school_staff_cannot_make_a_superuser(admin_a, make_user, root_account):
    person = make_user("Ann Inside", root_account)
    data = changeform_data(admin_a.get(f"{USERS}{person.pk}/change/"))
    data["is_superuser"] = "on"
    admin_a.post(f"{USERS}{person.pk}/change/", data)
    person.refresh_from_db()
    assert person.is_superuser is False


def test_add_user_creates_a_login_in_this_school(admin_a, root_account):
    response = admin_a.post(
        f"{USERS}add/",
        {
            "name": "New Person",
            "email": "new@example.test",
            "login_id": "new.person",
            "password": "a long enough password",
        },
    )
    assert response.status_code == 302
    login = Login.objects.get(unique_id="new.person")
    assert login.root_account == root_account
    assert login.user.name == "New Person"
    assert login.check_password("a long enough password")


def test_add_user_refuses_a_taken_login_id(admin_a, make_user, root_account):
    taken = make_user("Ann Inside", root_account).logins.get().unique_id
    response = admin_a.post(f"{USERS}add/", {"name": "Copy", "login_id": taken.upper()})
    assert response.status_code == 200
    assert "login_id" in response.context["adminform"].form.errors
    assert not User.objects.filter(name="Copy").exists()


def test_other_school_cannot_see_or_change_a_user(admin_b, make_user, root_account):
    person = make_user("Ann Inside", root_account, email="ann@a.test")
    assert admin_b.get(f"{USERS}{person.pk}/change/").status_code == 404
    response = admin_b.post(f"{USERS}{person.pk}/change/", {"name": "Hacked"})
    assert response.status_code == 404
    person.refresh_from_db()
    assert person.name == "Ann Inside"


def test_users_cannot_be_hard_deleted(super_client, make_user, root_account):
    person = make_user("Ann Inside", root_account)
    assert super_client.post(f"{USERS}{person.pk}/delete/", {"post": "yes"}).status_code == 403
    assert User.objects.filter(pk=person.pk).exists()


@pytest.fixture
def linked_parent(root_account, make_user, enrolled_student):
    """A parent linked to a student already in course A."""
    student = enrolled_student("Sam Student")
    parent = make_user("Pat Parent", root_account)
    link_observer(observer=parent, student=student, root_account=root_account, actor=Actor.system())
    return parent


def test_course_enrollment_inline_goes_through_the_service(
    admin_a, course_a, linked_parent, make_user, root_account
):
    """A second student enrolled on the course page brings their own linked observer along."""
    student = make_user("Second Student", root_account)
    link_observer(
        observer=linked_parent, student=student, root_account=root_account, actor=Actor.system()
    )
    page = admin_a.get(f"{COURSES}{course_a.pk}/change/")
    data = changeform_data(page)
    total = int(data["enrollments-TOTAL_FORMS"])
    data.update(
        {
            "enrollments-TOTAL_FORMS": str(total + 1),
            f"enrollments-{total}-user": str(student.pk),
            f"enrollments-{total}-type": EnrollmentType.STUDENT,
            f"enrollments-{total}-workflow_state": EnrollmentState.ACTIVE,
            f"enrollments-{total}-course": str(course_a.pk),
        }
    )
    response = admin_a.post(f"{COURSES}{course_a.pk}/change/", data)
    assert response.status_code == 302, response.context and response.context["errors"]
    assert Enrollment.objects.get(user=student, course=course_a).type == EnrollmentType.STUDENT
    mirrored = Enrollment.objects.get(user=linked_parent, associated_user=student)
    assert mirrored.workflow_state == EnrollmentState.ACTIVE


def test_course_enrollment_state_change_moves_the_observers(admin_a, course_a, linked_parent):
    page = admin_a.get(f"{COURSES}{course_a.pk}/change/")
    data = changeform_data(page)
    formset = next(
        inline.formset
        for inline in page.context["inline_admin_formsets"]
        if inline.formset.prefix == "enrollments"
    )
    student_row = next(
        form.prefix for form in formset.forms if form.instance.type == EnrollmentType.STUDENT
    )
    data[f"{student_row}-workflow_state"] = EnrollmentState.COMPLETED
    response = admin_a.post(f"{COURSES}{course_a.pk}/change/", data)
    assert response.status_code == 302, response.context and response.context["errors"]
    student_enrollment = Enrollment.objects.get(course=course_a, type=EnrollmentType.STUDENT)
    assert student_enrollment.workflow_state == EnrollmentState.COMPLETED
    mirrored = Enrollment.objects.get(user=linked_parent, type=EnrollmentType.OBSERVER)
    assert mirrored.workflow_state == EnrollmentState.COMPLETED


def test_course_page_refuses_a_hand_made_observer_enrollment(
    admin_a, course_a, make_user, root_account
):
    person = make_user("Someone", root_account)
    data = changeform_data(admin_a.get(f"{COURSES}{course_a.pk}/change/"))
    data.update(
        {
            "enrollments-TOTAL_FORMS": "1",
            "enrollments-0-user": str(person.pk),
            "enrollments-0-type": EnrollmentType.OBSERVER,
            "enrollments-0-workflow_state": EnrollmentState.ACTIVE,
            "enrollments-0-course": str(course_a.pk),
        }
    )
    response = admin_a.post(f"{COURSES}{course_a.pk}/change/", data)
    assert response.status_code == 200
    assert not Enrollment.objects.filter(user=person).exists()


def test_add_course_in_this_school(admin_a, root_account):
    response = admin_a.post(
        f"{COURSES}add/",
        {
            "name": "Chemistry",
            "course_code": "CHEM1",
            "account": root_account.pk,
            "workflow_state": Course.State.AVAILABLE,
            "enrollments-TOTAL_FORMS": "0",
            "enrollments-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    assert Course.objects.get(course_code="CHEM1").root_account == root_account


def test_other_school_cannot_see_a_course_or_put_one_in_this_school(
    admin_b, course_a, root_account
):
    assert admin_b.get(f"{COURSES}{course_a.pk}/change/").status_code == 404
    response = admin_b.post(
        f"{COURSES}add/",
        {
            "name": "Sneaky",
            "account": root_account.pk,
            "workflow_state": Course.State.AVAILABLE,
            "enrollments-TOTAL_FORMS": "0",
            "enrollments-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert not Course.objects.filter(name="Sneaky").exists()


def test_course_action_leads_to_issuing_codes(admin_a, course_a):
    response = admin_a.post(
        COURSES, {"action": "issue_pairing_codes", "_selected_action": [course_a.pk]}
    )
    assert response.status_code == 302
    assert response["Location"] == f"/admin/linking/pairingcode/issue/?course={course_a.pk}"


def test_account_settings_are_editable_by_its_staff(admin_a, root_account):
    url = f"/admin/linking/account/{root_account.pk}/change/"
    data = changeform_data(admin_a.get(url))
    data["pairing_code_lifetime_hours"] = "48"
    data["self_registration"] = "all"
    data["domain"] = "hijack.test"  # read-only for school staff
    response = admin_a.post(url, data)
    assert response.status_code == 302, response.context and response.context["errors"]
    root_account.refresh_from_db()
    assert root_account.pairing_code_lifetime_hours == 48
    assert root_account.self_registration == "all"
    assert root_account.domain == "default.test"


def test_other_school_cannot_see_an_account(admin_b, root_account):
    assert admin_b.get(f"/admin/linking/account/{root_account.pk}/change/").status_code == 404
    accounts = admin_b.get("/admin/linking/account/").context["cl"].result_list
    assert root_account not in accounts
    assert admin_b.get("/admin/linking/account/add/").status_code == 403


def test_custom_role_belongs_to_the_school(admin_a, root_account):
    response = admin_a.post(
        "/admin/linking/role/add/", {"name": "Counsellor", "manage_user_observers": "on"}
    )
    assert response.status_code == 302
    role = Role.objects.get(name="Counsellor")
    assert role.root_account == root_account
    assert role.manage_user_observers is True


def test_builtin_role_is_read_only_for_school_staff(admin_a, staff_a):
    builtin = Role.objects.get(root_account__isnull=True)
    url = f"/admin/linking/role/{builtin.pk}/change/"
    assert admin_a.get(url).status_code == 200
    admin_a.post(url, {"name": "Renamed"})
    builtin.refresh_from_db()
    assert builtin.name == Role.ACCOUNT_ADMIN


def test_add_account_admin_membership_makes_staff(admin_a, make_user, root_account):
    person = make_user("New Staff", root_account)
    role = Role.objects.get(root_account__isnull=True)
    response = admin_a.post(
        "/admin/linking/accountadmin/add/",
        {
            "user": person.pk,
            "account": root_account.pk,
            "role": role.pk,
            "workflow_state": "active",
        },
    )
    assert response.status_code == 302
    membership = AccountAdmin.objects.get(user=person)
    assert membership.root_account == root_account
    person.refresh_from_db()
    assert person.is_staff


def test_other_school_cannot_grant_itself_this_school(admin_b, staff_b, root_account):
    role = Role.objects.get(root_account__isnull=True)
    response = admin_b.post(
        "/admin/linking/accountadmin/add/",
        {
            "user": staff_b.pk,
            "account": root_account.pk,
            "role": role.pk,
            "workflow_state": "active",
        },
    )
    assert response.status_code == 200
    assert not AccountAdmin.objects.filter(user=staff_b, root_account=root_account).exists()


def test_course_role_overrides_are_scoped(admin_a, admin_b, root_account):
    sub = factories.SubAccountFactory(parent=root_account)
    override = factories.CourseRoleOverrideFactory(account=sub)
    url = "/admin/linking/courseroleoverride/"
    assert list(admin_a.get(url).context["cl"].result_list) == [override]
    assert admin_b.get(url).context["cl"].result_count == 0
    assert Account.objects.filter(pk=sub.pk).exists()


def test_delete_users_action_ends_their_links(admin_a, linked_parent, staff_a):
    from linking.models import ObservationLink

    response = admin_a.post(
        USERS,
        {"action": "delete_users", "_selected_action": [linked_parent.pk, staff_a.pk]},
    )
    assert response.status_code == 302
    linked_parent.refresh_from_db()
    staff_a.refresh_from_db()
    assert linked_parent.workflow_state == User.State.DELETED
    assert staff_a.workflow_state != User.State.DELETED  # nobody deletes themself
    link = ObservationLink.objects.get(observer=linked_parent)
    assert link.workflow_state == ObservationLink.State.DELETED
    assert (
        not Enrollment.objects.filter(user=linked_parent)
        .exclude(workflow_state=EnrollmentState.DELETED)
        .exists()
    )


def test_other_school_cannot_delete_a_user(admin_b, linked_parent):
    admin_b.post(USERS, {"action": "delete_users", "_selected_action": [linked_parent.pk]})
    linked_parent.refresh_from_db()
    assert linked_parent.workflow_state != User.State.DELETED


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/admin/linking/observationlink/add/", {"observer": "x", "student": "1e9"}),
        ("/admin/linking/pairingcode/issue/", {"course": "abc", "output": "nope"}),
        ("/admin/linking/pairingcode/issue/", {"student": "99999999", "output": "csv"}),
        ("/admin/linking/accesstoken/add/", {"user": "'; drop", "expires_at": "x"}),
        ("/admin/linking/user/add/", {"name": "", "login_id": "x" * 300}),
    ],
)
def test_bad_input_is_a_form_error_not_a_500(admin_a, url, data):
    response = admin_a.post(url, data)
    assert response.status_code == 200


def test_bad_ids_in_urls_are_404(admin_a):
    assert admin_a.get("/admin/linking/observationlink/abc/change/").status_code in (302, 404)
    assert admin_a.get("/admin/linking/pairingcode/issue/", {"course": "abc"}).status_code == 200
