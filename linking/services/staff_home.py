"""What the staff home shows under "Needs attention": counts of things staff should look at.

Read-only; scoped to one root account (None: every tenant, for site
superusers). Each item carries the admin list it links to, filtered to
exactly the rows it counts.
"""

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..models import (
    Account,
    DeliveryStatus,
    EmailNotification,
    ObservationLink,
    SisBatch,
    UnrecognisedLinkReport,
    WebhookDelivery,
)

# SIS imports older than this no longer ask for attention.
RECENT_SIS_DAYS = 30
SIS_PROBLEM_STATES = [SisBatch.State.FAILED, SisBatch.State.IMPORTED_WITH_ERRORS]


@dataclass(frozen=True)
class AttentionItem:
    key: str
    label: str
    count: int
    changelist: str  # admin URL name of the list
    query: str  # its filter


def _scoped(queryset, root_account: Account | None, lookup: str = "root_account"):
    return queryset if root_account is None else queryset.filter(**{lookup: root_account})


def needs_attention(root_account: Account | None) -> list[AttentionItem]:
    """Failed e-mails and posts, SIS imports with errors, reports, links awaiting approval."""
    since = timezone.now() - timedelta(days=RECENT_SIS_DAYS)
    failed_emails = _scoped(
        EmailNotification.objects.filter(status=DeliveryStatus.FAILED), root_account
    ).count()
    failed_webhooks = _scoped(
        WebhookDelivery.objects.filter(status=DeliveryStatus.FAILED),
        root_account,
        "endpoint__root_account",
    ).count()
    sis_problems = _scoped(
        SisBatch.objects.filter(workflow_state__in=SIS_PROBLEM_STATES, created_at__gte=since),
        root_account,
    ).count()
    reports = _scoped(UnrecognisedLinkReport.objects.filter(reviewed=False), root_account).count()
    pending = _scoped(ObservationLink.objects.pending(), root_account).count()
    return [
        AttentionItem(
            "failed_emails",
            _("E-mails that could not be delivered"),
            failed_emails,
            "admin:linking_emailnotification_changelist",
            f"status__exact={DeliveryStatus.FAILED}",
        ),
        AttentionItem(
            "failed_webhooks",
            _("Webhook posts that failed"),
            failed_webhooks,
            "admin:linking_webhookdelivery_changelist",
            f"status__exact={DeliveryStatus.FAILED}",
        ),
        AttentionItem(
            "sis_errors",
            _("SIS imports with errors (last %(days)d days)") % {"days": RECENT_SIS_DAYS},
            sis_problems,
            "admin:linking_sisbatch_changelist",
            urlencode(
                {
                    "workflow_state__in": ",".join(SIS_PROBLEM_STATES),
                    "created_at__gte": since.replace(microsecond=0).isoformat(),
                }
            ),
        ),
        AttentionItem(
            "unrecognised_reports",
            _("“This wasn't me” reports from families, not reviewed yet"),
            reports,
            "admin:linking_unrecognisedlinkreport_changelist",
            "reviewed__exact=0",
        ),
        AttentionItem(
            "pending_links",
            _("Links waiting for an adult student's approval"),
            pending,
            "admin:linking_observationlink_changelist",
            f"workflow_state__exact={ObservationLink.State.PENDING}",
        ),
    ]
