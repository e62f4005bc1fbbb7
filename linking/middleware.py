"""The tenant (root account) from the request host; a 503 instead of a 500 without a database."""

import logging
import time

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.utils.translation import gettext as _

from .models import Account
from .services.errors import RateLimitStoreUnavailable

logger = logging.getLogger(__name__)

# host -> (expires at, root account or None). Per process; invalidated by time.
_tenant_cache: dict[str, tuple[float, Account | None]] = {}


def root_account_for_host(host: str) -> Account | None:
    """The root account serving ``host``; in development unknown hosts get the default one.

    Cached per process for OBSERVERS_TENANT_CACHE_SECONDS (0 turns the cache
    off) so the hot API paths do not pay a query for it on every request.
    """
    host = host.split(":", 1)[0].strip().lower().rstrip(".")
    ttl = settings.OBSERVERS_TENANT_CACHE_SECONDS
    now = time.monotonic()
    if ttl:
        cached = _tenant_cache.get(host)
        if cached is not None and cached[0] > now:
            return cached[1]
    account = Account.objects.roots().filter(domain=host).first()
    if account is None and settings.OBSERVERS_ALLOW_UNKNOWN_HOSTS:
        default = settings.OBSERVERS_DEFAULT_DOMAIN
        account = Account.objects.roots().filter(domain=default).first() if default else None
        if account is None:
            account = Account.objects.roots().order_by("pk").first()
    if ttl:
        if len(_tenant_cache) > 1000:  # bound memory against random Host headers
            _tenant_cache.clear()
        _tenant_cache[host] = (now + ttl, account)
    return account


def database_unavailable(request) -> HttpResponse:
    """503 with a Canvas error body for the API, a short page for people."""
    if request.path.startswith("/api/"):
        response = JsonResponse(
            {
                "errors": [
                    {
                        "message": "The service is temporarily unavailable.",
                        "error_code": "service_unavailable",
                    }
                ]
            },
            status=503,
        )
    else:
        response = HttpResponse(
            _("The service is temporarily unavailable. Please try again in a minute."),
            status=503,
            content_type="text/plain; charset=utf-8",
        )
    response["Retry-After"] = "30"
    return response


class RootAccountMiddleware:
    """Sets ``request.root_account``; unknown hosts are refused unless development allows them.

    Also turns a lost database connection, or an unreachable rate-limit
    store, anywhere in the view into a 503 (with ``Retry-After``) instead of
    a 500.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(("/health", "/ready", "/metrics", "/static/")):
            request.root_account = None
            return self.get_response(request)
        try:
            request.root_account = root_account_for_host(request.get_host())
        except (OperationalError, InterfaceError):
            logger.exception("database unavailable while resolving the tenant")
            return database_unavailable(request)
        if request.root_account is None:
            return JsonResponse(
                {"errors": [{"message": "No institution is served at this address."}]},
                status=404,
            )
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, (OperationalError, InterfaceError)):
            logger.exception("database unavailable")
            return database_unavailable(request)
        if isinstance(exception, RateLimitStoreUnavailable):
            response = database_unavailable(request)
            # Logged once per outage by the rate limiter; Django's request
            # logger would log every 503 again.
            response._has_been_logged = True
            return response
        return None


class ContentSecurityPolicyMiddleware:
    """Adds the CONTENT_SECURITY_POLICY header (production default: same-origin everything).

    Pages, the admin and the API docs load scripts, styles and images only
    from this site, so an injected script tag cannot run and the pages cannot
    be framed.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = settings.CONTENT_SECURITY_POLICY

    def __call__(self, request):
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response
