"""The append-only audit trail."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class AuditAction(models.TextChoices):
    LINK_CREATED = "link.created", _("link created")
    LINK_RESTORED = "link.restored", _("link restored")
    LINK_DELETED = "link.deleted", _("link deleted")
    LINK_PENDING = "link.pending", _("link awaiting the student's approval")
    LINK_REFUSED = "link.refused", _("link refused by a rule")
    LINK_CHANGED = "link.changed", _("link's kind or end date changed")
    RESTRICTION_RECORDED = "restriction.recorded", _("restriction recorded")
    RESTRICTION_LIFTED = "restriction.lifted", _("restriction lifted")
    STUDENT_PROTECTED = "student.protected", _("student protected")
    STUDENT_UNPROTECTED = "student.unprotected", _("student no longer protected")
    STUDENT_CAME_OF_AGE = "student.came_of_age", _("student came of age")
    CODE_ISSUED = "pairing_code.issued", _("pairing code issued")
    CODE_REDEEMED = "pairing_code.redeemed", _("pairing code redeemed")
    CODE_REVOKED = "pairing_code.revoked", _("pairing code revoked")
    CODE_FAILED = "pairing_code.failed", _("failed pairing code attempt")
    CREDENTIALS_FAILED = "credentials.failed", _("failed credential check")
    TOKEN_ISSUED = "access_token.issued", _("access token issued")
    TOKEN_REVOKED = "access_token.revoked", _("access token revoked")
    PASSWORD_RESET_REQUESTED = "password.reset_requested", _("password reset requested")
    PASSWORD_RESET = "password.reset", _("password reset")
    EMAIL_VERIFIED = "email.verified", _("e-mail address verified")
    INVITATION_SENT = "invitation.sent", _("guardian invitation sent")
    INVITATION_ACCEPTED = "invitation.accepted", _("guardian invitation accepted")
    INVITATION_DECLINED = "invitation.declined", _("guardian invitation declined")
    INVITATION_WITHDRAWN = "invitation.withdrawn", _("guardian invitation withdrawn")
    INVITATION_RESENT = "invitation.resent", _("guardian invitation sent again")
    INVITATION_EXPIRED = "invitation.expired", _("guardian invitation expired")
    INVITATIONS_BULK = "invitation.bulk", _("guardian invitations sent in bulk")
    SSO_SIGNED_IN = "sso.signed_in", _("signed in with single sign-on")
    SSO_REFUSED = "sso.refused", _("single sign-on refused (no matching login)")
    SSO_CONFIGURED = "sso.configured", _("single sign-on provider saved")
    DEVELOPER_KEY_CREATED = "developer_key.created", _("developer key created")
    DEVELOPER_KEY_CHANGED = "developer_key.changed", _("developer key changed")


class AuditSource(models.TextChoices):
    API = "api", _("API")
    ADMIN = "admin", _("staff admin")
    PORTAL = "portal", _("web page")
    SIS = "sis", _("SIS import")
    COMMAND = "command", _("management command")
    SYSTEM = "system", _("system")


class AuditEvent(models.Model):
    """What happened, who did it, to whom, from where.

    Rows are only ever inserted; the one later write is the notification
    planner clearing ``notifications_pending`` once it has queued the
    e-mails and webhook deliveries the event causes (the audit trail is the
    notifications' outbox).
    """

    action = models.CharField(max_length=40, choices=AuditAction)
    source = models.CharField(max_length=16, choices=AuditSource)
    actor = models.ForeignKey(
        "linking.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    observer = models.ForeignKey(
        "linking.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    student = models.ForeignKey(
        "linking.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # root_account and link lead the audit_root_time / audit_link_time indexes.
    root_account = models.ForeignKey(
        "linking.Account",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    link = models.ForeignKey(
        "linking.ObservationLink",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_events",
        db_index=False,
    )
    pairing_code = models.ForeignKey(
        "linking.PairingCode",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_events",
    )
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    # The X-Request-ID of the HTTP request that caused the event (also in the
    # JSON logs), so an event can be traced to its log lines.
    request_id = models.CharField(max_length=64, blank=True, default="", db_default="")
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Set when the event may cause e-mails or webhook deliveries that are not
    # planned yet; emails_suppressed records a notifications.suppressed() block.
    notifications_pending = models.BooleanField(default=False, db_default=False, editable=False)
    emails_suppressed = models.BooleanField(default=False, db_default=False, editable=False)
    # What the webhook payload says about the people, the link and the actor,
    # as they were when the event was recorded (not when it is planned or sent).
    snapshot = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["root_account", "-created_at"], name="audit_root_time"),
            models.Index(fields=["link", "-created_at"], name="audit_link_time"),
            models.Index(
                fields=["id"],
                condition=models.Q(notifications_pending=True),
                name="audit_notifications_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} at {self.created_at:%Y-%m-%d %H:%M}"
