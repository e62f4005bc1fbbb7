"""Signing in with a login of the current root account."""

from django.contrib.auth.backends import BaseBackend
from django.contrib.auth.hashers import make_password
from django.db.models.functions import Lower
from django.utils import timezone

from .models import Login, User

_DUMMY_HASH = make_password("observers-dummy-password")


class LoginBackend(BaseBackend):
    """Authenticates ``username`` + ``password`` against the logins of the request's root account.

    The same login id may exist in two schools with two passwords; only the
    school whose host name the request came to is consulted.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        root_account = getattr(request, "root_account", None) if request is not None else None
        if root_account is None or not username or not password:
            return None
        login = (
            Login.objects.active()
            .annotate(uid=Lower("unique_id"))
            .filter(root_account=root_account, uid=username.strip().lower())
            .select_related("user")
            .first()
        )
        if login is None or not login.password:
            Login(password=_DUMMY_HASH).check_password(password)
            return None
        if not login.check_password(password) or not login.user.is_active:
            return None
        Login.objects.filter(pk=login.pk).update(last_login_at=timezone.now())
        return login.user

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
