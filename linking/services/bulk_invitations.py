"""Inviting, in one go, every guardian the SIS knows for the students of a course or school.

**Who counts.** A *guardian of a student* is someone the SIS named as the
student's parent, guardian or relative, in either format the importer
reads (docs/sis.md):

- OneRoster: the two people's logins here name each other as agents
  (``Login.sis_agent_ids``, from ``agentSourcedIds``; either side naming
  the other is enough), the student's login has the role ``student`` and
  the other's ``parent``, ``guardian`` or ``relative`` (``Login.sis_role``):
  the very pairs the OneRoster import links;
- Canvas SIS CSV: an observer enrollment the SIS sent (``enrollments.csv``
  with role ``observer`` and an ``associated_user_id``; ``sis_managed``)
  in one of the scope's courses.

The address is the guardian's e-mail as the SIS gave it (``User.email``,
from ``users.csv``'s ``email``). The students are those holding a live
student enrollment in the course, in any course of the sub-account and the
sub-accounts below it, or anywhere in the root account.

**Who is skipped, and why** (``SKIP_REASONS``): no e-mail address; a
suspended or deleted login (or person), the guardian's or the student's;
already linked (active or awaiting the student's approval); a link between
them that was removed or ended (staff invite one by one when it should come
back); and what ``invitations.check_invitations`` refuses for single
invitations too: an address that is not one, a student with no live
enrollment, the rules of who may observe (a restriction, a protected
student: "not allowed by the school's rules", never which), an open
invitation for the same student and address. Two guardians of one student
sharing an address get one invitation.

Choosing is a fixed number of queries whatever the number of students
(tests/portal/test_bulk_invitations.py counts them); the invitations and
their audit events are inserted in bulk, and their e-mails are sent by the
task queue (``invitations.send_due_mail``), not by the request. Running
again invites nobody twice: every pair invited is then "already invited".

**Language.** Each invitation records the guardian's own language when they
saved one (``User.locale``, from the language switch or staff), else the
one chosen for the run (the site's default unless staff choose);
``invitations.language_of`` then speaks it in every e-mail.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _

from ..models import (
    Account,
    AuditAction,
    AuditEvent,
    AuditSource,
    Course,
    Enrollment,
    EnrollmentState,
    EnrollmentType,
    GuardianInvitation,
    Login,
    ObservationLink,
    Permission,
    User,
)
from ..models.lookups import any_of
from . import invitations, mail
from .audit import record_event
from .context import Actor
from .errors import NotAuthorized, NotFound
from .permissions import PAIRING_ENROLLMENT_STATES_EXCLUDED, has_account_permission
from .sis.oneroster import OBSERVER_KINDS

NO_EMAIL = "no_email"
INACTIVE = "inactive"
LINKED = "linked"
LINK_ENDED = "link_ended"
SAME_ADDRESS = "same_address"

# What staff are told about each skipped pair (never a restriction's reason).
SKIP_REASONS = {
    NO_EMAIL: _("no e-mail address in the SIS"),
    invitations.INVALID_EMAIL: _("the SIS's e-mail address is not valid"),
    INACTIVE: _("a suspended or deleted login (the guardian's or the student's)"),
    LINKED: _("already linked (or the link awaits the student's approval)"),
    LINK_ENDED: _("their link was removed or ended (invite one by one if it should come back)"),
    invitations.ALREADY_INVITED: _("already invited (the invitation is still open)"),
    invitations.NOT_ALLOWED: _("not allowed by the school's rules"),
    invitations.NOT_A_STUDENT: _("the student has no live enrollment here"),
    SAME_ADDRESS: _("another guardian of the student has the same address (one invitation)"),
}


def _format(message, **values) -> str:
    """``message % values``, translated when shown (in the reader's language), not when made."""
    return lazy(lambda: str(message) % values, str)()


@dataclass(frozen=True)
class Scope:
    """The students whose guardians are invited: a course's, a sub-account's, or the school's."""

    root_account: Account
    course: Course | None = None
    account: Account | None = None

    @property
    def kind(self) -> str:
        if self.course is not None:
            return "course"
        return "account" if self.account is not None and not self.account.is_root else "school"

    def __str__(self) -> str:
        if self.course is not None:
            return str(self.course)
        return str(self.account or self.root_account)


@dataclass(frozen=True)
class Candidate:
    """One guardian and one student the SIS relates, with the address the SIS gave."""

    guardian: User
    student: User
    email: str


@dataclass
class InvitationPlan:
    """Who would be invited, and how many are skipped for each reason."""

    scope: Scope
    to_invite: list[Candidate] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    students: int = 0

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def skipped_rows(self) -> list[tuple[str, str, int]]:
        """(code, what staff read, count), most frequent first."""
        return [
            (code, str(SKIP_REASONS[code]), count) for code, count in self.skipped.most_common()
        ]


@dataclass
class BulkResult:
    plan: InvitationPlan
    invited: list[GuardianInvitation]


def scope_for(
    *,
    root_account: Account,
    course_sis_id: str | None = None,
    account_sis_id: str | None = None,
) -> Scope:
    """The scope an SIS id names in the root account (the command's). Raises NotFound.

    ``account_sis_id`` may name a sub-account or the root account itself;
    neither given means the whole school.
    """
    if course_sis_id:
        course = _live_by_sis_id(
            Course.objects.filter(sis_course_id=course_sis_id),
            root_account,
            _("No course with SIS id %(sis_id)s in %(school)s."),
            course_sis_id,
        )
        return Scope(root_account=root_account, course=course)
    if account_sis_id:
        if root_account.sis_account_id == account_sis_id:
            return Scope(root_account=root_account, account=root_account)
        account = _live_by_sis_id(
            Account.objects.filter(sis_account_id=account_sis_id),
            root_account,
            _("No account with SIS id %(sis_id)s in %(school)s."),
            account_sis_id,
        )
        return Scope(root_account=root_account, account=account)
    return Scope(root_account=root_account, account=root_account)


def _live_by_sis_id(found, root_account: Account, missing, sis_id: str):
    """The one live (not deleted) row of ``found`` in the root account; NotFound otherwise."""
    live = found.filter(root_account=root_account).exclude(workflow_state=found.model.State.DELETED)
    row = live.first()
    if row is None:
        raise NotFound(_format(missing, sis_id=repr(sis_id), school=str(root_account)))
    return row


def require_bulk_inviter(actor: Actor, root_account: Account) -> None:
    """Staff holding manage_user_observers in this root account (as for one invitation).

    A management command run without ``--run-by`` acts as the server's
    operator, who is trusted as for every command. Raises NotAuthorized.
    """
    if actor.user is None and actor.source == AuditSource.COMMAND:
        return
    if not has_account_permission(actor.user, root_account, Permission.MANAGE_USER_OBSERVERS):
        raise NotAuthorized(invitations.NOT_ALLOWED_TO_INVITE)


def _course_ids(scope: Scope) -> list[int] | None:
    """The scope's courses; None for the whole school (no filter needed). One query."""
    if scope.course is not None:
        return [scope.course.pk]
    if scope.account is None or scope.account.is_root:
        return None
    root = scope.root_account
    parents = dict(Account.objects.filter(root_account=root).values_list("id", "parent_id"))
    inside = {scope.account.pk}
    grew = True
    while grew:  # the sub-accounts below, level by level, in Python
        below = {pk for pk, parent in parents.items() if parent in inside} - inside
        inside |= below
        grew = bool(below)
    return list(
        Course.objects.filter(any_of("account_id", inside), root_account=root).values_list(
            "pk", flat=True
        )
    )


def _scope_students(scope: Scope, course_ids: list[int] | None) -> set[int]:
    enrollments = Enrollment.objects.filter(
        root_account=scope.root_account, type=EnrollmentType.STUDENT
    ).exclude(workflow_state__in=PAIRING_ENROLLMENT_STATES_EXCLUDED)
    if course_ids is not None:
        enrollments = enrollments.filter(any_of("course_id", course_ids))
    return set(enrollments.order_by().values_list("user_id", flat=True).distinct())


def _agents(value: str) -> set[str]:
    return {agent for agent in value.split(",") if agent} if value else set()


def _related_pairs(scope: Scope, students: set[int], course_ids) -> set[tuple[int, int]]:
    """(guardian id, student id) pairs the SIS relates, for the scope's students. Three queries."""
    root = scope.root_account
    live_logins = Login.objects.filter(root_account=root, sis_user_id__isnull=False).exclude(
        workflow_state=Login.State.DELETED
    )
    student_logins = list(
        live_logins.filter(any_of("user_id", students), sis_role="student").values_list(
            "user_id", "sis_user_id", "sis_agent_ids"
        )
    )
    by_sis = {sis: user_id for user_id, sis, _agents_ in student_logins}
    named = {agent for _, _, agents in student_logins for agent in _agents(agents)}
    pairs: set[tuple[int, int]] = set()
    # Guardians a student names, and guardians naming someone (perhaps a scope's student).
    rows = (
        live_logins.filter(sis_role__in=list(OBSERVER_KINDS))
        .filter(any_of("sis_user_id", named) | ~Q(sis_agent_ids=""))
        .values_list("user_id", "sis_user_id", "sis_agent_ids")
    )
    guardian_by_sis = {}
    for guardian_id, sis, agents in rows:
        guardian_by_sis[sis] = guardian_id
        for agent in _agents(agents):
            if agent in by_sis:
                pairs.add((guardian_id, by_sis[agent]))
    for student_id, _sis, agents in student_logins:
        for agent in _agents(agents):
            if agent in guardian_by_sis:
                pairs.add((guardian_by_sis[agent], student_id))
    observers = Enrollment.objects.filter(
        root_account=root,
        type=EnrollmentType.OBSERVER,
        sis_managed=True,
        associated_user__isnull=False,
    ).exclude(workflow_state__in=[EnrollmentState.DELETED, EnrollmentState.REJECTED])
    observers = observers.filter(any_of("associated_user_id", students))
    if course_ids is not None:
        observers = observers.filter(any_of("course_id", course_ids))
    pairs.update(observers.order_by().values_list("user_id", "associated_user_id").distinct())
    return {(guardian, student) for guardian, student in pairs if guardian != student}


def plan_invitations(*, scope: Scope, now: datetime | None = None) -> InvitationPlan:
    """Who would be invited in ``scope`` and who is skipped, with why. Writes nothing.

    A fixed number of queries whatever the number of students: the scope's
    students, the SIS's relations, the people, their logins and links, and
    ``invitations.check_invitations``'s own few.
    """
    now = now or timezone.now()
    root = scope.root_account
    course_ids = _course_ids(scope)
    students = _scope_students(scope, course_ids)
    plan = InvitationPlan(scope=scope, students=len(students))
    pairs = _related_pairs(scope, students, course_ids)
    if not pairs:
        return plan
    people_ids = {person for pair in pairs for person in pair}
    people = User.objects.only(
        "id", "name", "sortable_name", "email", "workflow_state", "locale"
    ).in_bulk(people_ids)
    signing_in = set(
        Login.objects.filter(any_of("user_id", people_ids), root_account=root)
        .filter(workflow_state=Login.State.ACTIVE)
        .values_list("user_id", flat=True)
    )
    links = {
        (observer, student): state
        for observer, student, state in ObservationLink.objects.filter(
            any_of("student_id", {s for _, s in pairs}),
            any_of("observer_id", {g for g, _ in pairs}),
            root_account=root,
        ).values_list("observer_id", "student_id", "workflow_state")
    }

    def order(pair):
        guardian, student = people[pair[0]], people[pair[1]]
        return (
            student.sortable_name.lower(),
            student.pk,
            guardian.sortable_name.lower(),
            guardian.pk,
        )

    requests: dict[invitations.InvitationRequest, Candidate] = {}
    addresses: set[tuple[int, str]] = set()
    for pair in sorted((p for p in pairs if p[0] in people and p[1] in people), key=order):
        guardian, student = people[pair[0]], people[pair[1]]
        email = (guardian.email or "").strip()
        deleted = User.State.DELETED
        if deleted in (guardian.workflow_state, student.workflow_state) or not (
            guardian.pk in signing_in and student.pk in signing_in
        ):
            plan.skipped[INACTIVE] += 1
        elif not email:
            plan.skipped[NO_EMAIL] += 1
        elif pair in links:
            live = links[pair] != ObservationLink.State.DELETED
            plan.skipped[LINKED if live else LINK_ENDED] += 1
        elif (student.pk, email.lower()) in addresses:
            plan.skipped[SAME_ADDRESS] += 1
        else:
            addresses.add((student.pk, email.lower()))
            request = invitations.InvitationRequest(
                student_id=student.pk, email=email, guardian_id=guardian.pk
            )
            requests[request] = Candidate(guardian=guardian, student=student, email=email)
    verdicts = invitations.check_invitations(root_account=root, requests=requests, now=now)
    for request, candidate in requests.items():
        reason = verdicts[request]
        if reason is None:
            plan.to_invite.append(candidate)
        else:
            plan.skipped[reason] += 1
    return plan


def invite_guardians(
    *, scope: Scope, actor: Actor, dry_run: bool = False, language: str | None = None
) -> BulkResult:
    """Invite every guardian ``plan_invitations`` chooses in ``scope``; e-mails follow by task.

    Staff with manage_user_observers in the scope's root account (or a
    command's operator; NotAuthorized otherwise). One transaction: the
    invitations, an ``invitation.sent`` event for each (with the guardian as
    observer, ``bulk`` in its detail) and one ``invitation.bulk`` summary
    (the scope, how many were invited and skipped, per reason) commit
    together. Their e-mails wait in the table (``mail_due_at``) for the
    task queue. ``dry_run`` plans and writes nothing. Each invitation
    records the guardian's saved language, else ``language`` (none: the
    site's default). Raises InvitationError (``already_invited``) when
    someone invited one of the addresses at that very moment, or
    (``invalid_language``) for a language the site does not speak; nothing
    is written then.
    """
    root = scope.root_account
    require_bulk_inviter(actor, root)
    chosen = invitations.chosen_language(language)
    if dry_run:
        return BulkResult(plan=plan_invitations(scope=scope), invited=[])
    # Lapsed invitations are recorded as expired first, so they make way for new ones.
    invitations.record_expiries()
    try:
        with transaction.atomic():
            # Two bulk runs for one school would choose the same pairs: the second
            # waits on this lock, then finds them invited.
            Account.objects.select_for_update().filter(pk=root.pk).first()
            plan = plan_invitations(scope=scope)
            now = timezone.now()
            made_by = actor.user if actor.user is not None and actor.user.pk else None
            rows = [
                GuardianInvitation(
                    root_account=root,
                    student=candidate.student,
                    email=candidate.email,
                    # A hash of a token nobody holds: the task that sends the e-mail makes the link.
                    token_hash=invitations.hash_token(invitations.new_token()),
                    invited_by=made_by,
                    created_at=now,
                    sent_at=now,
                    expires_at=now + invitations.lifetime(),
                    mail_due_at=now,
                    language=mail.saved_language(candidate.guardian) or chosen,
                )
                for candidate in plan.to_invite
            ]
            made = GuardianInvitation.objects.bulk_create(rows, batch_size=500)
            guardians = {
                invitation.pk: candidate.guardian
                for invitation, candidate in zip(made, plan.to_invite, strict=True)
            }
            AuditEvent.objects.bulk_create(
                invitations.invitation_events(made, actor, observers=guardians, bulk=True),
                batch_size=500,
            )
            record_event(
                action=AuditAction.INVITATIONS_BULK,
                actor=actor,
                root_account=root,
                detail={
                    "scope": scope.kind,
                    "course_id": scope.course.pk if scope.course is not None else None,
                    "account_id": scope.account.pk if scope.account is not None else None,
                    "students": plan.students,
                    "invited": len(made),
                    "skipped": dict(plan.skipped),
                },
            )
    except IntegrityError as error:
        raise invitations.InvitationError(
            _("One of these addresses was invited meanwhile. Run it again."),
            code=invitations.ALREADY_INVITED,
        ) from error
    return BulkResult(plan=plan, invited=made)
