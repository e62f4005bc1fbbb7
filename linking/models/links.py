"""Observation links between observers and students."""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class LinkSource(models.TextChoices):
    API = "api", _("API")
    PAIRING_CODE = "pairing_code", _("pairing code")
    CREDENTIALS = "credentials", _("student credentials")
    ACCESS_TOKEN = "access_token", _("student access token")
    ADMIN = "admin", _("staff admin")
    SIS = "sis", _("SIS import")
    SELF_REGISTRATION = "self_registration", _("parent sign-up")
    PORTAL = "portal", _("web page")
    # Guardian invitations (services.invitations) pass this to services.rules and link_observer.
    INVITATION = "invitation", _("invitation")


class LinkKind(models.TextChoices):
    """Who the observer is to the student (from the SIS's relationship, or set by staff)."""

    PARENT = "parent", _("parent")
    GUARDIAN = "guardian", _("guardian")
    RELATIVE = "relative", _("relative")
    ADVISOR = "advisor", _("advisor")
    OTHER = "other", _("other")


class LinkEnd(models.TextChoices):
    """Why a link ended (empty while it is live, and for ends nobody classified)."""

    REMOVED = "removed", _("removed")
    STUDENT = "student", _("ended by the student")
    DECLINED = "declined", _("declined by the student")
    RESTRICTION = "restriction", _("a restriction")
    END_DATE = "end_date", _("its end date passed")
    COMING_OF_AGE = "coming_of_age", _("the student came of age")


class ObservationLinkQuerySet(models.QuerySet):
    def active(self) -> "ObservationLinkQuerySet":
        return self.filter(workflow_state=ObservationLink.State.ACTIVE)

    def pending(self) -> "ObservationLinkQuerySet":
        return self.filter(workflow_state=ObservationLink.State.PENDING)

    def live(self) -> "ObservationLinkQuerySet":
        """Active links and links awaiting the student's approval."""
        return self.filter(
            workflow_state__in=[ObservationLink.State.ACTIVE, ObservationLink.State.PENDING]
        )

    def between(self, *, observer, student) -> "ObservationLinkQuerySet":
        return self.filter(observer=observer, student=student)

    def past_end(self, now) -> "ObservationLinkQuerySet":
        """Live links whose end date has passed (the scheduled task ends them)."""
        return self.live().filter(ends_at__isnull=False, ends_at__lte=now)


class ObservationLink(models.Model):
    """An observer linked to a student in one root account (Canvas: UserObservationLink).

    Never hard-deleted: removal sets ``workflow_state`` to deleted, and
    linking again restores the same row. A ``pending`` link waits for the
    student's approval (services.rules): it makes no enrollments and no
    Canvas list shows it.
    """

    class State(models.TextChoices):
        ACTIVE = "active", _("active")
        PENDING = "pending", _("awaiting the student's approval")
        DELETED = "deleted", _("deleted")

    # observer, student and root_account lead composite indexes (Meta), so
    # they have no single-column index of their own.
    observer = models.ForeignKey(
        "linking.User", on_delete=models.PROTECT, related_name="observed_links", db_index=False
    )
    student = models.ForeignKey(
        "linking.User", on_delete=models.PROTECT, related_name="observer_links", db_index=False
    )
    root_account = models.ForeignKey(
        "linking.Account",
        on_delete=models.PROTECT,
        related_name="observation_links",
        db_index=False,
    )
    workflow_state = models.CharField(max_length=16, choices=State, default=State.ACTIVE)
    source = models.CharField(max_length=32, choices=LinkSource, default=LinkSource.API)
    # Blank when nobody said (a pairing code, the API): Canvas links carry no kind.
    kind = models.CharField(max_length=16, choices=LinkKind, blank=True, default="", db_default="")
    # After this moment the link ends by itself (services.safeguarding.end_links_past_their_end).
    ends_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(
        max_length=16, choices=LinkEnd, blank=True, default="", db_default=""
    )
    created_by = models.ForeignKey(
        "linking.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sis_batch = models.ForeignKey(
        "linking.SisBatch", null=True, blank=True, on_delete=models.SET_NULL, related_name="links"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = ObservationLinkQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["observer", "student", "root_account"],
                name="link_unique_pair_per_root",
                violation_error_message=_(
                    "This observer is already linked to this student at this school."
                ),
            ),
            models.CheckConstraint(
                condition=~Q(observer=models.F("student")),
                name="link_not_observing_self",
                violation_error_message=_(
                    "A person cannot observe themselves: choose a different observer or student."
                ),
            ),
        ]
        indexes = [
            models.Index(fields=["observer", "workflow_state"], name="link_observer_state"),
            models.Index(fields=["student", "workflow_state"], name="link_student_state"),
            models.Index(fields=["root_account", "workflow_state"], name="link_root_state"),
            models.Index(
                fields=["ends_at"], condition=Q(ends_at__isnull=False), name="link_ends_at"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.observer} observes {self.student} ({self.workflow_state})"
