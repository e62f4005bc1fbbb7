"""Fixtures for the service tests: a school with a course, a student in it, a parent."""

import pytest

from linking.models import AuditSource
from linking.services import enrollments
from linking.services.context import Actor
from tests import factories


@pytest.fixture
def course(root_account):
    return factories.CourseFactory(account=root_account, name="Course 1")


@pytest.fixture
def student(make_user, root_account, course):
    """A student with a login in the default school and an active student enrollment."""
    user = make_user("Child Smith", root_account)
    enrollments.enroll_user(user=user, course=course, type="student")
    return user


@pytest.fixture
def parent(make_user, root_account):
    return make_user("Parent Smith", root_account)


@pytest.fixture
def admin(make_user, root_account):
    """An account admin of the default school (built-in role: every permission)."""
    user = make_user("Allowed Admin", root_account, is_staff=True)
    factories.AccountAdminFactory(user=user, account=root_account)
    return user


@pytest.fixture
def act():
    """act(user, ip=...) -> an API Actor for that user from that address."""

    def make(user, ip: str | None = "192.0.2.10") -> Actor:
        return Actor(user=user, source=AuditSource.API, ip_address=ip, user_agent="pytest")

    return make
