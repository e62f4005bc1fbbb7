"""Developer keys: a school's OAuth2 clients, their scopes and their on/off switch."""

import secrets
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from ..models import AccessToken, Account, AuditAction, DeveloperKey
from .audit import record_event
from .context import Actor
from .errors import LinkingError
from .hashing import keyed_hash
from .scopes import API_SCOPES, unknown_scopes

SECRET_BYTES = 48
OOB_REDIRECT_URI = "urn:ietf:wg:oauth:2.0:oob"
MAX_REDIRECT_URI_LENGTH = 4096


class InvalidDeveloperKey(LinkingError):
    code = "invalid_developer_key"
    default_message = "The developer key is not valid."


def hash_secret(plaintext: str) -> str:
    return keyed_hash("developer-key-secret", plaintext)


def clean_redirect_uris(text: str) -> str:
    """One URI a line: absolute http(s) URLs (or Canvas's out-of-band URN), at least one.

    Raises InvalidDeveloperKey naming the first bad one.
    """
    uris = list(dict.fromkeys((text or "").split()))
    if not uris:
        raise InvalidDeveloperKey("Give at least one redirect URI.", code="redirect_uris")
    for uri in uris:
        if uri == OOB_REDIRECT_URI:
            continue
        parts = urlsplit(uri)
        if (
            len(uri) > MAX_REDIRECT_URI_LENGTH
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.fragment
        ):
            raise InvalidDeveloperKey(f"Not a valid redirect URI: {uri}", code="redirect_uris")
    return "\n".join(uris)


def clean_scopes(scopes) -> list[str]:
    scopes = list(dict.fromkeys(scopes or ()))
    unknown = unknown_scopes(scopes)
    if unknown:
        raise InvalidDeveloperKey(f"Unknown scope: {', '.join(unknown)}", code="scopes")
    # The catalogue's order, whatever order they were chosen in.
    return [scope for scope in API_SCOPES if scope in scopes]


@transaction.atomic
def create_developer_key(
    *,
    root_account: Account,
    name: str,
    redirect_uris: str,
    scopes=(),
    require_scopes: bool = True,
    allow_includes: bool = False,
    actor: Actor,
) -> tuple[DeveloperKey, str]:
    """A new key of ``root_account``; the secret is returned here and nowhere else.

    Raises InvalidDeveloperKey for a bad redirect URI, an unknown scope, or
    enforced scopes with none chosen.
    """
    scopes = clean_scopes(scopes)
    if require_scopes and not scopes:
        raise InvalidDeveloperKey("A key that enforces scopes needs at least one.", code="scopes")
    secret = secrets.token_urlsafe(SECRET_BYTES)
    key = DeveloperKey.objects.create(
        root_account=root_account,
        name=name.strip()[:255],
        redirect_uris=clean_redirect_uris(redirect_uris),
        scopes=scopes,
        require_scopes=require_scopes,
        allow_includes=allow_includes,
        secret_hash=hash_secret(secret),
        secret_hint=secret[-4:],
        created_by=actor.user if actor.user is not None and actor.user.pk else None,
    )
    record_event(
        action=AuditAction.DEVELOPER_KEY_CREATED,
        actor=actor,
        root_account=root_account,
        detail={"developer_key_id": key.pk, "scopes": scopes},
    )
    return key, secret


@transaction.atomic
def update_developer_key(
    *,
    key: DeveloperKey,
    name: str,
    redirect_uris: str,
    scopes,
    require_scopes: bool,
    allow_includes: bool,
    workflow_state: str,
    actor: Actor,
) -> int:
    """Change a key; returns how many of its tokens were revoked.

    As in Canvas, removing a scope, or starting to enforce scopes, revokes
    every token of the key (a token must never keep a right the key lost).
    Turning the key off needs no revocation: its tokens stop at once because
    every request checks the key (``tokens.authenticate_access_token``), and
    they work again when it is turned back on.
    """
    scopes = clean_scopes(scopes)
    if require_scopes and not scopes:
        raise InvalidDeveloperKey("A key that enforces scopes needs at least one.", code="scopes")
    if workflow_state not in DeveloperKey.State.values:
        raise InvalidDeveloperKey("Unknown state.", code="workflow_state")
    locked = DeveloperKey.objects.select_for_update().get(pk=key.pk)
    removed = set(locked.scopes) - set(scopes)
    newly_enforced = require_scopes and not locked.require_scopes
    key.name = name.strip()[:255]
    key.redirect_uris = clean_redirect_uris(redirect_uris)
    key.scopes = scopes
    key.require_scopes = require_scopes
    key.allow_includes = allow_includes
    key.workflow_state = workflow_state
    key.save()
    revoked = 0
    if removed or newly_enforced:
        revoked = AccessToken.objects.filter(developer_key=key, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    record_event(
        action=AuditAction.DEVELOPER_KEY_CHANGED,
        actor=actor,
        root_account=key.root_account,
        detail={
            "developer_key_id": key.pk,
            "scopes": scopes,
            "require_scopes": require_scopes,
            "workflow_state": workflow_state,
            "tokens_revoked": revoked,
        },
    )
    return revoked
