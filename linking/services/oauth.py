"""OAuth2 the Canvas way: authorization codes, token exchange, refresh and log-out.

Canvas's rules (canvas-oauth-scopes-enrollments.md §1): the client is a
developer key (its id is the ``client_id``); codes are single-use and live
ten minutes; access tokens live one hour and are renewed with a refresh
token that does not expire; PKCE (S256 only) lets a public client exchange
a code without its secret. Codes, access tokens and refresh tokens are
stored as keyed hashes like every other secret here.
"""

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from ..models import AccessToken, Account, AuditAction, AuthorizationCode, DeveloperKey, User
from .audit import record_event
from .context import Actor
from .developer_keys import OOB_REDIRECT_URI, hash_secret
from .hashing import keyed_hash
from .tokens import TOKEN_BYTES, hash_token

CODE_LIFETIME = timedelta(minutes=10)
# A code is kept this long after it expired, used or not, so a replayed code
# is still recognised (and the token its first use made revoked) for a day.
CODE_RETENTION = timedelta(days=1)
ACCESS_TOKEN_LIFETIME = timedelta(hours=1)
_CLIENT_ID = re.compile(r"^\d{1,18}$")
# RFC 7636: 43 to 128 characters of [A-Z a-z 0-9 - . _ ~].
_PKCE_VALUE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")

INVALID_SCOPE_DESCRIPTION = (
    "A requested scope is invalid, unknown, malformed, or exceeds the scope granted by the "
    "resource owner. The following scopes were requested, but not granted: {}"
)


class OAuthError(Exception):
    """An OAuth2 error as Canvas renders it: ``{"error": ..., "error_description": ...}``."""

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        self.error = error
        self.description = description
        self.status = status
        super().__init__(f"{error}: {description}")


def unknown_client() -> OAuthError:
    return OAuthError("invalid_client", "unknown client", status=401)


def hash_code(plaintext: str) -> str:
    return keyed_hash("oauth-code", plaintext)


def hash_refresh_token(plaintext: str) -> str:
    return keyed_hash("refresh-token", plaintext)


def find_client(client_id: str | None, *, root_account: Account | None = None) -> DeveloperKey:
    """The active key ``client_id`` names (of ``root_account`` when given), else invalid_client."""
    if not client_id or not _CLIENT_ID.match(str(client_id)):
        raise unknown_client()
    key = DeveloperKey.objects.filter(pk=int(client_id)).first()
    if key is None or not key.is_active:
        raise unknown_client()
    if root_account is not None and key.root_account_id != root_account.pk:
        # A key of another school is unknown here: tenants never share clients.
        raise unknown_client()
    return key


def authenticate_client(
    client_id: str | None, client_secret: str | None, *, root_account: Account
) -> DeveloperKey:
    """The key whose id and secret these are, else 401 invalid_client (Canvas's two messages)."""
    key = find_client(client_id, root_account=root_account)
    if not client_secret or not hmac.compare_digest(hash_secret(client_secret), key.secret_hash):
        raise OAuthError("invalid_client", "invalid client", status=401)
    return key


def check_redirect_uri(key: DeveloperKey, redirect_uri: str | None) -> None:
    """The URI must be one the key lists, exactly (or the out-of-band URN)."""
    if redirect_uri == OOB_REDIRECT_URI:
        return
    if not redirect_uri or redirect_uri not in key.redirect_uri_list():
        raise OAuthError("invalid_request", "redirect_uri does not match client settings")


def parse_scopes(text: str | None) -> list[str]:
    return list(dict.fromkeys((text or "").split()))


def _to_sentence(items: list[str]) -> str:
    """Rails's ``Array#to_sentence``: "a", "a and b", "a, b, and c"."""
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def authorization_refusal(
    *,
    key: DeveloperKey,
    root_account: Account,
    response_type: str | None,
    scopes: list[str],
    code_challenge: str | None,
    code_challenge_method: str | None,
) -> OAuthError | None:
    """Why an authorization request must be refused (sent back to the client), or None.

    Checked after the client and the redirect URI, in Canvas's order: scopes,
    the key's school, the response type; then PKCE's challenge.
    """
    if key.require_scopes:
        not_granted = [scope for scope in scopes if scope not in key.scopes]
        if not scopes or not_granted:
            return OAuthError(
                "invalid_scope", INVALID_SCOPE_DESCRIPTION.format(_to_sentence(not_granted))
            )
    if key.root_account_id != root_account.pk:
        return OAuthError(
            "unauthorized_client", "Client does not have access to the specified Canvas account."
        )
    if response_type != "code":
        return OAuthError("unsupported_response_type", "Only response_type=code is permitted")
    if code_challenge is not None or code_challenge_method is not None:
        if (code_challenge_method or "") != "S256":
            return OAuthError("invalid_request", "code_challenge_method must be S256")
        if not code_challenge or not _PKCE_VALUE.match(code_challenge):
            return OAuthError("invalid_request", "code_challenge is malformed")
    return None


@transaction.atomic
def issue_authorization_code(
    *,
    key: DeveloperKey,
    user: User,
    scopes: list[str],
    redirect_uri: str,
    code_challenge: str = "",
) -> str:
    """A code the user's consent produced; the plaintext goes to the client, the hash is kept."""
    plaintext = secrets.token_hex(64)
    AuthorizationCode.objects.create(
        code_hash=hash_code(plaintext),
        developer_key=key,
        user=user,
        scopes=scopes if key.require_scopes else [],
        redirect_uri=redirect_uri,
        code_challenge=code_challenge or "",
        expires_at=timezone.now() + CODE_LIFETIME,
    )
    return plaintext


@dataclass(frozen=True)
class IssuedToken:
    token: AccessToken
    access_token: str
    refresh_token: str | None  # only when a token is created, never on refresh


def _pkce_matches(challenge: str, verifier: str | None) -> bool:
    if not verifier or not _PKCE_VALUE.match(verifier):
        return False
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return hmac.compare_digest(computed, challenge)


def _not_found() -> OAuthError:
    return OAuthError("invalid_grant", "authorization_code not found")


def exchange_authorization_code(
    *,
    key: DeveloperKey,
    code: str,
    client_authenticated: bool,
    code_verifier: str | None,
    replace_tokens: bool,
    actor: Actor,
) -> IssuedToken:
    """Trade a code for an access token and a refresh token. Raises OAuthError.

    A code works once: the exchange claims it with one conditional UPDATE,
    so two concurrent exchanges cannot both succeed. A code presented again
    also revokes the token its first exchange made (RFC 6749 §4.1.2: it
    may have been stolen). A code issued with a PKCE challenge needs the
    matching verifier; without one the client must authenticate with its
    secret.
    """
    found = AuthorizationCode.objects.filter(code_hash=hash_code(code)).first()
    now = timezone.now()
    if found is None:
        raise _not_found()
    if found.developer_key_id != key.pk:
        raise OAuthError("invalid_grant", "incorrect client")
    if found.used_at is not None:
        _revoke_replayed(found, actor)
        raise _not_found()
    if found.expires_at <= now:
        raise _not_found()
    if found.code_challenge:
        if not _pkce_matches(found.code_challenge, code_verifier):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
    elif not client_authenticated:
        raise OAuthError("invalid_client", "invalid client", status=401)
    with transaction.atomic():
        claimed = AuthorizationCode.objects.filter(pk=found.pk, used_at__isnull=True).update(
            used_at=now
        )
        if not claimed:
            raise _not_found()
        user = User.objects.live().filter(pk=found.user_id).first()
        if user is None:
            raise _not_found()
        if replace_tokens:
            AccessToken.objects.filter(
                user=user, developer_key=key, revoked_at__isnull=True
            ).update(revoked_at=now)
        issued = _create_token(key=key, user=user, scopes=found.scopes, actor=actor, now=now)
        AuthorizationCode.objects.filter(pk=found.pk).update(access_token=issued.token)
    return issued


def _revoke_replayed(code: AuthorizationCode, actor: Actor) -> None:
    if code.access_token_id is None:
        return
    with transaction.atomic():
        revoked = AccessToken.objects.filter(
            pk=code.access_token_id, revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
        if revoked:
            record_event(
                action=AuditAction.TOKEN_REVOKED,
                actor=actor,
                detail={"token_id": code.access_token_id, "reason": "authorization code replayed"},
            )


def _create_token(*, key, user, scopes, actor, now) -> IssuedToken:
    access = secrets.token_urlsafe(TOKEN_BYTES)
    refresh = secrets.token_urlsafe(TOKEN_BYTES)
    token = AccessToken.objects.create(
        user=user,
        purpose=key.name[:255],
        token_hash=hash_token(access),
        token_hint=access[-4:],
        expires_at=now + ACCESS_TOKEN_LIFETIME,
        developer_key=key,
        scopes=list(scopes),
        refresh_token_hash=hash_refresh_token(refresh),
    )
    record_event(
        action=AuditAction.TOKEN_ISSUED,
        actor=actor,
        root_account=key.root_account,
        detail={"token_id": token.pk, "user": user.pk, "developer_key_id": key.pk},
    )
    return IssuedToken(token=token, access_token=access, refresh_token=refresh)


@transaction.atomic
def refresh_access_token(*, key: DeveloperKey, refresh_token: str) -> IssuedToken:
    """A new access token string (one more hour) for a live refresh token. Raises OAuthError.

    The refresh token itself stays the same and is not returned again
    (Canvas). A revoked token, or one whose user is gone, cannot be renewed.
    """
    token = (
        AccessToken.objects.select_for_update()
        .select_related("user")
        .filter(refresh_token_hash=hash_refresh_token(refresh_token), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active:
        raise OAuthError("invalid_request", "refresh_token not found")
    if token.developer_key_id != key.pk:
        raise OAuthError("invalid_grant", "incorrect client")
    access = secrets.token_urlsafe(TOKEN_BYTES)
    token.token_hash = hash_token(access)
    token.token_hint = access[-4:]
    token.expires_at = timezone.now() + ACCESS_TOKEN_LIFETIME
    token.save(update_fields=["token_hash", "token_hint", "expires_at"])
    return IssuedToken(token=token, access_token=access, refresh_token=None)


def token_response(issued: IssuedToken) -> dict:
    """Canvas's token JSON (``Canvas::OAuth::Token#as_json``)."""
    user = issued.token.user
    body = {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "user": {
            "id": user.pk,
            "name": user.name,
            "global_id": str(user.pk),
            "effective_locale": user.locale or "en",
        },
        "canvas_region": "unknown",
    }
    if issued.refresh_token is not None:
        body["refresh_token"] = issued.refresh_token
    if issued.token.expires_at is not None:
        body["expires_in"] = max(
            0, round((issued.token.expires_at - timezone.now()).total_seconds())
        )
    return body


def prune_authorization_codes(*, now=None) -> int:
    """Delete codes that expired more than CODE_RETENTION ago; returns how many.

    Run hourly by the task worker (linking.tasks): a code is useless once
    expired, and past the retention a replay of it is an unknown code, which
    the token endpoint refuses all the same.
    """
    cutoff = (now or timezone.now()) - CODE_RETENTION
    deleted, _ = AuthorizationCode.objects.filter(expires_at__lt=cutoff).delete()
    return deleted
