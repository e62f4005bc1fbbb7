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
    index_title = _("Observer links, pairing codes and people")

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
