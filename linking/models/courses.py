"""Courses and enrollments."""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Term(models.Model):
    """An academic session (OneRoster academicSessions): the dates that make a course current."""

    class State(models.TextChoices):
        ACTIVE = "active", _("active")
        DELETED = "deleted", _("deleted")

    root_account = models.ForeignKey(
        "linking.Account", on_delete=models.PROTECT, related_name="terms"
    )
    name = models.CharField(max_length=255)
    sis_term_id = models.CharField(max_length=255, null=True, blank=True)
    start_at = models.DateTimeField(null=True, blank=True)
    end_at = models.DateTimeField(null=True, blank=True, help_text=_("Exclusive."))
    workflow_state = models.CharField(max_length=16, choices=State, default=State.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["start_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["root_account", "sis_term_id"],
                condition=Q(sis_term_id__isnull=False),
                name="term_unique_sis_id_per_root",
                violation_error_message=_("Another term of this school already has this SIS id."),
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def is_current(self, now) -> bool:
        return (self.start_at is None or self.start_at <= now) and (
            self.end_at is None or now < self.end_at
        )


class Course(models.Model):
    class State(models.TextChoices):
        UNPUBLISHED = "unpublished", _("unpublished")
        AVAILABLE = "available", _("available")
        COMPLETED = "completed", _("completed")
        DELETED = "deleted", _("deleted")

    name = models.CharField(max_length=255)
    course_code = models.CharField(max_length=255, blank=True)
    account = models.ForeignKey("linking.Account", on_delete=models.PROTECT, related_name="courses")
    # Leads the (root_account, id) unique constraint below, so no index of its own.
    root_account = models.ForeignKey(
        "linking.Account",
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
        db_index=False,
    )
    sis_course_id = models.CharField(max_length=255, null=True, blank=True)
    term = models.ForeignKey(
        Term, null=True, blank=True, on_delete=models.SET_NULL, related_name="courses"
    )
    workflow_state = models.CharField(max_length=16, choices=State, default=State.AVAILABLE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["root_account", "sis_course_id"],
                condition=Q(sis_course_id__isnull=False),
                name="course_unique_sis_id_per_root",
                violation_error_message=_("Another course of this school already has this SIS id."),
            ),
            # What an enrollment's composite foreign key (course, root account)
            # refers to on PostgreSQL (migration 0016), and the index for a
            # school's courses. Led by the root account: with the id first, a
            # planner without statistics took the root account's own index for
            # the key's check and walked every course of the school per row.
            models.UniqueConstraint(
                fields=["root_account", "id"],
                name="course_root_account_with_id",
                violation_error_message=_("A course belongs to one school."),
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def is_current(self, now) -> bool:
        """Available, and inside its term's dates (a course without a term always is)."""
        if self.workflow_state != self.State.AVAILABLE:
            return False
        return self.term is None or self.term.is_current(now)


class EnrollmentType(models.TextChoices):
    STUDENT = "student", _("Student")
    TEACHER = "teacher", _("Teacher")
    TA = "ta", _("TA")
    DESIGNER = "designer", _("Designer")
    OBSERVER = "observer", _("Observer")


class EnrollmentState(models.TextChoices):
    INVITED = "invited", _("invited")
    ACTIVE = "active", _("active")
    INACTIVE = "inactive", _("inactive")
    COMPLETED = "completed", _("completed")
    REJECTED = "rejected", _("rejected")
    DELETED = "deleted", _("deleted")


def mirrorable_q(**lookups) -> Q:
    """The condition of ``EnrollmentQuerySet.mirrorable``, for combining with others."""
    return Q(type=EnrollmentType.STUDENT, **lookups) & ~Q(
        workflow_state__in=[
            EnrollmentState.REJECTED,
            EnrollmentState.COMPLETED,
            EnrollmentState.DELETED,
        ]
    )


class EnrollmentQuerySet(models.QuerySet):
    def live(self) -> "EnrollmentQuerySet":
        return self.exclude(workflow_state=EnrollmentState.DELETED)

    def students(self) -> "EnrollmentQuerySet":
        return self.filter(type=EnrollmentType.STUDENT)

    def mirrorable(self) -> "EnrollmentQuerySet":
        """Student enrollments an observer link mirrors (canvas-behaviour.md §5)."""
        return self.filter(mirrorable_q())


class Enrollment(models.Model):
    """A user's role in a course. Observer enrollments name the observed student."""

    # user, course and associated_user lead composite indexes (Meta.indexes),
    # so they have no single-column index of their own: one fewer B-tree to
    # write per enrollment.
    user = models.ForeignKey(
        "linking.User", on_delete=models.CASCADE, related_name="enrollments", db_index=False
    )
    course = models.ForeignKey(
        Course, on_delete=models.CASCADE, related_name="enrollments", db_index=False
    )
    root_account = models.ForeignKey(
        "linking.Account", on_delete=models.PROTECT, related_name="+", editable=False
    )
    type = models.CharField(max_length=16, choices=EnrollmentType)
    workflow_state = models.CharField(
        max_length=16, choices=EnrollmentState, default=EnrollmentState.ACTIVE
    )
    associated_user = models.ForeignKey(
        "linking.User",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="observer_enrollments",
        help_text=_("For observer enrollments: the student being observed."),
        db_index=False,
    )
    start_at = models.DateTimeField(null=True, blank=True)
    end_at = models.DateTimeField(null=True, blank=True)
    # Written by an SIS import: a bulk file may remove it when the SIS stops sending it.
    sis_managed = models.BooleanField(default=False, db_default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EnrollmentQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "course", "type"],
                condition=Q(associated_user__isnull=True),
                name="enrollment_unique_plain",
                violation_error_message=_(
                    "This person already has this kind of enrollment in this course."
                ),
            ),
            # Led by the student: it is also the index for "who observes this
            # student" (a comparison on associated_user implies the condition,
            # so PostgreSQL and SQLite use it), and only observer enrollments
            # are in it, so a student's or teacher's enrollment writes one
            # B-tree fewer than with a separate (associated_user, user) index.
            models.UniqueConstraint(
                fields=["associated_user", "user", "course"],
                condition=Q(associated_user__isnull=False),
                name="enrollment_unique_observer_of_student",
                violation_error_message=_(
                    "This observer is already enrolled in this course for this student."
                ),
            ),
            models.CheckConstraint(
                condition=Q(associated_user__isnull=True) | Q(type="observer"),
                name="enrollment_associated_user_only_for_observers",
                violation_error_message=_(
                    "Only an observer enrollment names a student it observes."
                ),
            ),
            models.CheckConstraint(
                condition=Q(associated_user__isnull=True) | ~Q(associated_user=models.F("user")),
                name="enrollment_not_observing_self",
                violation_error_message=_("A person cannot observe themselves in a course."),
            ),
        ]
        indexes = [
            models.Index(fields=["user", "type", "workflow_state"], name="enrollment_user_type"),
            models.Index(fields=["course", "type"], name="enrollment_course_type"),
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.type} in {self.course} ({self.workflow_state})"
