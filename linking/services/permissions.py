"""The permission policy: who may act on whose observation links and codes.

Canvas's rules (canvas-behaviour.md §2.0 and §2.8): a user may always act on
their own links; anyone else needs ``manage_user_observers`` as an admin of a
root account the target is associated with. ``generate_observer_pairing_code``
is a course permission held by account admins up the course's account chain,
or by course roles an override switches on.
"""

from collections.abc import Iterable
from functools import cache

from django.db.models import Q

from ..models import (
    Account,
    AccountAdmin,
    CourseRoleOverride,
    Enrollment,
    EnrollmentState,
    EnrollmentType,
    Login,
    Permission,
    User,
)
from .errors import NotAuthorized, NotFound
from .sql import Select


def associated_root_account_ids(user: User) -> set[int]:
    """Root accounts where the user has a live login, a live enrollment or an admin role.

    One query (a UNION of three index-bound selects).
    """
    return associated_root_account_ids_by_user([user.pk]).get(user.pk, set())


_ASSOCIATED = Select([])


@cache
def _associated_sql(count: int) -> str:
    """Live logins, live enrollments and active admin roles of ``count`` users: a UNION.

    Every link write and every admin's request runs this, so it is written
    out (see ``services.sql``). Parameters: the ids, login deleted state,
    the ids, enrollment deleted state, the ids, admin active state.
    """
    ids = ", ".join(["%s"] * count)
    selects = [
        f"SELECT user_id, root_account_id FROM {model._meta.db_table}"  # noqa: S608
        f" WHERE user_id IN ({ids}) AND workflow_state {operator} %s"
        for model, operator in ((Login, "<>"), (Enrollment, "<>"), (AccountAdmin, "="))
    ]
    return " UNION ".join(selects)


def associated_root_account_ids_by_user(user_ids: Iterable[int]) -> dict[int, set[int]]:
    """``associated_root_account_ids`` for several users in the same one query."""
    user_ids = list(user_ids)
    params = [
        *user_ids,
        Login.State.DELETED,
        *user_ids,
        EnrollmentState.DELETED,
        *user_ids,
        AccountAdmin.State.ACTIVE,
    ]
    found: dict[int, set[int]] = {}
    for user_id, root_account_id in _ASSOCIATED.rows(_associated_sql(len(user_ids)), params):
        found.setdefault(user_id, set()).add(root_account_id)
    return found


def common_root_account_ids(first: User, second: User) -> set[int]:
    """Root accounts both users are associated with; empty for the same user (Canvas). One query."""
    if first.pk == second.pk:
        return set()
    found = associated_root_account_ids_by_user([first.pk, second.pk])
    return found.get(first.pk, set()) & found.get(second.pk, set())


def root_accounts_with_permission(
    user: User | None, root_account_ids: Iterable[int], permission: str
) -> set[int]:
    """The subset of ``root_account_ids`` where ``user`` holds an account-level permission.

    Only memberships on the root account itself count: Canvas makes
    ``manage_user_observers`` a root-account-only permission. Site
    superusers hold every permission everywhere.
    """
    wanted = set(root_account_ids)
    if user is None or not wanted:
        return set()
    if user.is_superuser:
        return wanted
    memberships = AccountAdmin.objects.filter(
        user=user,
        workflow_state=AccountAdmin.State.ACTIVE,
        account_id__in=wanted,
        root_account_id__in=wanted,
        **{f"role__{Permission(permission).value}": True},
    ).values_list("account_id", flat=True)
    return set(memberships)


def has_account_permission(user: User | None, root_account: Account, permission: str) -> bool:
    return bool(root_accounts_with_permission(user, [root_account.pk], permission))


def is_account_member(user: User | None, root_account: Account) -> bool:
    """Any active admin membership anywhere in the root account (Canvas's "admin" test)."""
    if user is None:
        return False
    if user.is_superuser:
        return True
    return AccountAdmin.objects.filter(
        user=user, root_account=root_account, workflow_state=AccountAdmin.State.ACTIVE
    ).exists()


def authorize_target_user(
    *, caller: User, target: User, root_account_ids: set[int]
) -> set[int] | None:
    """Canvas's "self or admin" check on the user whose links are read or changed.

    Returns ``None`` when the caller is the target (no narrowing), otherwise
    the root accounts in which the caller acts as admin. Raises NotFound when
    the target belongs to none of ``root_account_ids`` and NotAuthorized when
    the caller holds ``manage_user_observers`` in none of them.
    """
    if caller.pk == target.pk:
        return None
    if not root_account_ids:
        raise NotFound()
    allowed = root_accounts_with_permission(
        caller, root_account_ids, Permission.MANAGE_USER_OBSERVERS
    )
    if not allowed:
        raise NotAuthorized()
    return allowed


PAIRING_ENROLLMENT_STATES_EXCLUDED = [
    EnrollmentState.REJECTED,
    EnrollmentState.INACTIVE,
    EnrollmentState.DELETED,
]


def is_pairable_student(student: User, root_account: Account) -> bool:
    """A student may have codes when they hold a live student enrollment in the root account."""
    return (
        Enrollment.objects.filter(
            user=student, type=EnrollmentType.STUDENT, root_account=root_account
        )
        .exclude(workflow_state__in=PAIRING_ENROLLMENT_STATES_EXCLUDED)
        .exists()
    )


def can_generate_pairing_code(caller: User, student: User, root_account: Account) -> bool:
    """The student, or a holder of ``generate_observer_pairing_code`` in one of their courses.

    Account admins hold it through the course's account chain when their role
    has the permission; teachers, TAs, designers and observers only where a
    CourseRoleOverride on the course's account chain turns it on (the nearest
    override wins).
    """
    if caller.pk == student.pk or caller.is_superuser:
        return True
    student_courses = (
        Enrollment.objects.filter(user=student, root_account=root_account)
        .exclude(workflow_state=EnrollmentState.DELETED)
        .exclude(course__workflow_state="deleted")
        .select_related("course__account")
    )
    course_accounts = {e.course_id: e.course.account for e in student_courses}
    if not course_accounts:
        return False
    chains = {
        course_id: account_chain_ids(account) for course_id, account in course_accounts.items()
    }
    all_chain_ids = {a for chain in chains.values() for a in chain}

    admin_accounts = set(
        AccountAdmin.objects.filter(
            user=caller,
            workflow_state=AccountAdmin.State.ACTIVE,
            account_id__in=all_chain_ids,
            role__generate_observer_pairing_code=True,
        ).values_list("account_id", flat=True)
    )
    if any(admin_accounts.intersection(chain) for chain in chains.values()):
        return True

    caller_roles = dict(
        Enrollment.objects.filter(user=caller, course_id__in=course_accounts.keys())
        .exclude(workflow_state__in=[EnrollmentState.DELETED, EnrollmentState.REJECTED])
        .exclude(type=EnrollmentType.STUDENT)
        .values_list("course_id", "type")
    )
    if not caller_roles:
        return False
    overrides = {
        (o.account_id, o.enrollment_type): o.enabled
        for o in CourseRoleOverride.objects.filter(
            account_id__in=all_chain_ids,
            permission=Permission.GENERATE_OBSERVER_PAIRING_CODE,
            enrollment_type__in=set(caller_roles.values()),
        )
    }
    for course_id, role in caller_roles.items():
        for account_id in chains[course_id]:  # nearest account first
            if (account_id, role) in overrides:
                if overrides[(account_id, role)]:
                    return True
                break
    return False


def account_chain_ids(account: Account) -> list[int]:
    """The account and its ancestors, nearest first, in one query."""
    if account.parent_id is None:
        return [account.pk]
    root_id = account.root_account_id
    parents = dict(
        Account.objects.filter(Q(root_account_id=root_id) | Q(pk=root_id)).values_list(
            "id", "parent_id"
        )
    )
    chain = [account.pk]
    node = account.parent_id
    while node is not None and node not in chain:
        chain.append(node)
        node = parents.get(node)
    return chain
