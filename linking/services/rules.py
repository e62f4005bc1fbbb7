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

Acting on the rules (recording restrictions, protecting students, the
student's answers, the scheduled work) is services.safeguarding's; this
module only judges, and imports no link service, so every link service can
ask it.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from django.db.models.functions import Coalesce
from django.utils import timezone

from ..models import (
    Account,
    AuditAction,
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
    fixed_work: bool = False,
) -> dict[tuple[int | None, int], Verdict]:
    """The verdict on each (observer id, student id) pair in one root account.

    A fixed number of queries whatever the number of pairs (SIS imports
    judge a chunk at once). ``consent_at`` is when the student issued the
    pairing code being used themselves (None otherwise). An observer id of
    None stands for a person without an account yet (parent sign-up),
    matched by ``new_person_email`` alone.

    ``fixed_work`` runs every query whatever the verdicts: a refusal then
    costs what an allowed link costs, and a wrong code judged as a
    placeholder (services.pairing) what a refused one does, so the time an
    answer takes does not tell them apart (docs/security.md §15).
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
    emails: dict[int | None, set[str]] = {}
    if observer_ids and (fixed_work or any(email for *_, email in restrictions)):
        emails = _emails_of(observer_ids)
    if restrictions:
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

    if (remaining or fixed_work) and not by_staff:
        asked = pairs if fixed_work else remaining
        protected = set(
            ProtectedStudent.objects.filter(
                root_account=root_account, student_id__in={s for _, s in asked}
            ).values_list("student_id", flat=True)
        )
        for pair in remaining:
            if pair[1] in protected:
                verdicts[pair] = Verdict(REFUSE, PROTECTED_STUDENT)
        remaining = pairs - verdicts.keys()

    if not remaining and not fixed_work:
        return verdicts
    asked = pairs if fixed_work else remaining
    adults: set[int] = set()
    if root_account.age_of_majority is not None:
        cutoff = adulthood_cutoff(root_account.age_of_majority, timezone.localdate(now))
        adults = set(
            User.objects.filter(
                any_of("id", {s for _, s in asked}), birth_date__lte=cutoff
            ).values_list("pk", flat=True)
        )
    ended: dict[tuple[int, int], datetime] = {}
    known = {observer for observer, _ in asked if observer is not None}
    if known:
        # A pending link keeps its end reason: a second request must not
        # activate what the student ended.
        for observer, student, ended_at in (
            ObservationLink.objects.filter(
                any_of("observer_id", known),
                any_of("student_id", {s for _, s in asked}),
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


def judge_link(
    *,
    observer: User | None,
    student: User,
    root_account: Account,
    by_staff: bool,
    consent_at: datetime | None = None,
    new_person_email: str = "",
    fixed_work: bool = False,
) -> Verdict:
    """``judge`` for one link."""
    return judge(
        root_account=root_account,
        pairs=[(observer.pk if observer is not None else None, student.pk)],
        by_staff=by_staff,
        consent_at=consent_at,
        new_person_email=new_person_email,
        fixed_work=fixed_work,
    ).popitem()[1]


class Refused(Exception):
    """A link judged refused inside its writer's transaction (recorded and raised outside it)."""

    def __init__(self, verdict: Verdict, root_account: Account):
        super().__init__(verdict.rule)
        self.verdict = verdict
        self.root_account = root_account


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
    rolled back with it; link_observer judges again inside that transaction,
    after locking the student (services.locks), which closes the race with
    a restriction being recorded.
    """
    by_staff = is_staff_link(source=source, actor=actor, observer=observer)
    verdicts = {}
    for root_account in root_accounts:
        verdict = judge_link(
            observer=observer,
            student=student,
            root_account=root_account,
            by_staff=by_staff,
            consent_at=consent_at,
            new_person_email=new_person_email,
            # The refused person's answer must take as long as a wrong input's.
            fixed_work=not by_staff,
        )
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


# Protected students -------------------------------------------------------------


def is_protected(student: User, root_account: Account) -> bool:
    return ProtectedStudent.objects.filter(root_account=root_account, student=student).exists()


# The student's voice ------------------------------------------------------------


def student_may_end_links(student: User, root_account: Account) -> bool:
    """Adult students always may; younger ones where the school allows it."""
    return root_account.students_may_end_links or is_adult(student, root_account)
