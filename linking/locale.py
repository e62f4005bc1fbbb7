"""Each page in the person's language and the school's time zone; the language switch.

Django's LocaleMiddleware picks a language from the switch's cookie or the
browser; this middleware then prefers a signed-in person's own choice
(User.locale, set by the switch or by the SIS), so the choice follows them
to another device. Times on pages are shown in the school's time zone
(Account.time_zone). The API keeps Canvas's wire format: its paths are left
as LocaleMiddleware and UTC have them.
"""

from django.conf import settings
from django.http import HttpResponseNotAllowed
from django.utils import timezone, translation
from django.views.i18n import set_language

from .services import accounts
from .timezones import school_time_zone

_API_PREFIXES = ("/api/", "/login/oauth2/", "/health", "/static/")


def supported_language(code: str | None) -> str | None:
    """The site language for a locale like "es-MX", or None when the site has none."""
    if not code:
        return None
    try:
        return translation.get_supported_language_variant(code.split("-")[0].lower())
    except LookupError:
        return None


class PersonLocaleMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(_API_PREFIXES):
            return self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            preferred = supported_language(user.locale)
            if preferred and preferred != translation.get_language():
                translation.activate(preferred)
                request.LANGUAGE_CODE = preferred
        root_account = getattr(request, "root_account", None)
        with timezone.override(school_time_zone(root_account)):
            return self.get_response(request)


def offer_language(request, language: str | None) -> None:
    """Show this page in ``language`` to a visitor who has not chosen one (an invitation's).

    A visitor's own choice wins: the switch's cookie, or a signed-in
    person's saved language; only the browser's Accept-Language gives way.
    """
    language = supported_language(language)
    if language is None or settings.LANGUAGE_COOKIE_NAME in request.COOKIES:
        return
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and supported_language(user.locale):
        return
    translation.activate(language)
    request.LANGUAGE_CODE = language


def switch_language(request):
    """POST language=es: Django's set_language (cookie, safe ``next``), kept for the person."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    response = set_language(request)
    chosen = supported_language(request.POST.get("language"))
    user = getattr(request, "user", None)
    if chosen and user is not None and user.is_authenticated:
        accounts.set_locale(user=user, language=chosen)
    if chosen:
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            chosen,
            max_age=365 * 24 * 3600,
            samesite="Lax",
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=True,
        )
    return response
