"""API access tokens: issued once in plaintext, stored as a keyed hash."""

import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from django.db import transaction
from django.utils import timezone

from ..models import AccessToken, Account, AuditAction, DeveloperKey, User
from .audit import record_event
from .context import Actor
from .errors import LinkingError
from .hashing import keyed_hash
from .scopes import unknown_scopes
from .sql import Select, with_user_sql

TOKEN_BYTES = 32
# Writing last_used_at on every request would turn reads into writes; once a
# minute is precise enough for "when was this token last used".
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(plaintext: str) -> str:
    return keyed_hash("access-token", plaintext)


@dataclass(frozen=True)
class ScopePolicy:
    """What a token may do: ``scopes`` enforced when ``enforced``; includes kept or dropped."""

    enforced: bool
    scopes: tuple[str, ...]
    allow_includes: bool


UNSCOPED = ScopePolicy(enforced=False, scopes=(), allow_includes=True)


class UnknownScope(LinkingError):
    code = "unknown_scope"
    default_message = "Unknown scope."


@transaction.atomic
def issue_access_token(
    *, user: User, actor: Actor, purpose: str = "", expires_at=None, scopes=()
) -> tuple[AccessToken, str]:
    """Create a token for ``user``; the plaintext is returned here and nowhere else.

    A token issued with ``scopes`` may call only those endpoints (raises
    UnknownScope for a scope that names no endpoint).
    """
    scopes = list(dict.fromkeys(scopes))
    unknown = unknown_scopes(scopes)
    if unknown:
        raise UnknownScope(f"Unknown scope: {', '.join(unknown)}")
    plaintext = secrets.token_urlsafe(TOKEN_BYTES)
    token = AccessToken.objects.create(
        user=user,
        purpose=purpose[:255],
        token_hash=hash_token(plaintext),
        token_hint=plaintext[-4:],
        expires_at=expires_at,
        scopes=scopes,
        created_by=actor.user if actor.user is not None and actor.user.pk else None,
    )
    record_event(
        action=AuditAction.TOKEN_ISSUED, actor=actor, detail={"token_id": token.pk, "user": user.pk}
    )
    return token, plaintext


_TOKEN_WITH_USER = Select([(AccessToken, None), (User, None)])


@cache
def _token_sql() -> str:
    # The developer key's state, enforcement and school ride along (LEFT JOIN:
    # hand-issued tokens have no key), so a key turned off stops its tokens
    # without a second query.
    key_table = DeveloperKey._meta.db_table
    plain = with_user_sql(AccessToken, "user", "m.token_hash = %s")
    select, rest = plain.split(" FROM ", 1)
    joined, where = rest.split(" WHERE ", 1)
    return (
        f"{select}, k.workflow_state, k.require_scopes, k.allow_includes, k.root_account_id"
        f" FROM {joined} LEFT JOIN {key_table} k ON k.id = m.developer_key_id"
        f" WHERE {where}"
    )


def authenticate_access_token(
    plaintext: str | None, *, root_account: Account | None = None
) -> AccessToken | None:
    """The usable token (with its user) a bearer string names, or None. One indexed query.

    Every API request runs this, so the statement is written out (see
    ``services.sql``): an equality lookup on the unique hash, with
    usability checked on the row. A token of a developer key works only
    while the key is on and, when ``root_account`` is given, only in the
    key's own school. The token's ``scope_policy`` says what it may call.
    """
    if not plaintext or len(plaintext) > 256:
        return None
    rows = _TOKEN_WITH_USER.rows(_token_sql(), [hash_token(plaintext)])
    if not rows:
        return None
    token, user, key_state, require_scopes, allow_includes, key_root_account_id = rows[0]
    token.user = user
    now = timezone.now()
    if (
        token.revoked_at is not None
        or (token.expires_at is not None and token.expires_at <= now)
        or not user.is_active
    ):
        return None
    if token.developer_key_id is not None:
        if key_state != DeveloperKey.State.ACTIVE:
            return None
        if root_account is not None and key_root_account_id != root_account.pk:
            return None
        token.scope_policy = ScopePolicy(
            enforced=bool(require_scopes),
            scopes=tuple(token.scopes or ()),
            allow_includes=bool(allow_includes),
        )
    elif token.scopes:
        # Staff gave a hand-issued token scopes: they are enforced, includes kept.
        token.scope_policy = ScopePolicy(
            enforced=True, scopes=tuple(token.scopes), allow_includes=True
        )
    else:
        token.scope_policy = UNSCOPED
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        AccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


@transaction.atomic
def revoke_access_token(*, token: AccessToken, actor: Actor) -> bool:
    updated = AccessToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if updated:
        record_event(
            action=AuditAction.TOKEN_REVOKED,
            actor=actor,
            detail={"token_id": token.pk, "user": token.user_id},
        )
    return bool(updated)


@transaction.atomic
def revoke_access_tokens(*, user: User, actor: Actor, purpose: str | None = None) -> int:
    """Revoke every live token of ``user`` (only those with ``purpose`` when given).

    Each revoked token is audited; returns how many were revoked.
    """
    tokens = AccessToken.objects.filter(user=user, revoked_at__isnull=True)
    if purpose is not None:
        tokens = tokens.filter(purpose=purpose)
    return sum(revoke_access_token(token=token, actor=actor) for token in tokens)
