"""Fixtures of the parent and student pages: the school's people and a client on its host."""

import pytest
from django.test import Client

from linking.services import enrollments, pairing
from linking.services.context import Actor
from tests import factories

HOST = "default.test"
OTHER_HOST = "external.test"
BACKEND = "linking.auth_backends.LoginBackend"


@pytest.fixture
def web(root_account):
    """A browser-like client talking to the default school's host."""
    return Client(HTTP_HOST=HOST, REMOTE_ADDR="10.1.1.1")


@pytest.fixture
def course(root_account):
    return factories.CourseFactory(account=root_account, name="Biology 101")


@pytest.fixture
def make_student(root_account, make_user, course):
    def make(name: str = "Sam Student", account=None, in_course=None):
        account = account or root_account
        student = make_user(name, account)
        target = in_course or (course if account == root_account else None)
        if target is None:
            target = factories.CourseFactory(account=account, name=f"{name} course")
        enrollments.enroll_user(user=student, course=target, type="student")
        return student

    return make


@pytest.fixture
def student(make_student):
    return make_student("Sam Student")


@pytest.fixture
def parent(root_account, make_user):
    return make_user("Pat Parent", root_account)


@pytest.fixture
def issue_code():
    def issue(student, root_account):
        return pairing.issue_pairing_code(
            student=student, root_account=root_account, actor=Actor(user=student)
        )

    return issue


@pytest.fixture
def signed_in(web):
    def sign_in(user):
        web.force_login(user, backend=BACKEND)
        return web

    return sign_in
