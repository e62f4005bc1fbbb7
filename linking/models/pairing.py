"""Observer pairing codes: short-lived, single-use, stored only as a keyed hash."""

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class PairingCodeQuerySet(models.QuerySet):
    def redeemable(self, now=None) -> "PairingCodeQuerySet":
        now = now or timezone.now()
        return self.filter(workflow_state=PairingCode.State.ACTIVE, expires_at__gt=now)

    def expired(self, now=None) -> "PairingCodeQuerySet":
        now = now or timezone.now()
        return self.filter(workflow_state=PairingCode.State.ACTIVE, expires_at__lte=now)


class PairingCode(models.Model):
    """A code a student hands to a parent. The plaintext is shown once, at issue.

    "Expired" is derived from ``expires_at``; the stored state only records
    what a person did (redeemed or revoked).
    """

    class State(models.TextChoices):
        ACTIVE = "active", _("active")
        REDEEMED = "redeemed", _("redeemed")
        REVOKED = "revoked", _("revoked")

    # Leads the pairing_code_student index.
    student = models.ForeignKey(
        "linking.User", on_delete=models.PROTECT, related_name="pairing_codes", db_index=False
    )
    root_account = models.ForeignKey(
        "linking.Account", on_delete=models.PROTECT, related_name="pairing_codes"
    )
    # Unique through Meta.constraints: unique=True would add a second,
    # LIKE-pattern index on PostgreSQL that no query uses.
    code_hash = models.CharField(max_length=64, editable=False)
    # The last characters of the code, so a student can tell two codes made in
    # the same minute apart (the holder saw the whole code; the hash is keyed).
    code_hint = models.CharField(
        max_length=4, blank=True, default="", db_default="", editable=False
    )
    expires_at = models.DateTimeField(db_index=True)
    workflow_state = models.CharField(max_length=16, choices=State, default=State.ACTIVE)
    issued_by = models.ForeignKey(
        "linking.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    redeemed_by = models.ForeignKey(
        "linking.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    redeemed_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        "linking.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = PairingCodeQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["code_hash"],
                name="pairing_code_hash_unique",
                violation_error_message=_("This pairing code already exists; issue another."),
            ),
            models.CheckConstraint(
                condition=Q(workflow_state="redeemed", redeemed_at__isnull=False)
                | ~Q(workflow_state="redeemed"),
                name="pairing_code_redeemed_has_time",
                violation_error_message=_(
                    "A redeemed pairing code needs the time it was redeemed."
                ),
            ),
        ]
        indexes = [
            models.Index(
                fields=["student", "workflow_state", "expires_at"], name="pairing_code_student"
            ),
        ]

    def __str__(self) -> str:
        return f"pairing code #{self.pk} for {self.student}"

    @property
    def state(self) -> str:
        """The state a person sees: active, expired, redeemed or revoked."""
        if self.workflow_state == self.State.ACTIVE and self.expires_at <= timezone.now():
            return "expired"
        return self.workflow_state
