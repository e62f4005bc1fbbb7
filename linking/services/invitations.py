"""Guardian invitations by e-mail: staff invite an address, whoever holds it accepts or declines.

An invitation is bound to its address: only a person whose login id here,
or whose confirmed e-mail, is that address may accept it (a parent who
signs up from the invitation's link gets that address as their login id,
confirmed by the very link they opened). Accepting creates the link through
``links.link_observer`` (source ``invitation``), so every rule that service
applies to links applies here too. States: pending, accepted, declined,
withdrawn; a pending invitation past ``expires_at`` is expired. Each change
is audited; the link an acceptance makes is audited and notified like any
other link.
"""

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from ..models import (
    Account,
    AuditAction,
    GuardianInvitation,
    LinkSource,
    Permission,
    User,
)
from . import mail, ratelimit, rules
from .accounts import find_login
from .audit import record_event
from .context import Actor
from .errors import LinkingError, NotAuthorized
from .hashing import keyed_hash
from .links import link_observer
from .permissions import has_account_permission, is_pairable_student
from .verification import is_unverified

State = GuardianInvitation.State


class InvitationError(LinkingError):
    code = "invalid_invitation"
    default_message = "This invitation cannot be used."


class InvitationNotOpen(InvitationError):
    code = "invitation_not_open"
    default_message = "This invitation was already answered, withdrawn, or has expired."


class InvitationForAnotherAddress(InvitationError):
    code = "invitation_for_another_address"
    default_message = "This invitation was sent to another e-mail address."


def lifetime() -> timedelta:
    return timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT * 5)


def hash_token(token: str) -> str:
    return keyed_hash("guardian-invitation", token)


@dataclass(frozen=True)
class SentInvitation:
    invitation: GuardianInvitation
    link: str  # the one-time address e-mailed; exists only here and in the e-mail


def _require_staff(actor: Actor, root_account: Account) -> None:
    if not has_account_permission(actor.user, root_account, Permission.MANAGE_USER_OBSERVERS):
        raise NotAuthorized()


def _require_inviter(actor: Actor, student: User, root_account: Account) -> None:
    """Staff with manage_user_observers, or the student themself where the school allows it.

    A student's invitations count against their own budget (RESET_REQUESTS_PER_WINDOW
    per window): the page cannot be used to flood inboxes.
    """
    if actor.user is not None and actor.user.pk == student.pk:
        if not root_account.students_may_invite:
            raise NotAuthorized()
        ratelimit.reserve(
            [ratelimit.Budget(f"rl:invite:{student.pk}", settings.OBSERVERS_RESET_REQUESTS)]
        )
        return
    _require_staff(actor, root_account)


def _send(invitation: GuardianInvitation, base_url: str) -> str:
    """A new token for ``invitation`` (the old link stops working), e-mailed to its address."""
    token = secrets.token_urlsafe(32)
    invitation.token_hash = hash_token(token)
    invitation.sent_at = timezone.now()
    invitation.expires_at = invitation.sent_at + lifetime()
    invitation.save(update_fields=["token_hash", "sent_at", "expires_at"])
    link = base_url.rstrip("/") + reverse("linking:invitation", kwargs={"token": token})

    def deliver():
        mail.send_to_person(
            template="email/invitation",
            person=None,
            to=invitation.email,
            root_account=invitation.root_account,
            context={"student": invitation.student, "link": link, "days": lifetime().days},
        )

    transaction.on_commit(deliver)
    return link


@transaction.atomic
def invite_guardian(
    *, student: User, email: str, root_account: Account, actor: Actor, base_url: str
) -> SentInvitation:
    """Invite ``email`` to observe ``student``.

    Staff with manage_user_observers may, and the student themself where
    the school allows it (``students_may_invite``; RateLimited past their
    budget). Raises NotAuthorized (neither), InvitationError (code
    ``invalid_email`` or ``not_a_student``: the student holds no live student
    enrollment here) and, when a pending invitation for the same student and
    address exists, resends that one instead of making a second.
    """
    _require_inviter(actor, student, root_account)
    email = (email or "").strip()
    try:
        validate_email(email)
    except ValidationError as error:
        raise InvitationError("Enter a valid e-mail address.", code="invalid_email") from error
    if not is_pairable_student(student, root_account):
        raise InvitationError("Only students of this school can be observed.", code="not_a_student")
    existing = (
        GuardianInvitation.objects.select_for_update()
        .filter(root_account=root_account, student=student, email__iexact=email)
        .filter(state=State.PENDING)
        .first()
    )
    if existing is not None:
        link = _send(existing, base_url)
        _audit(AuditAction.INVITATION_SENT, existing, actor, resent=True)
        return SentInvitation(invitation=existing, link=link)
    try:
        with transaction.atomic():
            invitation = GuardianInvitation.objects.create(
                root_account=root_account,
                student=student,
                email=email,
                token_hash=hash_token(secrets.token_urlsafe(32)),
                invited_by=actor.user if actor.user is not None and actor.user.pk else None,
                expires_at=timezone.now() + lifetime(),
            )
    except IntegrityError as error:  # a concurrent invitation of the same address
        raise InvitationError("This address was just invited.", code="already_invited") from error
    link = _send(invitation, base_url)
    _audit(AuditAction.INVITATION_SENT, invitation, actor)
    return SentInvitation(invitation=invitation, link=link)


@transaction.atomic
def resend_invitation(
    *, invitation: GuardianInvitation, actor: Actor, base_url: str
) -> SentInvitation:
    """E-mail a pending (or expired) invitation again with a new link and a new expiry."""
    _require_staff(actor, invitation.root_account)
    invitation = GuardianInvitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.state != State.PENDING:
        raise InvitationNotOpen()
    link = _send(invitation, base_url)
    _audit(AuditAction.INVITATION_SENT, invitation, actor, resent=True)
    return SentInvitation(invitation=invitation, link=link)


@transaction.atomic
def withdraw_invitation(*, invitation: GuardianInvitation, actor: Actor) -> bool:
    """Withdraw a pending invitation (its link stops working); False when it was not pending."""
    _require_staff(actor, invitation.root_account)
    changed = GuardianInvitation.objects.filter(pk=invitation.pk, state=State.PENDING).update(
        state=State.WITHDRAWN, responded_at=timezone.now()
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
    _audit(AuditAction.INVITATION_ACCEPTED, invitation, actor, observer=user)
    return link


@transaction.atomic
def decline_invitation(*, invitation: GuardianInvitation, user: User, actor: Actor) -> None:
    """Close the invitation without a link; the holder of the address only."""
    invitation = _open_for(invitation, user)
    invitation.state = State.DECLINED
    invitation.responded_at = timezone.now()
    invitation.save(update_fields=["state", "responded_at"])
    _audit(AuditAction.INVITATION_DECLINED, invitation, actor, observer=user)


def _audit(action, invitation, actor, *, observer=None, resent=False):
    detail = {"invitation_id": invitation.pk, "state": invitation.state}
    if resent:
        detail["resent"] = True
    record_event(
        action=action,
        actor=actor,
        root_account=invitation.root_account,
        student=invitation.student,
        observer=observer,
        detail=detail,
    )
