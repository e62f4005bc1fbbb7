"""Choosing the tenant (root account) from the request's host name."""

from django.conf import settings
from django.http import JsonResponse

from .models import Account

_CACHE_ATTR = "_observers_root_accounts"


def root_account_for_host(host: str) -> Account | None:
    host = host.split(":", 1)[0].strip().lower().rstrip(".")
    account = Account.objects.roots().filter(domain=host).first()
    if account is None and settings.OBSERVERS_ALLOW_UNKNOWN_HOSTS:
        default = settings.OBSERVERS_DEFAULT_DOMAIN
        account = Account.objects.roots().filter(domain=default).first() if default else None
        if account is None:
            account = Account.objects.roots().order_by("pk").first()
    return account


class RootAccountMiddleware:
    """Sets ``request.root_account``; unknown hosts are refused unless development allows them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(("/health", "/static/")):
            request.root_account = None
            return self.get_response(request)
        request.root_account = root_account_for_host(request.get_host())
        if request.root_account is None:
            return JsonResponse(
                {"errors": [{"message": "No institution is served at this address."}]},
                status=404,
            )
        return self.get_response(request)
