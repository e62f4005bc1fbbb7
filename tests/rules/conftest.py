"""Fixtures of the who-may-observe tests: a school, a student, a parent and its staff."""

import datetime as dt
from types import SimpleNamespace

import pytest

from linking.models import EnrollmentType
from linking.services.enrollments import enroll_user
from tests import factories
from tests.admin.conftest import admin_a, admin_b  # noqa: F401 - the staff clients

HOST = "default.test"
REASON = "Court order 42/2026: Secret reason text"


@pytest.fixture
def w(root_account, make_user, staff_a):
    """The default school with a student (in a course), a parent and a staff admin."""
    course = factories.CourseFactory(account=root_account, name="Biology 101")
    student = make_user("Sam Student", root_account, sis_user_id="S-1", email="sam@example.test")
    enroll_user(user=student, course=course, type=EnrollmentType.STUDENT)
    parent = make_user("Pat Parent", root_account, sis_user_id="P-1", email="pat@example.test")
    return SimpleNamespace(
        root=root_account, course=course, student=student, parent=parent, staff=staff_a
    )


def years_ago(years: int, days: int = 0) -> dt.date:
    today = dt.date.today()
    return today.replace(year=today.year - years) - dt.timedelta(days=days)
