"""Row rules for accounts, users, courses, enrollments and admins (Canvas's SIS CSV format).

Each handler validates one row, applies it through the domain's services and
returns what happened: "created", "updated", "deleted" or "unchanged". A row
that cannot be applied raises RowError with the message shown in the batch
report (Canvas's wording where Canvas has one).
"""

from dataclasses import dataclass

from django.db.models.functions import Lower

from ...models import (
    Account,
    AccountAdmin,
    AuditSource,
    Course,
    Enrollment,
    EnrollmentState,
    EnrollmentType,
    Login,
    Role,
    SisBatch,
    User,
    derive_sortable_name,
)
from ..accounts import (
    builtin_admin_role,
    create_course,
    create_sub_account,
    create_user_with_login,
    make_account_admin,
)
from ..context import Actor
from ..enrollments import enroll_user
from ..errors import LinkingError


class RowError(LinkingError):
    """One row of an SIS file cannot be applied; the import goes on with the next."""

    code = "sis_row"


@dataclass
class ImportContext:
    root_account: Account
    batch: SisBatch
    actor: Actor

    def __post_init__(self) -> None:
        if self.actor.source != AuditSource.SIS:
            raise ValueError("SIS imports act with AuditSource.SIS")


def status_of(values: dict[str, str], allowed: set[str], what: str) -> str:
    """The row's status, lower-cased (Canvas accepts any case); RowError when not allowed."""
    raw = values.get("status", "")
    status = raw.lower()
    if status not in allowed:
        raise RowError(f'Improper status "{raw}" for {what}')
    return status


def find_sub_account(ctx: ImportContext, sis_account_id: str) -> Account | None:
    return Account.objects.filter(
        root_account=ctx.root_account, sis_account_id=sis_account_id
    ).first()


def find_user(ctx: ImportContext, sis_user_id: str) -> User | None:
    """The user whose active login in the root account carries this SIS id."""
    login = (
        Login.objects.active()
        .filter(root_account=ctx.root_account, sis_user_id=sis_user_id)
        .select_related("user")
        .first()
    )
    return login.user if login else None


def _changed(obj, **fields) -> list[str]:
    names = [name for name, value in fields.items() if getattr(obj, name) != value]
    for name in names:
        setattr(obj, name, fields[name])
    return names


# accounts.csv ---------------------------------------------------------------


def apply_account_row(ctx: ImportContext, values: dict[str, str]) -> str:
    account_id = values.get("account_id", "")
    parent_id = values.get("parent_account_id", "")
    name = values.get("name", "")
    if not account_id:
        raise RowError("No account_id given for an account")
    status = status_of(values, {"active", "deleted"}, f"account {account_id}")
    if not name:
        raise RowError(f"No name given for account {account_id}")
    if parent_id == account_id:
        raise RowError(f"Account {account_id} cannot be its own parent")
    parent = ctx.root_account
    if parent_id:
        parent = find_sub_account(ctx, parent_id)
        if parent is None:
            raise RowError(f"Parent account didn't exist for {account_id}")
    account = find_sub_account(ctx, account_id)
    if account is None:
        account = create_sub_account(parent=parent, name=name, sis_account_id=account_id)
        if status == "deleted":
            account.workflow_state = Account.State.DELETED
            account.save(update_fields=["workflow_state", "updated_at"])
        return "created"
    if account.pk in parent.ancestor_ids():
        raise RowError(f"Setting account {account_id}'s parent to {parent_id} would create a loop")
    changed = _changed(account, name=name, parent_id=parent.pk, workflow_state=status)
    if not changed:
        return "unchanged"
    account.save(update_fields=[*changed, "updated_at"])
    return "deleted" if "workflow_state" in changed and status == "deleted" else "updated"


# users.csv ------------------------------------------------------------------


def apply_user_row(ctx: ImportContext, values: dict[str, str]) -> str:
    """A user and their login in the root account, keyed by SIS user id.

    ``deleted`` deletes the login (Canvas deletes the pseudonym, not the
    person). A password is set when the login is new or the given one no
    longer matches, so re-importing the same file changes nothing.
    """
    user_id = values.get("user_id", "")
    login_id = values.get("login_id", "")
    if not user_id:
        raise RowError("No user_id given for a user")
    if not login_id:
        raise RowError(f"No login_id given for user {user_id}")
    status = status_of(values, {"active", "deleted"}, f"user {user_id}")
    first, last = values.get("first_name", ""), values.get("last_name", "")
    full_name = values.get("full_name", "") or f"{first} {last}".strip() or login_id
    sortable_name = values.get("sortable_name", "") or (
        f"{last}, {first}" if first and last else derive_sortable_name(full_name)
    )
    short_name = values.get("short_name", "") or full_name
    email = values.get("email", "")
    integration_id = values.get("integration_id", "") or None
    password = values.get("password", "")
    root = ctx.root_account
    login_state = Login.State.DELETED if status == "deleted" else Login.State.ACTIVE

    login = (
        Login.objects.filter(root_account=root, sis_user_id=user_id).select_related("user").first()
    )
    taken = (
        Login.objects.filter(root_account=root)
        .exclude(workflow_state=Login.State.DELETED)
        .annotate(uid=Lower("unique_id"))
        .filter(uid=login_id.lower())
        .exclude(pk=login.pk if login else None)
        .first()
    )
    if taken is not None and login_state == Login.State.ACTIVE:
        raise RowError(
            f"An existing login with the SIS ID {taken.sis_user_id or '(none)'} has already "
            f"claimed {user_id}'s requested login id {login_id}, skipping"
        )
    if integration_id:
        other = Login.objects.filter(root_account=root, integration_id=integration_id)
        if login is not None:
            other = other.exclude(pk=login.pk)
        if other.exists():
            raise RowError(f"An existing user already has the integration ID {integration_id}")

    if login is None:
        user = create_user_with_login(
            name=full_name,
            root_account=root,
            unique_id=login_id,
            password=password or None,
            email=email,
            sis_user_id=user_id,
            integration_id=integration_id,
            sortable_name=sortable_name,
            short_name=short_name,
        )
        if login_state == Login.State.DELETED:
            Login.objects.filter(user=user, root_account=root, sis_user_id=user_id).update(
                workflow_state=login_state
            )
        return "created"

    user = login.user
    user_changes = _changed(
        user, name=full_name, sortable_name=sortable_name, short_name=short_name
    )
    if email:
        user_changes += _changed(user, email=email)
    if user_changes:
        user.save(update_fields=[*user_changes, "updated_at"])
    login_changes = _changed(
        login, unique_id=login_id, integration_id=integration_id, workflow_state=login_state
    )
    if password and not login.check_password(password):
        login.set_password(password)
        login_changes.append("password")
    if login_changes:
        login.save(update_fields=login_changes)
    if not (user_changes or login_changes):
        return "unchanged"
    return "deleted" if "workflow_state" in login_changes and status == "deleted" else "updated"


# courses.csv ----------------------------------------------------------------

_COURSE_STATES = {
    "active": Course.State.AVAILABLE,
    "unpublished": Course.State.UNPUBLISHED,
    "completed": Course.State.COMPLETED,
    "deleted": Course.State.DELETED,
}


def apply_course_row(ctx: ImportContext, values: dict[str, str]) -> str:
    course_id = values.get("course_id", "")
    short_name = values.get("short_name", "")
    long_name = values.get("long_name", "")
    if not course_id:
        raise RowError("No course_id given for a course")
    state = _COURSE_STATES[status_of(values, set(_COURSE_STATES), f"course {course_id}")]
    if not short_name:
        raise RowError(f"No short_name given for course {course_id}")
    if not long_name:
        raise RowError(f"No long_name given for course {course_id}")
    account = ctx.root_account
    if values.get("account_id"):
        account = find_sub_account(ctx, values["account_id"])
        if account is None:
            raise RowError(f'Account not found "{values["account_id"]}" for course {course_id}')
    course = Course.objects.filter(root_account=ctx.root_account, sis_course_id=course_id).first()
    if course is None:
        create_course(
            account=account,
            name=long_name,
            course_code=short_name,
            sis_course_id=course_id,
            workflow_state=state,
        )
        return "created"
    changed = _changed(
        course, name=long_name, course_code=short_name, account_id=account.pk, workflow_state=state
    )
    if not changed:
        return "unchanged"
    course.save(update_fields=changed)
    return "deleted" if "workflow_state" in changed and state == Course.State.DELETED else "updated"


# enrollments.csv ------------------------------------------------------------

_ENROLLMENT_STATES = {"active", "deleted", "completed", "inactive"}


def apply_enrollment_row(ctx: ImportContext, values: dict[str, str]) -> str:
    """An enrollment through services.enrollments, so linked observers follow a student's."""
    course_id, user_id = values.get("course_id", ""), values.get("user_id", "")
    raw_role = values.get("role", "")
    role = raw_role.lower()
    if not course_id:
        raise RowError("No course_id or section_id given for an enrollment")
    if not user_id:
        raise RowError("No user_id given for an enrollment")
    if role not in EnrollmentType.values:
        raise RowError(f'Improper role "{raw_role}" for an enrollment')
    status = status_of(values, _ENROLLMENT_STATES, "an enrollment")
    course = Course.objects.filter(root_account=ctx.root_account, sis_course_id=course_id).first()
    if course is None:
        raise RowError(
            "Neither course nor section existed for user enrollment "
            f"(Course ID: {course_id}, User ID: {user_id})"
        )
    user = find_user(ctx, user_id)
    if user is None:
        raise RowError(
            f"User not found for enrollment (User ID: {user_id}, Course ID: {course_id}, "
            f"Role: {role})"
        )
    associated = None
    associated_id = values.get("associated_user_id", "")
    if role == EnrollmentType.OBSERVER:
        if not associated_id:
            raise RowError(f"No associated_user_id given for observer {user_id} in {course_id}")
        associated = find_user(ctx, associated_id)
        if associated is None:
            raise RowError(
                f"An enrollment referenced a non-existent associated user {associated_id}"
            )
        if associated.pk == user.pk:
            raise RowError(f"Can't observe yourself user {user_id}")
    before = (
        Enrollment.objects.filter(user=user, course=course, type=role, associated_user=associated)
        .values_list("workflow_state", flat=True)
        .first()
    )
    enroll_user(
        user=user,
        course=course,
        type=role,
        workflow_state=EnrollmentState(status),
        associated_user=associated,
    )
    if before is None:
        return "created"
    if before == status:
        return "unchanged"
    return "deleted" if status == "deleted" else "updated"


# admins.csv -----------------------------------------------------------------


def apply_admin_row(ctx: ImportContext, values: dict[str, str]) -> str:
    user_id, role_name = values.get("user_id", ""), values.get("role", "")
    if not user_id:
        raise RowError("No user_id given for admin")
    if not role_name:
        raise RowError(f"No role given for admin {user_id}")
    status = status_of(values, {"active", "deleted"}, f"admin {user_id}")
    account = ctx.root_account
    if values.get("account_id"):
        account = find_sub_account(ctx, values["account_id"])
        if account is None:
            raise RowError(f"Invalid account_id given for admin {user_id}")
    user = find_user(ctx, user_id)
    if user is None:
        raise RowError(f"Invalid or unknown user_id '{user_id}' for admin")
    if role_name == Role.ACCOUNT_ADMIN:
        role = builtin_admin_role()
    else:
        role = Role.objects.filter(root_account=ctx.root_account, name=role_name).first()
        if role is None:
            raise RowError(f"Invalid role '{role_name}' for admin {user_id}")
    membership = AccountAdmin.objects.filter(user=user, account=account, role=role).first()
    if status == "deleted":
        if membership is None or membership.workflow_state == AccountAdmin.State.DELETED:
            return "unchanged"
        membership.workflow_state = AccountAdmin.State.DELETED
        membership.save(update_fields=["workflow_state"])
        return "deleted"
    if membership is not None and membership.workflow_state == AccountAdmin.State.ACTIVE:
        return "unchanged"
    make_account_admin(user=user, account=account, role=role)
    return "created" if membership is None else "updated"
