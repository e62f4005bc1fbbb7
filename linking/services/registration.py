"""Parent self-registration with pairing codes (canvas-behaviour.md §6.1).

A parent signs up on a school's site with a name, an e-mail address (their
login id there), a password and one or more pairing codes. Either everything
happens (user, login, a link per code and the observer enrollments that
follow) or nothing does: one bad code among several leaves no user behind and
consumes none of the other codes.
"""

from dataclasses import dataclass

from django.db import IntegrityError, transaction

from ..models import Account, LinkSource, Login, ObservationLink, SelfRegistration, User
from . import ratelimit, verification
from .accounts import create_user_with_login, find_login
from .context import Actor
from .errors import (
    FeatureDisabled,
    InvalidPairingCode,
    LinkingError,
    LoginTaken,
    NothingToLink,
    RateLimited,
)
from .pairing import (
    find_redeemable_code,
    link_rules_vet,
    normalize_code,
    redeem_pairing_code,
)

OPEN_TO_OBSERVERS = {SelfRegistration.OBSERVER, SelfRegistration.ALL}


class RegistrationCodeRefused(InvalidPairingCode):
    """A code of the sign-up was refused; ``position`` is its 0-based index in the list given."""

    def __init__(self, *, position: int, reason: LinkingError) -> None:
        self.position = position
        self.reason = reason
        super().__init__(code=self.code)


@dataclass(frozen=True)
class RegisteredObserver:
    user: User
    login: Login
    students: list[User]
    links: list[ObservationLink]


def observer_self_registration_open(root_account: Account) -> bool:
    """Parents may sign up when self-registration is ``observer`` or ``all``."""
    return root_account.self_registration in OPEN_TO_OBSERVERS


def check_observer_signup(
    *, email: str, codes: list[str], root_account: Account, actor: Actor
) -> list[User]:
    """The students a sign-up's codes name, checked as register_observer will (nothing changes).

    The sign-up page shows them for the parent to confirm ("is this your
    student?") before anything is created. Raises what register_observer
    raises, counting the same failures: a refused code, and an address
    already taken here (a probe, with the tries left).
    """
    if not observer_self_registration_open(root_account):
        raise FeatureDisabled("Sign-up is closed at this school.")
    if not codes:
        raise NothingToLink("Enter at least one pairing code.")
    students = []
    for position, code in enumerate(codes):
        found = _check_code(
            position,
            lambda c=code: find_redeemable_code(code=c, root_account=root_account, actor=actor),
        )
        students.append(found.student)
    probe = _reserve_probe(email, root_account, actor)
    if find_login(root_account=root_account, unique_id=email) is not None:
        error = LoginTaken()
        error.tries_left = probe.tries_left
        raise error
    probe.release()
    return students


def _reserve_probe(email: str, root_account: Account, actor: Actor):
    # "There is already an account with this address" tells whether an
    # e-mail is known here: each such answer is a guess, counted against the
    # e-mail tried and the address like a wrong password.
    return ratelimit.reserve(
        ratelimit.budgets_for(
            root_account=root_account, login_id=email, ip_address=actor.ip_address
        )
    )


def register_observer(
    *,
    name: str,
    email: str,
    codes: list[str],
    root_account: Account,
    actor: Actor,
    password: str | None = None,
    password_hash: str | None = None,
) -> RegisteredObserver:
    """Create a parent (user + login ``email`` in ``root_account``) linked through pairing codes.

    Rules: the root account must allow observer self-registration
    (FeatureDisabled otherwise); at least one code is needed (NothingToLink);
    every code must be redeemable here (RegistrationCodeRefused, an
    InvalidPairingCode naming the code's position; RateLimited when over the
    failure limit); the login id must be free in the root account
    (LoginTaken, from accounts.add_login, counted as a guess against the
    e-mail and the address since it reveals a known e-mail). All or nothing: when any rule
    refuses, no user, login or link remains and no code is consumed.

    The password comes as typed (``password``) or already hashed
    (``password_hash``: the sign-up page keeps only a hash between its
    form and its confirm step).

    The codes are looked up once before the transaction opens so that failed
    attempts count towards the rate limit even when the counters live in the
    database cache (a rollback would erase them); the redemptions inside the
    transaction then check everything again, so a code used meanwhile still
    rolls the whole registration back.
    """
    if not observer_self_registration_open(root_account):
        raise FeatureDisabled("Sign-up is closed at this school.")
    if not codes:
        raise NothingToLink("Enter at least one pairing code.")
    # The rules of who may observe are judged here too, against the e-mail
    # given: a refusal must be audited, and the transaction below would
    # roll its event back.
    vet = link_rules_vet(
        observer=None,
        narrowing=root_account,
        actor=actor,
        source=LinkSource.SELF_REGISTRATION,
        new_person_email=email,
    )
    for position, code in enumerate(codes):
        _check_code(
            position,
            lambda c=code: find_redeemable_code(
                code=c, root_account=root_account, actor=actor, vet=vet
            ),
        )
    probe = _reserve_probe(email, root_account, actor)
    try:
        registered = _create_observer_and_redeem(
            name=name,
            email=email,
            password=password,
            password_hash=password_hash,
            codes=codes,
            root_account=root_account,
            actor=actor,
        )
    except LoginTaken as error:
        error.tries_left = probe.tries_left
        raise
    probe.release()
    return registered


def _check_code(position: int, attempt):
    try:
        return attempt()
    except RateLimited:
        raise
    except LinkingError as error:
        raise RegistrationCodeRefused(position=position, reason=error) from error


@transaction.atomic
def _create_observer_and_redeem(
    *,
    name: str,
    email: str,
    password: str | None,
    password_hash: str | None,
    codes: list[str],
    root_account: Account,
    actor: Actor,
) -> RegisteredObserver:
    try:
        # A savepoint, so a concurrent sign-up with the same e-mail surfaces
        # as LoginTaken instead of a broken transaction.
        with transaction.atomic():
            user = create_user_with_login(
                name=name.strip(),
                email=email.strip(),
                root_account=root_account,
                unique_id=email,
                password=password,
            )
    except IntegrityError as exc:
        raise LoginTaken() from exc
    login = user.logins.get()
    if password_hash:
        login.password = password_hash
        login.save(update_fields=["password"])
    # The address is only the parent's word until they open the link sent to it.
    verification.mark_unverified(user)
    # The parent acts for themself from here on: their own links need no admin right.
    as_observer = Actor(
        user=user, source=actor.source, ip_address=actor.ip_address, user_agent=actor.user_agent
    )
    students: list[User] = []
    links: list[ObservationLink] = []
    for position, code in enumerate(codes):
        student, made = _check_code(
            position,
            lambda c=code: redeem_pairing_code(
                code=c,
                observer=user,
                root_account=root_account,
                actor=as_observer,
                source=LinkSource.SELF_REGISTRATION,
            ),
        )
        students.append(student)
        links.extend(made)
    return RegisteredObserver(user=user, login=login, students=students, links=links)


def distinct_codes(raw_codes: list[str]) -> list[str]:
    """The typed codes without blanks and repeats (compared in canonical form), in order."""
    seen: set[str] = set()
    result = []
    for raw in raw_codes:
        raw = raw.strip()
        if not raw:
            continue
        key = normalize_code(raw) or raw
        if key not in seen:
            seen.add(key)
            result.append(raw)
    return result


@transaction.atomic
def register_invited_guardian(
    *, name: str, password: str, invitation, actor: Actor
) -> tuple[User, ObservationLink]:
    """A new parent from an invitation's link, linked as it invites (invitations.accept_invitation).

    The login id and e-mail are the invited address, confirmed by the link
    the person opened. Raises LoginTaken when the address already has a
    login here (they sign in instead) and whatever accepting raises; then
    nothing remains. Staff invited them, so the school's self-registration
    setting does not apply.
    """
    from .invitations import accept_invitation

    try:
        with transaction.atomic():
            user = create_user_with_login(
                name=name.strip(),
                email=invitation.email,
                root_account=invitation.root_account,
                unique_id=invitation.email,
                password=password,
            )
    except IntegrityError as exc:
        raise LoginTaken() from exc
    as_guardian = Actor(
        user=user, source=actor.source, ip_address=actor.ip_address, user_agent=actor.user_agent
    )
    link = accept_invitation(invitation=invitation, user=user, actor=as_guardian)
    return user, link
