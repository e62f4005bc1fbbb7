"""Admin: restrictions (court and no-contact orders) and protected students.

Forms check the rules in ``clean()`` with the same service functions the
save then calls (services.rules, services.safeguarding), so a refusal is a form error, never a 500.
"""

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..models import Account, AuditSource, ObservationRestriction, Permission, ProtectedStudent
from ..request_context import actor_from_request
from ..services import rules, safeguarding
from ..services.errors import LinkingError
from ..services.permissions import has_account_permission
from .tenancy import PersonSearchMixin, TenantScopedAdmin, admin_tenant


class ObserverManagersOnly:
    """Only staff holding ``manage_user_observers`` on the school (or site operators).

    A restriction's reason and a protected student's note are the most
    sensitive rows of the service: other staff (a role for SIS uploads,
    say) neither see nor change them.
    """

    def _may_manage(self, request) -> bool:
        if request.user.is_superuser:
            return True
        root_account = getattr(request, "root_account", None)
        return root_account is not None and has_account_permission(
            request.user, root_account, Permission.MANAGE_USER_OBSERVERS
        )

    def has_module_permission(self, request):
        return self._may_manage(request) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return self._may_manage(request) and super().has_view_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._may_manage(request) and super().has_change_permission(request, obj)

    def has_add_permission(self, request):
        return self._may_manage(request) and super().has_add_permission(request)

    def has_delete_permission(self, request, obj=None):
        return self._may_manage(request) and super().has_delete_permission(request, obj)


def _root_account_field(admin_obj, db_field, request, kwargs):
    root_account = admin_tenant(request)
    roots = Account.objects.roots()
    kwargs["queryset"] = roots if root_account is None else roots.filter(pk=root_account.pk)
    kwargs["initial"] = getattr(request, "root_account", None)
    return kwargs


class RestrictionForm(forms.ModelForm):
    class Meta:
        model = ObservationRestriction
        fields = [
            "root_account",
            "student",
            "observer",
            "observer_email",
            "reason",
            "document_reference",
            "ends_at",
        ]

    def clean(self):
        data = super().clean()
        try:
            rules.check_restriction(
                student=data.get("student"),
                observer=data.get("observer"),
                observer_email=data.get("observer_email", ""),
                reason=data.get("reason", ""),
            )
        except LinkingError as error:
            raise forms.ValidationError(error.message, code=error.code) from error
        return data


@admin.register(ObservationRestriction)
class ObservationRestrictionAdmin(ObserverManagersOnly, PersonSearchMixin, TenantScopedAdmin):
    """Record a restriction (its links end at once); lift it with the action. Never edited."""

    form = RestrictionForm
    list_display = [
        "student",
        "observer",
        "observer_email",
        "document_reference",
        "created_at",
        "ends_at",
        "lifted_at",
        "recorded_by",
    ]
    list_select_related = ["student", "observer", "recorded_by"]
    list_filter = ["created_at", "lifted_at"]
    tenant_filter = "root_account"
    search_fields = ["student__name", "observer__name", "observer_email"]
    person_paths = ("student", "observer")
    autocomplete_fields = ["student", "observer"]
    actions = ["lift_restrictions"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [*RestrictionForm.Meta.fields, "recorded_by", "created_at", "lifted_at", "lifted_by"]

    def get_fields(self, request, obj=None):
        fields = list(RestrictionForm.Meta.fields)
        return fields if obj is None else [*fields, "recorded_by", "created_at", "lifted_at"]

    def has_change_permission(self, request, obj=None):
        # Viewing is changing in Django's terms; the detail page is read-only.
        return obj is None and super().has_change_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "root_account":
            kwargs = _root_account_field(self, db_field, request, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        restriction, ended = safeguarding.record_restriction(
            root_account=data["root_account"],
            student=data["student"],
            observer=data.get("observer"),
            observer_email=data.get("observer_email", ""),
            reason=data["reason"],
            document_reference=data.get("document_reference", ""),
            ends_at=data.get("ends_at"),
            actor=actor_from_request(request, AuditSource.ADMIN),
        )
        obj.pk = restriction.pk
        obj._state.adding = False
        if ended:
            self.message_user(
                request,
                ngettext("It ended %d link.", "It ended %d links.", ended) % ended,
                messages.WARNING,
            )

    @admin.action(description=_("Lift the selected restrictions"))
    def lift_restrictions(self, request, queryset):
        actor = actor_from_request(request, AuditSource.ADMIN)
        count = sum(
            safeguarding.lift_restriction(restriction=restriction, actor=actor)
            for restriction in queryset.select_related("root_account", "student", "observer")
        )
        self.message_user(
            request, ngettext("Lifted %d restriction.", "Lifted %d restrictions.", count) % count
        )


@admin.register(ProtectedStudent)
class ProtectedStudentAdmin(ObserverManagersOnly, PersonSearchMixin, TenantScopedAdmin):
    """Protect a student (their codes are revoked); delete the row to end the protection."""

    list_display = ["student", "root_account", "created_at", "recorded_by"]
    list_select_related = ["student", "root_account", "recorded_by"]
    tenant_filter = "root_account"
    search_fields = ["student__name"]
    person_paths = ("student",)
    autocomplete_fields = ["student"]
    fields = ["root_account", "student", "note"]
    allow_delete = True

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "root_account":
            kwargs = _root_account_field(self, db_field, request, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        protection, _created = safeguarding.protect_student(
            student=obj.student,
            root_account=obj.root_account,
            note=obj.note,
            actor=actor_from_request(request, AuditSource.ADMIN),
        )
        obj.pk = protection.pk
        obj._state.adding = False

    def delete_model(self, request, obj):
        safeguarding.unprotect_student(
            protection=obj, actor=actor_from_request(request, AuditSource.ADMIN)
        )

    def delete_queryset(self, request, queryset):
        for protection in queryset.select_related("root_account", "student"):
            self.delete_model(request, protection)
