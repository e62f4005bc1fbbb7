"""Creating, restoring and removing observation links."""

from collections.abc import Iterable
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from ..models import (
    Account,
    AuditAction,
    Enrollment,
    EnrollmentState,
    LinkKind,
    LinkSource,
    ObservationLink,
    Permission,
    SisBatch,
    User,
)
from . import rules
from .audit import record_event
from .context import Actor
from .enrollments import mirror_link_enrollments, remove_link_enrollments
from .errors import (
    CannotObserveSelf,
    LinkingError,
    NoCommonRootAccount,
    NotAuthorized,
    RequiredFieldsMissing,
)
from .locks import share_students
from .permissions import common_root_account_ids, root_accounts_with_permission

# ``ends_at`` not given: the link keeps its end date.
UNCHANGED = object()


def link_observer(
    *,
    observer: User,
    student: User,
    root_account: Account,
    actor: Actor,
    source: str = LinkSource.API,
    sis_batch: SisBatch | None = None,
    consent_at: datetime | None = None,
    kind: str | None = None,
    ends_at: datetime | object | None = UNCHANGED,
) -> tuple[ObservationLink, bool]:
    """Create or restore the link observer -> student on a root account (Canvas: create_or_restore).

    The rules of who may observe (services.rules) are judged first, inside
    the transaction and after a share lock on the student (services.locks:
    a restriction recorded at the same moment is either seen here or sees
    this link): a refusal is recorded once the transaction is rolled back,
    and raises what rules.refusal_error chooses for the path; a link that
    needs the student's consent is made (or stays) pending.
    Returns ``(link, changed)``: ``changed`` is False when the link was
    already active (or already pending). An active link's observer
    enrollments are brought in step with the student's. ``kind`` (None:
    leave it) and ``ends_at`` (left alone unless given) set the link's
    kind and end date. Raises RequiredFieldsMissing or CannotObserveSelf.
    Safe under concurrent calls for the same pair: the unique constraint
    decides, and the loser restores the winner's row.
    """
    if observer is None or student is None or root_account is None:
        raise RequiredFieldsMissing()
    if observer.pk == student.pk:
        raise CannotObserveSelf()
    terms = {"kind": kind, "ends_at": ends_at}
    try:
        return _link_observer(
            observer, student, root_account, actor, source, sis_batch, terms, consent_at
        )
    except rules.Refused as refused:
        raise _refusal(refused, observer, student, actor, source) from None


def _link_observer(observer, student, root_account, actor, source, sis_batch, terms, consent_at):
    """link_observer's transaction; raises rules.Refused (not yet recorded)."""
    try:
        with transaction.atomic():
            return _link(
                observer, student, root_account, actor, source, sis_batch, terms, consent_at
            )
    except IntegrityError:
        # A concurrent request inserted the same (observer, student, root) row
        # between our SELECT and INSERT; the retry finds it and restores it.
        with transaction.atomic():
            return _link(
                observer, student, root_account, actor, source, sis_batch, terms, consent_at
            )


def _refusal(refused: "rules.Refused", observer, student, actor, source) -> LinkingError:
    """Record a refusal judged inside a rolled-back transaction; the error to raise."""
    rules.record_refusal(
        verdict=refused.verdict,
        actor=actor,
        root_account=refused.root_account,
        observer=observer,
        student=student,
        source=source,
    )
    return rules.refusal_error(
        verdict=refused.verdict,
        source=source,
        by_staff=rules.is_staff_link(source=source, actor=actor, observer=observer),
    )


def _set_terms(link: ObservationLink, terms: dict) -> list[str]:
    changed = []
    if terms["kind"] is not None and link.kind != terms["kind"]:
        link.kind = terms["kind"]
        changed.append("kind")
    if terms["ends_at"] is not UNCHANGED and link.ends_at != terms["ends_at"]:
        link.ends_at = terms["ends_at"]
        changed.append("ends_at")
    return changed


def _link(observer, student, root_account, actor, source, sis_batch, terms, consent_at):
    share_students([student.pk])
    verdict = rules.judge_link(
        observer=observer,
        student=student,
        root_account=root_account,
        by_staff=rules.is_staff_link(source=source, actor=actor, observer=observer),
        consent_at=consent_at,
    )
    if verdict.refused:
        raise rules.Refused(verdict, root_account)
    pending = verdict.outcome == rules.PENDING
    link = (
        ObservationLink.objects.select_for_update()
        .filter(observer=observer, student=student, root_account=root_account)
        .first()
    )
    State = ObservationLink.State
    changed = True
    detail = {"source": source}
    if pending:
        detail["awaiting"] = verdict.rule
    if link is None:
        link = ObservationLink(
            observer=observer,
            student=student,
            root_account=root_account,
            source=source,
            workflow_state=State.PENDING if pending else State.ACTIVE,
            created_by=actor.user if actor.user is not None and actor.user.pk else None,
            sis_batch=sis_batch,
        )
        _set_terms(link, terms)
        link.save()
        action = AuditAction.LINK_PENDING if pending else AuditAction.LINK_CREATED
    elif link.workflow_state == State.DELETED or (
        link.workflow_state == State.PENDING and not pending
    ):
        action = AuditAction.LINK_RESTORED
        if link.workflow_state == State.PENDING:
            action = AuditAction.LINK_CREATED
        elif pending:
            action = AuditAction.LINK_PENDING
        link.workflow_state = State.PENDING if pending else State.ACTIVE
        link.deleted_at = None
        if not pending:
            # A pending link keeps why it ended: withdrawing it must not erase
            # that the student ended it (no silent re-link).
            link.end_reason = ""
        link.source = source
        # A restore by a person takes the link out of SIS's hands (Canvas).
        link.sis_batch = sis_batch
        fields = ["workflow_state", "deleted_at", "end_reason", "source", "sis_batch"]
        link.save(update_fields=[*fields, *_set_terms(link, terms), "updated_at"])
    else:
        changed = False
        action = None
        fields = _set_terms(link, terms)
        if sis_batch is not None and link.sis_batch_id != sis_batch.pk:
            link.sis_batch = sis_batch
            fields.append("sis_batch")
        if fields:
            link.save(update_fields=[*fields, "updated_at"])
    if link.workflow_state == State.ACTIVE:
        mirror_link_enrollments(link)
    if action is not None:
        record_event(
            action=action,
            actor=actor,
            root_account=root_account,
            observer=observer,
            student=student,
            link=link,
            detail=detail,
        )
    return link, changed


@transaction.atomic
def activate_pending_link(*, link: ObservationLink, actor: Actor) -> bool:
    """A pending link becomes active (the student approved it): enrollments follow, audited."""
    updated = ObservationLink.objects.filter(
        pk=link.pk, workflow_state=ObservationLink.State.PENDING
    ).update(workflow_state=ObservationLink.State.ACTIVE, end_reason="", updated_at=timezone.now())
    if not updated:
        return False
    link.workflow_state = ObservationLink.State.ACTIVE
    link.end_reason = ""
    mirror_link_enrollments(link)
    record_event(
        action=AuditAction.LINK_CREATED,
        actor=actor,
        root_account=link.root_account,
        observer=link.observer,
        student=link.student,
        link=link,
        detail={"source": link.source, "approved_by_student": True},
    )
    return True


@transaction.atomic
def make_link_pending(*, link: ObservationLink, actor: Actor, reason: str) -> bool:
    """An active link waits for the student's approval again: its enrollments end meanwhile."""
    updated = ObservationLink.objects.filter(
        pk=link.pk, workflow_state=ObservationLink.State.ACTIVE
    ).update(workflow_state=ObservationLink.State.PENDING, updated_at=timezone.now())
    if not updated:
        return False
    link.workflow_state = ObservationLink.State.PENDING
    remove_link_enrollments(link)
    record_event(
        action=AuditAction.LINK_PENDING,
        actor=actor,
        root_account=link.root_account,
        observer=link.observer,
        student=link.student,
        link=link,
        detail={"source": link.source, "awaiting": reason},
    )
    return True


@transaction.atomic
def change_link_terms(
    *, link: ObservationLink, actor: Actor, kind: str, ends_at: datetime | None
) -> bool:
    """Staff set a link's kind and end date; returns whether anything changed (audited)."""
    if kind not in LinkKind.values and kind != "":
        raise LinkingError(f"Unknown kind of observer: {kind}")
    fields = _set_terms(link, {"kind": kind, "ends_at": ends_at})
    if not fields:
        return False
    link.save(update_fields=[*fields, "updated_at"])
    record_event(
        action=AuditAction.LINK_CHANGED,
        actor=actor,
        root_account=link.root_account,
        observer=link.observer,
        student=link.student,
        link=link,
        detail={
            "kind": link.kind,
            "ends_at": link.ends_at.isoformat() if link.ends_at else None,
        },
    )
    return True


def link_observer_on_accounts(
    *,
    observer: User,
    student: User,
    root_accounts: Iterable[Account],
    actor: Actor,
    source: str = LinkSource.API,
    consent_at: datetime | None = None,
) -> list[ObservationLink]:
    """Link on each given root account, atomically; returns the links.

    The rules are judged on every root account before anything is written,
    so a refusal on one is recorded (outside the transaction) and links none;
    each link is judged again as it is written (link_observer), and a
    refusal found then undoes the others and is recorded too.
    """
    root_accounts = list(root_accounts)
    rules.enforce(
        observer=observer,
        student=student,
        root_accounts=root_accounts,
        source=source,
        actor=actor,
        consent_at=consent_at,
    )
    if observer.pk == student.pk:
        raise CannotObserveSelf()
    terms = {"kind": None, "ends_at": UNCHANGED}
    try:
        # A savepoint: the refusal is recorded after it is rolled back.
        with transaction.atomic():
            made = [
                _link_observer(observer, student, account, actor, source, None, terms, consent_at)
                for account in root_accounts
            ]
        return [link for link, _changed in made]
    except rules.Refused as refused:
        raise _refusal(refused, observer, student, actor, source) from None


@transaction.atomic
def unlink_observer(
    *,
    link: ObservationLink,
    actor: Actor,
    sis_batch: SisBatch | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> bool:
    """Soft-delete a link (active or pending) and the observer enrollments it made.

    ``reason`` (a LinkEnd) is kept on the link: a link the student ended or
    declined needs their approval to come back (services.rules). Returns
    False when the link was already deleted (nothing changes). The
    conditional UPDATE makes concurrent removals record one event.
    """
    now = now or timezone.now()
    updated = ObservationLink.objects.filter(
        pk=link.pk,
        workflow_state__in=[ObservationLink.State.ACTIVE, ObservationLink.State.PENDING],
    ).update(
        workflow_state=ObservationLink.State.DELETED,
        deleted_at=now,
        updated_at=now,
        sis_batch=sis_batch,
        # Withdrawing a pending link keeps the reason it was ended before.
        end_reason=Value(reason)
        if reason
        else Case(
            When(workflow_state=ObservationLink.State.PENDING, then=F("end_reason")),
            default=Value(""),
        ),
    )
    if not updated:
        return False
    link.workflow_state = ObservationLink.State.DELETED
    link.deleted_at = link.updated_at = now
    link.sis_batch = sis_batch
    link.refresh_from_db(fields=["end_reason"])
    remove_link_enrollments(link)
    record_event(
        action=AuditAction.LINK_DELETED,
        actor=actor,
        root_account=link.root_account,
        observer=link.observer,
        student=link.student,
        link=link,
        detail={"reason": reason} if reason else None,
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
        ObservationLink.objects.live()
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
    consent_at: datetime | None = None,
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
        observer=observer,
        student=student,
        root_accounts=accounts,
        actor=actor,
        source=source,
        consent_at=consent_at,
    )


def observes(*, observer: User, student: User, root_account: Account) -> bool:
    """Whether ``observer`` already has an active link to ``student`` in ``root_account``."""
    return (
        ObservationLink.objects.active()
        .filter(observer=observer, student=student, root_account=root_account)
        .exists()
    )
