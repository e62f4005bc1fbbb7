"""Creating, restoring and removing observation links."""

from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from ..models import (
    Account,
    AuditAction,
    Enrollment,
    EnrollmentState,
    LinkSource,
    ObservationLink,
    Permission,
    SisBatch,
    User,
)
from .audit import record_event
from .context import Actor
from .enrollments import mirror_link_enrollments, remove_link_enrollments
from .errors import CannotObserveSelf, NoCommonRootAccount, NotAuthorized, RequiredFieldsMissing
from .permissions import common_root_account_ids, root_accounts_with_permission


def link_observer(
    *,
    observer: User,
    student: User,
    root_account: Account,
    actor: Actor,
    source: str = LinkSource.API,
    sis_batch: SisBatch | None = None,
) -> tuple[ObservationLink, bool]:
    """Create or restore the link observer -> student on a root account (Canvas: create_or_restore).

    Returns ``(link, changed)``: ``changed`` is False when the link was
    already active. Either way the observer's enrollments are brought in
    step with the student's. Raises RequiredFieldsMissing or
    CannotObserveSelf. Safe under concurrent calls for the same pair: the
    unique constraint decides, and the loser restores the winner's row.
    """
    if observer is None or student is None or root_account is None:
        raise RequiredFieldsMissing()
    if observer.pk == student.pk:
        raise CannotObserveSelf()
    try:
        with transaction.atomic():
            return _link(observer, student, root_account, actor, source, sis_batch)
    except IntegrityError:
        # A concurrent request inserted the same (observer, student, root) row
        # between our SELECT and INSERT; the retry finds it and restores it.
        with transaction.atomic():
            return _link(observer, student, root_account, actor, source, sis_batch)


def _link(observer, student, root_account, actor, source, sis_batch):
    link = (
        ObservationLink.objects.select_for_update()
        .filter(observer=observer, student=student, root_account=root_account)
        .first()
    )
    changed = True
    if link is None:
        link = ObservationLink.objects.create(
            observer=observer,
            student=student,
            root_account=root_account,
            source=source,
            created_by=actor.user if actor.user is not None and actor.user.pk else None,
            sis_batch=sis_batch,
        )
        action = AuditAction.LINK_CREATED
    elif link.workflow_state == ObservationLink.State.DELETED:
        link.workflow_state = ObservationLink.State.ACTIVE
        link.deleted_at = None
        link.source = source
        # A restore by a person takes the link out of SIS's hands (Canvas).
        link.sis_batch = sis_batch
        link.save(
            update_fields=["workflow_state", "deleted_at", "source", "sis_batch", "updated_at"]
        )
        action = AuditAction.LINK_RESTORED
    else:
        changed = False
        action = None
        if sis_batch is not None and link.sis_batch_id != sis_batch.pk:
            link.sis_batch = sis_batch
            link.save(update_fields=["sis_batch", "updated_at"])
    mirror_link_enrollments(link)
    if action is not None:
        record_event(
            action=action,
            actor=actor,
            root_account=root_account,
            observer=observer,
            student=student,
            link=link,
            detail={"source": source},
        )
    return link, changed


def link_observer_on_accounts(
    *,
    observer: User,
    student: User,
    root_accounts: Iterable[Account],
    actor: Actor,
    source: str = LinkSource.API,
) -> list[ObservationLink]:
    """Link on each given root account, atomically; returns the links."""
    # No savepoint of its own: each link_observer call already has one.
    with transaction.atomic(savepoint=False):
        return [
            link_observer(
                observer=observer, student=student, root_account=account, actor=actor, source=source
            )[0]
            for account in root_accounts
        ]


@transaction.atomic
def unlink_observer(
    *, link: ObservationLink, actor: Actor, sis_batch: SisBatch | None = None
) -> bool:
    """Soft-delete a link and the observer enrollments it made.

    Returns False when the link was already deleted (nothing changes).
    The conditional UPDATE makes concurrent removals record one event.
    """
    now = timezone.now()
    updated = ObservationLink.objects.filter(
        pk=link.pk, workflow_state=ObservationLink.State.ACTIVE
    ).update(
        workflow_state=ObservationLink.State.DELETED,
        deleted_at=now,
        updated_at=now,
        sis_batch=sis_batch,
    )
    if not updated:
        return False
    link.workflow_state = ObservationLink.State.DELETED
    link.deleted_at = link.updated_at = now
    link.sis_batch = sis_batch
    remove_link_enrollments(link)
    record_event(
        action=AuditAction.LINK_DELETED,
        actor=actor,
        root_account=link.root_account,
        observer=link.observer,
        student=link.student,
        link=link,
    )
    return True


def restore_link(*, link: ObservationLink, actor: Actor, source: str = LinkSource.ADMIN):
    """Bring a removed link back (with its enrollments); a no-op for an active one."""
    return link_observer(
        observer=link.observer,
        student=link.student,
        root_account=link.root_account,
        actor=actor,
        source=source,
    )


@transaction.atomic
def delete_user(*, user: User, actor: Actor) -> None:
    """Soft-delete a user: every link as observer or student goes, and their enrollments."""
    links = (
        ObservationLink.objects.active()
        .filter(Q(observer=user) | Q(student=user))
        .select_related("observer", "student", "root_account")
    )
    for link in links:
        unlink_observer(link=link, actor=actor)
    Enrollment.objects.filter(user=user).exclude(workflow_state=EnrollmentState.DELETED).update(
        workflow_state=EnrollmentState.DELETED, updated_at=timezone.now()
    )
    user.workflow_state = User.State.DELETED
    user.save(update_fields=["workflow_state", "updated_at"])


def link_to_common_root_accounts(
    *,
    observer: User,
    student: User,
    narrowing: Account | str,
    actor: Actor,
    source: str = LinkSource.API,
) -> list[ObservationLink]:
    """Link on every root account both users share, narrowed as the API's ``root_account_id`` asks.

    ``narrowing`` is one root account or ``"all"``. When the acting user is
    not the observer, only root accounts where they hold
    ``manage_user_observers`` are used. Raises CannotObserveSelf,
    NoCommonRootAccount or NotAuthorized before anything is written.
    """
    if observer.pk == student.pk:
        raise CannotObserveSelf()
    common = common_root_account_ids(observer, student)
    if narrowing != "all":
        common &= {narrowing.pk}
    if not common:
        raise NoCommonRootAccount()
    if actor.user is None or actor.user.pk != observer.pk:
        if actor.user is not None:
            common = root_accounts_with_permission(
                actor.user, common, Permission.MANAGE_USER_OBSERVERS
            )
        if not common:
            raise NotAuthorized()
    if narrowing != "all":  # common is {narrowing.pk}: the instance is at hand
        accounts = [narrowing]
    else:
        accounts = Account.objects.filter(pk__in=common).order_by("pk")
    return link_observer_on_accounts(
        observer=observer, student=student, root_accounts=accounts, actor=actor, source=source
    )


def observes(*, observer: User, student: User, root_account: Account) -> bool:
    """Whether ``observer`` already has an active link to ``student`` in ``root_account``."""
    return (
        ObservationLink.objects.active()
        .filter(observer=observer, student=student, root_account=root_account)
        .exists()
    )
