"""Fuzzing the API from its own OpenAPI schema (issue 7): no 5xx, every answer as documented.

schemathesis gets the schema that ``/api/schema/`` serves (generated here by
drf-spectacular at import time, because collection may not touch the
database; a test checks it equals the served one) and, through the Django
WSGI app, for every operation sends a bounded number of generated requests (deterministic
examples) as a seeded parent holding a bearer token. Each response must not
be a server error and must match the schema: documented status code,
content type, headers and body.
"""

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from linking.models import EnrollmentType
from linking.services import accounts as account_services
from linking.services.context import Actor
from linking.services.enrollments import enroll_user
from linking.services.links import link_observer
from linking.services.pairing import issue_pairing_code
from linking.services.tokens import issue_access_token
from observers_project.wsgi import application

HOST = "fuzz.test"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """Calling the WSGI app directly would close the test's connection after each request.

    Django's own test client disconnects ``close_old_connections`` the same
    way; without it PostgreSQL loses the test transaction mid-fuzz.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(db):
    """A school with a parent linked to a student, another student and a live code; a token."""
    school = account_services.create_root_account(name="Fuzz School", domain=HOST)
    course = account_services.create_course(account=school, name="Fuzzing")
    parent = account_services.create_user_with_login(
        name="Fuzz Parent", root_account=school, unique_id="parent@fuzz.test"
    )
    students = []
    for index in range(2):
        student = account_services.create_user_with_login(
            name=f"Fuzz Student {index}",
            root_account=school,
            unique_id=f"student{index}@fuzz.test",
            sis_user_id=f"S{index}",
        )
        enroll_user(user=student, course=course, type=EnrollmentType.STUDENT)
        students.append(student)
    link_observer(observer=parent, student=students[0], root_account=school, actor=Actor.system())
    issue_pairing_code(student=students[1], root_account=school, actor=Actor.system())
    token = issue_access_token(user=parent, actor=Actor.system())[1]
    return {"token": token, "parent": parent, "students": students}


def _generated_schema() -> dict:
    return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True)))


schema = schemathesis.openapi.from_dict(_generated_schema())
schema.app = application
schema.location = "/api/schema/"


def test_the_fuzzed_schema_is_the_served_one(seeded):
    response = Client(HTTP_HOST=HOST).get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    assert json.loads(response.content) == _generated_schema()
    assert len(list(schema.get_all_operations())) >= 9


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case, seeded):
    case.call_and_validate(
        headers={"Host": HOST, "Authorization": f"Bearer {seeded['token']}"},
        checks=CHECKS,
    )
