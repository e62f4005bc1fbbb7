"""Signing in with a login of the current root account."""

from django.contrib.auth.backends import BaseBackend

from .models import User
from .request_context import client_ip
from .services import credentials, sso

# Where the sign-in forms find the tries left after a failed sign-in.
TRIES_LEFT_ATTRIBUTE = "sign_in_tries_left"
# Where they find the provider a right password was refused for (sso.SsoRequired).
SSO_REQUIRED_ATTRIBUTE = "sign_in_sso_required"


class LoginBackend(BaseBackend):
    """Authenticates ``username`` + ``password`` against the logins of the request's root account.

    The same login id may exist in two schools with two passwords; only the
    school whose host name the request came to is consulted. Every try
    counts against the login id and the client address
    (``services.credentials.sign_in``); over a limit it raises RateLimited,
    which the sign-in views answer with 429.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        root_account = getattr(request, "root_account", None) if request is not None else None
        if root_account is None or not username or not password:
            return None
        try:
            user, tries_left = credentials.sign_in(
                root_account=root_account,
                unique_id=username,
                password=password,
                ip_address=client_ip(request),
            )
        except sso.SsoRequired as refused:
            setattr(request, SSO_REQUIRED_ATTRIBUTE, refused.provider)
            return None
        setattr(request, TRIES_LEFT_ATTRIBUTE, tries_left)
        return user

    def get_user(self, user_id):
        user = User.objects.live().filter(pk=user_id).first()
        return user

    # Model permissions for the staff admin: site superusers get them from
    # PermissionsMixin; a school's staff get them here, and the admin site
    # itself confines them to their own root account's rows.
    def has_perm(self, user_obj, perm, obj=None):
        return bool(user_obj.is_active and user_obj.is_staff)

    def has_module_perms(self, user_obj, app_label):
        return bool(user_obj.is_active and user_obj.is_staff and app_label == "linking")


class SchoolIdentityProviderBackend(LoginBackend):
    """Signs in the person a school's OpenID Connect provider vouched for (``services.sso``).

    Called by the single sign-on callback with the verified ID token claims;
    the provider must be the one of the request's own root account. Password
    sign-ins pass it by (no ``sso_claims``).
    """

    def authenticate(self, request, sso_claims=None, sso_provider=None, actor=None, **kwargs):
        if request is None or sso_claims is None or sso_provider is None:
            return None
        root_account = getattr(request, "root_account", None)
        if root_account is None or sso_provider.root_account_id != root_account.pk:
            return None
        return sso.sign_in(provider=sso_provider, claims=sso_claims, actor=actor)
