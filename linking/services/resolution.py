"""Turning Canvas user references (``self``, ids, ``sis_*:`` forms) into users."""

import re
import uuid

from django.db.models import Q
from django.db.models.functions import Lower

from ..models import Account, Login, User
from .errors import NotFound

_INTEGER = re.compile(r"^\d{1,19}$")
_SIS_FORMS = {
    "sis_user_id": "sis_user_id",
    "sis_login_id": "unique_id",
    "sis_integration_id": "integration_id",
}
_MAX_ID = 2**63 - 1


def resolve_user(
    reference: str,
    *,
    caller: User | None,
    root_account: Account,
    include_deleted: bool = False,
) -> User:
    """Find the user a path segment names, or raise NotFound.

    ``self`` is the caller; a plain integer is a user id; ``uuid:`` is the
    user's uuid; ``sis_user_id:``, ``sis_login_id:`` (case-insensitive) and
    ``sis_integration_id:`` are looked up among the logins of the current
    root account only, so one school's SIS ids never reach another school's
    users. ``hex:`` before a SIS form means its value is hex-encoded UTF-8
    (Canvas's form for ids with awkward characters such as ``/``).
    """
    reference = (reference or "").strip()
    if reference == "self":
        if caller is None:
            raise NotFound()
        if not include_deleted and not caller.is_active:
            raise NotFound()
        return caller
    users = User.objects.all() if include_deleted else User.objects.live()
    if _INTEGER.match(reference):
        user_id = int(reference)
        if user_id > _MAX_ID:
            raise NotFound()
        user = users.filter(pk=user_id).first()
        if user is None:
            raise NotFound()
        return user
    prefix, sep, value = reference.partition(":")
    if prefix == "uuid" and sep:
        try:
            wanted = uuid.UUID(value)
        except ValueError as error:
            raise NotFound() from error
        user = users.filter(uuid=wanted).first()
        if user is None:
            raise NotFound()
        return user
    if prefix == "hex" and sep:
        prefix, sep, encoded = value.partition(":")
        try:
            value = bytes.fromhex(encoded).decode("utf-8")
        except ValueError as error:  # odd length, not hex, or not UTF-8
            raise NotFound() from error
    if sep and prefix in _SIS_FORMS and value:
        field = _SIS_FORMS[prefix]
        logins = Login.objects.filter(root_account=root_account).exclude(
            workflow_state=Login.State.DELETED
        )
        if field == "unique_id":
            logins = logins.annotate(uid=Lower("unique_id")).filter(uid=value.lower())
        else:
            logins = logins.filter(**{field: value})
        user = users.filter(Q(pk__in=logins.values("user_id"))).first()
        if user is None:
            raise NotFound()
        return user
    raise NotFound()


def resolve_root_account_param(value: str | None, *, domain_root_account: Account) -> str | Account:
    """Parse ``root_account_id``.

    Absent -> the domain root account, ``all`` -> "all", an id -> that root
    account; anything else raises NotFound.
    """
    if value is None or str(value).strip() == "":
        return domain_root_account
    text = str(value).strip()
    if text == "all":
        return "all"
    if not _INTEGER.match(text) or int(text) > _MAX_ID:
        raise NotFound()
    account = Account.objects.roots().filter(pk=int(text)).first()
    if account is None:
        raise NotFound()
    return account
