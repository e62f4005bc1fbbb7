"""Canvas's SIS CSV rows as importer records (accounts, users, courses, enrollments, admins).

Each ``*_record`` function checks one row's own fields (Canvas's wording,
canvas-behaviour.md §6.2) and returns the values ``apply.py`` applies in
bulk; a row that is wrong on its face raises RowError. Whether what it
names exists (a parent account, a course, a user) is checked by the bulk
appliers, with the messages in CANVAS_MESSAGES.
"""

from dataclasses import dataclass, field

from ...models import (
    Account,
    AuditSource,
    Course,
    EnrollmentType,
    Login,
    SisBatch,
    derive_sortable_name,
)
from ..context import Actor
from ..errors import LinkingError


class RowError(LinkingError):
    """One row of an SIS file cannot be applied; the import goes on with the next."""

    code = "sis_row"


@dataclass
class ImportContext:
    root_account: Account
    batch: SisBatch
    actor: Actor
    # SIS ids that mean the root account itself (a OneRoster district's sourcedId).
    root_sis_ids: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.actor.source != AuditSource.SIS:
            raise ValueError("SIS imports act with AuditSource.SIS")


CANVAS_MESSAGES = {
    "duplicate": "{key} appears twice in the file",
    "account_own_parent": "Account {account_id} cannot be its own parent",
    "parent_missing": "Parent account didn't exist for {account_id}",
    "account_loop": "Setting account {account_id}'s parent to {parent} would create a loop",
    "course_account_missing": 'Account not found "{account}" for course {course}',
    "term_missing": "Term {term} not found for course {course}",
    "login_taken": (
        "An existing login with the SIS ID {taken_sis} has already claimed {user_id}'s "
        "requested login id {login_id}, skipping"
    ),
    "integration_taken": "An existing user already has the integration ID {integration_id}",
    "user_missing": "User {user_id} not found",
    "course_missing": (
        "Neither course nor section existed for user enrollment "
        "(Course ID: {course_id}, User ID: {user_id})"
    ),
    "enrollee_missing": (
        "User not found for enrollment (User ID: {user_id}, Course ID: {course_id}, Role: {role})"
    ),
    "associated_missing": "An enrollment referenced a non-existent associated user {associated}",
    "observe_self": "Can't observe yourself user {user_id}",
    "admin_account_missing": "Invalid account_id given for admin {user_id}",
    "admin_user_missing": "Invalid or unknown user_id '{user_id}' for admin",
    "admin_role_missing": "Invalid role '{role}' for admin {user_id}",
}


def status_of(values: dict[str, str], allowed: set[str], what: str) -> str:
    """The row's status, lower-cased (Canvas accepts any case); RowError when not allowed."""
    raw = values.get("status", "")
    status = raw.lower()
    if status not in allowed:
        raise RowError(f'Improper status "{raw}" for {what}')
    return status


# accounts.csv ---------------------------------------------------------------


def account_record(values: dict[str, str]) -> tuple[str, dict]:
    account_id = values.get("account_id", "")
    if not account_id:
        raise RowError("No account_id given for an account")
    status = status_of(values, {"active", "deleted"}, f"account {account_id}")
    name = values.get("name", "")
    if not name:
        raise RowError(f"No name given for account {account_id}")
    parent_id = values.get("parent_account_id", "")
    if parent_id == account_id:
        raise RowError(f"Account {account_id} cannot be its own parent")
    return account_id, {
        "account_id": account_id,
        "parent_account_id": parent_id,
        "name": name,
        "state": status,
    }


# users.csv ------------------------------------------------------------------


def user_record(values: dict[str, str]) -> tuple[str, dict]:
    """``deleted`` deletes the login (Canvas deletes the pseudonym, not the person)."""
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
    return user_id, {
        "user_id": user_id,
        "login_id": login_id,
        "full_name": full_name,
        "sortable_name": sortable_name,
        "short_name": values.get("short_name", "") or full_name,
        "email": values.get("email", ""),
        "integration_id": values.get("integration_id", ""),
        "password": values.get("password", ""),
        "state": Login.State.DELETED if status == "deleted" else Login.State.ACTIVE,
        "protected": boolean_cell(values.get(PROTECTED_COLUMN, ""), PROTECTED_COLUMN),
    }


# Our extension column (Canvas ignores columns it does not know): "true"
# protects the student (services.safeguarding), "false" lifts what an SIS
# import protected, empty leaves it as it is. Never exported.
PROTECTED_COLUMN = "protected"


def boolean_cell(value: str, column: str, *, required: bool = False) -> bool | None:
    """``true``/``false`` in any case; None for an empty cell unless ``required``."""
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if not value and not required:
        return None
    raise RowError(f"{column} {value[:60]!r} must be true or false")


# courses.csv ----------------------------------------------------------------

COURSE_STATES = {
    "active": Course.State.AVAILABLE,
    "unpublished": Course.State.UNPUBLISHED,
    "completed": Course.State.COMPLETED,
    "deleted": Course.State.DELETED,
}


def course_record(values: dict[str, str]) -> tuple[str, dict]:
    course_id = values.get("course_id", "")
    if not course_id:
        raise RowError("No course_id given for a course")
    state = COURSE_STATES[status_of(values, set(COURSE_STATES), f"course {course_id}")]
    short_name, long_name = values.get("short_name", ""), values.get("long_name", "")
    if not short_name:
        raise RowError(f"No short_name given for course {course_id}")
    if not long_name:
        raise RowError(f"No long_name given for course {course_id}")
    return course_id, {
        "course_id": course_id,
        "short_name": short_name,
        "long_name": long_name,
        "account_id": values.get("account_id", ""),
        "state": state,
    }


# enrollments.csv ------------------------------------------------------------

_ENROLLMENT_STATES = {"active", "deleted", "completed", "inactive"}
# Django's Choices.values is rebuilt on every access: once here, not per row.
_ENROLLMENT_ROLES = frozenset(EnrollmentType.values)


def enrollment_record(values: dict[str, str]) -> tuple[str, dict]:
    course_id, user_id = values.get("course_id", ""), values.get("user_id", "")
    raw_role = values.get("role", "")
    role = raw_role.lower()
    if not course_id:
        raise RowError("No course_id or section_id given for an enrollment")
    if not user_id:
        raise RowError("No user_id given for an enrollment")
    if role not in _ENROLLMENT_ROLES:
        raise RowError(f'Improper role "{raw_role}" for an enrollment')
    status = status_of(values, _ENROLLMENT_STATES, "an enrollment")
    associated_id = values.get("associated_user_id", "")
    if role == EnrollmentType.OBSERVER:
        if not associated_id:
            raise RowError(f"No associated_user_id given for observer {user_id} in {course_id}")
    else:
        associated_id = ""
    return user_id, {
        "course_id": course_id,
        "user_id": user_id,
        "type": role,
        "state": status,
        "associated_user_id": associated_id,
    }


# admins.csv -----------------------------------------------------------------


def admin_record(values: dict[str, str]) -> tuple[str, dict]:
    user_id, role_name = values.get("user_id", ""), values.get("role", "")
    if not user_id:
        raise RowError("No user_id given for admin")
    if not role_name:
        raise RowError(f"No role given for admin {user_id}")
    status = status_of(values, {"active", "deleted"}, f"admin {user_id}")
    return user_id, {
        "user_id": user_id,
        "account_id": values.get("account_id", ""),
        "role": role_name,
        "state": status,
    }


RECORD_MAKERS = {
    "accounts": account_record,
    "users": user_record,
    "courses": course_record,
    "enrollments": enrollment_record,
    "admins": admin_record,
}
