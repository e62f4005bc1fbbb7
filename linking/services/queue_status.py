"""How much background work is waiting: the one place metrics and readiness read it from.

The queue people care about is the notification outbox: audit events whose
e-mails and webhook posts are not planned yet, and planned e-mails and
webhook deliveries not yet sent. The task framework's own rows (django-tasks)
are plumbing that carries this work: a stuck worker shows here as outbox
items growing older, whichever task backend runs.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Min
from django.utils import timezone

from ..models import AuditEvent, DeliveryStatus, EmailNotification, WebhookDelivery


@dataclass(frozen=True)
class QueueStatus:
    depth: int
    oldest_queued_at: datetime | None

    def oldest_age_seconds(self, now: datetime | None = None) -> float:
        if self.oldest_queued_at is None:
            return 0.0
        return max(0.0, ((now or timezone.now()) - self.oldest_queued_at).total_seconds())


def queue_status() -> QueueStatus:
    """Items waiting (unplanned events, pending e-mails and webhook posts) and the oldest's time.

    Three aggregate queries, each answered from a partial or (status, ...) index.
    """
    depth = 0
    oldest: list[datetime] = []
    for queryset in (
        AuditEvent.objects.filter(notifications_pending=True),
        EmailNotification.objects.filter(status=DeliveryStatus.PENDING),
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING),
    ):
        row = queryset.order_by().aggregate(count=Count("pk"), oldest=Min("created_at"))
        depth += row["count"]
        if row["oldest"] is not None:
            oldest.append(row["oldest"])
    return QueueStatus(depth=depth, oldest_queued_at=min(oldest) if oldest else None)
