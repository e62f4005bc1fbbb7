"""Acting on the rules of who may observe: restrictions, protection, the student's answer, time.

``services.rules`` judges a link; this module changes things because of
the rules: recording and lifting restrictions (a restriction ends the
person's links at once), protecting students (their codes are revoked),
the student ending, approving or declining a link, and the scheduled work
(end dates passing, students coming of age), as functions of an explicit
``now`` run by ``manage.py apply_link_rules``. Each change goes through the
link services, so enrollments follow and the audit trail and notifications
see it like any other.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from ..models import (
    Account,
    AuditAction,
    ComingOfAge,
    ComingOfAgePolicy,
    Enrollment,
    EnrollmentType,
    LinkEnd,
    LinkSource,
    Login,
    ObservationLink,
    ObservationRestriction,
    ProtectedStudent,
    User,
)
from ..models.lookups import any_of
from .audit import record_event
from .context import Actor
from .errors import LinkRefused, NotAuthorized, NotFound
from .links import activate_pending_link, make_link_pending, unlink_observer
from .locks import lock_student, share_students
from .pairing import revoke_student_codes
from .rules import (
    ADULT_STUDENT,
    adulthood_cutoff,
    check_restriction,
    judge,
    record_refusal,
    student_may_end_links,
)

# Restrictions ------------------------------------------------------------------


def _restricted_links(restriction: ObservationRestriction) -> list[ObservationLink]:
    links = ObservationLink.objects.live().filter(
        root_account=restriction.root_account, student=restriction.student
    )
    match = Q(pk__in=[])
    if restriction.observer_id is not None:
        match |= Q(observer_id=restriction.observer_id)
    if restriction.observer_email:
        email = restriction.observer_email.strip().lower()
        by_login = (
            Login.objects.annotate(uid=Lower("unique_id"))
            .filter(uid=email)
            .exclude(workflow_state=Login.State.DELETED)
            .values("user_id")
        )
        by_email = User.objects.annotate(mail=Lower("email")).filter(mail=email).values("pk")
        match |= Q(observer_id__in=by_login) | Q(observer_id__in=by_email)
    return list(links.filter(match).select_related("observer", "student", "root_account"))


@transaction.atomic
def record_restriction(
    *,
    root_account: Account,
    student: User,
    actor: Actor,
    reason: str,
    observer: User | None = None,
    observer_email: str = "",
    document_reference: str = "",
    ends_at: datetime | None = None,
) -> tuple[ObservationRestriction, int]:
    """Record that a person must not observe a student; their links end at once.

    Returns the restriction and the number of links it ended (their
    observer enrollments end and each removal is audited and notified like
    any other, without the reason). Raises LinkingError when the
    restriction names nobody or has no reason (check_restriction).
    """
    observer_email = (observer_email or "").strip()
    check_restriction(
        student=student, observer=observer, observer_email=observer_email, reason=reason
    )
    # Waits for links being written to the student to commit, so it ends
    # them; a link written after this commits sees the restriction (locks).
    lock_student(student.pk)
    restriction = ObservationRestriction.objects.create(
        root_account=root_account,
        student=student,
        observer=observer,
        observer_email=observer_email,
        reason=reason.strip(),
        document_reference=document_reference.strip(),
        recorded_by=actor.user if actor.user is not None and actor.user.pk else None,
        ends_at=ends_at,
    )
    record_event(
        action=AuditAction.RESTRICTION_RECORDED,
        actor=actor,
        root_account=root_account,
        observer=observer,
        student=student,
        detail={"restriction": restriction.pk},
    )

    ended = sum(
        unlink_observer(link=link, actor=actor, reason=LinkEnd.RESTRICTION)
        for link in _restricted_links(restriction)
    )
    return restriction, ended


@transaction.atomic
def lift_restriction(*, restriction: ObservationRestriction, actor: Actor) -> bool:
    """End a restriction before its end date (no link comes back by itself)."""
    now = timezone.now()
    lifted = ObservationRestriction.objects.filter(
        pk=restriction.pk, lifted_at__isnull=True
    ).update(lifted_at=now, lifted_by=actor.user if actor.user and actor.user.pk else None)
    if lifted:
        record_event(
            action=AuditAction.RESTRICTION_LIFTED,
            actor=actor,
            root_account=restriction.root_account,
            observer=restriction.observer,
            student=restriction.student,
            detail={"restriction": restriction.pk},
        )
    return bool(lifted)


# Protected students -------------------------------------------------------------


@transaction.atomic
def protect_student(
    *, student: User, root_account: Account, actor: Actor, note: str = "", by_sis: bool = False
) -> tuple[ProtectedStudent, bool]:
    """Protect a student: their unused pairing codes are revoked and no new one is issued.

    From then on only staff can link them and no e-mail or webhook names
    them (see ``judge`` and services.notifications). Returns (row, created).
    """
    protection, created = ProtectedStudent.objects.get_or_create(
        root_account=root_account,
        student=student,
        defaults={
            "note": note,
            "by_sis": by_sis,
            "recorded_by": actor.user if actor.user is not None and actor.user.pk else None,
        },
    )
    if created:
        revoke_student_codes(student=student, root_account=root_account, actor=actor)
        record_event(
            action=AuditAction.STUDENT_PROTECTED,
            actor=actor,
            root_account=root_account,
            student=student,
        )
    return protection, created


@transaction.atomic
def unprotect_student(*, protection: ProtectedStudent, actor: Actor) -> None:
    record_event(
        action=AuditAction.STUDENT_UNPROTECTED,
        actor=actor,
        root_account=protection.root_account,
        student=protection.student,
    )
    protection.delete()


def set_protection_from_sis(
    *, root_account: Account, flags: dict[int, bool], actor: Actor
) -> tuple[int, int]:
    """What an SIS file says of students' protection: (newly protected, no longer protected).

    ``True`` protects (protect_student: codes revoked, audited); ``False``
    lifts only a protection an SIS import recorded, never one staff made by
    hand (staff may know what the SIS does not). One query when nothing
    changes.
    """
    if not flags:
        return 0, 0
    existing = dict(
        ProtectedStudent.objects.filter(
            any_of("student_id", flags), root_account=root_account
        ).values_list("student_id", "by_sis")
    )
    to_protect = [pk for pk, flag in flags.items() if flag and pk not in existing]
    to_lift = [pk for pk, flag in flags.items() if not flag and existing.get(pk)]
    students = User.objects.in_bulk([*to_protect, *to_lift])
    for pk in to_protect:
        protect_student(student=students[pk], root_account=root_account, actor=actor, by_sis=True)
    for protection in ProtectedStudent.objects.filter(
        any_of("student_id", to_lift), root_account=root_account, by_sis=True
    ).select_related("student", "root_account"):
        unprotect_student(protection=protection, actor=actor)
    return len(to_protect), len(to_lift)


# The student's voice ------------------------------------------------------------


def _students_link(link_id: int, student: User, root_account: Account, state: str):
    link = (
        ObservationLink.objects.filter(
            pk=link_id, student=student, root_account=root_account, workflow_state=state
        )
        .select_related("observer", "student", "root_account")
        .first()
    )
    if link is None:
        raise NotFound()
    return link


def end_link_as_student(
    *, link_id: int, student: User, root_account: Account, actor: Actor
) -> ObservationLink:
    """The student ends one of their links: allowed for adults, or where the school allows it.

    Raises NotFound (no such active link of theirs) or NotAuthorized. The
    observer can then not re-link without the student's approval.
    """

    link = _students_link(link_id, student, root_account, ObservationLink.State.ACTIVE)
    if not student_may_end_links(student, root_account):
        raise NotAuthorized("Your school does not let students end their observers' links.")
    unlink_observer(link=link, actor=actor, reason=LinkEnd.STUDENT)
    return link


def approve_link(
    *, link_id: int, student: User, root_account: Account, actor: Actor
) -> ObservationLink:
    """The student approves a pending link: it becomes active and enrollments follow.

    Restrictions are judged again (one may have been recorded meanwhile),
    under the student's share lock like any link being written (locks).
    Raises NotFound when the student has no such pending link.
    """

    link = _students_link(link_id, student, root_account, ObservationLink.State.PENDING)
    with transaction.atomic():
        share_students([student.pk])
        verdict = judge(
            root_account=root_account, pairs=[(link.observer_id, student.pk)], by_staff=True
        ).popitem()[1]
        if not verdict.refused:
            activate_pending_link(link=link, actor=actor)
            return link
    record_refusal(
        verdict=verdict,
        actor=actor,
        root_account=root_account,
        observer=link.observer,
        student=student,
        source=LinkSource.PORTAL,
    )
    raise LinkRefused()


def decline_link(
    *, link_id: int, student: User, root_account: Account, actor: Actor
) -> ObservationLink:
    """The student declines a pending link; the person cannot re-link without their approval."""

    link = _students_link(link_id, student, root_account, ObservationLink.State.PENDING)
    unlink_observer(link=link, actor=actor, reason=LinkEnd.DECLINED)
    return link


# Scheduled work ------------------------------------------------------------------


def end_links_past_their_end(*, now: datetime, actor: Actor | None = None) -> int:
    """End every live link whose end date has passed at ``now`` (enrollments end, audited).

    Each link is ended by ``unlink_observer`` (its own conditional update),
    so two runs at once end each link once.
    """

    actor = actor or Actor.system()
    links = ObservationLink.objects.past_end(now).select_related(
        "observer", "student", "root_account"
    )
    return sum(
        unlink_observer(link=link, actor=actor, reason=LinkEnd.END_DATE, now=now)
        for link in links.order_by("id")
    )


def _students_come_of_age(root_account: Account, now: datetime) -> list[User]:
    """Students of the root account who are of age at ``now`` and not yet handled."""
    cutoff = adulthood_cutoff(root_account.age_of_majority, timezone.localdate(now))
    student_ids = Enrollment.objects.filter(
        root_account=root_account, type=EnrollmentType.STUDENT
    ).values("user_id")
    linked_ids = (
        ObservationLink.objects.live().filter(root_account=root_account).values("student_id")
    )
    handled = ComingOfAge.objects.filter(root_account=root_account).values("student_id")
    return list(
        User.objects.live()
        .filter(birth_date__lte=cutoff)
        .filter(Q(pk__in=student_ids) | Q(pk__in=linked_ids))
        .exclude(pk__in=handled)
        .order_by("pk")
    )


@transaction.atomic
def apply_coming_of_age(
    *, student: User, root_account: Account, now: datetime, actor: Actor | None = None
) -> int:
    """Apply the root account's coming-of-age policy to one student, once.

    keep: nothing changes; ask: each active link becomes pending (enrollments
    end until the student approves it again); end: each live link ends.
    The student is told by the audit events' notifications. Returns the
    number of links changed; 0 when the policy was already applied.
    """

    actor = actor or Actor.system()
    policy = root_account.coming_of_age_policy
    _row, created = ComingOfAge.objects.get_or_create(
        root_account=root_account,
        student=student,
        defaults={"policy": policy, "applied_at": now},
    )
    if not created:
        return 0
    record_event(
        action=AuditAction.STUDENT_CAME_OF_AGE,
        actor=actor,
        root_account=root_account,
        student=student,
        detail={"policy": policy},
    )
    links = (
        ObservationLink.objects.live()
        .filter(student=student, root_account=root_account)
        .select_related("observer", "student", "root_account")
        .order_by("id")
    )
    changed = 0
    for link in links:
        if policy == ComingOfAgePolicy.END:
            changed += unlink_observer(
                link=link, actor=actor, reason=LinkEnd.COMING_OF_AGE, now=now
            )
        elif policy == ComingOfAgePolicy.ASK and link.workflow_state == "active":
            changed += make_link_pending(link=link, actor=actor, reason=ADULT_STUDENT)
    return changed


def apply_coming_of_age_everywhere(*, now: datetime, actor: Actor | None = None) -> int:
    """``apply_coming_of_age`` for every student of age at ``now`` in every root account."""
    total = 0
    for root_account in Account.objects.roots().filter(age_of_majority__isnull=False):
        for student in _students_come_of_age(root_account, now):
            total += apply_coming_of_age(
                student=student, root_account=root_account, now=now, actor=actor
            )
    return total


@dataclass(frozen=True)
class ScheduledRun:
    ended_by_date: int
    changed_by_coming_of_age: int


def apply_link_rules(*, now: datetime, actor: Actor | None = None) -> ScheduledRun:
    """The scheduled work: end links past their end date, then apply coming of age."""
    return ScheduledRun(
        ended_by_date=end_links_past_their_end(now=now, actor=actor),
        changed_by_coming_of_age=apply_coming_of_age_everywhere(now=now, actor=actor),
    )
