"""Staff personas for the admin tests: school A's staff, school B's staff, a site superuser."""

import pytest
from django.test import Client

from linking.models import EnrollmentType
from linking.services.enrollments import enroll_user
from tests import factories

SCHOOL_A = "default.test"
SCHOOL_B = "external.test"


def client_for(user, host: str) -> Client:
    client = Client(HTTP_HOST=host)
    client.force_login(user)
    return client


@pytest.fixture
def superuser(root_account, make_user):
    return make_user("Sue Operator", root_account, is_staff=True, is_superuser=True)


@pytest.fixture
def admin_a(staff_a):
    return client_for(staff_a, SCHOOL_A)


@pytest.fixture
def admin_b(staff_b):
    return client_for(staff_b, SCHOOL_B)


@pytest.fixture
def super_client(superuser):
    return client_for(superuser, SCHOOL_A)


@pytest.fixture
def course_a(root_account):
    return factories.CourseFactory(account=root_account, name="Biology 101", course_code="BIO101")


@pytest.fixture
def enrolled_student(course_a, make_user, root_account):
    """make a student of course A: enrolled_student("Name", sis_user_id=...)"""

    def make(name: str, sis_user_id: str | None = None):
        student = make_user(name, root_account, sis_user_id=sis_user_id)
        enroll_user(user=student, course=course_a, type=EnrollmentType.STUDENT)
        return student

    return make


def changeform_data(response) -> dict:
    """The POST data an admin change form would send back unchanged (main form and inlines)."""
    data = {}

    def put(form):
        for name, field in form.fields.items():
            value = form[name].value()
            if value is None or value is False or field.disabled:
                continue
            if value is True:
                value = "on"
            data[form.add_prefix(name)] = value

    put(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        put(formset.management_form)
        for form in formset.forms:
            put(form)
    return data


def run_action(client, changelist_url: str, action: str, objects, **extra):
    return client.post(
        changelist_url,
        {"action": action, "_selected_action": [obj.pk for obj in objects], **extra},
    )
