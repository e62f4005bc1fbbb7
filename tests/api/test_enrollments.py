"""GET /api/v1/users/:user_id/enrollments and /courses/:course_id/enrollments (Canvas §4).

Callers: the user themself, a linked observer, an admin with read_roster, an
outsider; on both schools.
"""

import pytest

from linking.models import Enrollment, EnrollmentState, EnrollmentType, ObservationLink
from linking.services import accounts as account_services
from linking.services.context import Actor
from linking.services.enrollments import enroll_user
from linking.services.links import unlink_observer
from tests import factories

from .conftest import EXTERNAL_HOST
from .helpers import assert_not_found, assert_unauthorized


@pytest.fixture
def family(parent, student, student2, course, default_account, link):
    """Parent observing two students; the first in Biology, the second in Biology and Art."""
    art = account_services.create_course(account=default_account, name="Art")
    enroll_user(user=student, course=course, type=EnrollmentType.STUDENT)
    enroll_user(user=student2, course=course, type=EnrollmentType.STUDENT)
    enroll_user(user=student2, course=art, type=EnrollmentType.STUDENT)
    link(parent, student, default_account)
    link(parent, student2, default_account)
    return {"biology": course, "art": art}


def observer_enrollments(parent):
    return list(Enrollment.objects.filter(user=parent, type=EnrollmentType.OBSERVER).order_by("id"))


def test_parent_lists_own_observer_enrollments(api, parent, student, student2, family):
    response = api(parent).get("/api/v1/users/self/enrollments")
    assert response.status_code == 200, response.content
    rows = response.json()
    expected = observer_enrollments(parent)
    assert len(expected) == 3
    assert sorted(row["id"] for row in rows) == [e.pk for e in expected]
    row = next(r for r in rows if r["associated_user_id"] == student.pk)
    enrollment = Enrollment.objects.get(pk=row["id"])
    assert row == {
        "id": enrollment.pk,
        "user_id": parent.pk,
        "course_id": family["biology"].pk,
        "type": "ObserverEnrollment",
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "associated_user_id": student.pk,
        "start_at": None,
        "end_at": None,
        "course_section_id": None,
        "root_account_id": enrollment.root_account_id,
        "limit_privileges_to_course_section": False,
        "enrollment_state": "active",
        "role": "ObserverEnrollment",
        "role_id": 7,
        "html_url": f"http://default.test/courses/{family['biology'].pk}/users/{parent.pk}",
        "user": {
            "id": parent.pk,
            "name": "Parent Smith",
            "created_at": row["user"]["created_at"],
            "sortable_name": "Smith, Parent",
            "short_name": "Parent Smith",
        },
    }
    assert response["Link"] == (
        '<http://default.test/api/v1/users/self/enrollments?page=1&per_page=10>; rel="current",'
        '<http://default.test/api/v1/users/self/enrollments?page=1&per_page=10>; rel="first"'
    )


def test_observed_users_include(api, parent, student, family):
    response = api(parent).get(
        "/api/v1/users/self/enrollments",
        {"include[]": "observed_users", "type[]": "ObserverEnrollment"},
    )
    rows = response.json()
    row = next(r for r in rows if r["associated_user_id"] == student.pk)
    observed = row["observed_user"]
    assert observed["id"] == student.pk and observed["name"] == "Child Smith"
    student_enrollment = Enrollment.objects.get(user=student, type=EnrollmentType.STUDENT)
    assert [e["id"] for e in observed["enrollments"]] == [student_enrollment.pk]
    assert observed["enrollments"][0]["type"] == "StudentEnrollment"
    assert "user" not in observed["enrollments"][0]
    assert observed["enrollments"][0]["grades"] == {
        "html_url": f"http://default.test/courses/{family['biology'].pk}/grades/{student.pk}"
    }


def test_type_and_state_filters(api, parent, student, family):
    client = api(parent)
    assert (
        client.get("/api/v1/users/self/enrollments", {"type[]": "StudentEnrollment"}).json() == []
    )
    response = client.get("/api/v1/users/self/enrollments", {"state[]": "deleted"})
    assert response.status_code == 400
    assert response.json() == {"error": "Invalid state deleted"}
    response = client.get("/api/v1/users/self/enrollments", {"role[]": "Parent"})
    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": "role not found"}]}
    rows = client.get(
        "/api/v1/users/self/enrollments",
        {"role[]": "ObserverEnrollment", "type[]": "StudentEnrollment"},
    ).json()
    assert len(rows) == 3  # type[] is ignored when a role is given


def test_pagination_is_open_ended(api, parent, family):
    response = api(parent).get("/api/v1/users/self/enrollments", {"per_page": 2})
    assert len(response.json()) == 2
    assert 'rel="next"' in response["Link"] and 'rel="last"' not in response["Link"]
    second = api(parent).get("/api/v1/users/self/enrollments", {"per_page": 2, "page": 2})
    assert len(second.json()) == 1 and 'rel="next"' not in second["Link"]


def test_observer_reads_the_students_enrollments(api, parent, student, family):
    response = api(parent).get(f"/api/v1/users/{student.pk}/enrollments")
    assert response.status_code == 200
    expected = Enrollment.objects.get(user=student)
    assert [row["id"] for row in response.json()] == [expected.pk]
    assert response.json()[0]["grades"]["html_url"].endswith(f"/grades/{student.pk}")


def test_student_cannot_read_the_parents_enrollments(api, parent, student, family):
    assert_unauthorized(api(student).get(f"/api/v1/users/{parent.pk}/enrollments"))


def test_admin_with_read_roster_reads_and_without_is_refused(
    api, allowed_admin, disallowed_admin, parent, family
):
    response = api(allowed_admin).get(f"/api/v1/users/{parent.pk}/enrollments")
    assert response.status_code == 200
    assert sorted(r["id"] for r in response.json()) == [e.pk for e in observer_enrollments(parent)]
    assert_unauthorized(api(disallowed_admin).get(f"/api/v1/users/{parent.pk}/enrollments"))


def test_outsider_and_other_schools_admin_are_refused(
    api, external_parent, parent, family, make_user, external_account
):
    assert_unauthorized(api(external_parent).get(f"/api/v1/users/{parent.pk}/enrollments"))
    other_admin = make_user("Other Admin", external_account)
    account_services.make_account_admin(user=other_admin, account=external_account)
    # On its own host the other school's admin sees none of this school's enrollments...
    response = api(other_admin, host=EXTERNAL_HOST).get(f"/api/v1/users/{parent.pk}/enrollments")
    assert response.status_code == 200 and response.json() == []
    # ...and on this school's host it holds no role at all.
    assert_unauthorized(api(other_admin).get(f"/api/v1/users/{parent.pk}/enrollments"))


def test_unlinked_parent_no_longer_reads(api, parent, student, family, default_account):
    link = ObservationLink.objects.get(observer=parent, student=student)
    unlink_observer(link=link, actor=Actor.system())
    assert_unauthorized(api(parent).get(f"/api/v1/users/{student.pk}/enrollments"))
    states = set(
        Enrollment.objects.filter(user=parent, associated_user=student).values_list(
            "workflow_state", flat=True
        )
    )
    assert states == {EnrollmentState.DELETED}


def test_sis_filters_need_read_sis(api, parent, allowed_admin, family):
    response = api(parent).get("/api/v1/users/self/enrollments", {"sis_course_id[]": "X"})
    assert response.status_code == 400
    assert response.json() == {"message": "Insufficient permissions to filter by SIS fields"}
    course = family["biology"]
    course.sis_course_id = "BIO-1"
    course.save()
    response = api(allowed_admin).get(
        f"/api/v1/users/{parent.pk}/enrollments", {"sis_course_id[]": "BIO-1"}
    )
    rows = response.json()
    assert [r["course_id"] for r in rows] == [course.pk, course.pk]
    assert rows[0]["sis_course_id"] == "BIO-1"


def test_unknown_user_is_404(api, parent):
    assert_not_found(api(parent).get("/api/v1/users/0/enrollments"))


def test_course_enrollments_for_observer_teacher_admin_and_outsider(
    api,
    parent,
    student,
    student2,
    family,
    teacher,
    allowed_admin,
    external_parent,
    make_user,
    default_account,
):
    course = family["biology"]
    path = f"/api/v1/courses/{course.pk}/enrollments"
    observer_rows = api(parent).get(path).json()
    own = Enrollment.objects.filter(course=course, user=parent)
    students = Enrollment.objects.filter(course=course, user__in=[student, student2])
    assert sorted(r["id"] for r in observer_rows) == sorted(
        [e.pk for e in own] + [e.pk for e in students]
    )
    teacher_rows = api(teacher).get(path).json()
    assert len(teacher_rows) == Enrollment.objects.filter(course=course).count()
    admin_rows = api(allowed_admin).get(path).json()
    assert len(admin_rows) == len(teacher_rows)
    assert_unauthorized(api(external_parent).get(path))
    # another parent enrolled nowhere in the course
    stranger = make_user("Stranger", default_account)
    assert_unauthorized(api(stranger).get(path))
    # a student sees only their own enrollment there
    assert [r["user_id"] for r in api(student).get(path).json()] == [student.pk]


def test_course_of_another_school_is_404(api, parent, external_account, family):
    other = account_services.create_course(account=external_account, name="Elsewhere")
    assert_not_found(api(parent).get(f"/api/v1/courses/{other.pk}/enrollments"))
    assert_not_found(api(parent).get("/api/v1/courses/sis_course_id:nope/enrollments"))


def test_course_enrollments_user_id_filter(api, teacher, student, student2, family):
    course = family["biology"]
    rows = (
        api(teacher)
        .get(f"/api/v1/courses/{course.pk}/enrollments", {"user_id": student2.pk})
        .json()
    )
    assert {r["user_id"] for r in rows} == {student2.pk}


def test_factories_roster_is_isolated(api, external_parent, external_student, external_account):
    course = factories.CourseFactory(account=external_account, root_account=external_account)
    enroll_user(user=external_student, course=course, type=EnrollmentType.STUDENT)
    response = api(external_student, host=EXTERNAL_HOST).get("/api/v1/users/self/enrollments")
    assert [r["course_id"] for r in response.json()] == [course.pk]


def test_written_out_default_agrees_with_the_filterset(make_user, default_account, frozen_now):
    """own_current_enrollments (SQL) == self_state_condition("current_and_invited") (ORM)."""
    import datetime as dt
    import itertools

    from linking.api.filters import self_state_condition
    from linking.models import Course, Term
    from linking.services.rosters import own_current_enrollments

    now = frozen_now.now
    day = dt.timedelta(days=1)
    terms = [None] + [
        Term.objects.create(root_account=default_account, name=name, start_at=start, end_at=end)
        for name, start, end in (
            ("current", now - day, now + day),
            ("ended", now - 2 * day, now - day),
            ("future", now + day, now + 2 * day),
            ("open", None, None),
        )
    ]
    user = make_user("Many Roles", default_account)
    rows = []
    combos = itertools.product(
        ["student", "teacher", "observer", "designer"],
        ["active", "invited", "inactive", "completed", "rejected"],
        ["available", "unpublished", "completed"],
        terms,
    )
    for kind, state, course_state, term in combos:
        course = Course.objects.create(
            name="C",
            account=default_account,
            root_account=default_account,
            workflow_state=course_state,
            term=term,
        )
        rows.append(
            Enrollment(
                user=user,
                course=course,
                root_account=default_account,
                type=kind,
                workflow_state=state,
            )
        )
    Enrollment.objects.bulk_create(rows)
    by_orm = set(
        Enrollment.objects.filter(user=user)
        .filter(self_state_condition("current_and_invited", now))
        .values_list("pk", flat=True)
    )
    by_sql = {e.pk for e in own_current_enrollments(user=user, now=now, offset=0, limit=1000)}
    assert by_sql == by_orm
    # Not vacuous: some pass and most do not.
    assert 10 < len(by_sql) < len(rows) / 2


def test_avatar_url_follows_the_schools_setting(api, parent, family, default_account):
    rows = api(parent).get("/api/v1/users/self/enrollments", {"include[]": "avatar_url"}).json()
    assert rows and all("avatar_url" not in row["user"] for row in rows)
    default_account.avatars_enabled = True
    default_account.save()
    rows = (
        api(parent)
        .get("/api/v1/users/self/enrollments", {"include[]": ["avatar_url", "observed_users"]})
        .json()
    )
    assert all(
        row["user"]["avatar_url"] == "http://default.test/images/messages/avatar-50.png"
        for row in rows
    )
    assert all("avatar_url" in row["observed_user"] for row in rows)
