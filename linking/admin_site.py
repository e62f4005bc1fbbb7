"""The tenant-aware staff admin site, installed as Django's default admin site.

Kept outside the ``linking.admin`` package: INSTALLED_APPS imports this module
before models are loaded, and the default site is built while that package's
modules register their ModelAdmins. Model-dependent imports are therefore
made inside methods.
"""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.utils.translation import gettext_lazy as _


class ObserversAdminSite(admin.AdminSite):
    """Site superusers see every tenant; a school's staff see their own root account only.

    Entry needs an active staff user who is a superuser or holds an active
    AccountAdmin membership in the root account the request's host serves.
    """

    site_header = _("Observers staff admin")
    site_title = _("Observers admin")
    index_title = _("What would you like to do?")
    index_template = "admin/staff_home.html"

    @property
    def login_form(self):
        from linking.admin.login import StaffLoginForm

        return StaffLoginForm

    def login(self, request, extra_context=None):
        from linking.services import sso
        from linking.services.errors import RateLimited
        from linking.views import rate_limited

        extra_context = {
            **(extra_context or {}),
            "sso_provider": sso.provider_for(getattr(request, "root_account", None)),
        }
        try:
            return super().login(request, extra_context)
        except RateLimited as error:
            return rate_limited(request, error)

    def index(self, request, extra_context=None):
        """The staff home: the tasks staff come for, grouped, then what needs attention."""
        from django.urls import reverse

        from linking.admin.tenancy import admin_tenant
        from linking.models import IdentityProvider, SisBatch
        from linking.services import staff_home

        tenant = admin_tenant(request) if self.has_permission(request) else None
        attention = [
            {"item": item, "url": f"{reverse(item.changelist)}?{item.query}"}
            for item in staff_home.needs_attention(tenant)
        ]
        sis_admin = self._registry.get(SisBatch)
        sso_admin = self._registry.get(IdentityProvider)
        extra_context = {
            **(extra_context or {}),
            "attention": attention,
            "attention_total": sum(entry["item"].count for entry in attention),
            "can_read_sis": bool(sis_admin and sis_admin.has_view_permission(request)),
            "can_import_sis": bool(sis_admin and sis_admin.has_import_permission(request)),
            "can_configure_sso": bool(sso_admin and sso_admin.has_view_permission(request)),
            "school": tenant,
        }
        return super().index(request, extra_context)

    def has_permission(self, request) -> bool:
        from linking.services.permissions import is_account_member

        user = request.user
        if not (user.is_active and user.is_staff):
            return False
        if user.is_superuser:
            return True
        root_account = getattr(request, "root_account", None)
        return root_account is not None and is_account_member(user, root_account)

    def get_app_list(self, request, app_label=None):
        # The sign-in page lists no models: nobody who may not enter is asked about them.
        if not self.has_permission(request):
            return []
        return super().get_app_list(request, app_label)

    def each_context(self, request):
        context = super().each_context(request)
        context["tenant"] = getattr(request, "root_account", None)
        return context


class ObserversAdminConfig(AdminConfig):
    default_site = "linking.admin_site.ObserversAdminSite"
