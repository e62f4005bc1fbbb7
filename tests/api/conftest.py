"""Fixtures of Canvas's user_observees_api_spec (canvas-behaviour.md §7), on two host names.

*Default* serves default.test, *External* serves external.test. Unless a
test says otherwise the caller is ``allowed_admin`` on default.test.
"""

import pytest
from rest_framework.test import APIClient

from linking.models import EnrollmentType
from linking.services import accounts as account_services
from linking.services.context import Actor
from linking.services.enrollments import enroll_user
from linking.services.links import link_observer
from linking.services.tokens import issue_access_token
from tests import factories

DEFAULT_HOST = "default.test"
EXTERNAL_HOST = "external.test"


@pytest.fixture
def default_account(root_account):
    return root_account


@pytest.fixture
def external_account(other_root_account):
    return other_root_account


@pytest.fixture
def parent(make_user, default_account):
    return make_user("Parent Smith", default_account)


@pytest.fixture
def student(make_user, default_account):
    return make_user("Child Smith", default_account)


@pytest.fixture
def student2(make_user, default_account):
    return make_user("Another Smith", default_account)


@pytest.fixture
def external_parent(make_user, external_account):
    return make_user("External Parent", external_account)


@pytest.fixture
def external_student(make_user, external_account):
    return make_user("External Student", external_account)


@pytest.fixture
def multi_parent(make_user, default_account, external_account):
    return make_user("Multi Parent", default_account, external_account)


@pytest.fixture
def multi_student(make_user, default_account, external_account):
    return make_user("Multi Student", default_account, external_account)


@pytest.fixture
def allowed_admin(make_user, default_account):
    admin = make_user("Allowed Admin", default_account)
    account_services.make_account_admin(user=admin, account=default_account)
    return admin


@pytest.fixture
def disallowed_admin(make_user, default_account):
    admin = make_user("Disallowed Admin", default_account)
    role = factories.RoleFactory(
        name="No observers", root_account=default_account, manage_user_observers=False
    )
    account_services.make_account_admin(user=admin, account=default_account, role=role)
    return admin


@pytest.fixture
def multi_admin(make_user, default_account, external_account):
    admin = make_user("Multi Admin", default_account, external_account)
    account_services.make_account_admin(user=admin, account=default_account)
    account_services.make_account_admin(user=admin, account=external_account)
    return admin


@pytest.fixture
def sub_account(default_account):
    return account_services.create_sub_account(parent=default_account, name="Science")


@pytest.fixture
def sub_account_admin(make_user, default_account, sub_account):
    admin = make_user("Sub Admin", default_account)
    account_services.make_account_admin(user=admin, account=sub_account)
    return admin


@pytest.fixture
def course(default_account):
    return account_services.create_course(account=default_account, name="Biology")


@pytest.fixture
def enrolled_student(student, course):
    """``student`` with an active student enrollment in ``course`` (pairable)."""
    enroll_user(user=student, course=course, type=EnrollmentType.STUDENT)
    return student


@pytest.fixture
def teacher(make_user, default_account, course):
    """A teacher of ``course`` without any role override."""
    user = make_user("Teacher Jones", default_account)
    enroll_user(user=user, course=course, type=EnrollmentType.TEACHER)
    return user


@pytest.fixture
def teacher_with_override(make_user, default_account):
    """A teacher in an unpublished course, with a CourseRoleOverride enabling codes for teachers."""
    course = account_services.create_course(
        account=default_account, name="Chemistry", workflow_state="unpublished"
    )
    user = make_user("Teacher Override", default_account)
    pupil = make_user("Pupil Override", default_account)
    enroll_user(user=user, course=course, type=EnrollmentType.TEACHER)
    enroll_user(user=pupil, course=course, type=EnrollmentType.STUDENT)
    factories.CourseRoleOverrideFactory(account=default_account, enrollment_type="teacher")
    user.pupil = pupil
    return user


@pytest.fixture
def token_for(db):
    """token_for(user) -> plaintext bearer token."""

    def issue(user):
        return issue_access_token(user=user, actor=Actor.system())[1]

    return issue


@pytest.fixture
def api(token_for):
    """api(user, host=DEFAULT_HOST) -> an APIClient authenticated as ``user`` on that host."""

    def make(user=None, host: str = DEFAULT_HOST, **extra):
        client = APIClient(HTTP_HOST=host, REMOTE_ADDR="203.0.113.7", **extra)
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
        return client

    return make


@pytest.fixture
def link(db):
    """link(observer, student, root_account) -> an active link made by the service."""

    def make(observer, student, root_account):
        return link_observer(
            observer=observer, student=student, root_account=root_account, actor=Actor.system()
        )[0]

    return make
