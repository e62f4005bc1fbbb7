"""Single sign-on with a school's OpenID Connect provider.

The protocol (discovery, state, nonce, PKCE, the code exchange, the ID
token's signature, issuer, audience and expiry) is Authlib's; this module
holds the school's rules around it:

- each root account has at most one provider, and only that school's host
  uses it, so school A's provider never signs anyone into school B;
- a person is matched to an existing active login of *that* school by one
  configured claim (login id or SIS user id); nobody is created;
- the school may require the provider for staff and for students, so their
  passwords stop working, while parents keep theirs. Site superusers keep
  their password as the way back in should the provider fail.
"""

import ipaddress
from urllib.parse import urlsplit

from authlib.integrations.django_client import DjangoOAuth2App
from authlib.integrations.django_client.integration import DjangoIntegration
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models.functions import Lower
from django.utils import timezone

from ..models import (
    Account,
    AccountAdmin,
    AuditAction,
    Enrollment,
    EnrollmentState,
    EnrollmentType,
    IdentityProvider,
    Login,
    Role,
    SsoMatch,
    User,
)
from . import secret_box
from .audit import record_event
from .context import Actor
from .errors import LinkingError
from .permissions import is_account_member, is_pairable_student

METADATA_CACHE_SECONDS = 3600


class SsoError(LinkingError):
    code = "sso"
    default_message = "Single sign-on did not complete."


class InvalidProviderSettings(SsoError):
    code = "sso_settings"


class NoMatchingLogin(SsoError):
    code = "sso_no_match"
    default_message = "Nobody at this school matches the account you signed in with."


class SsoRequired(SsoError):
    """A right password, refused because the school signs this person in through its provider."""

    code = "sso_required"

    def __init__(self, provider: IdentityProvider) -> None:
        self.provider = provider
        super().__init__(f"Sign in with {provider.name}.")


def check_issuer(issuer: str) -> str:
    """The issuer URL, or InvalidProviderSettings: https only, plain http only to this machine.

    A provider reached over plain http could have its ID tokens' keys
    swapped on the way; loopback addresses are allowed outside production
    for a provider run locally (the tests start one).
    """
    parts = urlsplit(issuer.strip())
    if parts.scheme == "https" and parts.hostname:
        return issuer.strip().rstrip("/")
    if parts.scheme == "http" and parts.hostname and not settings.PRODUCTION:
        host = parts.hostname
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if loopback:
            return issuer.strip().rstrip("/")
    raise InvalidProviderSettings("The issuer must be an https:// address.")


@transaction.atomic
def save_identity_provider(
    *,
    root_account: Account,
    name: str,
    issuer: str,
    client_id: str,
    client_secret: str | None,
    match_by: str = SsoMatch.LOGIN_ID,
    claim: str = "email",
    scopes: str = "openid email profile",
    enabled: bool = True,
    required_for_staff: bool = False,
    required_for_students: bool = False,
    actor: Actor | None = None,
) -> IdentityProvider:
    """Create or update the school's provider; an empty ``client_secret`` keeps the stored one.

    Recorded on the audit trail (``sso.configured``: what was set, whether
    the secret changed, never the secret).

    Raises InvalidProviderSettings for a sub-account, a non-https issuer, a
    missing client id or secret, or scopes without ``openid``.
    """
    if not root_account.is_root:
        raise InvalidProviderSettings("Single sign-on is set up on a school (root account).")
    if not name.strip():
        raise InvalidProviderSettings("Name the provider (it is shown on the sign-in button).")
    issuer = check_issuer(issuer)
    if not client_id.strip():
        raise InvalidProviderSettings("The client id is required.")
    if "openid" not in scopes.split():
        raise InvalidProviderSettings('The scopes must include "openid".')
    if not claim.strip():
        raise InvalidProviderSettings("Name the claim that identifies the person.")
    provider = IdentityProvider.objects.filter(root_account=root_account).first()
    if provider is None:
        if not client_secret:
            raise InvalidProviderSettings("The client secret is required.")
        provider = IdentityProvider(root_account=root_account)
    provider.name = name.strip()
    provider.issuer = issuer
    provider.client_id = client_id.strip()
    if client_secret:
        provider.client_secret_encrypted = secret_box.encrypt(client_secret)
    provider.match_by = SsoMatch(match_by)
    provider.claim = claim.strip()
    provider.scopes = " ".join(scopes.split())
    provider.enabled = enabled
    provider.required_for_staff = required_for_staff
    provider.required_for_students = required_for_students
    provider.save()
    cache.delete(_metadata_key(provider))
    record_event(
        action=AuditAction.SSO_CONFIGURED,
        actor=actor or Actor.system(),
        root_account=root_account,
        detail={
            "name": provider.name,
            "issuer": provider.issuer,
            "client_id": provider.client_id,
            "client_secret_changed": bool(client_secret),
            "match_by": provider.match_by,
            "claim": provider.claim,
            "enabled": provider.enabled,
            "required_for_staff": provider.required_for_staff,
            "required_for_students": provider.required_for_students,
        },
    )
    return provider


def provider_for(root_account: Account | None) -> IdentityProvider | None:
    """The enabled provider of the root account, if it has one."""
    if root_account is None:
        return None
    return IdentityProvider.objects.filter(root_account=root_account, enabled=True).first()


def _metadata_key(provider: IdentityProvider) -> str:
    return f"sso:metadata:{provider.pk}"


def oidc_client(provider: IdentityProvider) -> DjangoOAuth2App:
    """Authlib's OpenID Connect client for the provider.

    Its state (with nonce and PKCE verifier) is kept in the session under a
    name of this provider's own, so a sign-in started at one school cannot
    be finished at another. The discovery document and signing keys are
    cached for an hour; a token signed with an unknown key refetches them.
    """
    name = f"sso-{provider.pk}"
    metadata = cache.get(_metadata_key(provider)) or {}
    return DjangoOAuth2App(
        DjangoIntegration(name),
        name=name,
        client_id=provider.client_id,
        client_secret=secret_box.decrypt(provider.client_secret_encrypted),
        server_metadata_url=provider.metadata_url,
        client_kwargs={
            "scope": provider.scopes,
            "code_challenge_method": "S256",
            "default_timeout": settings.SSO_HTTP_TIMEOUT_SECONDS,
        },
        **metadata,
    )


def remember_metadata(provider: IdentityProvider, client: DjangoOAuth2App) -> None:
    if client.server_metadata.get("_loaded_at"):
        cache.set(_metadata_key(provider), dict(client.server_metadata), METADATA_CACHE_SECONDS)


def _matching_login(provider: IdentityProvider, value: str) -> Login | None:
    logins = Login.objects.active().filter(root_account=provider.root_account_id)
    if provider.match_by == SsoMatch.SIS_USER_ID:
        logins = logins.filter(sis_user_id=value)
    else:
        logins = logins.annotate(uid=Lower("unique_id")).filter(uid=value.lower())
    return logins.select_related("user").first()


def sign_in(*, provider: IdentityProvider, claims: dict, actor: Actor) -> User:
    """The user whose active login of the provider's school matches the configured claim.

    ``claims`` are the ID token's (already verified) claims, completed from
    the userinfo endpoint when the claim was not in the token. Raises
    NoMatchingLogin, recording why on the audit trail, when the claim is
    missing, the provider says the e-mail is unverified, or no active login
    of this school has the value; nobody is created.
    """
    value = claims.get(provider.claim)
    value = str(value).strip() if value is not None else ""
    reason = None
    if not value:
        reason = "claim_missing"
    elif provider.claim == "email" and claims.get("email_verified") is False:
        reason = "email_unverified"
    login = _matching_login(provider, value) if reason is None else None
    if reason is None and (login is None or not login.user.is_active):
        reason = "no_login"
    if reason is not None:
        record_event(
            action=AuditAction.SSO_REFUSED,
            actor=actor,
            root_account=provider.root_account,
            detail={"reason": reason, "claim": provider.claim, "value": value[:255]},
        )
        raise NoMatchingLogin()
    Login.objects.filter(pk=login.pk).update(last_login_at=timezone.now())
    record_event(
        action=AuditAction.SSO_SIGNED_IN,
        actor=Actor(
            user=login.user,
            source=actor.source,
            ip_address=actor.ip_address,
            user_agent=actor.user_agent,
            request_id=actor.request_id,
        ),
        root_account=provider.root_account,
        detail={"provider": provider.name, "login_id": login.unique_id},
    )
    return login.user


STAFF_ENROLLMENT_TYPES = [EnrollmentType.TEACHER, EnrollmentType.TA, EnrollmentType.DESIGNER]


def is_school_staff(user: User, root_account: Account) -> bool:
    """Staff for single sign-on: an admin of the school, or a teacher, TA or designer there."""
    if user.is_staff and is_account_member(user, root_account):
        return True
    return (
        Enrollment.objects.filter(
            user=user, root_account=root_account, type__in=STAFF_ENROLLMENT_TYPES
        )
        .exclude(workflow_state__in=[EnrollmentState.DELETED, EnrollmentState.REJECTED])
        .exists()
    )


def required_provider(user: User, root_account: Account) -> IdentityProvider | None:
    """The provider this person must sign in with at this school, or None if a password will do."""
    provider = provider_for(root_account)
    if provider is None or user.is_superuser:
        return None
    if not (provider.required_for_staff or provider.required_for_students):
        return None
    if provider.required_for_staff and is_school_staff(user, root_account):
        return provider
    if provider.required_for_students and is_pairable_student(user, root_account):
        return provider
    return None


def may_configure(user: User, root_account: Account | None) -> bool:
    """Who may set up a school's provider: site superusers and the school's full account admins.

    Whoever controls the provider can sign in as anyone of the school, so a
    custom role (an office clerk's) is not enough: only the built-in
    AccountAdmin role is.
    """
    if user.is_superuser:
        return True
    if root_account is None:
        return False
    return AccountAdmin.objects.filter(
        user=user,
        root_account=root_account,
        workflow_state=AccountAdmin.State.ACTIVE,
        role__name=Role.ACCOUNT_ADMIN,
        role__root_account__isnull=True,
    ).exists()


class SecretsUnreadable(SsoError):
    code = "sso_secret_unreadable"


@transaction.atomic
def rotate_client_secrets() -> int:
    """Re-encrypt every provider's client secret under the current key; returns how many.

    Raises SecretsUnreadable, changing nothing, when a secret was encrypted
    under a key that is neither the current one nor a previous one.
    """
    providers = list(IdentityProvider.objects.select_for_update().order_by("pk"))
    unreadable = []
    for provider in providers:
        try:
            provider.client_secret_encrypted = secret_box.rotate(provider.client_secret_encrypted)
        except secret_box.SecretUnreadable:
            unreadable.append(str(provider.root_account_id))
    if unreadable:
        raise SecretsUnreadable(
            "No configured key decrypts the client secret of root account(s) "
            + ", ".join(unreadable)
            + ": put the old key in SSO_ENCRYPTION_PREVIOUS_KEYS."
        )
    IdentityProvider.objects.bulk_update(providers, ["client_secret_encrypted"])
    return len(providers)
