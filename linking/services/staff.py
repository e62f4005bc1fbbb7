"""What school staff do in the admin that needs more than one core service call.

Issuing pairing codes for a whole course (Canvas's course pairing-code CSV,
canvas-behaviour.md §3), the rows of that CSV, and the staff "add link" rule:
both people must belong to the root account the link is made in.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from ..models import (
    Account,
    Course,
    Enrollment,
    EnrollmentState,
    EnrollmentType,
    LinkSource,
    Login,
    ObservationLink,
    User,
)
from ..spreadsheet import text_row
from ..timezones import local_iso
from . import rules
from .context import Actor
from .errors import CannotObserveSelf, NoCommonRootAccount, NotAuthorized
from .links import link_observer
from .pairing import IssuedCode, issue_pairing_code
from .permissions import common_root_account_ids

CSV_HEADER = ["Last Name", "First Name", "SIS ID", "Pairing Code", "Expires At"]
# Students who get a code when staff issue for a course: Canvas's course.students.
COURSE_STUDENT_STATES = [EnrollmentState.ACTIVE, EnrollmentState.INVITED]


@dataclass(frozen=True)
class PairingLetter:
    """One issued code with what a letter or CSV row shows about its student."""

    student: User
    sis_user_id: str | None
    issued: IssuedCode


def course_students(*, course: Course) -> list[User]:
    """The active and invited students of a course, by sortable name."""
    student_ids = Enrollment.objects.filter(
        course=course, type=EnrollmentType.STUDENT, workflow_state__in=COURSE_STUDENT_STATES
    ).values("user_id")
    return list(User.objects.live().filter(pk__in=student_ids).order_by("sortable_name", "pk"))


def _sis_ids(students: Iterable[User], root_account: Account) -> dict[int, str | None]:
    rows = (
        Login.objects.filter(user__in=list(students), root_account=root_account)
        .exclude(workflow_state=Login.State.DELETED)
        .order_by("-id")
        .values_list("user_id", "sis_user_id")
    )
    found: dict[int, str | None] = {}
    for user_id, sis_user_id in rows:
        if sis_user_id or user_id not in found:
            found[user_id] = sis_user_id
    return found


@transaction.atomic
def issue_student_pairing_letter(
    *, student: User, root_account: Account, actor: Actor
) -> PairingLetter:
    """Issue one code for a student (issue_pairing_code's rules and errors apply)."""
    issued = issue_pairing_code(student=student, root_account=root_account, actor=actor)
    return PairingLetter(
        student=student,
        sis_user_id=_sis_ids([student], root_account).get(student.pk),
        issued=issued,
    )


@transaction.atomic
def issue_course_pairing_letters(*, course: Course, actor: Actor) -> list[PairingLetter]:
    """Issue one new code for every active or invited student of a course, all or nothing.

    Each code goes through issue_pairing_code, so its rules hold per student
    (FeatureDisabled, NotAuthorized); the first refusal rolls every code of
    the batch back. Raises NotAuthorized when the course has no students.
    """
    students = course_students(course=course)
    if not students:
        raise NotAuthorized("This course has no active students to issue codes for.")
    root_account = course.root_account
    sis_ids = _sis_ids(students, root_account)
    return [
        PairingLetter(
            student=student,
            sis_user_id=sis_ids.get(student.pk),
            issued=issue_pairing_code(student=student, root_account=root_account, actor=actor),
        )
        for student in students
    ]


def pairing_code_csv_rows(letters: Iterable[PairingLetter]) -> Iterator[list[str]]:
    """Canvas's course pairing-code CSV: a header, then one row per student.

    The code is written as ``="ABCD-EFGH"`` (as Canvas does) so spreadsheets
    keep it as text; that formula is ours. Every other cell comes from
    people's data and is written so a spreadsheet never evaluates it
    (``linking.spreadsheet``): a student named ``=HYPERLINK(...)`` stays text.
    """
    yield CSV_HEADER
    for letter in letters:
        last_name, first_name, sis_id = text_row(
            [letter.student.last_name, letter.student.first_name, letter.sis_user_id or ""]
        )
        yield [
            last_name,
            first_name,
            sis_id,
            f'="{letter.issued.plaintext}"',
            # In the school's time zone, with its offset.
            local_iso(letter.issued.expires_at, letter.issued.pairing_code.root_account),
        ]


def check_staff_link(
    *, observer: User, student: User, root_account: Account, actor: Actor
) -> rules.Verdict:
    """Staff may link two different people who both belong to the root account.

    Raises CannotObserveSelf or NoCommonRootAccount, or the LinkRefused of
    a rule of who may observe (a restriction; recorded in the audit trail).
    Writes no link, so a form can call it while validating. Returns the
    verdict: PENDING when the student must approve the link first.
    """
    if observer.pk == student.pk:
        raise CannotObserveSelf(
            "The observer and the student are the same person: a person cannot observe themselves."
        )
    if root_account.pk not in common_root_account_ids(observer, student):
        raise NoCommonRootAccount(
            "The observer and the student must both belong to this institution."
        )
    return rules.enforce(
        observer=observer,
        student=student,
        root_accounts=[root_account],
        source=LinkSource.ADMIN,
        actor=actor,
    )[root_account.pk]


def staff_link_observer(
    *,
    observer: User,
    student: User,
    root_account: Account,
    actor: Actor,
    kind: str | None = None,
    ends_at: datetime | None = None,
) -> tuple[ObservationLink, bool]:
    """Link (or restore) observer -> student on a root account from the staff admin.

    check_staff_link's errors, then link_observer's (source "admin"), with
    the link's kind and end date. Not one transaction of its own, so a
    refusal's audit event stays (link_observer is atomic itself).
    """
    check_staff_link(observer=observer, student=student, root_account=root_account, actor=actor)
    return link_observer(
        observer=observer,
        student=student,
        root_account=root_account,
        actor=actor,
        source=LinkSource.ADMIN,
        kind=kind,
        ends_at=ends_at,
    )
