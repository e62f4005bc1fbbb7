"""Issuing, redeeming and revoking observer pairing codes.

Codes are 8 symbols of Crockford Base32 (40 bits), shown as ``ABCD-EFGH``,
typed case-insensitively with or without dashes and spaces, and stored only
as a keyed hash. A code works exactly once: every rule is checked before the
code is consumed, and consumption is one conditional UPDATE, so concurrent
redemptions produce exactly one link and a refused attempt never burns it.
"""

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from ..models import (
    Account,
    AuditAction,
    LinkSource,
    ObservationLink,
    PairingCode,
    Permission,
    User,
)
from . import ratelimit, rules
from .audit import record_event
from .context import Actor
from .errors import FeatureDisabled, InvalidPairingCode, LinkingError, NotAuthorized
from .hashing import keyed_hash
from .links import link_to_common_root_accounts
from .permissions import (
    can_generate_pairing_code,
    common_root_account_ids,
    has_account_permission,
    is_pairable_student,
)
from .sql import Select, with_user_sql

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 8
MAX_ACTIVE_CODES = 5
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SEPARATORS = re.compile(r"[\s\-_.]+")
_VALID = re.compile(f"^[{ALPHABET}]{{{CODE_LENGTH}}}$")


def normalize_code(raw: str | None) -> str | None:
    """The canonical form of a typed code, or None when it cannot be a code."""
    if not raw or len(raw) > 64:
        return None
    text = _SEPARATORS.sub("", raw).upper().translate(_LOOKALIKES)
    return text if _VALID.match(text) else None


def format_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def hash_code(code: str) -> str:
    return keyed_hash("pairing-code", code)


@dataclass(frozen=True)
class IssuedCode:
    pairing_code: PairingCode
    plaintext: str  # formatted ABCD-EFGH; exists only in this return value

    @property
    def expires_at(self):
        return self.pairing_code.expires_at


CODE_HINT_LENGTH = 2


def issue_pairing_code(*, student: User, root_account: Account, actor: Actor) -> IssuedCode:
    """Issue a new code for a student of the root account.

    Raises FeatureDisabled when the root account has pairing codes off or
    its self-registration off (Canvas: parents could not sign up with the
    code), and NotAuthorized when the student has no live student enrollment
    there, is protected (services.rules: codes are how people link
    themselves, and a protected student is linked by staff only; the refusal
    is audited) or
    the acting user may not generate codes for them (a system actor, such as
    a management command, may). A student holds at most five active codes:
    issuing a sixth revokes the oldest.
    """
    if not root_account.pairing_codes_enabled or not root_account.self_registration_on:
        raise FeatureDisabled()
    if not is_pairable_student(student, root_account):
        raise NotAuthorized()
    if rules.is_protected(student, root_account):
        # Recorded before the issuing transaction, which would roll it back.
        record_event(
            action=AuditAction.LINK_REFUSED,
            actor=actor,
            root_account=root_account,
            student=student,
            detail={"rule": rules.PROTECTED_STUDENT, "source": "pairing_code_issue"},
        )
        raise NotAuthorized("This student cannot have pairing codes.")
    return _issue_pairing_code(student=student, root_account=root_account, actor=actor)


@transaction.atomic
def _issue_pairing_code(*, student: User, root_account: Account, actor: Actor) -> IssuedCode:
    if actor.user is not None and not can_generate_pairing_code(actor.user, student, root_account):
        raise NotAuthorized()
    # Lock the student row so concurrent issues count active codes one at a time.
    User.objects.select_for_update().filter(pk=student.pk).first()
    now = timezone.now()
    active = list(
        PairingCode.objects.redeemable(now)
        .filter(student=student)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)
    )
    for stale in PairingCode.objects.filter(pk__in=active[MAX_ACTIVE_CODES - 1 :]).select_related(
        "root_account", "student"
    ):
        _revoke(stale, actor, reason="cap")
    expires_at = now + timedelta(hours=root_account.pairing_code_lifetime_hours)
    for _attempt in range(5):
        plaintext = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
        try:
            with transaction.atomic():
                code = PairingCode.objects.create(
                    student=student,
                    root_account=root_account,
                    code_hash=hash_code(plaintext),
                    code_hint=plaintext[-CODE_HINT_LENGTH:],
                    expires_at=expires_at,
                    issued_by=actor.user if actor.user is not None and actor.user.pk else None,
                    created_at=now,
                )
            break
        except IntegrityError:  # 1 in 2**40 per live code: draw again
            continue
    else:  # pragma: no cover - would need five consecutive collisions
        raise RuntimeError("could not draw an unused pairing code")
    record_event(
        action=AuditAction.CODE_ISSUED,
        actor=actor,
        root_account=root_account,
        student=student,
        pairing_code=code,
        detail={"expires_at": expires_at.isoformat()},
    )
    return IssuedCode(pairing_code=code, plaintext=format_code(plaintext))


def _failed_attempt(
    actor: Actor, root_account: Account, reason: str, tries_left: int | None
) -> InvalidPairingCode:
    record_event(
        action=AuditAction.CODE_FAILED,
        actor=actor,
        root_account=root_account,
        detail={"reason": reason},
    )
    error = InvalidPairingCode()
    error.tries_left = tries_left
    return error


_CODE_WITH_STUDENT = Select([(PairingCode, None), (User, None)])


@cache
def _code_sql() -> str:
    """A redeemable code of a root account by its hash, with its student (see ``services.sql``)."""
    return with_user_sql(
        PairingCode,
        "student",
        "m.root_account_id = %s AND m.code_hash = %s"
        " AND m.workflow_state = %s AND m.expires_at > %s",
    )


def find_redeemable_code(
    *,
    code: str,
    root_account: Account,
    actor: Actor,
    vet: Callable[[PairingCode], object] | None = None,
) -> PairingCode:
    """Look a typed code up among the root account's live codes, counting failures.

    The try is reserved under the actor's and the address's budgets before
    looking (RateLimited when either is used up, with nothing counted) and
    given back when the code is found, so a failed try counts and
    concurrent guesses never get past the limit. Raises InvalidPairingCode
    (one message for unknown, expired, used and revoked codes, with the
    tries left) otherwise. ``vet`` (the rules of who may observe) sees the
    found code before the try is given back: a refusal it raises counts
    and carries the tries left, exactly like a wrong code.
    """
    reservation = ratelimit.reserve(
        ratelimit.budgets_for(user=actor.user, ip_address=actor.ip_address)
    )
    canonical = normalize_code(code)
    if canonical is None:
        raise _failed_attempt(actor, root_account, "malformed", reservation.tries_left)
    rows = _CODE_WITH_STUDENT.rows(
        _code_sql(),
        [
            root_account.pk,
            hash_code(canonical),
            PairingCode.State.ACTIVE,
            connection.ops.adapt_datetimefield_value(timezone.now()),
        ],
    )
    if not rows or not rows[0][1].is_active:
        if vet is not None:
            # Judged like a found code, for a student who does not exist (never
            # refused): a code the rules refuse must not answer measurably later
            # than a wrong one (docs/security.md §15).
            vet(PairingCode(root_account=root_account, student=User(pk=0)))
        raise _failed_attempt(actor, root_account, "no_match", reservation.tries_left)
    found, student = rows[0]
    found.student = student
    if vet is not None:
        try:
            vet(found)
        except LinkingError as error:
            error.tries_left = reservation.tries_left
            raise
    reservation.release()
    return found


def find_code_for_observer(
    *, code: str, observer: User, root_account: Account, actor: Actor
) -> PairingCode:
    """find_redeemable_code for a parent about to confirm a link, with the link rules judged.

    The confirm step shows the student's name, so a code that the rules of
    who may observe refuse is answered here like a wrong code (and counted).
    """
    return find_redeemable_code(
        code=code,
        root_account=root_account,
        actor=actor,
        vet=link_rules_vet(
            observer=observer, narrowing=root_account, actor=actor, source=LinkSource.PAIRING_CODE
        ),
    )


def redeem_pairing_code(
    *,
    code: str,
    observer: User,
    root_account: Account,
    actor: Actor,
    link_root_accounts: Account | str | None = None,
    source: str = LinkSource.PAIRING_CODE,
) -> tuple[User, list[ObservationLink]]:
    """Link ``observer`` to the student a code was issued for, consuming the code.

    Every rule (rate limit, code validity, self-link, common root accounts,
    the acting admin's permission) is checked before the code is consumed;
    a refused attempt leaves it usable. Consumption is a conditional UPDATE
    inside the same transaction as the links, so of many concurrent
    redemptions exactly one links and the rest get InvalidPairingCode.
    """
    narrowing = link_root_accounts if link_root_accounts is not None else root_account
    pairing_code = find_redeemable_code(
        code=code,
        root_account=root_account,
        actor=actor,
        vet=link_rules_vet(observer=observer, narrowing=narrowing, actor=actor, source=source),
    )
    student = pairing_code.student
    try:
        return _consume_and_link(
            pairing_code, student, observer, root_account, actor, narrowing, source
        )
    except LinkingError as error:
        # The consuming transaction rolled back, so the code is still usable;
        # the refusal is recorded outside it (never with the plaintext).
        record_event(
            action=AuditAction.CODE_FAILED,
            actor=actor,
            root_account=root_account,
            observer=observer,
            student=student,
            pairing_code=pairing_code,
            detail={"reason": error.code},
        )
        raise


@transaction.atomic
def _consume_and_link(
    pairing_code: PairingCode,
    student: User,
    observer: User,
    root_account: Account,
    actor: Actor,
    narrowing: Account | str,
    source: str,
) -> tuple[User, list[ObservationLink]]:
    now = timezone.now()
    # The conditional UPDATE takes the row lock: concurrent redemptions queue
    # here, and after the winner commits the rest match no row.
    consumed = PairingCode.objects.filter(
        pk=pairing_code.pk,
        workflow_state=PairingCode.State.ACTIVE,
        expires_at__gt=now,
    ).update(
        workflow_state=PairingCode.State.REDEEMED,
        redeemed_by=observer,
        redeemed_at=now,
    )
    if not consumed:  # a concurrent redemption won, or the code just expired
        raise InvalidPairingCode()
    # Raises (rolling the consumption back) when no link may result.
    links = link_to_common_root_accounts(
        observer=observer,
        student=student,
        narrowing=narrowing,
        actor=actor,
        source=source,
        consent_at=rules.student_consent_at(pairing_code),
    )
    record_event(
        action=AuditAction.CODE_REDEEMED,
        actor=actor,
        root_account=root_account,
        observer=observer,
        student=student,
        pairing_code=pairing_code,
    )
    return student, links


def link_rules_vet(
    *,
    observer: User | None,
    narrowing: Account | str,
    actor: Actor,
    source: str,
    new_person_email: str = "",
) -> Callable[[PairingCode], object]:
    """The rules of who may observe, judged on a found code before it counts as a good try.

    Judged in each root account the code would link on (``narrowing``, or
    every root account the two share); a refusal is audited and raised as
    rules.refusal_error chooses (a wrong code's answer for the observer).
    """

    def vet(found: PairingCode):
        if isinstance(narrowing, Account):
            accounts = [narrowing]
        elif observer is None:
            accounts = [found.root_account]
        else:
            common = common_root_account_ids(observer, found.student)
            if found.pk is None:  # find_redeemable_code's placeholder for a wrong code
                common = {found.root_account_id}
            accounts = list(Account.objects.filter(pk__in=common).order_by("pk"))
        return rules.enforce(
            observer=observer,
            student=found.student,
            root_accounts=accounts,
            source=source,
            actor=actor,
            consent_at=rules.student_consent_at(found),
            new_person_email=new_person_email,
        )

    return vet


def revoke_student_codes(*, student: User, root_account: Account, actor: Actor) -> int:
    """Revoke every unused code of a student in a root account (they were protected)."""
    codes = PairingCode.objects.redeemable().filter(student=student, root_account=root_account)
    return sum(
        _revoke(code, actor, reason="protected")
        for code in codes.select_related("root_account", "student")
    )


def _revoke(code: PairingCode, actor: Actor, *, reason: str) -> bool:
    now = timezone.now()
    updated = PairingCode.objects.filter(
        pk=code.pk, workflow_state=PairingCode.State.ACTIVE
    ).update(
        workflow_state=PairingCode.State.REVOKED,
        revoked_at=now,
        revoked_by=actor.user if actor.user is not None and actor.user.pk else None,
    )
    if updated:
        record_event(
            action=AuditAction.CODE_REVOKED,
            actor=actor,
            root_account=code.root_account,
            student=code.student,
            pairing_code=code,
            detail={"reason": reason},
        )
    return bool(updated)


@transaction.atomic
def revoke_pairing_code(*, pairing_code: PairingCode, actor: Actor) -> bool:
    """Revoke an active code: the student and staff may; others get NotAuthorized.

    Returns False when the code was no longer active (already used or revoked).
    """
    caller = actor.user
    if caller is not None and caller.pk != pairing_code.student_id:
        allowed = has_account_permission(
            caller, pairing_code.root_account, Permission.MANAGE_USER_OBSERVERS
        ) or can_generate_pairing_code(caller, pairing_code.student, pairing_code.root_account)
        if not allowed:
            raise NotAuthorized()
    return _revoke(pairing_code, actor, reason="revoked")
