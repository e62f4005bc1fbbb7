"""Guardian invitations by e-mail: staff invite an address, whoever holds it accepts or declines.

An invitation is bound to its address: only a person whose login id here,
or whose confirmed e-mail, is that address may accept it (a parent who
signs up from the invitation's link gets that address as their login id,
confirmed by the very link they opened). Accepting creates the link through
``links.link_observer`` (source ``invitation``), so every rule that service
applies to links applies here too. States: pending, accepted, declined,
withdrawn; a pending invitation past ``expires_at`` is expired, and the
periodic task records it so (``record_expiries``, once per invitation).
Each change is audited and becomes a webhook event of its own
(``invitation.sent``, ``.resent``, ``.accepted``, ``.declined``,
``.withdrawn``, ``.expired``); the link an acceptance makes is audited and
notified like any other link.

Whether an address may be invited for a student is judged in one place,
``check_invitations``, for one invitation (``invite_guardian``) or a
thousand (services.bulk_invitations), in a fixed number of queries.

An invitation speaks one language (``language_of``): the invited person's
own, when the address is theirs here and they saved one, else the one
chosen when inviting, recorded on the invitation. Its e-mails, first and
resent, and the pages its link opens use it.

Every message here is for people (the admin, the pages, the command), so it
is translated lazily: it reads in the language of whoever sees it.
"""

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..models import (
    Account,
    AuditAction,
    AuditEvent,
    AuditSource,
    Enrollment,
    EnrollmentType,
    GuardianInvitation,
    LinkSource,
    Login,
    Permission,
    User,
)
from ..models.lookups import any_of
from . import mail, ratelimit, rules
from .accounts import find_login
from .audit import build_event, record_event
from .context import Actor
from .errors import LinkingError, NotAuthorized
from .hashing import keyed_hash
from .links import link_observer
from .permissions import PAIRING_ENROLLMENT_STATES_EXCLUDED, has_account_permission
from .verification import is_unverified

logger = logging.getLogger(__name__)

State = GuardianInvitation.State

# Why an address may not be invited for a student (check_invitations).
INVALID_EMAIL = "invalid_email"
NOT_A_STUDENT = "not_a_student"
NOT_ALLOWED = "not_allowed"  # a restriction, or a protected student: never which
ALREADY_INVITED = "already_invited"

# language_of's default: find the holder of the address (None: nobody holds it).
_LOOK_UP = object()

# A bulk invitation whose e-mail could not be sent is tried again this much later.
MAIL_RETRY = timedelta(minutes=10)


class InvitationError(LinkingError):
    code = "invalid_invitation"
    default_message = _("This invitation cannot be used.")


class InvitationNotOpen(InvitationError):
    code = "invitation_not_open"
    default_message = _("This invitation was already answered, withdrawn, or has expired.")


class InvitationForAnotherAddress(InvitationError):
    code = "invitation_for_another_address"
    default_message = _("This invitation was sent to another e-mail address.")


# What the person inviting is told for each reason an invitation is refused.
REFUSALS = {
    INVALID_EMAIL: _("Enter a valid e-mail address."),
    NOT_A_STUDENT: _("Only students of this school can be observed."),
    NOT_ALLOWED: _("The school's rules do not allow inviting this address for this student."),
}

INVALID_LANGUAGE = "invalid_language"
INVALID_LANGUAGE_MESSAGE = _("Choose one of the site's languages.")


def chosen_language(language: str | None) -> str:
    """The site language an inviter chose ("es-MX" -> "es"); none chosen: the site's default.

    Raises InvitationError (``invalid_language``) for a language the site does not speak.
    """
    if not language:
        return settings.LANGUAGE_CODE
    found = mail.site_language(language)
    if found is None:
        raise InvitationError(INVALID_LANGUAGE_MESSAGE, code=INVALID_LANGUAGE)
    return found


def language_of(invitation: GuardianInvitation, *, holder=_LOOK_UP) -> str:
    """The language of ``invitation``'s e-mails and pages.

    The person whose login id here is the address, when they saved a
    language (``User.locale``: the language switch, or staff), wins;
    otherwise the language recorded on the invitation (the invited person's
    at the time, or the inviter's choice); the site's default for one
    recorded without. ``holder`` (a User or None) spares the look-up when the caller has it.
    """
    if holder is _LOOK_UP:
        login = find_login(root_account=invitation.root_account, unique_id=invitation.email)
        holder = login.user if login is not None else None
    return (
        mail.saved_language(holder)
        or mail.site_language(invitation.language)
        or settings.LANGUAGE_CODE
    )


def _holders(invitations: list[GuardianInvitation]) -> dict[int, User]:
    """The people whose login id is each invitation's address, by invitation id. One query."""
    if not invitations:
        return {}
    addresses = {invitation.email.strip().lower() for invitation in invitations}
    schools = {invitation.root_account_id for invitation in invitations}
    logins = (
        Login.objects.filter(any_of("root_account_id", schools))
        .exclude(workflow_state=Login.State.DELETED)
        .annotate(uid=Lower("unique_id"))
        .filter(uid__in=sorted(addresses))
        .select_related("user")
    )
    by_address = {(login.root_account_id, login.uid): login.user for login in logins}
    return {
        invitation.pk: by_address[(invitation.root_account_id, invitation.email.strip().lower())]
        for invitation in invitations
        if (invitation.root_account_id, invitation.email.strip().lower()) in by_address
    }


def lifetime() -> timedelta:
    return timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT * 5)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return keyed_hash("guardian-invitation", token)


@dataclass(frozen=True)
class SentInvitation:
    invitation: GuardianInvitation
    link: str  # the one-time address e-mailed; exists only here and in the e-mail


@dataclass(frozen=True)
class InvitationRequest:
    """One address to invite for one student; ``guardian_id`` when the person is known."""

    student_id: int
    email: str
    guardian_id: int | None = None

    @property
    def key(self) -> tuple[int, str]:
        return (self.student_id, self.email.strip().lower())


def _valid_email(email: str) -> bool:
    try:
        validate_email(email)
    except ValidationError:
        return False
    return True


def check_invitations(
    *,
    root_account: Account,
    requests: Iterable[InvitationRequest],
    now: datetime | None = None,
) -> dict[InvitationRequest, str | None]:
    """Why each address may not be invited for its student, or None when it may.

    The one judgement of invitations, single or bulk, in a fixed number of
    queries whatever the number of requests, plus one for each address
    nobody here holds yet (the rules match such a person by address alone,
    one address at a time; only single invitations have them: a bulk run
    invites people the SIS knows):

    - ``invalid_email``: not an e-mail address;
    - ``not_a_student``: the student holds no live student enrollment here;
    - ``not_allowed``: the rules of who may observe (services.rules) would
      refuse the guardian's acceptance: a restriction on the person or the
      address, or a protected student, whose name no e-mail may carry. The
      reason says no more than that;
    - ``already_invited``: an open (pending, unexpired) invitation of this
      school already names the student and the address.
    """
    now = now or timezone.now()
    requests = list(dict.fromkeys(requests))
    verdicts: dict[InvitationRequest, str | None] = {}
    for request in requests:
        if not _valid_email(request.email.strip()):
            verdicts[request] = INVALID_EMAIL
    remaining = [r for r in requests if r not in verdicts]
    if not remaining:
        return {r: verdicts.get(r) for r in requests}
    students = {r.student_id for r in remaining}
    pairable = set(
        Enrollment.objects.filter(
            any_of("user_id", students), type=EnrollmentType.STUDENT, root_account=root_account
        )
        .exclude(workflow_state__in=PAIRING_ENROLLMENT_STATES_EXCLUDED)
        .exclude(user__workflow_state=User.State.DELETED)
        .order_by()
        .values_list("user_id", flat=True)
        .distinct()
    )
    for request in remaining:
        if request.student_id not in pairable:
            verdicts[request] = NOT_A_STUDENT
    remaining = [r for r in remaining if r not in verdicts]
    # The guardian's acceptance is judged as a parent's own link (not staff's).
    known = [r for r in remaining if r.guardian_id is not None]
    judged = rules.judge(
        root_account=root_account,
        pairs=[(r.guardian_id, r.student_id) for r in known],
        by_staff=False,
        now=now,
    )
    for request in known:
        if judged[(request.guardian_id, request.student_id)].refused:
            verdicts[request] = NOT_ALLOWED
    for request in remaining:
        if request.guardian_id is None:
            verdict = rules.judge(
                root_account=root_account,
                pairs=[(None, request.student_id)],
                by_staff=False,
                now=now,
                new_person_email=request.email.strip(),
            )[(None, request.student_id)]
            if verdict.refused:
                verdicts[request] = NOT_ALLOWED
    remaining = [r for r in remaining if r not in verdicts]
    if remaining:
        open_pairs = set(
            GuardianInvitation.objects.open(now)
            .filter(any_of("student_id", {r.student_id for r in remaining}))
            .filter(root_account=root_account)
            .annotate(address=Lower("email"))
            .values_list("student_id", "address")
        )
        for request in remaining:
            if request.key in open_pairs:
                verdicts[request] = ALREADY_INVITED
    return {r: verdicts.get(r) for r in requests}


NOT_ALLOWED_TO_INVITE = _("You are not authorized to invite guardians at this school.")


def _require_staff(actor: Actor, root_account: Account) -> None:
    if not has_account_permission(actor.user, root_account, Permission.MANAGE_USER_OBSERVERS):
        raise NotAuthorized(NOT_ALLOWED_TO_INVITE)


def _require_inviter(actor: Actor, student: User, root_account: Account) -> None:
    """Staff with manage_user_observers, or the student themself where the school allows it.

    A student's invitations count against their own budget (RESET_REQUESTS_PER_WINDOW
    per window): the page cannot be used to flood inboxes.
    """
    if actor.user is not None and actor.user.pk == student.pk:
        if not root_account.students_may_invite:
            raise NotAuthorized(_("Students cannot send invitations at this school."))
        ratelimit.reserve(
            [ratelimit.Budget(f"rl:invite:{student.pk}", settings.OBSERVERS_RESET_REQUESTS)]
        )
        return
    _require_staff(actor, root_account)


def _send(invitation: GuardianInvitation, base_url: str, *, holder=_LOOK_UP) -> str:
    """A new token for ``invitation`` (the old link stops working), e-mailed to its address.

    The e-mail is in the invitation's language (``language_of``), judged now:
    a person who saved a language since the first e-mail gets theirs.
    ``holder`` as for ``language_of``.
    """
    token = new_token()
    invitation.token_hash = hash_token(token)
    invitation.sent_at = timezone.now()
    invitation.expires_at = invitation.sent_at + lifetime()
    invitation.mail_due_at = None  # sent here, so the queue has nothing left to send
    invitation.save(update_fields=["token_hash", "sent_at", "expires_at", "mail_due_at"])
    link = base_url.rstrip("/") + reverse("linking:invitation", kwargs={"token": token})
    language = language_of(invitation, holder=holder)
    transaction.on_commit(lambda: _email(invitation, link, language))
    return link


def _email(invitation: GuardianInvitation, link: str, language: str) -> bool:
    """The invitation's e-mail with its one-time ``link``; whether the mail server took it."""
    return mail.send_to_person(
        template="email/invitation",
        person=None,
        to=invitation.email,
        root_account=invitation.root_account,
        context={"student": invitation.student, "link": link, "days": lifetime().days},
        language=language,
    )


@transaction.atomic
def invite_guardian(
    *,
    student: User,
    email: str,
    root_account: Account,
    actor: Actor,
    base_url: str,
    language: str | None = None,
) -> SentInvitation:
    """Invite ``email`` to observe ``student``, in ``language`` unless the address's holder chose.

    Staff with manage_user_observers may, and the student themself where
    the school allows it (``students_may_invite``; RateLimited past their
    budget). Raises NotAuthorized (neither), InvitationError with the code
    ``check_invitations`` gives (``invalid_email``, ``not_a_student``,
    ``not_allowed``) or ``invalid_language``, and, when a pending
    invitation for the same student and address exists, resends that one
    (in the language chosen now) instead of making a second. The invitation
    records the language of the person whose login id the address is, when
    they saved one, else ``language`` (none: the site's default).
    """
    _require_inviter(actor, student, root_account)
    chosen = chosen_language(language)
    email = (email or "").strip()
    holder = find_login(root_account=root_account, unique_id=email) if email else None
    request = InvitationRequest(
        student_id=student.pk, email=email, guardian_id=holder.user_id if holder else None
    )
    reason = check_invitations(root_account=root_account, requests=[request])[request]
    if reason in REFUSALS:
        raise InvitationError(REFUSALS[reason], code=reason)
    holder_user = holder.user if holder is not None else None
    recorded = mail.saved_language(holder_user) or chosen
    existing = (
        GuardianInvitation.objects.select_for_update()
        .filter(root_account=root_account, student=student, email__iexact=email)
        .filter(state=State.PENDING)
        .first()
    )
    if existing is not None:
        if existing.language != recorded:
            existing.language = recorded
            existing.save(update_fields=["language"])
        link = _send(existing, base_url, holder=holder_user)
        _audit(AuditAction.INVITATION_RESENT, existing, actor, resent=True)
        return SentInvitation(invitation=existing, link=link)
    try:
        with transaction.atomic():
            invitation = GuardianInvitation.objects.create(
                root_account=root_account,
                student=student,
                email=email,
                token_hash=hash_token(new_token()),
                invited_by=actor.user if actor.user is not None and actor.user.pk else None,
                expires_at=timezone.now() + lifetime(),
                language=recorded,
            )
    except IntegrityError as error:  # a concurrent invitation of the same address
        raise InvitationError(_("This address was just invited."), code=ALREADY_INVITED) from error
    link = _send(invitation, base_url, holder=holder_user)
    _audit(AuditAction.INVITATION_SENT, invitation, actor)
    return SentInvitation(invitation=invitation, link=link)


@transaction.atomic
def resend_invitation(
    *, invitation: GuardianInvitation, actor: Actor, base_url: str
) -> SentInvitation:
    """E-mail a pending (or expired) invitation again with a new link and a new expiry.

    Raises InvitationNotOpen when it was answered or withdrawn, and
    InvitationError (``already_invited``) when an expired one is renewed
    while a newer pending invitation names the same student and address.
    """
    _require_staff(actor, invitation.root_account)
    invitation = GuardianInvitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.state not in (State.PENDING, State.EXPIRED):
        raise InvitationNotOpen()
    if invitation.state == State.EXPIRED:
        invitation.state = State.PENDING
        try:
            with transaction.atomic():
                invitation.save(update_fields=["state"])
        except IntegrityError as error:
            raise InvitationError(
                _("A newer invitation for this address is pending."), code=ALREADY_INVITED
            ) from error
    link = _send(invitation, base_url)
    _audit(AuditAction.INVITATION_RESENT, invitation, actor, resent=True)
    return SentInvitation(invitation=invitation, link=link)


@transaction.atomic
def withdraw_invitation(*, invitation: GuardianInvitation, actor: Actor) -> bool:
    """Withdraw a pending invitation (its link stops working); False when it was not pending."""
    _require_staff(actor, invitation.root_account)
    changed = GuardianInvitation.objects.filter(pk=invitation.pk, state=State.PENDING).update(
        state=State.WITHDRAWN, responded_at=timezone.now(), mail_due_at=None
    )
    if changed:
        invitation.refresh_from_db()
        _audit(AuditAction.INVITATION_WITHDRAWN, invitation, actor)
    return bool(changed)


def invitation_for_token(*, token: str, root_account: Account) -> GuardianInvitation | None:
    """The invitation a link names, when it belongs to this school (any state)."""
    if not token or len(token) > 128:
        return None
    return (
        GuardianInvitation.objects.filter(root_account=root_account, token_hash=hash_token(token))
        .select_related("student", "root_account")
        .first()
    )


def holds_address(user: User, invitation: GuardianInvitation) -> bool:
    """Whether ``user`` has shown they hold the invitation's address in its school."""
    login = find_login(root_account=invitation.root_account, unique_id=invitation.email)
    if login is not None and login.user_id == user.pk:
        return True
    return user.email.strip().lower() == invitation.email.lower() and not is_unverified(user)


def _open_for(invitation: GuardianInvitation, user: User) -> GuardianInvitation:
    locked = GuardianInvitation.objects.select_for_update().get(pk=invitation.pk)
    if locked.current_state != State.PENDING:
        raise InvitationNotOpen()
    if not holds_address(user, locked):
        raise InvitationForAnotherAddress()
    return locked


def accept_invitation(*, invitation: GuardianInvitation, user: User, actor: Actor):
    """Link ``user`` to the invited student (through links.link_observer) and close it.

    Raises InvitationNotOpen (answered, withdrawn or expired),
    InvitationForAnotherAddress (the user does not hold the address), or
    whatever link_observer refuses (then nothing changes). The rules of who
    may observe are judged first, outside the transaction, so a refusal's
    ``link.refused`` event is not rolled back with it (link_observer judges
    again inside, under the student's lock).
    """
    if invitation.current_state == State.PENDING and holds_address(user, invitation):
        rules.enforce(
            observer=user,
            student=invitation.student,
            root_accounts=[invitation.root_account],
            source=LinkSource.INVITATION,
            actor=actor,
        )
    return _accept_invitation(invitation=invitation, user=user, actor=actor)


@transaction.atomic
def _accept_invitation(*, invitation: GuardianInvitation, user: User, actor: Actor):
    invitation = _open_for(invitation, user)
    link, _changed = link_observer(
        observer=user,
        student=invitation.student,
        root_account=invitation.root_account,
        actor=actor,
        source=LinkSource.INVITATION,
    )
    invitation.state = State.ACCEPTED
    invitation.accepted_by = user
    invitation.link = link
    invitation.responded_at = timezone.now()
    invitation.save(update_fields=["state", "accepted_by", "link", "responded_at"])
    _audit(AuditAction.INVITATION_ACCEPTED, invitation, actor, observer=user, link=link)
    return link


@transaction.atomic
def decline_invitation(*, invitation: GuardianInvitation, user: User, actor: Actor) -> None:
    """Close the invitation without a link; the holder of the address only."""
    invitation = _open_for(invitation, user)
    invitation.state = State.DECLINED
    invitation.responded_at = timezone.now()
    invitation.save(update_fields=["state", "responded_at"])
    _audit(AuditAction.INVITATION_DECLINED, invitation, actor, observer=user)


def _audit(action, invitation, actor, *, observer=None, resent=False, link=None):
    record_event(**_event_fields(action, invitation, actor, observer, resent=resent, link=link))


def _event_fields(action, invitation, actor, observer, *, resent=False, link=None, **extra):
    """What an invitation's audit event records (record_event's or build_event's keywords)."""
    detail = {"invitation_id": invitation.pk, "state": invitation.state, **extra}
    if resent:
        detail["resent"] = True
    return {
        "action": action,
        "actor": actor,
        "root_account": invitation.root_account,
        "student": invitation.student,
        "observer": observer,
        "link": link,
        "invitation": invitation,
        "detail": detail,
    }


def invitation_events(invitations, actor: Actor, *, observers=None, **detail) -> list[AuditEvent]:
    """Unsaved ``invitation.sent`` events for invitations made in bulk (one bulk insert)."""
    observers = observers or {}
    return [
        build_event(
            **_event_fields(
                AuditAction.INVITATION_SENT,
                invitation,
                actor,
                observers.get(invitation.pk),
                **detail,
            )
        )
        for invitation in invitations
    ]


# Expiry ------------------------------------------------------------------------


def record_expiries(*, now: datetime | None = None, batch: int = 500) -> int:
    """Record every lapsed pending invitation as expired, once, with its ``invitation.expired``.

    Run by the periodic task (linking.tasks.expire_invitations). Each batch
    is locked (skipping rows another run holds) and changed by one
    conditional update in the transaction that writes its events, so two
    runs side by side, or a guardian answering at that moment, never give
    an invitation two expiries. Returns how many expired.
    """
    now = now or timezone.now()
    actor = Actor.system(AuditSource.SYSTEM)
    total = 0
    while True:
        with transaction.atomic():
            lapsed = GuardianInvitation.objects.lapsed(now).order_by("id")
            if connection.features.has_select_for_update_skip_locked:
                lapsed = lapsed.select_for_update(skip_locked=True)
            ids = list(lapsed.values_list("pk", flat=True)[:batch])
            if not ids:
                return total
            GuardianInvitation.objects.filter(any_of("id", ids), state=State.PENDING).update(
                state=State.EXPIRED, mail_due_at=None
            )
            expired = list(
                GuardianInvitation.objects.filter(any_of("id", ids), state=State.EXPIRED)
                .select_related("student", "root_account")
                .order_by("id")
            )
            AuditEvent.objects.bulk_create(
                [
                    build_event(**_event_fields(AuditAction.INVITATION_EXPIRED, inv, actor, None))
                    for inv in expired
                ],
                batch_size=500,
            )
            total += len(expired)


# The queued e-mails of bulk invitations -----------------------------------------


def send_due_mail(*, batch: int = 100, now: datetime | None = None) -> int:
    """Send the e-mails of invitations made in bulk that are due; returns how many were sent.

    Run by the task queue (linking.tasks.send_invitation_emails). The token
    of each link is made here, just before its e-mail, so it exists only in
    the e-mail: the invitation's row is claimed (its ``mail_due_at``
    cleared) by the one conditional update that stores the token's hash, so a second
    task finds nothing to send. A message the mail server refuses is tried
    again ``MAIL_RETRY`` later, with a new link, until the invitation expires.
    """
    from .notifications import absolute_url

    now = now or timezone.now()
    sent = 0
    due = (
        GuardianInvitation.objects.mail_due(now)
        .filter(state=State.PENDING)
        .select_related("student", "root_account")
        .order_by("mail_due_at", "id")
    )
    due = list(due[:batch])
    holders = _holders(due)
    for invitation in due:
        token = new_token()
        sent_at = timezone.now()
        # The claim is one conditional update: whichever task changes the row sends it.
        claimed = GuardianInvitation.objects.filter(
            pk=invitation.pk, state=State.PENDING, mail_due_at__lte=now
        ).update(
            token_hash=hash_token(token),
            sent_at=sent_at,
            expires_at=sent_at + lifetime(),
            mail_due_at=None,
        )
        if not claimed:  # withdrawn, resent or taken by another task meanwhile
            continue
        link = absolute_url(
            invitation.root_account, reverse("linking:invitation", kwargs={"token": token})
        )
        if _email(invitation, link, language_of(invitation, holder=holders.get(invitation.pk))):
            sent += 1
        else:
            GuardianInvitation.objects.filter(pk=invitation.pk, state=State.PENDING).update(
                mail_due_at=timezone.now() + MAIL_RETRY
            )
    # Rows left due by an invitation answered or withdrawn meanwhile have nothing to send.
    GuardianInvitation.objects.mail_due(now).exclude(state=State.PENDING).update(mail_due_at=None)
    return sent
