"""E-mail notifications and webhooks: per-tenant settings, the delivery queue, and reports.

Rows here are written only by ``linking.services.notifications``: planned
from the pending audit events that caused them and delivered by
``manage.py send_queued_notifications``.
"""

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
]


def generate_webhook_secret() -> str:
    return secrets.token_hex(32)


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
        help_text=_("Shared secret for the X-Observers-Signature HMAC-SHA256 header."),
    )
    events = models.JSONField(
        default=list, blank=True, help_text=_("Event types this endpoint receives.")
    )
    is_active = models.BooleanField(default=True)
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
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_due")]

    def __str__(self) -> str:
        return f"{self.event_type} to {self.endpoint_id} ({self.status})"


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
