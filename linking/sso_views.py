"""Single sign-on pages: off to the school's provider, and back.

Each view finds the provider of the request's own root account, hands the
protocol to Authlib (``services.sso.oidc_client``) and the matching to the
authentication backend (``services.sso.sign_in``). Anything the provider or
the network gets wrong becomes a page that says so, never a 500.
"""

import logging

import requests
from authlib.integrations.base_client.errors import OAuthError
from django.contrib.auth import authenticate
from django.contrib.auth import login as auth_login
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET
from joserfc.errors import JoseError

from .models import AuditSource
from .request_context import actor_from_request
from .services import sso
from .services.secret_box import SecretUnreadable

logger = logging.getLogger(__name__)

NEXT_KEY = "sso.next"
BACKEND = "linking.auth_backends.SchoolIdentityProviderBackend"
# What a provider, the network or a forged callback can make the protocol raise.
PROTOCOL_ERRORS = (
    OAuthError,
    JoseError,
    requests.RequestException,
    SecretUnreadable,
    ValueError,
    KeyError,
)


def _page(request, title: str, message: str, status: int):
    return render(
        request,
        "linking/sso_problem.html",
        {"title": title, "message": message, "login_url": reverse("linking:login")},
        status=status,
    )


def _no_provider(request):
    return _page(
        request,
        _("Single sign-on is not set up"),
        _("This school does not sign people in through another service. Use your password."),
        404,
    )


def _failed(request, provider, error: Exception):
    logger.warning("single sign-on with %s failed: %r", provider.issuer, error)
    return _page(
        request,
        _("Sign-in with %(provider)s did not complete") % {"provider": provider.name},
        _(
            "%(provider)s did not confirm who you are, or could not be reached. "
            "Try again; if it keeps happening, tell the school office."
        )
        % {"provider": provider.name},
        502,
    )


def _safe_next(request, value: str | None) -> str:
    if value and url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return value
    return reverse("linking:home")


@require_GET
def start(request):
    """Sends the browser to the school's provider with state, nonce and a PKCE challenge."""
    provider = sso.provider_for(request.root_account)
    if provider is None:
        return _no_provider(request)
    request.session[NEXT_KEY] = _safe_next(request, request.GET.get("next"))
    client = sso.oidc_client(provider) if provider.client_secret_encrypted else None
    callback_url = request.build_absolute_uri(reverse("linking:sso_callback"))
    try:
        if client is None:
            raise SecretUnreadable()
        response = client.authorize_redirect(request, callback_url)
    except PROTOCOL_ERRORS as error:
        return _failed(request, provider, error)
    sso.remember_metadata(provider, client)
    return response


@require_GET
def callback(request):
    """Exchanges the code, verifies the ID token, signs in the matching person of this school."""
    provider = sso.provider_for(request.root_account)
    if provider is None:
        return _no_provider(request)
    try:
        client = sso.oidc_client(provider)
        token = client.authorize_access_token(request)
        claims = dict(token.get("userinfo") or {})
        if not claims:
            raise OAuthError(description="the provider sent no ID token")
        if provider.claim not in claims and client.server_metadata.get("userinfo_endpoint"):
            extra = client.userinfo(token=token)
            if extra.get("sub") == claims.get("sub"):
                claims = {**extra, **claims}
    except PROTOCOL_ERRORS as error:
        return _failed(request, provider, error)
    sso.remember_metadata(provider, client)
    try:
        user = authenticate(
            request,
            sso_claims=claims,
            sso_provider=provider,
            actor=actor_from_request(request, AuditSource.PORTAL),
        )
    except sso.NoMatchingLogin:
        user = None
    if user is None:
        return _page(
            request,
            _("No account here for you yet"),
            _(
                "%(provider)s confirmed who you are, but %(school)s has no account that "
                "matches it. Accounts come from the school's records: ask the school "
                "office to check yours. Parents and guardians sign in with their password."
            )
            % {"provider": provider.name, "school": request.root_account.name},
            403,
        )
    auth_login(request, user, backend=BACKEND)
    return redirect(_safe_next(request, request.session.pop(NEXT_KEY, None)))
