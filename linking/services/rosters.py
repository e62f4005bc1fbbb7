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
from functools import cache

from django.db.models import Q

from ..models import (
    Account,
    Course,
    Enrollment,
    EnrollmentState,
    EnrollmentType,
    ObservationLink,
    Permission,
    Term,
    User,
)
from .errors import NotAuthorized, NotFound
from .permissions import has_account_permission
from .sql import Select, column_list

_INTEGER = re.compile(r"^\d{1,18}$")
STUDENT_LIKE = (EnrollmentType.STUDENT, EnrollmentType.OBSERVER)
# The course roles that read a course's roster (and see unpublished courses).
STAFF_LIKE = (EnrollmentType.TEACHER, EnrollmentType.TA, EnrollmentType.DESIGNER)


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
    """Whose enrollments a caller reads for ``/users/:user_id/enrollments`` and ``/courses``.

    The user themself, a linked observer, or a roster-reading admin of the
    school; anyone else raises NotAuthorized.
    """
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
    if any(kind in STAFF_LIKE and state in live for kind, state, _student in own):
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


# --- the parent's hot path, written out ----------------------------------------------------

_OWN_PAGE = Select([(Enrollment, None), (Course, ("id", "workflow_state"))])


@cache
def _own_page_sql() -> str:
    """A user's current and invited enrollments (Canvas's default for one's own), one page.

    The condition is ``api.filters.self_state_condition("current_and_invited")``
    written out: active or invited; students and observers in available
    courses, staff roles also in unpublished ones; the term neither ended nor
    yet to start. ``tests/api/test_enrollments.py`` checks that both agree on
    every combination of states and dates. Canvas orders by type, the user's
    name and id; the user is one here, so type and id. Parameters: the user,
    the active and invited states, the student-like types, available, the
    staff types, available and unpublished, now (end), now (start), limit,
    offset.
    """
    columns = ", ".join(
        [column_list(Enrollment, "e"), column_list(Course, "c", ("id", "workflow_state"))]
    )
    return (
        f"SELECT {columns}"  # noqa: S608
        f" FROM {Enrollment._meta.db_table} e"
        f" INNER JOIN {Course._meta.db_table} c ON c.id = e.course_id"
        f" LEFT OUTER JOIN {Term._meta.db_table} t ON t.id = c.term_id"
        " WHERE e.user_id = %s AND e.workflow_state IN (%s, %s)"
        " AND ((e.type IN (%s, %s) AND c.workflow_state = %s)"
        " OR (e.type IN (%s, %s, %s) AND c.workflow_state IN (%s, %s)))"
        " AND (t.end_at IS NULL OR t.end_at > %s) AND (t.start_at IS NULL OR t.start_at <= %s)"
        " ORDER BY e.type, e.id LIMIT %s OFFSET %s"
    )


def own_current_enrollments(*, user: User, now, offset: int, limit: int) -> list[Enrollment]:
    """One page of ``user``'s current and invited enrollments, in one query.

    Each comes with its course (its state only) and ``user`` itself. A
    parent app asks for this on every start (``GET /users/self/enrollments``
    without filters), so the statement is written out (see ``services.sql``)
    and joins only what the filter needs.
    """
    params = [
        user.pk,
        EnrollmentState.ACTIVE,
        EnrollmentState.INVITED,
        *STUDENT_LIKE,
        Course.State.AVAILABLE,
        *STAFF_LIKE,
        Course.State.AVAILABLE,
        Course.State.UNPUBLISHED,
        now,
        now,
        limit,
        offset,
    ]
    found = []
    for enrollment, course in _OWN_PAGE.rows(_own_page_sql(), params):
        enrollment.course = course
        enrollment.user = user
        found.append(enrollment)
    return found


def avatar_settings(root_account_ids) -> dict[int, Account]:
    """The root accounts (whether avatars are on, only) by id: one query."""
    return Account.objects.only("id", "avatars_enabled").in_bulk(set(root_account_ids))
