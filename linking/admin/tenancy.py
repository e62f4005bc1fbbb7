"""Tenant isolation for every staff admin page, written once.

A school's staff act in the root account their request's host serves
(``request.root_account``) and see only its rows; site superusers see all.
Every ModelAdmin and inline mixes ``TenantScopedMixin`` in and says how its
model reaches a root account (``tenant_lookup`` or ``scope_queryset``). The
mixin scopes list and detail querysets, the choices of foreign-key fields
(through the related model's own admin, so autocomplete is scoped too) and
object permissions; an object outside the tenant answers 404.
"""

from django.contrib import admin
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import Http404

from ..models import Account, Enrollment, Login, User


def admin_tenant(request) -> Account | None:
    """The root account a staff request is confined to; None for a site superuser (all)."""
    if request.user.is_superuser:
        return None
    root_account = getattr(request, "root_account", None)
    if root_account is None:  # pragma: no cover - the site refuses entry without one
        raise Http404
    return root_account


def tenant_users(root_account: Account):
    """Users with a login or an enrollment in the root account."""
    return User.objects.filter(
        Q(pk__in=Login.objects.filter(root_account=root_account).values("user_id"))
        | Q(pk__in=Enrollment.objects.filter(root_account=root_account).values("user_id"))
    )


class SafeAutocompleteSelect(AutocompleteSelect):
    """Django's autocomplete widget, minus its 500 when a posted id is not an id at all.

    Re-rendering a form after a bad value (``observer=abc``) would make the
    stock widget look the value up and crash; such values are simply not shown.
    """

    def optgroups(self, name, value, attr=None):
        pk_field = self.field.remote_field.model._meta.pk
        valid = []
        for item in value:
            try:
                pk_field.to_python(item)
            except ValidationError:
                continue
            valid.append(item)
        return super().optgroups(name, valid, attr)


def people_matching(term: str, root_account: Account | None):
    """Users whose name or e-mail contains ``term``, or whose login id or SIS id in the
    tenant does (in any root account for a site superuser).

    Logins of other schools are never searched for a school's staff, so a search
    cannot reveal what someone is called elsewhere.
    """
    logins = Login.objects.filter(
        Q(unique_id__icontains=term) | Q(sis_user_id__icontains=term)
    ).exclude(workflow_state=Login.State.DELETED)
    if root_account is not None:
        logins = logins.filter(root_account=root_account)
    return User.objects.filter(
        Q(name__icontains=term)
        | Q(sortable_name__icontains=term)
        | Q(email__icontains=term)
        | Q(pk__in=logins.values("user_id"))
    )


class PersonSearchMixin:
    """Search by a person's name, e-mail, login id or SIS id through ``person_paths``."""

    person_paths: tuple[str, ...] = ("pk",)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        people = people_matching(term, admin_tenant(request)).values("pk")
        condition = Q()
        for path in self.person_paths:
            condition |= Q(**{f"{path}__in": people})
        return queryset.filter(condition), False


class TenantScopedMixin:
    """Confines a ModelAdmin or inline to the request's tenant. Hard delete is off by default."""

    tenant_lookup: str | None = "root_account"
    # A list filter only site superusers get (they are the ones who see several tenants).
    tenant_filter: str | None = None
    allow_delete = False

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        if self.tenant_filter and request.user.is_superuser:
            filters.insert(0, self.tenant_filter)
        return filters

    def scope_queryset(self, queryset, root_account: Account):
        return queryset.filter(**{self.tenant_lookup: root_account})

    def scoped(self, request, queryset):
        root_account = admin_tenant(request)
        return queryset if root_account is None else self.scope_queryset(queryset, root_account)

    def get_queryset(self, request):
        return self.scoped(request, super().get_queryset(request))

    def get_field_queryset(self, db, db_field, request):
        queryset = super().get_field_queryset(db, db_field, request)
        related_model = db_field.remote_field.model
        if queryset is None:
            queryset = related_model._default_manager.using(db).all()
        related_admin = self.admin_site._registry.get(related_model)
        if isinstance(related_admin, TenantScopedMixin):
            return related_admin.scoped(request, queryset)
        if admin_tenant(request) is not None:
            # A model without a tenant-aware admin offers no choices to a school's staff.
            return queryset.none()
        return queryset

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name in self.get_autocomplete_fields(request):
            kwargs.setdefault(
                "widget",
                SafeAutocompleteSelect(db_field, self.admin_site, using=kwargs.get("using")),
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            # Another tenant's row (or none at all): the same answer either way.
            raise Http404
        return obj

    def has_delete_permission(self, request, obj=None):
        return self.allow_delete and super().has_delete_permission(request, obj)


class TenantScopedAdmin(TenantScopedMixin, admin.ModelAdmin):
    """A ModelAdmin confined to the request's tenant."""


class TenantScopedTabularInline(TenantScopedMixin, admin.TabularInline):
    """An inline confined to the request's tenant."""


class ReadOnlyTabularInline(TenantScopedTabularInline):
    """An inline that only lists rows (no add, change or delete)."""

    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False
