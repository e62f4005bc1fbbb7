"""GET /api/v1/courses and /api/v1/users/:user_id/courses (Canvas §5)."""

import pytest

from linking.models import Course, Enrollment, EnrollmentType
from linking.services import accounts as account_services
from linking.services.enrollments import enroll_user

from .conftest import EXTERNAL_HOST
from .helpers import assert_not_found, assert_unauthorized


@pytest.fixture
def family(parent, student, student2, course, default_account, link):
    art = account_services.create_course(account=default_account, name="Art")
    enroll_user(user=student, course=course, type=EnrollmentType.STUDENT)
    enroll_user(user=student2, course=art, type=EnrollmentType.STUDENT)
    link(parent, student, default_account)
    link(parent, student2, default_account)
    return {"biology": course, "art": art}


def test_parent_lists_courses_with_observer_enrollments(api, parent, student, student2, family):
    response = api(parent).get("/api/v1/courses")
    assert response.status_code == 200, response.content
    rows = response.json()
    assert [row["id"] for row in rows] == [family["art"].pk, family["biology"].pk]  # by name
    biology = rows[1]
    assert biology["name"] == "Biology"
    assert biology["workflow_state"] == "available"
    assert biology["root_account_id"] == family["biology"].root_account_id
    own = Enrollment.objects.get(user=parent, course=family["biology"])
    assert biology["enrollments"] == [
        {
            "type": "observer",
            "role": "ObserverEnrollment",
            "role_id": 7,
            "user_id": parent.pk,
            "enrollment_state": "active",
            "limit_privileges_to_course_section": False,
            "associated_user_id": student.pk,
        }
    ]
    assert own.associated_user_id == student.pk
    assert 'rel="current"' in response["Link"] and 'rel="last"' not in response["Link"]


def test_observed_users_adds_the_students_enrollments(api, parent, student, family):
    rows = api(parent).get("/api/v1/courses", {"include[]": "observed_users"}).json()
    biology = next(row for row in rows if row["id"] == family["biology"].pk)
    assert [(e["type"], e["user_id"]) for e in biology["enrollments"]] == [
        ("observer", parent.pk),
        ("student", student.pk),
    ]
    assert "associated_user_id" not in biology["enrollments"][1]


def test_filters(api, parent, teacher, family):
    assert api(parent).get("/api/v1/courses", {"enrollment_type": "teacher"}).json() == []
    rows = api(teacher).get("/api/v1/courses", {"enrollment_type": "teacher"}).json()
    assert [row["id"] for row in rows] == [family["biology"].pk]
    Course.objects.filter(pk=family["art"].pk).update(workflow_state="completed")
    assert [r["id"] for r in api(parent).get("/api/v1/courses").json()] == [family["biology"].pk]
    rows = api(parent).get("/api/v1/courses", {"state[]": "completed"}).json()
    assert [row["id"] for row in rows] == [family["art"].pk]


def test_user_courses_self_observer_admin_outsider(
    api, parent, student, family, allowed_admin, external_parent, student2
):
    path = f"/api/v1/users/{student.pk}/courses"
    assert [r["id"] for r in api(student).get(path).json()] == [family["biology"].pk]
    observed = api(parent).get(path).json()
    assert [r["id"] for r in observed] == [family["biology"].pk]
    assert observed[0]["enrollments"][0]["user_id"] == student.pk
    assert [r["id"] for r in api(allowed_admin).get(path).json()] == [family["biology"].pk]
    assert_unauthorized(api(external_parent).get(path))
    assert_unauthorized(api(student2).get(path))
    assert_not_found(api(parent).get("/api/v1/users/0/courses"))


def test_other_school_admin_sees_nothing_here(api, parent, family, make_user, external_account):
    admin = make_user("Ext Admin", external_account)
    account_services.make_account_admin(user=admin, account=external_account)
    path = f"/api/v1/users/{parent.pk}/courses"
    assert_unauthorized(api(admin).get(path))
    assert api(admin, host=EXTERNAL_HOST).get(path).json() == []


def test_unauthenticated(api, default_account):
    response = api().get("/api/v1/courses")
    assert response.status_code == 401
    assert response.json()["status"] == "unauthenticated"
