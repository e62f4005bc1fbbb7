"""The permission policy (canvas-behaviour.md §2.0 and §2.8)."""

import pytest

from linking.models import Course, Permission
from linking.services import enrollments, pairing
from linking.services.errors import NotAuthorized, NotFound
from linking.services.permissions import (
    associated_root_account_ids,
    authorize_target_user,
    can_generate_pairing_code,
    common_root_account_ids,
    root_accounts_with_permission,
)
from tests import factories


@pytest.fixture
def disallowed_admin(make_user, root_account):
    user = make_user("Disallowed Admin", root_account, is_staff=True)
    role = factories.RoleFactory(
        root_account=root_account, manage_user_observers=False, generate_observer_pairing_code=False
    )
    factories.AccountAdminFactory(user=user, account=root_account, role=role)
    return user


# --- associations ------------------------------------------------------------


def test_associations_come_from_logins_enrollments_and_admin_roles(
    make_user, root_account, other_root_account
):
    third = factories.RootAccountFactory()
    user = make_user("Someone", root_account)
    enrollments.enroll_user(
        user=user, course=factories.CourseFactory(account=other_root_account), type="student"
    )
    factories.AccountAdminFactory(user=user, account=factories.SubAccountFactory(parent=third))
    assert associated_root_account_ids(user) == {
        root_account.pk,
        other_root_account.pk,
        third.pk,
    }


def test_deleted_logins_and_enrollments_do_not_associate(make_user, root_account):
    user = make_user("Someone", root_account)
    user.logins.update(workflow_state="deleted")
    factories.EnrollmentFactory(user=user, workflow_state="deleted")
    assert associated_root_account_ids(user) == set()


def test_common_root_accounts(make_user, root_account, other_root_account):
    both = make_user("Both", root_account, other_root_account)
    one = make_user("One", root_account)
    assert common_root_account_ids(both, one) == {root_account.pk}
    assert common_root_account_ids(both, both) == set()
    assert common_root_account_ids(one, make_user("Outside", other_root_account)) == set()


# --- "self or admin" -----------------------------------------------------------


def test_self_needs_no_permission(parent, root_account):
    assert authorize_target_user(caller=parent, target=parent, root_account_ids=set()) is None


def test_admin_with_manage_user_observers_is_allowed(admin, parent, root_account):
    allowed = authorize_target_user(caller=admin, target=parent, root_account_ids={root_account.pk})
    assert allowed == {root_account.pk}


def test_admin_without_the_permission_is_refused(disallowed_admin, parent, root_account):
    with pytest.raises(NotAuthorized):
        authorize_target_user(
            caller=disallowed_admin, target=parent, root_account_ids={root_account.pk}
        )


def test_admin_of_another_root_account_is_refused(admin, make_user, other_root_account):
    external_parent = make_user("External Parent", other_root_account)
    with pytest.raises(NotAuthorized):
        authorize_target_user(
            caller=admin,
            target=external_parent,
            root_account_ids=associated_root_account_ids(external_parent),
        )


def test_target_outside_every_root_account_is_not_found(admin, parent):
    with pytest.raises(NotFound):
        authorize_target_user(caller=admin, target=parent, root_account_ids=set())


def test_sub_account_admin_cannot_hold_manage_user_observers(make_user, parent, root_account):
    sub_admin = make_user("Sub Admin", root_account)
    sub = factories.SubAccountFactory(parent=root_account)
    factories.AccountAdminFactory(user=sub_admin, account=sub)  # built-in role, every permission
    with pytest.raises(NotAuthorized):
        authorize_target_user(caller=sub_admin, target=parent, root_account_ids={root_account.pk})


def test_custom_role_with_the_permission_is_allowed(make_user, parent, root_account):
    custom = make_user("Registrar", root_account)
    role = factories.RoleFactory(root_account=root_account, manage_user_observers=True)
    factories.AccountAdminFactory(user=custom, account=root_account, role=role)
    assert authorize_target_user(
        caller=custom, target=parent, root_account_ids={root_account.pk}
    ) == {root_account.pk}


def test_deleted_membership_grants_nothing(admin, parent, root_account):
    admin.admin_roles.update(workflow_state="deleted")
    with pytest.raises(NotAuthorized):
        authorize_target_user(caller=admin, target=parent, root_account_ids={root_account.pk})


def test_superuser_holds_every_permission(make_user, parent, root_account, other_root_account):
    operator = make_user("Operator", is_superuser=True, is_staff=True)
    wanted = {root_account.pk, other_root_account.pk}
    assert root_accounts_with_permission(operator, wanted, Permission.MANAGE_USER_OBSERVERS) == (
        wanted
    )
    assert can_generate_pairing_code(operator, parent, root_account)


def test_multi_admin_gets_only_the_accounts_where_they_hold_it(
    admin, make_user, root_account, other_root_account
):
    wanted = {root_account.pk, other_root_account.pk}
    assert root_accounts_with_permission(admin, wanted, Permission.MANAGE_USER_OBSERVERS) == {
        root_account.pk
    }
    factories.AccountAdminFactory(user=admin, account=other_root_account)
    assert root_accounts_with_permission(admin, wanted, Permission.MANAGE_USER_OBSERVERS) == wanted
    assert root_accounts_with_permission(None, wanted, Permission.MANAGE_USER_OBSERVERS) == set()


# --- who may generate pairing codes (§2.8, §7 items 67-76) --------------------


def test_student_may_generate_for_themself(student, root_account):
    assert can_generate_pairing_code(student, student, root_account)


def test_account_admin_may_generate(admin, student, root_account):  # 73
    assert can_generate_pairing_code(admin, student, root_account)


def test_unrelated_user_may_not(parent, student, root_account):  # 74
    assert not can_generate_pairing_code(parent, student, root_account)


def test_admin_role_without_the_permission_may_not(disallowed_admin, student, root_account):
    assert not can_generate_pairing_code(disallowed_admin, student, root_account)


def test_sub_account_admin_of_the_course_chain_may(make_user, root_account):  # 75, 76
    sub, sub2 = (factories.SubAccountFactory(parent=root_account) for _ in range(2))
    inner = factories.SubAccountFactory(parent=sub)
    student = make_user("Child", root_account)
    enrollments.enroll_user(
        user=student, course=factories.CourseFactory(account=inner), type="student"
    )
    admin_of_sub = make_user("Sub Admin", root_account)
    factories.AccountAdminFactory(user=admin_of_sub, account=sub)
    admin_of_sub2 = make_user("Sub2 Admin", root_account)
    factories.AccountAdminFactory(user=admin_of_sub2, account=sub2)
    assert can_generate_pairing_code(admin_of_sub, student, root_account)
    assert not can_generate_pairing_code(admin_of_sub2, student, root_account)


@pytest.fixture
def teacher(make_user, root_account, student, course):
    user = make_user("Teacher", root_account)
    enrollments.enroll_user(user=user, course=course, type="teacher")
    return user


def test_teacher_without_override_may_not(teacher, student, root_account):  # 70
    assert not can_generate_pairing_code(teacher, student, root_account)
    with pytest.raises(NotAuthorized):
        pairing.issue_pairing_code(
            student=student, root_account=root_account, actor=_actor(teacher)
        )


def test_teacher_with_override_may_even_in_an_unpublished_course(make_user, root_account):  # 71
    course = factories.CourseFactory(account=root_account, workflow_state="unpublished")
    student = make_user("Child", root_account)
    teacher = make_user("Teacher", root_account)
    enrollments.enroll_user(user=student, course=course, type="student")
    enrollments.enroll_user(user=teacher, course=course, type="teacher")
    factories.CourseRoleOverrideFactory(account=root_account, enrollment_type="teacher")
    assert can_generate_pairing_code(teacher, student, root_account)
    issued = pairing.issue_pairing_code(
        student=student, root_account=root_account, actor=_actor(teacher)
    )
    assert issued.pairing_code.issued_by == teacher


def test_nearest_override_wins(teacher, student, root_account, course):
    sub = factories.SubAccountFactory(parent=root_account)
    Course.objects.filter(pk=course.pk).update(account=sub)
    factories.CourseRoleOverrideFactory(account=root_account, enrollment_type="teacher")
    factories.CourseRoleOverrideFactory(account=sub, enrollment_type="teacher", enabled=False)
    assert not can_generate_pairing_code(teacher, student, root_account)


def test_override_for_another_role_does_not_help(teacher, student, root_account):
    factories.CourseRoleOverrideFactory(account=root_account, enrollment_type="ta")
    assert not can_generate_pairing_code(teacher, student, root_account)


def test_deleted_course_grants_nothing(teacher, student, root_account, course):  # 72
    factories.CourseRoleOverrideFactory(account=root_account, enrollment_type="teacher")
    assert can_generate_pairing_code(teacher, student, root_account)
    Course.objects.filter(pk=course.pk).update(workflow_state="deleted")
    assert not can_generate_pairing_code(teacher, student, root_account)


def _actor(user):
    from linking.services.context import Actor

    return Actor(user=user, source="api")
