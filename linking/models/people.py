"""People: users, their logins (one per root account) and API access tokens."""

import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class UserQuerySet(models.QuerySet):
    def live(self) -> "UserQuerySet":
        return self.exclude(workflow_state=User.State.DELETED)


class UserManager(BaseUserManager.from_queryset(UserQuerySet)):
    use_in_migrations = True

    def create_user(self, name: str, **fields) -> "User":
        user = self.model(name=name, **fields)
        user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, name: str, **fields) -> "User":
        fields.setdefault("is_staff", True)
        fields.setdefault("is_superuser", True)
        return self.create_user(name, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. Passwords live on their Logins, one per root account.

    ``is_superuser`` marks site operators who see every tenant in the admin;
    a school's staff are ``is_staff`` users whose admin rights come from
    AccountAdmin memberships in their root account.
    """

    class State(models.TextChoices):
        REGISTERED = "registered", _("registered")
        PRE_REGISTERED = "pre_registered", _("pre-registered")
        DELETED = "deleted", _("deleted")

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=255)
    sortable_name = models.CharField(max_length=255, blank=True)
    short_name = models.CharField(max_length=255, blank=True)
    email = models.EmailField(max_length=254, blank=True)
    avatar_url = models.CharField(max_length=1024, blank=True)
    pronouns = models.CharField(max_length=64, blank=True)
    locale = models.CharField(max_length=16, blank=True)
    # Set when a parent signs up with an address nobody has confirmed yet;
    # cleared when they open the link e-mailed to it (services.verification).
    email_unverified_since = models.DateTimeField(null=True, blank=True, editable=False)
    birth_date = models.DateField(null=True, blank=True)
    workflow_state = models.CharField(max_length=16, choices=State, default=State.REGISTERED)
    is_staff = models.BooleanField(
        default=False, help_text=_("May sign in to the staff admin (with an admin role).")
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = UserManager()

    USERNAME_FIELD = "uuid"
    REQUIRED_FIELDS = ["name"]

    class Meta:
        ordering = ["sortable_name", "id"]
        indexes = [models.Index(fields=["sortable_name", "id"], name="user_sortable_name_id")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        # Canvas derives the display variants from the full name when absent.
        if not self.sortable_name:
            self.sortable_name = derive_sortable_name(self.name)
        if not self.short_name:
            self.short_name = self.name
        super().save(*args, **kwargs)

    @property
    def is_active(self) -> bool:  # used by Django auth and the admin
        return self.workflow_state != self.State.DELETED

    @property
    def first_name(self) -> str:
        parts = self.sortable_name.split(",", 1)
        return parts[1].strip() if len(parts) == 2 else ""

    @property
    def last_name(self) -> str:
        return self.sortable_name.split(",", 1)[0].strip()


def derive_sortable_name(name: str) -> str:
    """ "Jane Q Doe" -> "Doe, Jane Q" as Canvas does; single words stay as they are."""
    parts = name.strip().split()
    if len(parts) < 2:
        return name.strip()
    return f"{parts[-1]}, {' '.join(parts[:-1])}"


class LoginQuerySet(models.QuerySet):
    def active(self) -> "LoginQuerySet":
        return self.filter(workflow_state=Login.State.ACTIVE)


class Login(models.Model):
    """A credential of a user in one root account (Canvas: Pseudonym)."""

    class State(models.TextChoices):
        ACTIVE = "active", _("active")
        SUSPENDED = "suspended", _("suspended")
        DELETED = "deleted", _("deleted")

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="logins")
    root_account = models.ForeignKey(
        "linking.Account", on_delete=models.PROTECT, related_name="logins"
    )
    unique_id = models.CharField(_("login id"), max_length=255)
    password = models.CharField(max_length=255, blank=True)
    sis_user_id = models.CharField(max_length=255, null=True, blank=True)
    integration_id = models.CharField(max_length=255, null=True, blank=True)
    workflow_state = models.CharField(max_length=16, choices=State, default=State.ACTIVE)
    # OneRoster: the person's role for linking (student, parent, guardian,
    # relative, teacher, ...) and the sourcedIds of their agents, as the SIS
    # last sent them; observation links are derived from these.
    sis_role = models.CharField(max_length=32, blank=True, default="", db_default="")
    sis_agent_ids = models.TextField(blank=True, default="", db_default="")
    last_login_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = LoginQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                Lower("unique_id"),
                "root_account",
                condition=~Q(workflow_state="deleted"),
                name="login_unique_id_ci_per_root",
                violation_error_message=_("This login id is already used at this school."),
            ),
            models.UniqueConstraint(
                fields=["root_account", "sis_user_id"],
                condition=Q(sis_user_id__isnull=False),
                name="login_unique_sis_user_id_per_root",
                violation_error_message=_("This SIS user id is already used at this school."),
            ),
            models.UniqueConstraint(
                fields=["root_account", "integration_id"],
                condition=Q(integration_id__isnull=False),
                name="login_unique_integration_id_per_root",
                violation_error_message=_("This integration id is already used at this school."),
            ),
        ]
        indexes = [models.Index(fields=["user", "root_account"], name="login_user_root")]

    def __str__(self) -> str:
        return self.unique_id

    def set_password(self, raw_password: str | None) -> None:
        from django.contrib.auth.hashers import make_password

        self.password = make_password(raw_password)

    def check_password(self, raw_password: str) -> bool:
        from django.contrib.auth.hashers import check_password

        return check_password(raw_password, self.password)


class AccessTokenQuerySet(models.QuerySet):
    def usable(self, now=None) -> "AccessTokenQuerySet":
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )


class AccessToken(models.Model):
    """A bearer token for the API. Only a keyed hash is stored; the plaintext is shown once."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="access_tokens")
    purpose = models.CharField(max_length=255, blank=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_hint = models.CharField(
        max_length=8, editable=False, help_text=_("Last characters, to tell tokens apart.")
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # OAuth2 tokens belong to a developer key (and its school); tokens staff
    # issue by hand have none.
    developer_key = models.ForeignKey(
        "linking.DeveloperKey",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="access_tokens",
        editable=False,
    )
    scopes = models.JSONField(
        default=list,
        blank=True,
        help_text=_("Endpoints the token may call; empty means every endpoint."),
    )
    refresh_token_hash = models.CharField(
        max_length=64, null=True, blank=True, unique=True, editable=False
    )

    objects = AccessTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"…{self.token_hint} ({self.user})"
