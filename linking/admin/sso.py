"""Admin: a school's single sign-on provider. Saving goes through ``services.sso``."""

from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from ..models import Account, AuditSource, IdentityProvider
from ..request_context import actor_from_request
from ..services import sso as sso_services
from .tenancy import TenantScopedAdmin, admin_tenant


class IdentityProviderForm(forms.ModelForm):
    issuer = forms.URLField(
        max_length=500,
        assume_scheme="https",
        help_text=IdentityProvider._meta.get_field("issuer").help_text,
    )
    client_secret = forms.CharField(
        label=_("Client secret"),
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("Stored encrypted. Leave empty to keep the secret already saved."),
    )

    class Meta:
        model = IdentityProvider
        fields = [
            "root_account",
            "name",
            "issuer",
            "client_id",
            "client_secret",
            "match_by",
            "claim",
            "scopes",
            "enabled",
            "required_for_staff",
            "required_for_students",
        ]

    def clean(self):
        data = super().clean()
        if not self.instance.pk and not data.get("client_secret"):
            self.add_error("client_secret", _("The client secret is required."))
        if data.get("issuer"):
            try:
                sso_services.check_issuer(data["issuer"])
            except sso_services.InvalidProviderSettings as error:
                self.add_error("issuer", error.message)
        if "scopes" in data and "openid" not in data["scopes"].split():
            self.add_error("scopes", _('The scopes must include "openid".'))
        return data


@admin.register(IdentityProvider)
class IdentityProviderAdmin(TenantScopedAdmin):
    """One provider per school; its secret is write-only."""

    form = IdentityProviderForm
    list_display = ["name", "root_account", "issuer", "enabled", "required_for_staff"]
    list_filter = ["enabled"]
    readonly_fields = ["created_at", "updated_at"]
    allow_delete = True

    # Whoever controls the provider can sign in as anyone of the school.
    def _may_configure(self, request) -> bool:
        return sso_services.may_configure(request.user, admin_tenant(request))

    def has_module_permission(self, request):
        return self._may_configure(request)

    def has_view_permission(self, request, obj=None):
        return self._may_configure(request)

    def has_add_permission(self, request):
        return self._may_configure(request)

    def has_change_permission(self, request, obj=None):
        return self._may_configure(request)

    def has_delete_permission(self, request, obj=None):
        return self._may_configure(request) and super().has_delete_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "root_account":
            tenant = admin_tenant(request)
            roots = Account.objects.roots()
            kwargs["queryset"] = roots if tenant is None else roots.filter(pk=tenant.pk)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        saved = sso_services.save_identity_provider(
            root_account=data["root_account"],
            name=data["name"],
            issuer=data["issuer"],
            client_id=data["client_id"],
            client_secret=data.get("client_secret") or None,
            match_by=data["match_by"],
            claim=data["claim"],
            scopes=data["scopes"],
            enabled=data["enabled"],
            required_for_staff=data["required_for_staff"],
            required_for_students=data["required_for_students"],
            actor=actor_from_request(request, AuditSource.ADMIN),
        )
        obj.pk = saved.pk
        obj.client_secret_encrypted = saved.client_secret_encrypted
