"""POST /api/v1/users/:user_id/observer_pairing_codes (§7 items 67-76)."""

import datetime as dt
import re

import pytest
from django.utils import timezone

from linking.models import AuditAction, AuditEvent, EnrollmentType, PairingCode, SelfRegistration
from linking.services import accounts as account_services
from linking.services.enrollments import enroll_user
from tests import factories
from tests.api.helpers import assert_not_found, assert_unauthorized


def url(user) -> str:
    return f"/api/v1/users/{user.pk}/observer_pairing_codes"


def test_codes_switched_off_is_401(api, enrolled_student, default_account):
    """The school's own switch turns codes off, whatever its self-registration."""
    default_account.pairing_codes_enabled = False
    default_account.save()
    assert_unauthorized(api(enrolled_student).post(url(enrolled_student)))
    assert not PairingCode.objects.exists()


@pytest.mark.parametrize("caller", ["enrolled_student", "allowed_admin"])
def test_self_registration_off_is_401_as_in_canvas(
    api, enrolled_student, default_account, caller, request
):
    """Canvas (§2.8 step 1): no codes where parents cannot self-register, admins included."""
    default_account.self_registration = SelfRegistration.NONE
    default_account.save()
    assert_unauthorized(api(request.getfixturevalue(caller)).post(url(enrolled_student)))
    assert not PairingCode.objects.exists()
    default_account.self_registration = SelfRegistration.OBSERVER
    default_account.save()
    assert api(enrolled_student).post(url(enrolled_student)).status_code == 200
    assert PairingCode.objects.count() == 1


def test_student_creates_own_code(api, enrolled_student, frozen_now):
    response = api(enrolled_student, HTTP_USER_AGENT="ua").post(
        "/api/v1/users/self/observer_pairing_codes"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"user_id", "code", "expires_at", "workflow_state"}
    assert body["user_id"] == enrolled_student.pk
    assert body["workflow_state"] == "active"
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}", body["code"])
    expires = dt.datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert expires == frozen_now.now + dt.timedelta(days=7)
    code = PairingCode.objects.get()
    assert code.student == enrolled_student
    assert body["code"].replace("-", "") not in code.code_hash  # stored hashed only
    event = AuditEvent.objects.get(action=AuditAction.CODE_ISSUED)
    assert (event.actor_id, event.source, event.user_agent) == (enrolled_student.pk, "api", "ua")


def test_expiry_is_between_six_and_seven_days(api, enrolled_student):
    body = api(enrolled_student).post(url(enrolled_student)).json()
    expires = dt.datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert timezone.now() + dt.timedelta(days=6) < expires <= timezone.now() + dt.timedelta(days=7)


def test_user_without_enrollments_is_refused(api, student):
    assert_unauthorized(api(student).post(url(student)))
    assert not PairingCode.objects.exists()


def test_teacher_without_override_is_refused(api, teacher, enrolled_student):
    response = api(teacher).post(url(enrolled_student))
    assert_unauthorized(response)
    assert "code" not in response.json()
    assert not PairingCode.objects.exists()


def test_teacher_with_override_in_unpublished_course(api, teacher_with_override):
    pupil = teacher_with_override.pupil
    response = api(teacher_with_override).post(url(pupil))
    assert response.status_code == 200, response.content
    assert response.json()["user_id"] == pupil.pk
    assert PairingCode.objects.get().student == pupil


def test_teacher_of_deleted_course_is_refused(api, make_user, default_account):
    course = account_services.create_course(account=default_account, name="Gone")
    teacher = make_user("Gone Teacher", default_account)
    pupil = make_user("Gone Pupil", default_account)
    enroll_user(user=teacher, course=course, type=EnrollmentType.TEACHER)
    enroll_user(user=pupil, course=course, type=EnrollmentType.STUDENT)
    factories.CourseRoleOverrideFactory(account=default_account, enrollment_type="teacher")
    course.workflow_state = "deleted"
    course.save()
    assert_unauthorized(api(teacher).post(url(pupil)))


def test_account_admin_creates_code(api, allowed_admin, enrolled_student):
    response = api(allowed_admin).post(url(enrolled_student))
    assert response.status_code == 200
    assert response.json()["code"]


def test_unrelated_user_is_refused(api, make_user, default_account, enrolled_student):
    stranger = make_user("Stranger", default_account)
    assert_unauthorized(api(stranger).post(url(enrolled_student)))
    assert not PairingCode.objects.exists()


def test_sub_account_admin_for_student_in_their_sub_account(
    api, sub_account, sub_account_admin, make_user, default_account
):
    course = account_services.create_course(account=sub_account, name="Physics")
    pupil = make_user("Physics Pupil", default_account)
    enroll_user(user=pupil, course=course, type=EnrollmentType.STUDENT)
    response = api(sub_account_admin).post(url(pupil))
    assert response.status_code == 200
    assert response.json()["code"]


def test_sub_account_admin_for_student_elsewhere_is_refused(
    api, sub_account_admin, default_account, make_user
):
    other = account_services.create_sub_account(parent=default_account, name="Arts")
    course = account_services.create_course(account=other, name="Painting")
    pupil = make_user("Art Pupil", default_account)
    enroll_user(user=pupil, course=course, type=EnrollmentType.STUDENT)
    assert_unauthorized(api(sub_account_admin).post(url(pupil)))
    assert not PairingCode.objects.exists()


def test_unknown_student_is_404(api, allowed_admin):
    assert_not_found(api(allowed_admin).post("/api/v1/users/0/observer_pairing_codes"))


def test_unauthenticated_is_401(api, enrolled_student):
    response = api().post(url(enrolled_student))
    assert response.status_code == 401
    assert response.json()["status"] == "unauthenticated"
    assert not PairingCode.objects.exists()


def test_sixth_code_revokes_the_oldest(api, enrolled_student):
    client = api(enrolled_student)
    for _ in range(6):
        assert client.post(url(enrolled_student)).status_code == 200
    assert PairingCode.objects.filter(workflow_state="active").count() == 5
    assert PairingCode.objects.filter(workflow_state="revoked").count() == 1
