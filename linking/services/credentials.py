"""Checking a login id and password of a school: signing in, and linking by a student's credentials.

Both are password guesses against a login, so both go through the same
budgets (linking.services.ratelimit): the login id tried (known or not) and
the client address, plus the acting user when someone signed in links.
"""

from collections.abc import Callable

from django.contrib.auth.hashers import check_password, make_password
from django.db.models.functions import Lower
from django.utils import timezone

from ..models import Account, AuditAction, Login, User
from . import ratelimit, sso
from .audit import record_event
from .context import Actor
from .errors import FeatureDisabled, InvalidCredentials, LinkingError, UnknownObservee

# Checked when no login matches, so a miss costs the same time as a hit.
_DUMMY_HASH = make_password("observers-dummy-password")


def _active_login(root_account: Account, unique_id: str) -> Login | None:
    return (
        Login.objects.active()
        .annotate(uid=Lower("unique_id"))
        .filter(root_account=root_account, uid=(unique_id or "").strip().lower())
        .select_related("user")
        .first()
    )


def _password_matches(login: Login | None, password: str) -> bool:
    """Whether ``password`` is the login's; an unknown login costs one hash check all the same."""
    if login is None or not login.password:
        check_password(password or "", _DUMMY_HASH)
        return False
    # An empty password never matches, whatever hash the login holds.
    return bool(password) and login.check_password(password)


def sign_in(
    *, root_account: Account, unique_id: str, password: str, ip_address: str | None
) -> tuple[User | None, int | None]:
    """The active user whose login of ``root_account`` has this password, else None.

    Returns the user (or None) and, after a failure, the tries left before
    the login id or the address is paused. Raises RateLimited, counting
    nothing, when either budget is used up; a right password is refused
    then too, which is what keeps guessing at the limit. Raises
    sso.SsoRequired for a right password of someone the school signs in
    through its provider (checked only after the password matched, so the
    rule reveals nothing to a guesser).
    """
    reservation = ratelimit.reserve(
        ratelimit.budgets_for(root_account=root_account, login_id=unique_id, ip_address=ip_address)
    )
    login = _active_login(root_account, unique_id)
    if not _password_matches(login, password) or not login.user.is_active:
        return None, reservation.tries_left
    reservation.release()
    provider = sso.required_provider(login.user, root_account)
    if provider is not None:
        raise sso.SsoRequired(provider)
    Login.objects.filter(pk=login.pk).update(last_login_at=timezone.now())
    return login.user, None


def find_student_by_credentials(
    *,
    unique_id: str,
    password: str,
    root_account: Account,
    actor: Actor,
    vet: Callable[[User], object] | None = None,
) -> User:
    """The user whose active login in ``root_account`` matches, or a domain error.

    Counts against the acting user, the login id tried and the address, so
    the endpoint is no password oracle. Raises RateLimited, FeatureDisabled,
    UnknownObservee (no such login) or InvalidCredentials (wrong password),
    the last two with the tries left. ``vet`` (the rules of who may observe)
    sees the student before the try is given back, so its refusal counts
    like a wrong password.
    """
    if not root_account.credential_linking_allowed:
        raise FeatureDisabled()
    reservation = ratelimit.reserve(
        ratelimit.budgets_for(
            user=actor.user,
            root_account=root_account,
            login_id=unique_id,
            ip_address=actor.ip_address,
        )
    )
    login = _active_login(root_account, unique_id)
    if login is None or not login.user.is_active:
        _password_matches(None, password)
        raise _failed(actor, root_account, "unknown_login", UnknownObservee(), reservation)
    if not _password_matches(login, password):
        raise _failed(actor, root_account, "wrong_password", InvalidCredentials(), reservation)
    if vet is not None:
        try:
            vet(login.user)
        except LinkingError as error:
            error.tries_left = reservation.tries_left
            raise
    reservation.release()
    return login.user


def _failed(actor: Actor, root_account: Account, reason: str, error, reservation):
    record_event(
        action=AuditAction.CREDENTIALS_FAILED,
        actor=actor,
        root_account=root_account,
        detail={"reason": reason},
    )
    error.tries_left = reservation.tries_left
    return error
