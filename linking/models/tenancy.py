"""Accounts (the tenant tree), roles and account admins."""

import zoneinfo

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


def validate_time_zone(value: str) -> None:
    """An IANA time zone name this machine's zone database knows (e.g. Europe/Madrid)."""
    if value not in zoneinfo.available_timezones():
        raise ValidationError(
            _("%(value)s is not a known time zone (e.g. America/Chicago)."),
            code="invalid_time_zone",
            params={"value": value},
        )


class SelfRegistration(models.TextChoices):
    NONE = "none", _("Nobody")
    OBSERVER = "observer", _("Observers only")
    ALL = "all", _("Everybody")


class ComingOfAgePolicy(models.TextChoices):
    KEEP = "keep", _("Keep the links")
    ASK = "ask", _("Ask the student to approve each link")
    END = "end", _("End the links")


class AccountQuerySet(models.QuerySet):
    def roots(self) -> "AccountQuerySet":
        return self.filter(parent__isnull=True)


class Account(models.Model):
    """A node of the account tree. Accounts without a parent are root accounts (tenants)."""

    class State(models.TextChoices):
        ACTIVE = "active", _("active")
        DELETED = "deleted", _("deleted")

    name = models.CharField(max_length=255)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    root_account = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="descendants",
        help_text=_("The tenant this sub-account belongs to; empty for root accounts."),
    )
    domain = models.CharField(
        max_length=253,
        null=True,
        blank=True,
        unique=True,
        help_text=_("Host name that serves this root account, e.g. school.example.org."),
    )
    sis_account_id = models.CharField(max_length=255, null=True, blank=True)
    workflow_state = models.CharField(max_length=16, choices=State, default=State.ACTIVE)

    # Root-account settings.
    self_registration = models.CharField(
        max_length=16, choices=SelfRegistration, default=SelfRegistration.OBSERVER
    )
    pairing_codes_enabled = models.BooleanField(default=True)
    pairing_code_lifetime_hours = models.PositiveIntegerField(
        default=24 * 7, help_text=_("How long a new pairing code stays valid, in hours.")
    )
    credential_linking_allowed = models.BooleanField(
        default=True,
        help_text=_("Allow observers to link by typing the student's login and password."),
    )
    avatars_enabled = models.BooleanField(default=False)
    students_may_invite = models.BooleanField(
        default=False,
        db_default=False,
        help_text=_("Let students invite a parent or guardian by e-mail from their Pairing page."),
    )
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        db_default="UTC",
        validators=[validate_time_zone],
        help_text=_(
            "The school's time zone (IANA name, e.g. America/Chicago): pages, letters, "
            "e-mails and CSV exports show times in it."
        ),
    )
    age_of_majority = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        default=18,
        db_default=18,
        help_text=_(
            "Students this old (by their birth date) approve their own new observers. "
            "Empty: no age rule."
        ),
    )
    coming_of_age_policy = models.CharField(
        max_length=8,
        choices=ComingOfAgePolicy,
        default=ComingOfAgePolicy.KEEP,
        db_default=ComingOfAgePolicy.KEEP,
        help_text=_("What happens to a student's existing observers when they come of age."),
    )
    students_may_end_links = models.BooleanField(
        default=False,
        db_default=False,
        help_text=_("Let students under the age of majority end their observers' links."),
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AccountQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(parent__isnull=True) & Q(root_account__isnull=True))
                | (Q(parent__isnull=False) & Q(root_account__isnull=False)),
                name="account_root_iff_no_parent",
                violation_error_message=_(
                    "A school (root account) has no parent account; a sub-account must have one."
                ),
            ),
            models.CheckConstraint(
                condition=Q(domain__isnull=True) | Q(parent__isnull=True),
                name="account_domain_only_on_root",
                violation_error_message=_(
                    "Only a school (root account) has a domain; leave it empty for a sub-account."
                ),
            ),
            models.CheckConstraint(
                condition=Q(pairing_code_lifetime_hours__gte=1)
                & Q(pairing_code_lifetime_hours__lte=24 * 90),
                name="account_code_lifetime_range",
                violation_error_message=_(
                    "Pairing codes must stay valid between 1 hour and 90 days (2160 hours)."
                ),
            ),
            models.CheckConstraint(
                condition=Q(age_of_majority__isnull=True)
                | (Q(age_of_majority__gte=1) & Q(age_of_majority__lte=99)),
                name="account_age_of_majority_range",
                violation_error_message=_(
                    "The age of majority must be between 1 and 99, or empty for none."
                ),
            ),
            models.UniqueConstraint(
                fields=["root_account", "sis_account_id"],
                condition=Q(sis_account_id__isnull=False),
                name="account_unique_sis_id_per_root",
                violation_error_message=_(
                    "Another account of this school already has this SIS id."
                ),
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_root(self) -> bool:
        return self.parent_id is None

    @property
    def root_account_id_or_self(self) -> int:
        return self.root_account_id or self.id

    def ancestor_ids(self) -> list[int]:
        """Ids of this account and every ancestor up to its root (one query per level)."""
        ids = [self.id]
        node = self
        while node.parent_id is not None:
            ids.append(node.parent_id)
            node = node.parent
        return ids

    @property
    def self_registration_on(self) -> bool:
        return self.self_registration != SelfRegistration.NONE


class Permission(models.TextChoices):
    MANAGE_USER_OBSERVERS = "manage_user_observers", _("Users - manage observers")
    GENERATE_OBSERVER_PAIRING_CODE = (
        "generate_observer_pairing_code",
        _("Users - generate observer pairing codes for students"),
    )
    READ_SIS = "read_sis", _("SIS data - read")
    VIEW_USER_LOGINS = "view_user_logins", _("Users - view login ids")
    READ_ROSTER = "read_roster", _("Users - view list (enrollments and courses of the school)")


class Role(models.Model):
    """An account role: a named set of permissions held through AccountAdmin rows.

    The built-in ``AccountAdmin`` role (``root_account`` empty) holds every
    permission; custom roles belong to one root account.
    """

    ACCOUNT_ADMIN = "AccountAdmin"

    name = models.CharField(max_length=100)
    root_account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.PROTECT, related_name="roles"
    )
    manage_user_observers = models.BooleanField(default=False)
    generate_observer_pairing_code = models.BooleanField(default=False)
    read_sis = models.BooleanField(default=False)
    view_user_logins = models.BooleanField(default=False)
    read_roster = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["root_account", "name"],
                name="role_unique_name",
                violation_error_message=_("This school already has a role with this name."),
            ),
            models.UniqueConstraint(
                fields=["name"],
                condition=Q(root_account__isnull=True),
                name="role_unique_builtin_name",
                violation_error_message=_("A built-in role with this name already exists."),
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def has(self, permission: str) -> bool:
        return bool(getattr(self, Permission(permission).value))


class AccountAdmin(models.Model):
    """Membership of a user in an account with a role (Canvas: AccountUser)."""

    class State(models.TextChoices):
        ACTIVE = "active", _("active")
        DELETED = "deleted", _("deleted")

    user = models.ForeignKey("linking.User", on_delete=models.CASCADE, related_name="admin_roles")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="admins")
    root_account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="+", editable=False
    )
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="memberships")
    workflow_state = models.CharField(max_length=16, choices=State, default=State.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "account", "role"],
                name="account_admin_unique_membership",
                violation_error_message=_("This person already has this role in this account."),
            ),
        ]
        indexes = [models.Index(fields=["user", "root_account"], name="account_admin_user_root")]

    def __str__(self) -> str:
        return f"{self.user} — {self.role} @ {self.account}"


class CourseRoleOverride(models.Model):
    """Turns a course permission on or off for an enrollment type below an account.

    Canvas's RoleOverride for course roles: e.g. let teachers generate
    pairing codes for their students in every course under a sub-account.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="role_overrides")
    enrollment_type = models.CharField(
        max_length=16,
        choices=[
            ("teacher", _("Teacher")),
            ("ta", _("TA")),
            ("designer", _("Designer")),
            ("observer", _("Observer")),
        ],
    )
    permission = models.CharField(
        max_length=64,
        choices=[
            (
                Permission.GENERATE_OBSERVER_PAIRING_CODE,
                Permission.GENERATE_OBSERVER_PAIRING_CODE.label,
            )
        ],
        default=Permission.GENERATE_OBSERVER_PAIRING_CODE,
    )
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "enrollment_type", "permission"],
                name="course_role_override_unique",
                violation_error_message=_(
                    "This permission is already set for this role in this account."
                ),
            ),
        ]

    def __str__(self) -> str:
        state = "on" if self.enabled else "off"
        return f"{self.permission} {state} for {self.enrollment_type} in {self.account}"
