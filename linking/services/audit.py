"""Writing the audit trail. Only services call this."""

from ..models import AuditEvent
from . import notifications
from .context import Actor


def record_event(
    *,
    action: str,
    actor: Actor,
    root_account=None,
    observer=None,
    student=None,
    link=None,
    pairing_code=None,
    detail: dict | None = None,
) -> AuditEvent:
    event = AuditEvent.objects.create(
        action=action,
        source=actor.source,
        actor=actor.user if actor.user is not None and actor.user.pk else None,
        root_account=root_account,
        observer=observer,
        student=student,
        link=link,
        pairing_code=pairing_code,
        ip_address=actor.ip_address,
        user_agent=(actor.user_agent or "")[:512],
        detail=detail or {},
    )
    # Same transaction as the change: a rolled-back change queues no message.
    notifications.enqueue_for_event(event)
    return event
