"""Who may read whose enrollments and courses (Canvas's Enrollments and Courses APIs).

Read-only: enrollments change only through ``services.enrollments`` and
the link services. Each function returns the enrollments a caller may see
as a queryset the API narrows further with its filters, or raises
NotAuthorized / NotFound. Canvas's rules (canvas-oauth-scopes-enrollments.md
§4.3 and §5.2), kept inside the school the request's host serves:

- a user reads all of their own enrollments;
- an observer with an active link to the student reads the student's
  enrollments in the root accounts where that link is active;
- an admin whose role holds ``read_roster`` on the school reads the
  enrollments of the school's users;
- in a course, someone who has been an observer there reads their own
  enrollments plus the student enrollments of the students they observe
  there; teachers, TAs and designers (and roster-reading admins) read the
  course's roster; any other member of the course reads only their own.
"""

import re
from dataclasses import dataclass

from django.db.models import Q

from ..models import (
    Account,
    Course,
    Enrollment,
    EnrollmentState,
    EnrollmentType,
    ObservationLink,
    Permission,
    User,
)
from .errors import NotAuthorized, NotFound
from .permissions import has_account_permission

_INTEGER = re.compile(r"^\d{1,18}$")
ROSTER_ROLES = (EnrollmentType.TEACHER, EnrollmentType.TA, EnrollmentType.DESIGNER)


@dataclass(frozen=True)
class EnrollmentScope:
    """The enrollments a caller may read, and how Canvas defaults ``state[]`` for that path."""

    enrollments: object  # a queryset of Enrollment
    path: str  # "self", "other", "course_admin", "course_observer", "course_member"
    read_as_admin: bool = False


def _linked_root_account_ids(*, observer: User, student: User) -> set[int]:
    return set(
        ObservationLink.objects.active()
        .filter(observer=observer, student=student)
        .values_list("root_account_id", flat=True)
    )


def user_enrollment_scope(*, caller: User, target: User, root_account: Account) -> EnrollmentScope:
    """``GET /users/:user_id/enrollments``: self, a linked observer, or a roster-reading admin."""
    enrollments = Enrollment.objects.filter(user=target)
    if caller.pk == target.pk:
        return EnrollmentScope(enrollments=enrollments, path="self")
    linked = _linked_root_account_ids(observer=caller, student=target)
    if linked:
        return EnrollmentScope(
            enrollments=enrollments.filter(root_account_id__in=linked), path="other"
        )
    if has_account_permission(caller, root_account, Permission.READ_ROSTER):
        return EnrollmentScope(
            enrollments=enrollments.filter(root_account=root_account),
            path="other",
            read_as_admin=True,
        )
    raise NotAuthorized()


def user_course_scope(*, caller: User, target: User, root_account: Account) -> EnrollmentScope:
    """``GET /users/:user_id/courses`` (``require_user_or_observer``): the same three callers."""
    return user_enrollment_scope(caller=caller, target=target, root_account=root_account)


def resolve_course(reference: str, *, root_account: Account) -> Course:
    """A course of the school from ``:course_id`` (an id or ``sis_course_id:``), else NotFound."""
    reference = (reference or "").strip()
    courses = Course.objects.filter(root_account=root_account).exclude(
        workflow_state=Course.State.DELETED
    )
    if _INTEGER.match(reference):
        course = courses.filter(pk=int(reference)).first()
    elif reference.startswith("sis_course_id:") and len(reference) > len("sis_course_id:"):
        course = courses.filter(sis_course_id=reference[len("sis_course_id:") :]).first()
    else:
        course = None
    if course is None:
        raise NotFound()
    return course


def course_enrollment_scope(*, caller: User, course: Course) -> EnrollmentScope:
    """``GET /courses/:course_id/enrollments``: roster readers, observers there, then members."""
    in_course = Enrollment.objects.filter(course=course)
    if has_account_permission(caller, course.root_account, Permission.READ_ROSTER):
        return EnrollmentScope(enrollments=in_course, path="course_admin", read_as_admin=True)
    own = list(
        in_course.filter(user=caller)
        .exclude(workflow_state=EnrollmentState.DELETED)
        .values_list("type", "workflow_state", "associated_user_id")
    )
    if not own:
        raise NotAuthorized()
    live = {EnrollmentState.ACTIVE, EnrollmentState.INVITED}
    if any(kind in ROSTER_ROLES and state in live for kind, state, _student in own):
        return EnrollmentScope(enrollments=in_course, path="course_admin")
    observed = [
        student
        for kind, state, student in own
        if kind == EnrollmentType.OBSERVER and state == EnrollmentState.ACTIVE and student
    ]
    if any(kind == EnrollmentType.OBSERVER for kind, _state, _student in own):
        return EnrollmentScope(
            enrollments=in_course.filter(
                Q(user=caller) | Q(user_id__in=observed, type=EnrollmentType.STUDENT)
            ),
            path="course_observer",
        )
    return EnrollmentScope(enrollments=in_course.filter(user=caller), path="course_member")


def course_visible_to(*, caller: User, course: Course) -> bool:
    """Whether the caller may see the course at all (any enrollment there, or an admin)."""
    if (
        Enrollment.objects.filter(course=course, user=caller)
        .exclude(workflow_state=EnrollmentState.DELETED)
        .exists()
    ):
        return True
    return has_account_permission(caller, course.root_account, Permission.READ_ROSTER)
