"""Developer keys (OAuth2 clients of one school) and their single-use authorization codes."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class DeveloperKey(models.Model):
    """An OAuth2 client registered by a school's staff (Canvas: DeveloperKey).

    Its id is the ``client_id``; only a keyed hash of the secret is stored.
    With ``require_scopes`` every token issued through it is confined to the
    scopes it was granted; turned off, the key's tokens stop working at once.
    """

    class State(models.TextChoices):
        ACTIVE = "active", _("on")
        INACTIVE = "inactive", _("off")

    root_account = models.ForeignKey(
        "linking.Account", on_delete=models.PROTECT, related_name="developer_keys"
    )
    name = models.CharField(max_length=255)
    redirect_uris = models.TextField(
        help_text=_("One redirect URI a line; a request's redirect_uri must equal one of them.")
    )
    scopes = models.JSONField(default=list, blank=True)
    require_scopes = models.BooleanField(
        _("enforce scopes"),
        default=True,
        help_text=_("Tokens may call only the endpoints they were granted."),
    )
    allow_includes = models.BooleanField(
        default=False,
        help_text=_("With enforced scopes, honour include[] parameters (otherwise dropped)."),
    )
    workflow_state = models.CharField(max_length=16, choices=State, default=State.ACTIVE)
    secret_hash = models.CharField(max_length=64, editable=False)
    secret_hint = models.CharField(max_length=8, editable=False)
    created_by = models.ForeignKey(
        "linking.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.workflow_state == self.State.ACTIVE

    def redirect_uri_list(self) -> list[str]:
        return self.redirect_uris.split()


class AuthorizationCode(models.Model):
    """An OAuth2 authorization code: stored hashed, short-lived, exchanged at most once."""

    code_hash = models.CharField(max_length=64, unique=True, editable=False)
    developer_key = models.ForeignKey(
        DeveloperKey, on_delete=models.CASCADE, related_name="codes", db_index=False
    )
    user = models.ForeignKey("linking.User", on_delete=models.CASCADE, related_name="+")
    scopes = models.JSONField(default=list, blank=True)
    redirect_uri = models.TextField()
    code_challenge = models.CharField(max_length=128, blank=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    # The token the exchange created: revoked if the code is ever presented again.
    access_token = models.ForeignKey(
        "linking.AccessToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"code for {self.user_id} via key {self.developer_key_id}"
