"""Enrollments, and the observer enrollments that mirror linked students' (canvas-behaviour.md §5).

An active observation link on root account R gives the observer an observer
enrollment (``associated_user`` = the student) in every course of R where
the student holds a live student enrollment, copying its state (invited
becomes active). Removing the link deletes them; changes to the student's
enrollments keep them in step.
"""

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..models import (
    Course,
    Enrollment,
    EnrollmentState,
    EnrollmentType,
    Login,
    ObservationLink,
    User,
)
from ..models.courses import mirrorable_q
from ..models.lookups import any_of
from .bulk import update_in_bulk

# Student states that an observer enrollment mirrors. Inactive counts (the
# observer then sits inactive too); completed, rejected and deleted do not.
MIRRORED_STATES = {EnrollmentState.INVITED, EnrollmentState.ACTIVE, EnrollmentState.INACTIVE}
# Student states after which a returning enrollment re-creates observer
# enrollments someone deleted explicitly.
RETURNING_FROM = {
    EnrollmentState.INACTIVE,
    EnrollmentState.DELETED,
    EnrollmentState.COMPLETED,
    EnrollmentState.REJECTED,
}


def observer_state_for(student_state: str) -> str:
    return EnrollmentState.ACTIVE if student_state == EnrollmentState.INVITED else student_state


def observer_enrollment_mirroring(
    student_enrollment: Enrollment, *, observer_id: int
) -> Enrollment:
    """An unsaved observer enrollment copying a student enrollment's course, dates and state."""
    return Enrollment(
        user_id=observer_id,
        course_id=student_enrollment.course_id,
        root_account_id=student_enrollment.root_account_id,
        type=EnrollmentType.OBSERVER,
        associated_user_id=student_enrollment.user_id,
        workflow_state=observer_state_for(student_enrollment.workflow_state),
        start_at=student_enrollment.start_at,
        end_at=student_enrollment.end_at,
    )


def _observer_can_enroll(observer_id: int, root_account_id: int) -> bool:
    return (
        Login.objects.filter(user_id=observer_id, root_account_id=root_account_id)
        .exclude(workflow_state=Login.State.DELETED)
        .exists()
    )


def mirror_link_enrollments(link: ObservationLink) -> int:
    """Mirror the student's live student enrollments of the link's root account for the observer.

    Existing observer enrollments that are deleted or inactive are restored
    from the student's; live ones are left alone. Observers without a login
    in the root account get none (Canvas: they cannot be enrolled there).
    Returns the number of enrollments created or changed.
    """
    if link.workflow_state != ObservationLink.State.ACTIVE:
        return 0
    if not _observer_can_enroll(link.observer_id, link.root_account_id):
        return 0
    # The student's mirrorable enrollments and the observer's existing
    # enrollments for this student, in one query.
    student_enrollments, existing = [], {}
    rows = Enrollment.objects.filter(
        mirrorable_q(user_id=link.student_id)
        | Q(user_id=link.observer_id, associated_user_id=link.student_id),
        root_account_id=link.root_account_id,
    ).order_by("course_id", "id")
    for enrollment in rows:
        if enrollment.user_id == link.student_id:
            student_enrollments.append(enrollment)
        else:
            existing[enrollment.course_id] = enrollment
    if not student_enrollments:
        return 0
    now = timezone.now()
    to_create, to_update = [], []
    for source in student_enrollments:
        mirrored = existing.get(source.course_id)
        state = observer_state_for(source.workflow_state)
        if mirrored is None:
            to_create.append(observer_enrollment_mirroring(source, observer_id=link.observer_id))
            existing[source.course_id] = to_create[-1]
        elif mirrored.workflow_state in (EnrollmentState.DELETED, EnrollmentState.INACTIVE) and (
            mirrored.workflow_state != state or mirrored.start_at != source.start_at
        ):
            mirrored.workflow_state = state
            mirrored.start_at = source.start_at
            mirrored.end_at = source.end_at
            mirrored.updated_at = now
            to_update.append(mirrored)
    Enrollment.objects.bulk_create(to_create)
    Enrollment.objects.bulk_update(
        to_update, ["workflow_state", "start_at", "end_at", "updated_at"]
    )
    return len(to_create) + len(to_update)


def remove_link_enrollments(link: ObservationLink) -> int:
    """Delete the observer enrollments a link made (those in its root account for its student)."""
    return (
        Enrollment.objects.filter(
            user_id=link.observer_id,
            associated_user_id=link.student_id,
            root_account_id=link.root_account_id,
            type=EnrollmentType.OBSERVER,
        )
        .exclude(workflow_state=EnrollmentState.DELETED)
        .update(workflow_state=EnrollmentState.DELETED, updated_at=timezone.now())
    )


def _sync_observers_of(enrollment: Enrollment, *, previous_state: str | None) -> None:
    """Keep the observers of a student enrollment's student in step with it."""
    sync_observers_in_bulk([(enrollment, previous_state)])


def sync_observers_in_bulk(changes: list[tuple[Enrollment, str | None]]) -> int:
    """Bring linked observers in step with changed student enrollments in a fixed number of queries.

    ``changes`` pairs each created or changed enrollment with its state
    before (None for a new one). For each active link of its student in its
    root account: a live student enrollment gives the observer a mirrored
    observer enrollment (created only for observers with a login there);
    one that was explicitly deleted comes back only when the student's
    enrollment is new or returns from an ended state; an ended student
    enrollment (completed, rejected, deleted) ends the mirror. Returns the
    number of observer enrollments created or changed.
    """
    students = [(e, prev) for e, prev in changes if e.type == EnrollmentType.STUDENT]
    if not students:
        return 0
    student_ids = {e.user_id for e, _ in students}
    root_ids = {e.root_account_id for e, _ in students}
    observers: dict[tuple[int, int], list[int]] = {}
    for student_id, root_id, observer_id in (
        ObservationLink.objects.active()
        .filter(any_of("student_id", student_ids), root_account_id__in=root_ids)
        .order_by("id")
        .values_list("student_id", "root_account_id", "observer_id")
    ):
        observers.setdefault((student_id, root_id), []).append(observer_id)
    if not observers:
        return 0
    observer_ids = {o for ids in observers.values() for o in ids}
    enrollable = set(
        Login.objects.filter(any_of("user_id", observer_ids), root_account_id__in=root_ids)
        .exclude(workflow_state=Login.State.DELETED)
        .values_list("user_id", "root_account_id")
    )
    existing = {
        (e.user_id, e.course_id, e.associated_user_id): e
        for e in Enrollment.objects.filter(
            any_of("associated_user_id", student_ids), any_of("user_id", observer_ids)
        ).order_by()
    }
    now = timezone.now()
    to_create, to_update = [], {}
    for enrollment, previous_state in students:
        linked = observers.get((enrollment.user_id, enrollment.root_account_id))
        if not linked:
            continue
        state = enrollment.workflow_state
        is_new = previous_state is None
        returning = previous_state in RETURNING_FROM and state in MIRRORED_STATES
        for observer_id in linked:
            key = (observer_id, enrollment.course_id, enrollment.user_id)
            mirrored = existing.get(key)
            if state in MIRRORED_STATES:
                target = observer_state_for(state)
                if mirrored is None:
                    if (observer_id, enrollment.root_account_id) in enrollable:
                        created = observer_enrollment_mirroring(enrollment, observer_id=observer_id)
                        to_create.append(created)
                        existing[key] = created
                    continue
                explicitly_deleted = mirrored.workflow_state == EnrollmentState.DELETED
                if explicitly_deleted and not (is_new or returning):
                    continue
                if mirrored.workflow_state != target:
                    mirrored.workflow_state = target
                    mirrored.start_at = enrollment.start_at
                    mirrored.end_at = enrollment.end_at
                    mirrored.updated_at = now
                    if mirrored.pk:
                        to_update[mirrored.pk] = mirrored
            elif mirrored is not None and mirrored.workflow_state != EnrollmentState.DELETED:
                # The student's enrollment ended (completed, rejected, deleted): so does the mirror.
                mirrored.workflow_state = (
                    EnrollmentState.COMPLETED
                    if state == EnrollmentState.COMPLETED
                    else EnrollmentState.DELETED
                )
                mirrored.updated_at = now
                if mirrored.pk:
                    to_update[mirrored.pk] = mirrored
    Enrollment.objects.bulk_create(to_create, batch_size=1000)
    update_in_bulk(
        Enrollment, list(to_update.values()), ["workflow_state", "start_at", "end_at", "updated_at"]
    )
    return len(to_create) + len(to_update)


@transaction.atomic
def enroll_user(
    *,
    user: User,
    course: Course,
    type: str,
    workflow_state: str = EnrollmentState.ACTIVE,
    associated_user: User | None = None,
) -> Enrollment:
    """Enroll a user in a course (or bring an existing enrollment to ``workflow_state``).

    A student enrollment brings the student's linked observers along.
    Observer enrollments made here are one-off course observers (with
    ``associated_user``), independent of observation links.
    """
    if type == EnrollmentType.OBSERVER and associated_user is None:
        raise ValueError("observer enrollments need an associated user")
    enrollment = (
        Enrollment.objects.select_for_update()
        .filter(user=user, course=course, type=type, associated_user=associated_user)
        .first()
    )
    if enrollment is None:
        enrollment = Enrollment.objects.create(
            user=user,
            course=course,
            root_account_id=course.root_account_id,
            type=type,
            workflow_state=workflow_state,
            associated_user=associated_user,
        )
        _sync_observers_of(enrollment, previous_state=None)
        return enrollment
    return set_enrollment_state(enrollment=enrollment, workflow_state=workflow_state)


@transaction.atomic
def set_enrollment_state(*, enrollment: Enrollment, workflow_state: str) -> Enrollment:
    """Change an enrollment's state; observer enrollments of a student follow."""
    previous = enrollment.workflow_state
    if previous == workflow_state:
        return enrollment
    enrollment.workflow_state = workflow_state
    enrollment.save(update_fields=["workflow_state", "updated_at"])
    _sync_observers_of(enrollment, previous_state=previous)
    return enrollment
