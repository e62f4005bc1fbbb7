"""Two schools for the security tests: A serves a.test, B serves b.test."""

import pytest
from rest_framework.test import APIClient

from linking.models import EnrollmentType
from linking.services import accounts as account_services
from linking.services.context import Actor
from linking.services.enrollments import enroll_user
from linking.services.links import link_observer
from linking.services.tokens import issue_access_token

HOST_A = "a.test"
HOST_B = "b.test"
CLIENT_IP = "198.51.100.20"


def _school(name, domain):
    school = account_services.create_root_account(name=name, domain=domain)
    school.course = account_services.create_course(account=school, name=f"{name} Maths")
    return school


def _person(school, unique_id, name):
    return account_services.create_user_with_login(
        name=name, root_account=school, unique_id=unique_id, password="a long test password"
    )


@pytest.fixture
def schools(db):
    """School A with a parent, a student (linked), an admin; the same set in school B."""
    people = {}
    for key, domain in (("a", HOST_A), ("b", HOST_B)):
        school = _school(f"School {key.upper()}", domain)
        parent = _person(school, f"parent@{domain}", f"Parent {key.upper()}")
        student = _person(school, f"student@{domain}", f"Student {key.upper()}")
        admin = _person(school, f"admin@{domain}", f"Admin {key.upper()}")
        enroll_user(user=student, course=school.course, type=EnrollmentType.STUDENT)
        account_services.make_account_admin(user=admin, account=school)
        link_observer(observer=parent, student=student, root_account=school, actor=Actor.system())
        people[key] = {"school": school, "parent": parent, "student": student, "admin": admin}
    return people


@pytest.fixture
def bearer(db):
    """bearer(user, host) -> an APIClient sending that user's new token to ``host``."""

    def make(user, host):
        token = issue_access_token(user=user, actor=Actor.system())[1]
        client = APIClient(HTTP_HOST=host, REMOTE_ADDR=CLIENT_IP)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    return make
