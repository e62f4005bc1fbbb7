"""Canvas's OAuth2 endpoints: ``/login/oauth2/auth``, ``confirm``, ``accept``, ``deny``, ``token``.

Thin views over ``linking.services.oauth``: they read the parameters,
keep the pending request in the session between sign-in and consent,
and answer in Canvas's shapes (JSON errors for a bad client or redirect
URI, redirects carrying ``error``/``state`` for everything after that).
"""

import base64
import binascii
from urllib.parse import unquote, urlencode

from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from linking.models import AuditSource
from linking.request_context import actor_from_request
from linking.services import oauth
from linking.services.developer_keys import OOB_REDIRECT_URI
from linking.services.scopes import SCOPE_DESCRIPTIONS
from linking.services.tokens import authenticate_access_token, revoke_access_token

from .authentication import REALM

SESSION_KEY = "oauth2"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
NO_SESSION = "Invalid or missing session for oauth"
TRUTHY = {"1", "true", "t", "yes", "on"}


def oauth_error_response(error: oauth.OAuthError) -> JsonResponse:
    response = JsonResponse(
        {"error": error.error, "error_description": error.description},
        status=error.status,
        content_type=JSON_CONTENT_TYPE,
    )
    if error.status == 401:
        response["WWW-Authenticate"] = "Canvas OAuth 2.0"
    response["Cache-Control"] = "no-store"
    return response


def final_redirect(request, redirect_uri: str, params: dict) -> HttpResponseRedirect:
    """Back to the client with ``params`` (Rails's ``to_query``: sorted, empty values dropped).

    The out-of-band URI sends the browser to this site's own auth page,
    where a native app reads the code from the address bar.
    """
    query = urlencode(sorted((k, v) for k, v in params.items() if v not in (None, "")))
    if redirect_uri == OOB_REDIRECT_URI:
        target = reverse("oauth2-auth")
        return HttpResponseRedirect(f"{target}?{query}")
    separator = "&" if "?" in redirect_uri else "?"
    return HttpResponseRedirect(f"{redirect_uri}{separator}{query}")


def _redirect_error(request, pending: dict, error: oauth.OAuthError):
    params = {"error": error.error, "error_description": error.description}
    params["state"] = pending.get("state")
    return final_redirect(request, pending["redirect_uri"], params)


@never_cache
@require_GET
def authorize(request):
    """GET /login/oauth2/auth: check the client, remember the request, sign in, then consent."""
    query = request.GET
    if "code" in query or "error" in query:
        # The out-of-band landing page (Canvas renders a placeholder here).
        return render(
            request, "oauth2/oob.html", {"code": query.get("code"), "error": query.get("error")}
        )
    try:
        key = oauth.find_client(query.get("client_id"))
        oauth.check_redirect_uri(key, query.get("redirect_uri"))
    except oauth.OAuthError as error:
        return oauth_error_response(error)
    scope_text = query.get("scope") if "scope" in query else query.get("scopes")
    pending = {
        "client_id": key.pk,
        "redirect_uri": query.get("redirect_uri"),
        "scopes": oauth.parse_scopes(scope_text),
        "state": query.get("state"),
        "code_challenge": query.get("code_challenge") or "",
    }
    refusal = oauth.authorization_refusal(
        key=key,
        root_account=request.root_account,
        response_type=query.get("response_type"),
        scopes=pending["scopes"],
        code_challenge=query.get("code_challenge"),
        code_challenge_method=query.get("code_challenge_method"),
    )
    if refusal is not None:
        return _redirect_error(request, pending, refusal)
    prompt = query.get("prompt")
    if prompt is not None and prompt != "none":
        return _redirect_error(
            request,
            pending,
            oauth.OAuthError("unsupported_prompt_type", 'prompt must be "none" (or omitted)'),
        )
    if prompt == "none":
        # Every grant here needs the user's consent on a page, so "no
        # interaction" can never produce a code.
        if not request.user.is_authenticated:
            error = oauth.OAuthError(
                "login_required", "prompt=none but there is no current session"
            )
        else:
            error = oauth.OAuthError(
                "interaction_required",
                "prompt=none but a token cannot be granted without user interaction",
            )
        return _redirect_error(request, pending, error)
    force_login = (query.get("force_login") or "").lower() in TRUTHY
    if force_login and request.user.is_authenticated:
        logout(request)
    request.session[SESSION_KEY] = pending
    confirm = reverse("oauth2-confirm")
    if not request.user.is_authenticated:
        return redirect_to_login(confirm)
    return HttpResponseRedirect(confirm)


def _pending(request):
    pending = request.session.get(SESSION_KEY)
    if not isinstance(pending, dict) or not request.user.is_authenticated:
        return None, None
    try:
        key = oauth.find_client(str(pending.get("client_id")), root_account=request.root_account)
    except oauth.OAuthError:
        return None, None
    return pending, key


@never_cache
@require_GET
def confirm(request):
    """The consent page: the app's name and what it may do, as the signed-in user."""
    pending, key = _pending(request)
    if pending is None:
        if not request.user.is_authenticated and SESSION_KEY in request.session:
            return redirect_to_login(reverse("oauth2-confirm"))
        return HttpResponseBadRequest(NO_SESSION, content_type="text/plain; charset=utf-8")
    scopes = [
        {"name": scope, "description": SCOPE_DESCRIPTIONS.get(scope, scope)}
        for scope in pending["scopes"]
        if key.require_scopes
    ]
    return render(
        request,
        "oauth2/confirm.html",
        {"app_name": key.name or "Third-Party Application", "scopes": scopes},
    )


@never_cache
@require_POST
def accept(request):
    """Authorize: a single-use code goes back to the client with ``state``."""
    pending, key = _pending(request)
    if pending is None:
        return HttpResponseBadRequest(NO_SESSION, content_type="text/plain; charset=utf-8")
    del request.session[SESSION_KEY]
    code = oauth.issue_authorization_code(
        key=key,
        user=request.user,
        scopes=pending["scopes"],
        redirect_uri=pending["redirect_uri"],
        code_challenge=pending.get("code_challenge") or "",
    )
    return final_redirect(
        request, pending["redirect_uri"], {"code": code, "state": pending.get("state")}
    )


@never_cache
@require_GET
def deny(request):
    """Cancel: ``error=access_denied`` (no description) and ``state`` go back to the client."""
    pending, _key = _pending(request)
    if pending is None:
        return HttpResponseBadRequest(NO_SESSION, content_type="text/plain; charset=utf-8")
    del request.session[SESSION_KEY]
    return final_redirect(
        request, pending["redirect_uri"], {"error": "access_denied", "state": pending.get("state")}
    )


def _basic_credentials(request) -> tuple[str | None, str | None]:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _sep, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None, None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None, None
    return unquote(client_id), unquote(secret)


def _param(request, name: str) -> str | None:
    value = request.POST.get(name)
    if value is None:
        value = request.GET.get(name)
    return value


@csrf_exempt
@never_cache
@require_http_methods(["POST", "DELETE"])
def token(request):
    """POST: the ``authorization_code`` and ``refresh_token`` grants; DELETE: log the token out."""
    if request.method == "DELETE":
        return _log_out(request)
    try:
        return _grant(request)
    except oauth.OAuthError as error:
        return oauth_error_response(error)


def _grant(request):
    basic_id, basic_secret = _basic_credentials(request)
    client_id = _param(request, "client_id") or basic_id
    client_secret = _param(request, "client_secret") or basic_secret
    grant_type = _param(request, "grant_type")
    if not grant_type and _param(request, "code"):
        grant_type = "authorization_code"
    actor = actor_from_request(request, AuditSource.API)
    if grant_type == "authorization_code":
        code = _param(request, "code")
        code_verifier = _param(request, "code_verifier")
        if client_secret or not code_verifier:
            key = oauth.authenticate_client(
                client_id, client_secret, root_account=request.root_account
            )
            authenticated = True
        else:  # a public client proving itself with PKCE
            key = oauth.find_client(client_id, root_account=request.root_account)
            authenticated = False
        if not code:
            raise oauth.OAuthError(
                "invalid_request",
                "You must provide the code parameter when using the authorization_code grant type",
            )
        issued = oauth.exchange_authorization_code(
            key=key,
            code=code,
            client_authenticated=authenticated,
            code_verifier=code_verifier,
            replace_tokens=(_param(request, "replace_tokens") or "").lower() in TRUTHY,
            actor=actor,
        )
    elif grant_type == "refresh_token":
        key = oauth.authenticate_client(client_id, client_secret, root_account=request.root_account)
        refresh_token = _param(request, "refresh_token")
        if not refresh_token:
            raise oauth.OAuthError(
                "invalid_request",
                "You must provide the refresh_token parameter when using the refresh_token "
                "grant type",
            )
        issued = oauth.refresh_access_token(key=key, refresh_token=refresh_token)
    else:
        raise oauth.OAuthError(
            "unsupported_grant_type", "The grant_type you requested is not currently supported"
        )
    response = JsonResponse(oauth.token_response(issued), content_type=JSON_CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    return response


def _log_out(request):
    """DELETE /login/oauth2/token: revoke the bearer token (``expire_sessions``: sign out too)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _sep, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return JsonResponse(
            {"message": "can't delete OAuth access token when not using an OAuth access token"},
            status=400,
            content_type=JSON_CONTENT_TYPE,
        )
    found = authenticate_access_token(value.strip(), root_account=request.root_account)
    if found is None:
        response = JsonResponse(
            {"errors": [{"message": "Invalid access token."}]},
            status=401,
            content_type=JSON_CONTENT_TYPE,
        )
        response["WWW-Authenticate"] = REALM
        return response
    revoke_access_token(token=found, actor=actor_from_request(request, AuditSource.API))
    if (_param(request, "expire_sessions") or "").lower() in TRUTHY:
        logout(request)
    return HttpResponse(b"{}", content_type=JSON_CONTENT_TYPE)
