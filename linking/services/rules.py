"""Who may observe whom: the rules every way of making a link asks before it writes.

One judgement (``judge``) for every path: the API (credentials, a student's
token, a pairing code, by id), the parent pages (pairing, sign-up), the
admin, both SIS formats and, once they exist, invitations (their service
calls ``link_observer(source=LinkSource.INVITATION)``, refused as
InvalidInvitation, the answer of any unusable invitation). In order:

1. **Restriction** (a court or no-contact order) in force for the person and
   the student in the root account: refused, on every path, staff's too.
   The person is matched by user and by e-mail (the user's address and
   their login ids), so a second account with the same address is refused.
2. **Protected student**: refused unless staff make the link (the admin,
   an SIS import, the API by id or an admin acting for an observer).
3. **Consent needed**: the student has come of age (the root account's age
   of majority against their birth date), or the student once ended or
   declined this person's link. The link is made *pending*: no enrollments
   and no Canvas list shows it until the student approves it. A pairing
   code the student issued themselves (after their last ending of the
   link) is their consent, and links at once.

A refusal is recorded as a ``link.refused`` audit event naming the rule
(never a restriction's reason). Staff are told the rule; anyone else gets
the answer their path gives for a wrong code or wrong credentials, so a
refusal reveals nothing (docs/security.md).

The scheduled work (end dates passing, students coming of age) is here too,
as functions of an explicit ``now`` run by ``manage.py apply_link_rules``.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Coalesce, Lower
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
    PairingCode,
    ProtectedStudent,
    User,
)
from ..models.lookups import any_of
from .audit import record_event
from .context import Actor
from .errors import (
    InvalidCredentials,
    InvalidInvitation,
    InvalidPairingCode,
    LinkingError,
    LinkRefused,
    NotAuthorized,
    UnknownObservee,
)

ALLOW = "allow"
PENDING = "pending"
REFUSE = "refuse"

RESTRICTION = "restriction"
PROTECTED_STUDENT = "protected_student"
ADULT_STUDENT = "adult_student"
ENDED_BY_STUDENT = "ended_by_student"

# Sources where staff make the link: they may link a protected student.
STAFF_SOURCES = {LinkSource.ADMIN, LinkSource.SIS, LinkSource.API}

STAFF_MESSAGES = {
    RESTRICTION: "A restriction on record does not allow this person to observe this student.",
    PROTECTED_STUDENT: "This student is protected: only staff can link them.",
}


@dataclass(frozen=True)
class Verdict:
    outcome: str  # ALLOW, PENDING or REFUSE
    rule: str = ""
    restriction_id: int | None = None

    @property
    def refused(self) -> bool:
        return self.outcome == REFUSE


ALLOWED = Verdict(ALLOW)


def is_staff_link(*, source: str, actor: Actor, observer: User | None) -> bool:
    """Staff make the link: a staff path, a system actor, or an admin acting for the observer.

    A parent signing up (no account yet, so no acting user) is never staff.
    """
    if source in STAFF_SOURCES:
        return True
    if source == LinkSource.SELF_REGISTRATION and observer is None:
        return False
    if actor.user is None:
        return True
    return observer is None or actor.user.pk != observer.pk


def adulthood_cutoff(age: int, today: date) -> date:
    """The latest birth date of someone ``age`` years old on ``today`` (29 February -> 1 March)."""
    try:
        return today.replace(year=today.year - age)
    except ValueError:  # today is 29 February, that year has none
        return today.replace(year=today.year - age, month=2, day=28)


def is_adult(student: User, root_account: Account, now: datetime | None = None) -> bool:
    """The student's birth date makes them of age in the root account (False without one)."""
    age = root_account.age_of_majority
    if age is None or student.birth_date is None:
        return False
    today = timezone.localdate(now or timezone.now())
    return student.birth_date <= adulthood_cutoff(age, today)


def _emails_of(observer_ids: set[int]) -> dict[int, set[str]]:
    """Each observer's e-mail address and login ids, lower-cased (two queries)."""
    found: dict[int, set[str]] = {pk: set() for pk in observer_ids}
    for pk, email in User.objects.filter(pk__in=observer_ids).values_list("pk", "email"):
        if email:
            found[pk].add(email.strip().lower())
    logins = (
        Login.objects.filter(user_id__in=observer_ids)
        .exclude(workflow_state=Login.State.DELETED)
        .values_list("user_id", "unique_id")
    )
    for pk, unique_id in logins:
        if "@" in unique_id:
            found[pk].add(unique_id.strip().lower())
    return found


def judge(
    *,
    root_account: Account,
    pairs: Iterable[tuple[int | None, int]],
    by_staff: bool,
    now: datetime | None = None,
    consent_at: datetime | None = None,
    new_person_email: str = "",
) -> dict[tuple[int | None, int], Verdict]:
    """The verdict on each (observer id, student id) pair in one root account.

    A fixed number of queries whatever the number of pairs (SIS imports
    judge a chunk at once). ``consent_at`` is when the student issued the
    pairing code being used themselves (None otherwise). An observer id of
    None stands for a person without an account yet (parent sign-up),
    matched by ``new_person_email`` alone.
    """
    now = now or timezone.now()
    pairs = set(pairs)
    if not pairs:
        return {}
    student_ids = {student for _, student in pairs}
    observer_ids = {observer for observer, _ in pairs if observer is not None}
    verdicts: dict[tuple[int | None, int], Verdict] = {}

    restrictions = list(
        ObservationRestriction.objects.in_force(now)
        .filter(any_of("student_id", student_ids), root_account=root_account)
        .order_by("id")
        .values_list("id", "student_id", "observer_id", "observer_email")
    )
    if restrictions:
        emails = (
            _emails_of(observer_ids)
            if any(email for _, _, _, email in restrictions) and observer_ids
            else {}
        )
        if new_person_email:
            emails[None] = {new_person_email.strip().lower()}
        for pair in pairs:
            observer, student = pair
            for restriction_id, restricted_student, restricted_user, email in restrictions:
                if restricted_student != student:
                    continue
                same_user = observer is not None and restricted_user == observer
                same_email = bool(email) and email.strip().lower() in emails.get(observer, set())
                if same_user or same_email:
                    verdicts[pair] = Verdict(REFUSE, RESTRICTION, restriction_id)
                    break
    remaining = pairs - verdicts.keys()

    if remaining and not by_staff:
        protected = set(
            ProtectedStudent.objects.filter(
                root_account=root_account, student_id__in={s for _, s in remaining}
            ).values_list("student_id", flat=True)
        )
        for pair in remaining:
            if pair[1] in protected:
                verdicts[pair] = Verdict(REFUSE, PROTECTED_STUDENT)
        remaining = pairs - verdicts.keys()

    if not remaining:
        return verdicts
    adults: set[int] = set()
    if root_account.age_of_majority is not None:
        cutoff = adulthood_cutoff(root_account.age_of_majority, timezone.localdate(now))
        adults = set(
            User.objects.filter(
                any_of("id", {s for _, s in remaining}), birth_date__lte=cutoff
            ).values_list("pk", flat=True)
        )
    ended: dict[tuple[int, int], datetime] = {}
    known = {observer for observer, _ in remaining if observer is not None}
    if known:
        # A pending link keeps its end reason: a second request must not
        # activate what the student ended.
        for observer, student, ended_at in (
            ObservationLink.objects.filter(
                any_of("observer_id", known),
                any_of("student_id", {s for _, s in remaining}),
                root_account=root_account,
                workflow_state__in=[ObservationLink.State.DELETED, ObservationLink.State.PENDING],
                end_reason__in=[LinkEnd.STUDENT, LinkEnd.DECLINED],
            )
            .annotate(ended_at=Coalesce("deleted_at", "updated_at"))
            .values_list("observer_id", "student_id", "ended_at")
        ):
            ended[(observer, student)] = ended_at
    for pair in remaining:
        if pair in ended and (consent_at is None or consent_at <= ended[pair]):
            verdicts[pair] = Verdict(PENDING, ENDED_BY_STUDENT)
        elif pair[1] in adults and consent_at is None:
            verdicts[pair] = Verdict(PENDING, ADULT_STUDENT)
        else:
            verdicts[pair] = ALLOWED
    return verdicts


def refusal_error(*, verdict: Verdict, source: str, by_staff: bool) -> LinkingError:
    """What the refused person is told: the rule for staff, a wrong code's answer for anyone else.

    A restriction must not reveal itself to the person it restrains, nor a
    protected student's existence to a stranger: each path answers exactly
    as it answers a code, token or password that does not work.
    """
    if by_staff:
        return LinkRefused(STAFF_MESSAGES.get(verdict.rule), code=verdict.rule)
    if source == LinkSource.CREDENTIALS:
        return InvalidCredentials()
    if source == LinkSource.ACCESS_TOKEN:
        return UnknownObservee()
    if source in (LinkSource.PAIRING_CODE, LinkSource.SELF_REGISTRATION, LinkSource.PORTAL):
        return InvalidPairingCode()
    if source == LinkSource.INVITATION:
        return InvalidInvitation()
    return LinkRefused()


def record_refusal(
    *,
    verdict: Verdict,
    actor: Actor,
    root_account: Account,
    observer: User | None,
    student: User,
    source: str,
    email: str = "",
) -> None:
    """The audit event of a refusal: the rule and the path, never the restriction's reason."""
    detail = {"rule": verdict.rule, "source": source}
    if verdict.restriction_id is not None:
        detail["restriction"] = verdict.restriction_id
    if observer is None and email:
        detail["email"] = email
    record_event(
        action=AuditAction.LINK_REFUSED,
        actor=actor,
        root_account=root_account,
        observer=observer,
        student=student,
        detail=detail,
    )


def enforce(
    *,
    observer: User | None,
    student: User,
    root_accounts: Iterable[Account],
    source: str,
    actor: Actor,
    consent_at: datetime | None = None,
    new_person_email: str = "",
    record: bool = True,
) -> dict[int, Verdict]:
    """Judge a link in each root account; on a refusal record it and raise.

    Returns the verdict per root account id (ALLOW or PENDING). Raises the
    error ``refusal_error`` chooses. Callers run it before they open the
    transaction that writes the link, so the refusal's audit event is not
    rolled back with it (link_observer checks again inside, for races).
    """
    by_staff = is_staff_link(source=source, actor=actor, observer=observer)
    verdicts = {}
    for root_account in root_accounts:
        verdict = judge(
            root_account=root_account,
            pairs=[(observer.pk if observer is not None else None, student.pk)],
            by_staff=by_staff,
            consent_at=consent_at,
            new_person_email=new_person_email,
        ).popitem()[1]
        if verdict.refused:
            if record:
                record_refusal(
                    verdict=verdict,
                    actor=actor,
                    root_account=root_account,
                    observer=observer,
                    student=student,
                    source=source,
                    email=new_person_email,
                )
            raise refusal_error(verdict=verdict, source=source, by_staff=by_staff)
        verdicts[root_account.pk] = verdict
    return verdicts


def student_consent_at(pairing_code: PairingCode) -> datetime | None:
    """A code the student issued themselves is their consent, given when it was issued."""
    issuer = pairing_code.issued_by_id
    if issuer is not None and issuer == pairing_code.student_id:
        return pairing_code.created_at
    return None


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


def check_restriction(
    *, student: User | None, observer: User | None, observer_email: str, reason: str
) -> None:
    """A restriction names a person (a user, an e-mail or both) and has a reason."""
    if observer is None and not (observer_email or "").strip():
        raise LinkingError("Name the person: a user, an e-mail address or both.")
    if not (reason or "").strip():
        raise LinkingError("Give the reason (only staff ever see it).")
    if observer is not None and student is not None and observer.pk == student.pk:
        raise LinkingError("A student cannot be restricted from observing themself.")


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
    from .links import unlink_observer

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


def is_protected(student: User, root_account: Account) -> bool:
    return ProtectedStudent.objects.filter(root_account=root_account, student=student).exists()


def protected_student_ids(root_account_ids_by_student: Iterable[tuple[int, int]]) -> set[tuple]:
    """Which (student id, root account id) pairs are protected (one query)."""
    pairs = set(root_account_ids_by_student)
    if not pairs:
        return set()
    rows = ProtectedStudent.objects.filter(
        student_id__in={s for s, _ in pairs}, root_account_id__in={r for _, r in pairs}
    ).values_list("student_id", "root_account_id")
    return {row for row in rows if row in pairs}


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
        from .pairing import revoke_student_codes

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


def student_may_end_links(student: User, root_account: Account) -> bool:
    """Adult students always may; younger ones where the school allows it."""
    return root_account.students_may_end_links or is_adult(student, root_account)


def _students_link(link_id: int, student: User, root_account: Account, state: str):
    link = (
        ObservationLink.objects.filter(
            pk=link_id, student=student, root_account=root_account, workflow_state=state
        )
        .select_related("observer", "student", "root_account")
        .first()
    )
    if link is None:
        from .errors import NotFound

        raise NotFound()
    return link


def end_link_as_student(
    *, link_id: int, student: User, root_account: Account, actor: Actor
) -> ObservationLink:
    """The student ends one of their links: allowed for adults, or where the school allows it.

    Raises NotFound (no such active link of theirs) or NotAuthorized. The
    observer can then not re-link without the student's approval.
    """
    from .links import unlink_observer

    link = _students_link(link_id, student, root_account, ObservationLink.State.ACTIVE)
    if not student_may_end_links(student, root_account):
        raise NotAuthorized("Your school does not let students end their observers' links.")
    unlink_observer(link=link, actor=actor, reason=LinkEnd.STUDENT)
    return link


def approve_link(
    *, link_id: int, student: User, root_account: Account, actor: Actor
) -> ObservationLink:
    """The student approves a pending link: it becomes active and enrollments follow.

    Restrictions are judged again (one may have been recorded meanwhile).
    Raises NotFound when the student has no such pending link.
    """
    from .links import activate_pending_link

    link = _students_link(link_id, student, root_account, ObservationLink.State.PENDING)
    verdict = judge(
        root_account=root_account, pairs=[(link.observer_id, student.pk)], by_staff=True
    ).popitem()[1]
    if verdict.refused:
        record_refusal(
            verdict=verdict,
            actor=actor,
            root_account=root_account,
            observer=link.observer,
            student=student,
            source=LinkSource.PORTAL,
        )
        raise LinkRefused()
    activate_pending_link(link=link, actor=actor)
    return link


def decline_link(
    *, link_id: int, student: User, root_account: Account, actor: Actor
) -> ObservationLink:
    """The student declines a pending link; the person cannot re-link without their approval."""
    from .links import unlink_observer

    link = _students_link(link_id, student, root_account, ObservationLink.State.PENDING)
    unlink_observer(link=link, actor=actor, reason=LinkEnd.DECLINED)
    return link


# Scheduled work ------------------------------------------------------------------


def end_links_past_their_end(*, now: datetime, actor: Actor | None = None) -> int:
    """End every live link whose end date has passed at ``now`` (enrollments end, audited).

    Each link is ended by ``unlink_observer`` (its own conditional update),
    so two runs at once end each link once.
    """
    from .links import unlink_observer

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
    from .links import make_link_pending, unlink_observer

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
