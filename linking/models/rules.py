"""Who may observe whom: restrictions, protected students, coming of age.

Rows here are written only by ``linking.services.safeguarding``; every way
of making a link asks ``linking.services.rules`` about them before it
writes (docs/who-may-observe.md).
"""

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _


class RestrictionQuerySet(models.QuerySet):
    def in_force(self, now) -> "RestrictionQuerySet":
        """Not lifted and not past their end date at ``now``."""
        return self.filter(lifted_at__isnull=True).filter(
            Q(ends_at__isnull=True) | Q(ends_at__gt=now)
        )


class ObservationRestriction(models.Model):
    """A person must not observe a student in a root account (a court or no-contact order).

    The person is named by their user, by an e-mail address, or both: an
    e-mail matches every user whose address or login id is that address,
    so a second account made with the same address is refused too. The
    reason and the document reference are for staff only; nothing shown to
    anyone else ever mentions them.
    """

    root_account = models.ForeignKey(
        "linking.Account", on_delete=models.PROTECT, related_name="restrictions", db_index=False
    )
    student = models.ForeignKey("linking.User", on_delete=models.PROTECT, related_name="+")
    observer = models.ForeignKey(
        "linking.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    observer_email = models.EmailField(
        blank=True,
        help_text=_("Also refuse anyone whose e-mail address or login id is this address."),
    )
    reason = models.TextField(help_text=_("Seen by staff only."))
    document_reference = models.CharField(
        max_length=255, blank=True, help_text=_("Where the order is filed (seen by staff only).")
    )
    recorded_by = models.ForeignKey(
        "linking.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    ends_at = models.DateTimeField(
        null=True, blank=True, help_text=_("Empty when the order has no end date.")
    )
    lifted_at = models.DateTimeField(null=True, blank=True, editable=False)
    lifted_by = models.ForeignKey(
        "linking.User",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    objects = RestrictionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(observer__isnull=False) | ~Q(observer_email=""),
                name="restriction_names_a_person",
                violation_error_message=_(
                    "Name the person: choose a user or give an e-mail address."
                ),
            ),
        ]
        indexes = [
            models.Index(fields=["root_account", "student"], name="restriction_root_student"),
            models.Index("root_account", Lower("observer_email"), name="restriction_root_email"),
        ]

    def __str__(self) -> str:
        return f"Restriction #{self.pk} for {self.student}"


class ProtectedStudent(models.Model):
    """A student of a root account no one but staff may link, and no message names."""

    root_account = models.ForeignKey(
        "linking.Account", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    student = models.ForeignKey("linking.User", on_delete=models.PROTECT, related_name="+")
    recorded_by = models.ForeignKey(
        "linking.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.TextField(blank=True, help_text=_("Seen by staff only."))
    # Set by an SIS import: only such a protection is lifted when the SIS says so.
    by_sis = models.BooleanField(default=False, db_default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["root_account", "student"],
                name="protected_student_once_per_root",
                violation_error_message=_("This student is already protected at this school."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.student} (protected)"


class ComingOfAge(models.Model):
    """When a root account's coming-of-age policy was applied to a student (once each)."""

    root_account = models.ForeignKey(
        "linking.Account", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    student = models.ForeignKey("linking.User", on_delete=models.PROTECT, related_name="+")
    policy = models.CharField(max_length=8)
    applied_at = models.DateTimeField()

    class Meta:
        ordering = ["-applied_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["root_account", "student"],
                name="coming_of_age_once_per_root",
                violation_error_message=_(
                    "This student's coming of age is already recorded at this school."
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.student} came of age ({self.policy})"
