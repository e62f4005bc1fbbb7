"""Tenants, people and courses: creating the rows the linking domain works on."""

from django.db import transaction

from ..models import Account, AccountAdmin, Course, Login, Role, SelfRegistration, User


def builtin_admin_role() -> Role:
    role, _ = Role.objects.get_or_create(
        name=Role.ACCOUNT_ADMIN,
        root_account=None,
        defaults={
            "manage_user_observers": True,
            "generate_observer_pairing_code": True,
            "read_sis": True,
            "view_user_logins": True,
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
) -> Account:
    return Account.objects.create(
        name=name,
        domain=domain.strip().lower(),
        self_registration=self_registration,
        pairing_codes_enabled=pairing_codes_enabled,
        pairing_code_lifetime_hours=pairing_code_lifetime_hours,
        credential_linking_allowed=credential_linking_allowed,
        avatars_enabled=avatars_enabled,
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
    login = Login(
        user=user,
        root_account=root_account,
        unique_id=unique_id.strip(),
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
    """Give ``user`` a role in ``account`` (the built-in AccountAdmin by default); staff may use the admin."""
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
