"""Developer keys: a school's staff register OAuth2 apps, choose their scopes, turn them on or off.

Every change goes through ``services.developer_keys``; the form runs the
service's own checks in ``clean()`` so a bad redirect URI or scope is a
form error, never a failure after the admin has logged success. The
secret is shown once, on the page that follows creation.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..models import AuditSource, DeveloperKey
from ..request_context import actor_from_request
from ..services import developer_keys as key_services
from ..services.scopes import SCOPE_DESCRIPTIONS
from .tenancy import TenantScopedAdmin, admin_tenant

SCOPE_CHOICES = [(scope, f"{scope} — {text}") for scope, text in SCOPE_DESCRIPTIONS.items()]


class DeveloperKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=SCOPE_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The endpoints tokens of this key may call when scopes are enforced."),
    )

    class Meta:
        model = DeveloperKey
        fields = [
            "name",
            "redirect_uris",
            "scopes",
            "require_scopes",
            "allow_includes",
            "workflow_state",
        ]
        widgets = {"redirect_uris": forms.Textarea(attrs={"rows": 3, "cols": 80})}

    def clean_redirect_uris(self):
        try:
            return key_services.clean_redirect_uris(self.cleaned_data.get("redirect_uris", ""))
        except key_services.InvalidDeveloperKey as error:
            raise forms.ValidationError(error.message, code=error.code) from error

    def clean(self):
        cleaned = super().clean()
        try:
            cleaned["scopes"] = key_services.clean_scopes(cleaned.get("scopes") or [])
        except key_services.InvalidDeveloperKey as error:
            self.add_error("scopes", error.message)
            return cleaned
        if cleaned.get("require_scopes") and not cleaned["scopes"]:
            self.add_error("scopes", _("A key that enforces scopes needs at least one."))
        return cleaned


class NewDeveloperKeyForm(DeveloperKeyForm):
    class Meta(DeveloperKeyForm.Meta):
        fields = ["name", "redirect_uris", "scopes", "require_scopes", "allow_includes"]


@admin.register(DeveloperKey)
class DeveloperKeyAdmin(TenantScopedAdmin):
    form = DeveloperKeyForm
    list_display = [
        "name",
        "client_id",
        "root_account",
        "workflow_state",
        "require_scopes",
        "allow_includes",
        "created_at",
    ]
    list_filter = ["workflow_state", "require_scopes"]
    search_fields = ["name"]
    readonly_fields = ["client_id", "root_account", "secret_hint", "created_by", "created_at"]
    tenant_filter = "root_account"
    actions = ["turn_on", "turn_off"]

    @admin.display(description=_("client_id"), ordering="pk")
    def client_id(self, obj):
        return obj.pk

    def get_fields(self, request, obj=None):
        return ["client_id", "root_account", "secret_hint", *DeveloperKeyForm.Meta.fields]

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        revoked = key_services.update_developer_key(
            key=obj,
            name=data["name"],
            redirect_uris=data["redirect_uris"],
            scopes=data["scopes"],
            require_scopes=data["require_scopes"],
            allow_includes=data["allow_includes"],
            workflow_state=data["workflow_state"],
            actor=actor_from_request(request, AuditSource.ADMIN),
        )
        if revoked:
            self.message_user(
                request,
                ngettext(
                    "%d token of this key was revoked (scopes were taken away).",
                    "%d tokens of this key were revoked (scopes were taken away).",
                    revoked,
                )
                % revoked,
            )

    def add_view(self, request, form_url="", extra_context=None):
        """Create through the service; client_id and secret are shown on this response only."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        root_account = admin_tenant(request) or request.root_account
        form = NewDeveloperKeyForm(request.POST or None, initial={"require_scopes": True})
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Add a developer key for %(school)s") % {"school": root_account.name},
            "form": form,
            "media": self.media + form.media,
        }
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            key, secret = key_services.create_developer_key(
                root_account=root_account,
                name=data["name"],
                redirect_uris=data["redirect_uris"],
                scopes=data["scopes"],
                require_scopes=data["require_scopes"],
                allow_includes=data["allow_includes"],
                actor=actor_from_request(request, AuditSource.ADMIN),
            )
            context.update({"key": key, "secret": secret, "title": _("Developer key created")})
            response = TemplateResponse(request, "admin/linking/developerkey/created.html", context)
            response["Cache-Control"] = "no-store"
            return response
        return TemplateResponse(request, "admin/linking/developerkey/add.html", context)

    def _set_state(self, request, queryset, state):
        actor = actor_from_request(request, AuditSource.ADMIN)
        count = 0
        for key in queryset:
            if key.workflow_state == state:
                continue
            key_services.update_developer_key(
                key=key,
                name=key.name,
                redirect_uris=key.redirect_uris,
                scopes=key.scopes,
                require_scopes=key.require_scopes,
                allow_includes=key.allow_includes,
                workflow_state=state,
                actor=actor,
            )
            count += 1
        return count

    @admin.action(description=_("Turn the selected keys on"))
    def turn_on(self, request, queryset):
        count = self._set_state(request, queryset, DeveloperKey.State.ACTIVE)
        self.message_user(
            request, ngettext("Turned %d key on.", "Turned %d keys on.", count) % count
        )

    @admin.action(description=_("Turn the selected keys off (their tokens stop at once)"))
    def turn_off(self, request, queryset):
        count = self._set_state(request, queryset, DeveloperKey.State.INACTIVE)
        self.message_user(
            request, ngettext("Turned %d key off.", "Turned %d keys off.", count) % count
        )
