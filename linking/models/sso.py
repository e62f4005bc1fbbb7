"""Single sign-on: the OpenID Connect provider a root account signs its people in with."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class SsoMatch(models.TextChoices):
    """Which login field the provider's claim is compared with."""

    LOGIN_ID = "login_id", _("login id (case does not matter)")
    SIS_USER_ID = "sis_user_id", _("SIS user id")


class IdentityProvider(models.Model):
    """A school's OpenID Connect provider (Google Workspace, Entra ID, ClassLink, Clever, ...).

    Only people who already have an active login in the school can sign in
    through it: the claim named in ``claim`` is matched against the login id
    or the SIS user id of that school's logins, and nobody is created. The
    client secret is kept encrypted (``linking.services.secret_box``), never
    in plaintext, since it has to be sent to the provider.
    """

    root_account = models.OneToOneField(
        "linking.Account",
        on_delete=models.CASCADE,
        related_name="identity_provider",
        limit_choices_to={"parent__isnull": True},
    )
    name = models.CharField(
        max_length=100,
        help_text=_('Shown on the sign-in button: "Sign in with <name>".'),
    )
    issuer = models.URLField(
        max_length=500,
        help_text=_(
            "The provider's issuer URL; its discovery document is read from "
            "<issuer>/.well-known/openid-configuration."
        ),
    )
    client_id = models.CharField(max_length=255)
    client_secret_encrypted = models.TextField(editable=False)
    match_by = models.CharField(max_length=16, choices=SsoMatch, default=SsoMatch.LOGIN_ID)
    claim = models.CharField(
        max_length=100,
        default="email",
        help_text=_(
            "The ID token claim holding the login id or SIS id, e.g. email, "
            "preferred_username, upn or employee_id."
        ),
    )
    scopes = models.CharField(max_length=255, default="openid email profile")
    enabled = models.BooleanField(default=True)
    required_for_staff = models.BooleanField(
        default=False,
        help_text=_("Staff cannot sign in with a password; they use the school's provider."),
    )
    required_for_students = models.BooleanField(
        default=False,
        help_text=_("Students cannot sign in with a password; they use the school's provider."),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("single sign-on provider")
        verbose_name_plural = _("single sign-on providers")

    def __str__(self) -> str:
        return self.name

    @property
    def metadata_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"
