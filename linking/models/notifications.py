"""E-mail notifications and webhooks: per-tenant settings, the delivery queue, and reports.

Rows here are written only by ``linking.services.notifications``: planned
from the pending audit events that caused them and delivered by
``manage.py send_queued_notifications``.
"""

import base64
import secrets

from django.core.validators import URLValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .audit import AuditAction

WEBHOOK_EVENTS = [
    AuditAction.LINK_CREATED,
    AuditAction.LINK_RESTORED,
    AuditAction.LINK_DELETED,
    AuditAction.CODE_REDEEMED,
    AuditAction.CODE_REVOKED,
    AuditAction.INVITATION_SENT,
    AuditAction.INVITATION_RESENT,
    AuditAction.INVITATION_ACCEPTED,
    AuditAction.INVITATION_DECLINED,
    AuditAction.INVITATION_WITHDRAWN,
    AuditAction.INVITATION_EXPIRED,
]


WEBHOOK_SECRET_PREFIX = "whsec_"


def generate_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


class NotificationSettings(models.Model):
    """Which e-mails a root account sends. A root account without a row sends all of them."""

    root_account = models.OneToOneField(
        "linking.Account",
        on_delete=models.CASCADE,
        related_name="notification_settings",
        limit_choices_to={"parent__isnull": True},
    )
    notify_student_of_new_observer = models.BooleanField(
        default=True, help_text=_("E-mail the student when a new observer is linked to them.")
    )
    notify_observers_of_new_observer = models.BooleanField(
        default=True,
        help_text=_("E-mail the student's existing observers when a new observer is linked."),
    )
    notify_observer_of_removed_link = models.BooleanField(
        default=True, help_text=_("E-mail the observer when one of their links is removed.")
    )
    notify_observer_of_staff_link = models.BooleanField(
        default=True,
        help_text=_("E-mail the observer when staff or an SIS import links a student to them."),
    )

    class Meta:
        verbose_name = _("notification settings")
        verbose_name_plural = _("notification settings")

    def __str__(self) -> str:
        return f"Notification settings of root account {self.root_account_id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    SENT = "sent", _("sent")
    FAILED = "failed", _("failed (gave up)")


class DeliveryQuerySet(models.QuerySet):
    def due(self, now=None) -> "DeliveryQuerySet":
        return self.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lte=now or timezone.now()
        )


class EmailNotification(models.Model):
    """One e-mail to one person about one audit event, rendered when queued."""

    class Kind(models.TextChoices):
        NEW_OBSERVER_TO_STUDENT = "new_observer.student", _("new observer (to the student)")
        NEW_OBSERVER_TO_OBSERVERS = (
            "new_observer.observers",
            _("new observer (to the student's other observers)"),
        )
        LINK_REMOVED_TO_OBSERVER = "link_removed.observer", _("link removed (to the observer)")
        APPROVAL_TO_STUDENT = (
            "approval.student",
            _("a link awaits approval (to the student)"),
        )
        STAFF_LINK_TO_OBSERVER = (
            "staff_link.observer",
            _("link made by staff or SIS (to the observer)"),
        )

    root_account = models.ForeignKey(
        "linking.Account", on_delete=models.CASCADE, related_name="email_notifications"
    )
    event = models.ForeignKey(
        "linking.AuditEvent",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="email_notifications",
    )
    kind = models.CharField(max_length=32, choices=Kind)
    recipient = models.ForeignKey(  # leads the email_recent index
        "linking.User",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="email_notifications",
        db_index=False,
    )
    to_email = models.EmailField(max_length=254)
    language = models.CharField(max_length=16)
    # Rendered by the sender just before sending (empty while queued).
    subject = models.CharField(max_length=255, blank=True)
    body_text = models.TextField(blank=True)
    body_html = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=DeliveryStatus, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "recipient"],
                condition=Q(event__isnull=False, recipient__isnull=False),
                name="email_one_per_event_recipient",
                violation_error_message=_("This e-mail has already been queued for this person."),
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="email_due"),
            models.Index(fields=["recipient", "root_account", "-created_at"], name="email_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.to_email} ({self.status})"


class WebhookEndpoint(models.Model):
    """A URL of another system that receives a root account's link and code events."""

    root_account = models.ForeignKey(
        "linking.Account",
        on_delete=models.CASCADE,
        related_name="webhook_endpoints",
        limit_choices_to={"parent__isnull": True},
    )
    url = models.URLField(
        max_length=1024,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text=_("Receives a POST with a JSON body for each subscribed event."),
    )
    secret = models.CharField(
        max_length=128,
        default=generate_webhook_secret,
        help_text=_(
            "Standard Webhooks signing secret (whsec_ followed by base64); the receiver "
            "verifies the webhook-signature header with it."
        ),
    )
    # While a rotation's overlap lasts, every post is signed with both secrets.
    previous_secret = models.CharField(max_length=128, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    events = models.JSONField(
        default=list, blank=True, help_text=_("Event types this endpoint receives.")
    )
    is_active = models.BooleanField(
        default=True,
        help_text=_(
            "Turned off, the endpoint gets no new events; deliveries already queued wait "
            "and are sent when it is turned on again."
        ),
    )
    disabled_reason = models.CharField(max_length=255, blank=True, editable=False)
    description = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["root_account_id", "id"]
        indexes = [models.Index(fields=["root_account", "is_active"], name="webhook_root_active")]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event posted (or still to be posted) to one endpoint, with its attempt log."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(
        "linking.AuditEvent",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="webhook_deliveries",
    )
    event_type = models.CharField(max_length=40)
    # Deliveries of one link (or pairing code) to one endpoint are posted in
    # the order of their events: a later one waits while an earlier one is pending.
    order_key = models.CharField(max_length=64, blank=True)
    body = models.TextField(help_text=_("The exact JSON body that is signed and posted."))
    status = models.CharField(max_length=16, choices=DeliveryStatus, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_response_excerpt = models.TextField(blank=True)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # A sender owns the row until claimed_until; claim_token fences off a
    # sender whose claim was taken over (see services.notifications).
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    claim_token = models.CharField(max_length=32, blank=True, editable=False)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = _("webhook deliveries")
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "event"],
                condition=Q(event__isnull=False),
                name="webhook_one_per_endpoint_event",
                violation_error_message=_("This event has already been queued for this webhook."),
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_due"),
            # The claim's scan, in event order ...
            models.Index(
                fields=["endpoint", "id"],
                condition=Q(status="pending"),
                name="webhook_pending_order",
            ),
            # ... and the few rows that can hold a link's later deliveries back.
            models.Index(
                fields=["endpoint", "order_key"],
                condition=Q(status="pending")
                & (Q(claimed_until__isnull=False) | Q(attempts__gt=0)),
                name="webhook_pending_busy",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} to {self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One POST of a delivery: when, how long, what the receiver answered."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    attempted_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery_id", "id"]
        indexes = [models.Index(fields=["delivery", "id"], name="webhook_attempt_delivery")]

    def __str__(self) -> str:
        return f"Attempt at {self.attempted_at:%Y-%m-%d %H:%M:%S}: {self.status_code or self.error}"


class EmailPreference(models.Model):
    """Which notification e-mails one person turned off in one root account.

    Only the event e-mails of ``EmailNotification.Kind`` are subject to it;
    transactional e-mails (sign-in, password reset, invitations) are not.
    """

    user = models.ForeignKey("linking.User", on_delete=models.CASCADE, related_name="+")
    root_account = models.ForeignKey("linking.Account", on_delete=models.CASCADE, related_name="+")
    muted_kinds = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "root_account"],
                name="email_preference_one_per_person",
                violation_error_message=_(
                    "This person already has e-mail preferences at this school."
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"E-mail preferences of user {self.user_id} in root account {self.root_account_id}"


class PeriodicTaskRun(models.Model):
    """One run of a periodic task, claimed by the scheduler that enqueued it.

    The unique (name, slot) pair is how several schedulers (one per worker)
    enqueue each period's run exactly once.
    """

    name = models.CharField(max_length=200)
    slot = models.DateTimeField()
    enqueued_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["name", "slot"],
                name="periodic_run_once_per_slot",
                violation_error_message=_("This periodic task already ran in this period."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} at {self.slot:%Y-%m-%d %H:%M:%S}"


class UnrecognisedLinkReport(models.Model):
    """A person said "this wasn't me" about a new link; the school's staff review it."""

    root_account = models.ForeignKey(
        "linking.Account", on_delete=models.CASCADE, related_name="unrecognised_link_reports"
    )
    notification = models.ForeignKey(
        EmailNotification, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    event = models.ForeignKey(
        "linking.AuditEvent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    link = models.ForeignKey(
        "linking.ObservationLink",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="unrecognised_reports",
    )
    reported_by = models.ForeignKey(
        "linking.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    observer = models.ForeignKey(
        "linking.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    student = models.ForeignKey(
        "linking.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    reviewed = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["notification"],
                condition=Q(notification__isnull=False),
                name="report_one_per_notification",
                violation_error_message=_("This e-mail has already been reported."),
            ),
        ]

    def __str__(self) -> str:
        return f"Unrecognised link reported {self.created_at:%Y-%m-%d %H:%M}"
