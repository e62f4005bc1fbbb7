"""Guardian invitations: staff invite an e-mail address to observe a student."""

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class InvitationQuerySet(models.QuerySet):
    def open(self, now=None) -> "InvitationQuerySet":
        """Pending and not yet expired: the ones whose link still works."""
        now = now or timezone.now()
        return self.filter(state=GuardianInvitation.State.PENDING, expires_at__gt=now)

    def lapsed(self, now=None) -> "InvitationQuerySet":
        """Pending past their date, the expiry not recorded yet (invitations.record_expiries)."""
        now = now or timezone.now()
        return self.filter(state=GuardianInvitation.State.PENDING, expires_at__lte=now)

    def expired(self, now=None) -> "InvitationQuerySet":
        """Expired, whether the periodic task has recorded it yet or not."""
        now = now or timezone.now()
        return self.filter(
            Q(state=GuardianInvitation.State.EXPIRED)
            | Q(state=GuardianInvitation.State.PENDING, expires_at__lte=now)
        )

    def mail_due(self, now=None) -> "InvitationQuerySet":
        """Invitations made in bulk whose e-mail the task queue has still to send."""
        return self.filter(mail_due_at__lte=now or timezone.now())


class GuardianInvitation(models.Model):
    """An invitation for whoever holds ``email`` to observe ``student`` in ``root_account``.

    Only a keyed hash of the link's token is stored. "Expired" is a pending
    invitation past ``expires_at`` (see ``current_state``) until the periodic
    task records it as ``expired`` (services.invitations.record_expiries).
    ``language`` is the language its e-mails and pages speak (see
    services.invitations.language_of). ``mail_due_at`` is set while the
    invitation's e-mail waits for the task queue (bulk invitations;
    services.bulk_invitations): the table is the outbox, and the task that
    sends the e-mail makes the link's token.
    """

    class State(models.TextChoices):
        PENDING = "pending", _("pending")
        ACCEPTED = "accepted", _("accepted")
        DECLINED = "declined", _("declined")
        EXPIRED = "expired", _("expired")
        WITHDRAWN = "withdrawn", _("withdrawn")

    root_account = models.ForeignKey(
        "linking.Account", on_delete=models.PROTECT, related_name="invitations"
    )
    student = models.ForeignKey(
        "linking.User", on_delete=models.PROTECT, related_name="guardian_invitations"
    )
    email = models.EmailField(_("e-mail address"), max_length=254)
    state = models.CharField(max_length=16, choices=State, default=State.PENDING)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        "linking.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    accepted_by = models.ForeignKey(
        "linking.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    link = models.ForeignKey(
        "linking.ObservationLink",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    responded_at = models.DateTimeField(null=True, blank=True)
    mail_due_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The language of its e-mails and of the pages its link opens: the invited
    # person's own when they had saved one, else the one chosen when inviting
    # (services.invitations.language_of; empty: the site's default).
    language = models.CharField(_("language"), max_length=16, blank=True, default="")

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                "root_account",
                "student",
                Lower("email"),
                condition=Q(state="pending"),
                name="invitation_one_pending_per_address",
                violation_error_message=_(
                    "This address already has a pending invitation for this student."
                ),
            ),
        ]
        indexes = [
            models.Index(fields=["root_account", "state"], name="invitation_root_state"),
            models.Index(
                fields=["mail_due_at"],
                condition=Q(mail_due_at__isnull=False),
                name="invitation_mail_due",
            ),
            models.Index(
                fields=["expires_at"],
                condition=Q(state="pending"),
                name="invitation_pending_expiry",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} → {self.student}"

    @property
    def current_state(self) -> str:
        if self.state == self.State.PENDING and self.expires_at <= timezone.now():
            return self.State.EXPIRED
        return self.state
