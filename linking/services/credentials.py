"""Identifying a student for linking by their login and password (Canvas's legacy path)."""

from django.contrib.auth.hashers import check_password, make_password
from django.db.models.functions import Lower

from ..models import Account, AuditAction, Login, User
from . import ratelimit
from .audit import record_event
from .context import Actor
from .errors import FeatureDisabled, InvalidCredentials, UnknownObservee

# Checked when no login matches, so a miss costs the same time as a hit.
_DUMMY_HASH = make_password("observers-dummy-password")


def find_student_by_credentials(
    *, unique_id: str, password: str, root_account: Account, actor: Actor
) -> User:
    """The user whose active login in ``root_account`` matches, or a domain error.

    Shares the failure limit with pairing codes, so the endpoint is no
    password oracle. Raises RateLimited, FeatureDisabled, UnknownObservee
    (no such login) or InvalidCredentials (wrong password).
    """
    if not root_account.credential_linking_allowed:
        raise FeatureDisabled()
    ratelimit.ensure_not_limited(user=actor.user, ip_address=actor.ip_address)
    login = (
        Login.objects.active()
        .annotate(uid=Lower("unique_id"))
        .filter(root_account=root_account, uid=(unique_id or "").strip().lower())
        .select_related("user")
        .first()
    )
    if login is None or not login.user.is_active:
        check_password(password or "", _DUMMY_HASH)
        _failed(actor, root_account, "unknown_login")
        raise UnknownObservee()
    # An empty password never matches, whatever hash the login holds.
    if not password or not login.password or not login.check_password(password):
        _failed(actor, root_account, "wrong_password")
        raise InvalidCredentials()
    return login.user


def _failed(actor: Actor, root_account: Account, reason: str) -> None:
    ratelimit.register_failure(user=actor.user, ip_address=actor.ip_address)
    record_event(
        action=AuditAction.CREDENTIALS_FAILED,
        actor=actor,
        root_account=root_account,
        detail={"reason": reason},
    )
