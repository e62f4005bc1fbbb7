"""Writing the audit trail. Only services call this."""

from ..models import AuditEvent
from . import notifications, webhooks
from .context import Actor


def record_event(**fields) -> AuditEvent:
    """Write one audit event, marked for the notification planner when it may notify anyone.

    Takes ``build_event``'s keywords. The event is the outbox: it commits or
    rolls back with the change, and ``notifications.plan_pending`` (run by
    the sender) later turns it into e-mails and webhook deliveries, so a
    request pays for none of that. An event that may notify carries a
    snapshot of what its webhook payload says, taken now from the objects at
    hand, so the payload describes the change as it happened, whatever
    happens to the link afterwards.
    """
    event = build_event(**fields)
    event.save()
    return event


def build_event(
    *,
    action: str,
    actor: Actor,
    root_account=None,
    observer=None,
    student=None,
    link=None,
    pairing_code=None,
    invitation=None,
    detail: dict | None = None,
) -> AuditEvent:
    """The unsaved event ``record_event`` writes, for callers that insert many at once.

    A bulk writer (services.bulk_invitations) builds its events with this and
    saves them with one ``bulk_create``: the same fields, flags and snapshot.
    """
    pending = notifications.may_notify(action, root_account)
    actor_user = actor.user if actor.user is not None and actor.user.pk else None
    snapshot = (
        webhooks.snapshot_for(
            action=action,
            source=actor.source,
            actor_user=actor_user,
            root_account=root_account,
            observer=observer,
            student=student,
            link=link,
            pairing_code=pairing_code,
            invitation=invitation,
        )
        if pending
        else None
    )
    return AuditEvent(
        action=action,
        source=actor.source,
        actor=actor_user,
        root_account=root_account,
        observer=observer,
        student=student,
        link=link,
        pairing_code=pairing_code,
        ip_address=actor.ip_address,
        user_agent=(actor.user_agent or "")[:512],
        request_id=(actor.request_id or "")[:64],
        detail=detail or {},
        notifications_pending=pending,
        emails_suppressed=pending and notifications.emails_suppressed(),
        snapshot=snapshot,
    )
