"""Tenants, people and courses: creating the rows the linking domain works on."""

import re
import zoneinfo

from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Lower

from ..models import Account, AccountAdmin, Course, Login, Role, SelfRegistration, User
from .errors import DomainTaken, LinkingError, LoginTaken

# A host name: dot-separated labels of letters, digits and inner hyphens.
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


def builtin_admin_role() -> Role:
    role, _ = Role.objects.get_or_create(
        name=Role.ACCOUNT_ADMIN,
        root_account=None,
        defaults={
            "manage_user_observers": True,
            "generate_observer_pairing_code": True,
            "read_sis": True,
            "view_user_logins": True,
            "read_roster": True,
        },
    )
    return role


@transaction.atomic
def create_root_account(
    *,
    name: str,
    domain: str,
    self_registration: str = SelfRegistration.OBSERVER,
    pairing_codes_enabled: bool = True,
    pairing_code_lifetime_hours: int = 24 * 7,
    credential_linking_allowed: bool = True,
    avatars_enabled: bool = False,
    time_zone: str = "UTC",
) -> Account:
    """A new tenant served at ``domain`` (lower-cased).

    Raises LinkingError (code ``invalid_domain``) for a malformed host name,
    DomainTaken when another root account already serves it, and
    LinkingError (code ``invalid_setting``) for an unknown self-registration
    mode, a code lifetime outside 1 hour .. 90 days or an unknown time zone.
    """
    domain = (domain or "").strip().lower().rstrip(".")
    if not _DOMAIN.match(domain):
        raise LinkingError(f"{domain!r} is not a valid host name.", code="invalid_domain")
    if self_registration not in SelfRegistration.values:
        raise LinkingError(
            f"self_registration must be one of {', '.join(SelfRegistration.values)}.",
            code="invalid_setting",
        )
    if not 1 <= pairing_code_lifetime_hours <= 24 * 90:
        raise LinkingError(
            "The pairing code lifetime must be between 1 and 2160 hours (90 days).",
            code="invalid_setting",
        )
    if time_zone not in zoneinfo.available_timezones():
        raise LinkingError(
            f"{time_zone!r} is not a known time zone (e.g. America/Chicago).",
            code="invalid_setting",
        )
    if Account.objects.filter(domain=domain).exists():
        raise DomainTaken()
    return Account.objects.create(
        name=name,
        domain=domain,
        self_registration=self_registration,
        pairing_codes_enabled=pairing_codes_enabled,
        pairing_code_lifetime_hours=pairing_code_lifetime_hours,
        credential_linking_allowed=credential_linking_allowed,
        avatars_enabled=avatars_enabled,
        time_zone=time_zone,
    )


@transaction.atomic
def create_sub_account(*, parent: Account, name: str, sis_account_id: str | None = None) -> Account:
    return Account.objects.create(
        name=name,
        parent=parent,
        root_account_id=parent.root_account_id or parent.pk,
        sis_account_id=sis_account_id,
    )


@transaction.atomic
def create_user_with_login(
    *,
    name: str,
    root_account: Account,
    unique_id: str,
    password: str | None = None,
    email: str = "",
    sis_user_id: str | None = None,
    integration_id: str | None = None,
    sortable_name: str = "",
    short_name: str = "",
    is_staff: bool = False,
) -> User:
    """A new user with one login in ``root_account`` (password hashed; None = no password)."""
    user = User.objects.create_user(
        name=name,
        email=email,
        sortable_name=sortable_name,
        short_name=short_name,
        is_staff=is_staff,
    )
    add_login(
        user=user,
        root_account=root_account,
        unique_id=unique_id,
        password=password,
        sis_user_id=sis_user_id,
        integration_id=integration_id,
    )
    return user


def add_login(
    *,
    user: User,
    root_account: Account,
    unique_id: str,
    password: str | None = None,
    sis_user_id: str | None = None,
    integration_id: str | None = None,
) -> Login:
    """Give ``user`` a login in ``root_account``.

    Raises LoginTaken when a live login of the root account already has the
    same login id (case-insensitively), SIS user id or integration id.
    """
    unique_id = unique_id.strip()
    clash = Q(uid=unique_id.lower())
    if sis_user_id:
        clash |= Q(sis_user_id=sis_user_id)
    if integration_id:
        clash |= Q(integration_id=integration_id)
    taken = (
        Login.objects.filter(root_account=root_account)
        .exclude(workflow_state=Login.State.DELETED)
        .annotate(uid=Lower("unique_id"))
        .filter(clash)
        .exists()
    )
    if taken:
        raise LoginTaken()
    login = Login(
        user=user,
        root_account=root_account,
        unique_id=unique_id,
        sis_user_id=sis_user_id or None,
        integration_id=integration_id or None,
    )
    if password:
        login.set_password(password)
    else:
        login.password = ""
    login.save()
    return login


@transaction.atomic
def make_account_admin(*, user: User, account: Account, role: Role | None = None) -> AccountAdmin:
    """Give ``user`` a role in ``account`` (the built-in AccountAdmin by default).

    The user becomes staff, so they may sign in to the admin.
    """
    role = role or builtin_admin_role()
    membership, _ = AccountAdmin.objects.update_or_create(
        user=user,
        account=account,
        role=role,
        defaults={
            "root_account_id": account.root_account_id or account.pk,
            "workflow_state": AccountAdmin.State.ACTIVE,
        },
    )
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff", "updated_at"])
    return membership


@transaction.atomic
def create_course(
    *,
    account: Account,
    name: str,
    course_code: str = "",
    sis_course_id: str | None = None,
    workflow_state: str = Course.State.AVAILABLE,
) -> Course:
    return Course.objects.create(
        account=account,
        root_account_id=account.root_account_id or account.pk,
        name=name,
        course_code=course_code or name,
        sis_course_id=sis_course_id,
        workflow_state=workflow_state,
    )


def find_login(*, root_account: Account, unique_id: str) -> Login | None:
    """The live login of ``root_account`` with this login id (case-insensitive), or None."""
    return (
        Login.objects.filter(root_account=root_account)
        .exclude(workflow_state=Login.State.DELETED)
        .annotate(uid=Lower("unique_id"))
        .filter(uid=(unique_id or "").strip().lower())
        .select_related("user")
        .first()
    )


def set_locale(*, user: User, language: str) -> User:
    """Remember the language a person chose on the pages (Canvas: the user's locale)."""
    if user.locale != language:
        user.locale = language
        user.save(update_fields=["locale", "updated_at"])
    return user
