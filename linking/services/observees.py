"""Reading and changing one observer's observees the way the Canvas observees API needs.

Queries here run a fixed number of statements whatever the number of links,
so list pages cost the same for a parent of one child and for a parent of
thirty. The write helpers wrap the link services with the API's rules for
``PUT`` (admins only, on root accounts both users share) and ``DELETE``
(the caller's admin accounts, optionally one root account).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from django.db import connection, transaction
from django.db.models import Q

from ..models import (
    Account,
    AccountAdmin,
    LinkSource,
    Login,
    ObservationLink,
    Permission,
    User,
)
from . import rules, safeguarding
from .context import Actor
from .credentials import find_student_by_credentials
from .errors import NotAuthorized, NotFound, NothingToLink, UnknownObservee
from .links import link_observer_on_accounts, link_to_common_root_accounts, unlink_observer
from .pairing import redeem_pairing_code
from .permissions import (
    associated_root_account_ids,
    authorize_target_user,
    common_root_account_ids,
    root_accounts_with_permission,
)
from .sql import Select, column_list
from .tokens import authenticate_access_token

OBSERVEES = "observees"
OBSERVERS = "observers"


@dataclass(frozen=True, slots=True)
class LinkedUser:
    """What a list page shows of a linked user (lighter than a User instance)."""

    pk: int
    name: str
    sortable_name: str
    short_name: str
    pronouns: str
    avatar_url: str
    created_at: datetime


@dataclass(frozen=True)
class LinkedUsersPage:
    total: int
    users: list[LinkedUser]
    # user id -> root account ids with an active link for the pair
    link_root_account_ids: dict[int, list[int]]
    # ids of the page's users whose institution shows avatars (when asked for)
    avatars_enabled: frozenset[int] = frozenset()


# No one has this many links; keeps OFFSET inside a 64-bit integer for any ``page``.
_MAX_OFFSET = 10**15


_PAGE_FIELDS = ("id", "name", "sortable_name", "short_name", "pronouns", "avatar_url", "created_at")
_PAGE = Select([(User, _PAGE_FIELDS, lambda values: LinkedUser(*values))])
# Per vendor, the aggregate that joins a pair's root account ids into "3,7,12".
_ROOT_IDS_AGGREGATE = {
    "postgresql": "STRING_AGG(CAST(l.root_account_id AS text), ',')",
    "sqlite": "GROUP_CONCAT(l.root_account_id)",
}


@cache
def _page_sql(vendor: str, direction: str, with_avatars: bool) -> str:
    """The page statement: users linked to the given user, ordered and counted.

    The user's active links are grouped by the other user (one index range,
    each group's root account ids joined into a string), then joined to the
    live users by primary key. Parameters, in order: [login deleted state,
    when with avatars], link state, the user, user deleted state, limit,
    offset.
    """
    mine, theirs = ("observer_id", "student_id")
    if direction == OBSERVERS:
        mine, theirs = theirs, mine
    avatars = ""
    if with_avatars:
        # Canvas shows an avatar by the user's own institution, not the caller's.
        avatars = (
            f", EXISTS(SELECT 1 FROM {Login._meta.db_table} lg"  # noqa: S608
            f" INNER JOIN {Account._meta.db_table} a ON a.id = lg.root_account_id"
            " WHERE lg.user_id = u.id AND a.avatars_enabled AND lg.workflow_state <> %s)"
        )
    return (
        f"SELECT {column_list(User, 'u', _PAGE_FIELDS)}, COUNT(*) OVER (), pair.ids"  # noqa: S608
        f"{avatars}"
        f" FROM (SELECT l.{theirs} AS user_id, {_ROOT_IDS_AGGREGATE[vendor]} AS ids"
        f" FROM {ObservationLink._meta.db_table} l"
        f" WHERE l.workflow_state = %s AND l.{mine} = %s GROUP BY l.{theirs}) pair"
        f" INNER JOIN {User._meta.db_table} u ON u.id = pair.user_id"
        " WHERE u.workflow_state <> %s"
        " ORDER BY LOWER(u.sortable_name), u.id LIMIT %s OFFSET %s"
    )


def linked_users_page(
    *, user: User, direction: str, offset: int, limit: int, with_avatars: bool = False
) -> LinkedUsersPage:
    """One page of the distinct users linked to ``user`` by active links, in one query.

    ``direction`` is ``observees`` (``user`` is the observer) or ``observers``
    (``user`` is the student). Ordered by sortable name (case-insensitive),
    then id, as Canvas orders the lists. The total comes with the page (a
    window count) and each user's link root accounts with it; only a page
    past the end needs a separate count. With ``with_avatars`` the query
    also tells whose avatars may be shown: those with a live login in a root
    account with avatars on. Every list request runs this, so the statement
    is written out (see ``services.sql``).
    """
    offset = min(offset, _MAX_OFFSET)
    params: list = [Login.State.DELETED] if with_avatars else []
    params += [ObservationLink.State.ACTIVE, user.pk, User.State.DELETED, limit, offset]
    sql = _page_sql(connection.vendor, direction, with_avatars)
    rows = _PAGE.rows(sql, params)
    if rows:
        total = rows[0][1]
    elif offset:
        mine, theirs = ("observer", "student")
        if direction == OBSERVERS:
            mine, theirs = theirs, mine
        links = ObservationLink.objects.active().filter(**{mine: user})
        total = User.objects.live().filter(pk__in=links.values(f"{theirs}_id")).count()
    else:
        total = 0
    return LinkedUsersPage(
        total=total,
        users=[row[0] for row in rows],
        link_root_account_ids={
            row[0].pk: sorted(int(pk) for pk in (row[2] or "").split(",") if pk) for row in rows
        },
        avatars_enabled=frozenset(row[0].pk for row in rows if with_avatars and row[3]),
    )


def pair_link_root_account_ids(*, observer: User, student: User) -> list[int]:
    """Root accounts on which ``observer`` actively observes ``student`` (one query)."""
    return list(
        ObservationLink.objects.active()
        .filter(observer=observer, student=student)
        .order_by("root_account_id")
        .values_list("root_account_id", flat=True)
    )


@dataclass(frozen=True)
class SisVisibility:
    sis_ids: bool = False
    login_ids: bool = False

    @property
    def any(self) -> bool:
        return self.sis_ids or self.login_ids


def sis_visibility(*, caller: User, root_account: Account) -> SisVisibility:
    """What SIS data a caller may see about users of the root account (one query).

    ``read_sis`` shows ``sis_user_id`` and ``integration_id``;
    ``view_user_logins`` shows ``login_id``. Only roles held on the root
    account itself count; a parent listing their children sees neither.
    Account roles are only ever held by staff users (make_account_admin
    marks them), so other callers cost no query.
    """
    if caller.is_superuser:
        return SisVisibility(sis_ids=True, login_ids=True)
    if not caller.is_staff:
        return SisVisibility()
    rows = AccountAdmin.objects.filter(
        user=caller,
        account=root_account,
        workflow_state=AccountAdmin.State.ACTIVE,
    ).values_list("role__read_sis", "role__view_user_logins")
    read_sis = view_logins = False
    for can_read_sis, can_view_logins in rows:
        read_sis = read_sis or can_read_sis
        view_logins = view_logins or can_view_logins
    return SisVisibility(sis_ids=read_sis, login_ids=view_logins)


def logins_in_root_account(*, user_ids: Iterable[int], root_account: Account) -> dict[int, Login]:
    """Each user's first live login in the root account (one query)."""
    result: dict[int, Login] = {}
    logins = (
        Login.objects.filter(user_id__in=list(user_ids), root_account=root_account)
        .exclude(workflow_state=Login.State.DELETED)
        .order_by("id")
        .only("id", "user_id", "unique_id", "sis_user_id", "integration_id")
    )
    for login in logins:
        result.setdefault(login.user_id, login)
    return result


def authorize_user_read(*, caller: User, target: User) -> None:
    """Who may read a user's profile: the user, a linked observer or student, or an admin.

    Admins need ``manage_user_observers`` on a root account the target is
    associated with. Raises NotFound or NotAuthorized as authorize_target_user.
    """
    if caller.pk == target.pk:
        return
    linked = (
        ObservationLink.objects.active()
        .filter(
            Q(observer=caller, student=target) | Q(observer=target, student=caller),
        )
        .exists()
    )
    if linked:
        return
    authorize_target_user(
        caller=caller, target=target, root_account_ids=associated_root_account_ids(target)
    )


def add_observee(
    *,
    observer: User,
    root_account: Account,
    narrowing: Account | str,
    actor: Actor,
    access_token: str | None = None,
    pairing_code: str | None = None,
    unique_id: str | None = None,
    password: str | None = None,
) -> tuple[User, set[int] | None]:
    """Canvas's ``POST observees``: link the observer to a student named one of three ways.

    Order (canvas-behaviour.md §2.3): the acting user must be the observer or
    hold ``manage_user_observers`` on one of the observer's root accounts in
    scope (``narrowing``: one root account or ``"all"``) - NotFound /
    NotAuthorized. Then a student ``access_token`` wins (unknown ->
    UnknownObservee), else ``pairing_code`` (redeem_pairing_code's errors),
    else ``unique_id``/``password`` in ``root_account`` (find_student_by_credentials's
    errors); none given -> NothingToLink. Linking raises CannotObserveSelf,
    NoCommonRootAccount or NotAuthorized before anything is written.

    Returns the student and the admin's root accounts (None when the
    observer acts for themself). Not one transaction: failed attempts must
    stay counted and audited; each linking service is atomic itself.
    """
    admin_root_account_ids = None
    if actor.user is None or actor.user.pk != observer.pk:
        scope = associated_root_account_ids(observer)
        if narrowing != "all":
            scope &= {narrowing.pk}
        admin_root_account_ids = authorize_target_user(
            caller=actor.user, target=observer, root_account_ids=scope
        )
    if access_token:
        token = authenticate_access_token(access_token)
        if token is None:
            raise UnknownObservee()
        student = token.user
        source = LinkSource.ACCESS_TOKEN
    elif pairing_code:
        student, _links = redeem_pairing_code(
            code=pairing_code,
            observer=observer,
            root_account=root_account,
            actor=actor,
            link_root_accounts=narrowing,
        )
        return student, admin_root_account_ids
    elif unique_id:
        student = find_student_by_credentials(
            unique_id=unique_id,
            password=password or "",
            root_account=root_account,
            actor=actor,
            vet=lambda found: rules.enforce(
                observer=observer,
                student=found,
                root_accounts=_target_root_accounts(observer, found, narrowing),
                source=LinkSource.CREDENTIALS,
                actor=actor,
            ),
        )
        source = LinkSource.CREDENTIALS
    else:
        raise NothingToLink()
    link_to_common_root_accounts(
        observer=observer, student=student, narrowing=narrowing, actor=actor, source=source
    )
    return student, admin_root_account_ids


def _target_root_accounts(observer: User, student: User, narrowing: Account | str):
    if narrowing != "all":
        return [narrowing]
    return list(
        Account.objects.filter(pk__in=common_root_account_ids(observer, student)).order_by("pk")
    )


def link_observee_by_id(
    *, observer: User, student: User, narrowing: Account | str, actor: Actor
) -> set[int]:
    """Canvas's ``PUT observees/:id``: an admin links two users on root accounts they share.

    ``narrowing`` is a root account or ``"all"``. There is no self shortcut:
    even an observer adding their own observee needs ``manage_user_observers``.
    Raises NotFound when the users share no root account in scope (this also
    covers observer == student) and NotAuthorized when the acting user holds
    the permission on none of them. Returns the root account ids linked on.

    The student themself may call it to approve a pending link of
    ``observer`` (services.safeguarding): the links pending in scope become active.
    """
    common = common_root_account_ids(observer, student)
    if narrowing != "all":
        common &= {narrowing.pk}
    if not common:
        raise NotFound()
    if actor.user is not None and actor.user.pk == student.pk:
        approved = _approve_as_student(
            observer=observer, student=student, common=common, actor=actor
        )
        if approved:
            return approved
    allowed = root_accounts_with_permission(actor.user, common, Permission.MANAGE_USER_OBSERVERS)
    if not allowed:
        raise NotAuthorized()
    link_observer_on_accounts(
        observer=observer,
        student=student,
        root_accounts=Account.objects.filter(pk__in=allowed).order_by("pk"),
        actor=actor,
        source=LinkSource.API,
    )
    return allowed


def _approve_as_student(*, observer: User, student: User, common: set[int], actor: Actor):
    """Approve the pair's pending links in ``common``; their root account ids (empty: none).

    Each approval is atomic itself; a refusal (a restriction recorded
    meanwhile) is recorded and raised by safeguarding.approve_link.
    """
    pending = list(
        ObservationLink.objects.pending()
        .filter(observer=observer, student=student, root_account_id__in=common)
        .select_related("root_account")
    )
    for link in pending:
        safeguarding.approve_link(
            link_id=link.pk, student=student, root_account=link.root_account, actor=actor
        )
    return {link.root_account_id for link in pending}


@transaction.atomic
def remove_observee(
    *,
    observer: User,
    student: User,
    admin_root_account_ids: set[int] | None,
    root_account: Account | None,
    actor: Actor,
) -> int:
    """Canvas's ``DELETE observees/:id``: soft-delete the pair's active links in scope.

    The scope is every active link observer -> student, limited to the
    acting admin's root accounts (``admin_root_account_ids``; None when the
    observer acts on their own links) and, unlike Canvas, to ``root_account``
    when the request names one. Raises NotFound when nothing is in scope.
    Returns the number of links removed.
    """
    # A pending link (awaiting the student) is withdrawn the same way.
    links = ObservationLink.objects.live().filter(observer=observer, student=student)
    if admin_root_account_ids is not None:
        links = links.filter(root_account_id__in=admin_root_account_ids)
    if root_account is not None:
        links = links.filter(root_account=root_account)
    links = list(links.select_related("observer", "student", "root_account"))
    if not links:
        raise NotFound()
    return sum(unlink_observer(link=link, actor=actor) for link in links)
