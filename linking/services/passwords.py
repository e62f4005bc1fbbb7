"""Passwords of a school's logins: what a new password must not be, and resetting a forgotten one.

A reset is asked for on the school's own host with an e-mail address. Every
active login of *that* school whose login id or whose person's e-mail is
the address gets a link (Django's token generator, keyed to the login's
current password hash and last sign-in, so a link works once and expires
after PASSWORD_RESET_TIMEOUT); the page answers the same whether or not
anything matched. Requests are counted per address typed and per client
address (linking.services.ratelimit), in budgets of their own so asking
for a reset never uses up anyone's sign-in tries.
"""

import hashlib
import logging
from dataclasses import dataclass
from types import SimpleNamespace

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode
from django.utils.translation import gettext_lazy

from ..models import Account, AuditAction, Login, User
from . import mail, ratelimit
from .audit import record_event
from .context import Actor

logger = logging.getLogger(__name__)


def validate_new_password(password: str, *, name: str = "", email: str = "", login_id: str = ""):
    """Django's AUTH_PASSWORD_VALIDATORS for a person: raises ValidationError (with codes).

    The similarity validator compares the password with the person's name,
    e-mail address and login id, so "Pat Parent" cannot be Pat Parent's password.
    """
    owner = _PasswordOwner(name=name, short_name="", email=email, login_id=login_id)
    password_validation.validate_password(password, user=owner)


class _OwnerFields:
    """What the similarity validator calls a matched attribute, in the reader's language."""

    labels = {
        "name": gettext_lazy("name"),
        "short_name": gettext_lazy("name"),
        "email": gettext_lazy("e-mail address"),
        "login_id": gettext_lazy("login id"),
    }

    def get_field(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(verbose_name=self.labels.get(name, name))


class _PasswordOwner(SimpleNamespace):
    _meta = _OwnerFields()


class LoginTokenGenerator(PasswordResetTokenGenerator):
    """Django's reset tokens, for a Login (our passwords live on logins, one per school)."""

    key_salt = "linking.services.passwords.LoginTokenGenerator"

    def _make_hash_value(self, login: Login, timestamp: int) -> str:
        # A new password or a sign-in changes the hash: a link works once.
        signed_in = (
            ""
            if login.last_login_at is None
            else login.last_login_at.replace(microsecond=0, tzinfo=None)
        )
        return (
            f"{login.pk}{login.password}{signed_in}{timestamp}"
            f"{login.unique_id}{login.workflow_state}{login.root_account_id}"
        )


token_generator = LoginTokenGenerator()


def _budgets(root_account: Account, email: str, ip_address: str | None) -> list[ratelimit.Budget]:
    typed = (email or "").strip().lower()
    digest = hashlib.sha256(typed.encode()).hexdigest()[:32]
    limit = settings.OBSERVERS_RESET_REQUESTS
    budgets = [ratelimit.Budget(f"rl:reset:{root_account.pk}:{digest}", limit)]
    if ip_address:
        budgets.append(
            ratelimit.Budget(
                f"rl:reset-addr:{ratelimit.address_block(ip_address)}",
                settings.OBSERVERS_RATE_LIMIT_ADDRESS_FAILURES,
            )
        )
    return budgets


def logins_for_address(*, root_account: Account, email: str) -> list[Login]:
    """Active logins of this school whose login id, or whose person's e-mail, is ``email``."""
    typed = (email or "").strip().lower()
    if not typed:
        return []
    return list(
        Login.objects.active()
        .filter(root_account=root_account, user__workflow_state=User.State.REGISTERED)
        .annotate(uid=Lower("unique_id"), address=Lower("user__email"))
        .filter(Q(uid=typed) | Q(address=typed))
        .select_related("user", "root_account")
        .order_by("pk")
    )


@dataclass(frozen=True)
class ResetRequest:
    sent_to: int  # logins e-mailed; never shown to the person asking
    tries_left: int | None


def request_password_reset(
    *, root_account: Account, email: str, base_url: str, actor: Actor
) -> ResetRequest:
    """E-mail a reset link for each matching login of ``root_account`` to ``email``.

    Raises RateLimited (nothing sent) when the address typed or the client
    address asked too often in the window. Each e-mail is in its person's
    language and names the school; each request that matched is audited
    (PASSWORD_RESET_REQUESTED) without the address typed.
    """
    reservation = ratelimit.reserve(_budgets(root_account, email, actor.ip_address))
    logins = logins_for_address(root_account=root_account, email=email)
    for login in logins:
        uid = urlsafe_base64_encode(force_bytes(login.pk))
        path = reverse(
            "linking:password_reset_confirm",
            kwargs={"uidb64": uid, "token": token_generator.make_token(login)},
        )
        mail.send_to_person(
            template="email/password_reset",
            person=login.user,
            to=email.strip(),
            root_account=root_account,
            context={"login_id": login.unique_id, "link": base_url.rstrip("/") + path},
        )
        record_event(
            action=AuditAction.PASSWORD_RESET_REQUESTED,
            actor=actor,
            root_account=root_account,
            detail={"user_id": login.user_id, "login_id": login.pk},
        )
    return ResetRequest(sent_to=len(logins), tries_left=reservation.tries_left)


def login_from_link(*, root_account: Account, uidb64: str) -> Login | None:
    """The active login a reset link names, when it belongs to this school."""
    try:
        pk = int(urlsafe_base64_decode(uidb64).decode())
    except (TypeError, ValueError, OverflowError, UnicodeDecodeError):
        return None
    return (
        Login.objects.active()
        .filter(pk=pk, root_account=root_account, user__workflow_state=User.State.REGISTERED)
        .select_related("user", "root_account")
        .first()
    )


def validate_for_login(password: str, login: Login) -> None:
    validate_new_password(
        password, name=login.user.name, email=login.user.email, login_id=login.unique_id
    )


@transaction.atomic
def reset_password(*, login: Login, password: str, actor: Actor) -> Login:
    """Give ``login`` a new password (the caller checked the link's token) and audit it.

    Raises ValidationError when the password fails AUTH_PASSWORD_VALIDATORS.
    The sign-in pause on the login id is lifted: the person proved they
    hold the address, so a guesser's lock no longer keeps them out.
    """
    validate_for_login(password, login)
    login.set_password(password)
    login.save(update_fields=["password"])
    record_event(
        action=AuditAction.PASSWORD_RESET,
        actor=actor,
        root_account=login.root_account,
        detail={"user_id": login.user_id, "login_id": login.pk},
    )
    ratelimit.reset([ratelimit.login_budget(login.root_account, login.unique_id)])
    return login
