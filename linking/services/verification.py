"""Confirming the e-mail address of a parent who signed up by themself.

Sign-up (services.registration) marks the new parent's address unverified
and the page sends a link to it. Until it is opened, the parent keeps
everything the pairing codes proved (docs/families.md): they sign in, see
and add students with codes, and may reset their password; they get no
notification e-mails (nobody has shown the address is theirs) and the
pages remind them to confirm. The link is a Django token keyed to the
address and the moment it became unverified, so a changed address or a
confirmed one makes old links void.
"""

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from ..models import Account, AuditAction, Login, User
from . import mail, ratelimit
from .audit import record_event
from .context import Actor
from .errors import LinkingError


class InvalidVerificationLink(LinkingError):
    code = "invalid_verification_link"
    default_message = "This confirmation link is not valid or has expired."


class VerificationTokenGenerator(PasswordResetTokenGenerator):
    key_salt = "linking.services.verification.VerificationTokenGenerator"

    def _make_hash_value(self, user: User, timestamp: int) -> str:
        since = user.email_unverified_since
        since = "" if since is None else since.replace(microsecond=0, tzinfo=None)
        return f"{user.pk}{user.email.lower()}{since}{timestamp}"


token_generator = VerificationTokenGenerator()


def is_unverified(user: User | None) -> bool:
    return user is not None and getattr(user, "email_unverified_since", None) is not None


def mark_unverified(user: User) -> None:
    """Called by sign-up inside its transaction: the address is the parent's own word."""
    user.email_unverified_since = timezone.now()
    user.save(update_fields=["email_unverified_since", "updated_at"])


def send_verification(
    *, user: User, root_account: Account, base_url: str, actor: Actor, count: bool = True
) -> bool:
    """E-mail the confirmation link to ``user``'s address, in their language.

    ``count`` (asking again from the page) counts against the person's own
    budget, so a page cannot be used to flood an inbox: RateLimited once
    OBSERVERS_RESET_REQUESTS were sent in the window. Returns False when
    the address needs no confirmation.
    """
    if not is_unverified(user) or not user.email:
        return False
    if count:
        ratelimit.reserve(
            [ratelimit.Budget(f"rl:verify:{user.pk}", settings.OBSERVERS_RESET_REQUESTS)]
        )
    path = reverse(
        "linking:verify_email",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": token_generator.make_token(user),
        },
    )
    return mail.send_to_person(
        template="email/verify_email",
        person=user,
        to=user.email,
        root_account=root_account,
        context={"link": base_url.rstrip("/") + path},
    )


def user_from_link(*, root_account: Account, uidb64: str) -> User | None:
    """The live person a confirmation link names, when they have a login at this school."""
    try:
        pk = int(urlsafe_base64_decode(uidb64).decode())
    except (TypeError, ValueError, OverflowError, UnicodeDecodeError):
        return None
    has_login = Login.objects.active().filter(user_id=pk, root_account=root_account)
    return User.objects.live().filter(pk=pk, pk__in=has_login.values("user_id")).first()


def link_is_valid(user: User | None, token: str) -> bool:
    return user is not None and is_unverified(user) and token_generator.check_token(user, token)


@transaction.atomic
def verify_email(*, user: User, token: str, root_account: Account, actor: Actor) -> User:
    """Mark ``user``'s address confirmed; raises InvalidVerificationLink for a bad or used token.

    A used link is refused like a wrong one (its hash names the moment the
    address became unverified), so the answer tells a stranger nothing.
    """
    user = User.objects.select_for_update().get(pk=user.pk)
    if not is_unverified(user) or not token_generator.check_token(user, token):
        raise InvalidVerificationLink()
    user.email_unverified_since = None
    user.save(update_fields=["email_unverified_since", "updated_at"])
    record_event(
        action=AuditAction.EMAIL_VERIFIED,
        actor=actor,
        root_account=root_account,
        observer=user,
        detail={"user_id": user.pk},
    )
    return user
