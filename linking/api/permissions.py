"""API permission classes. Per-object rules live in linking.services.permissions."""

from rest_framework import exceptions, status
from rest_framework.permissions import BasePermission

from linking.services.scopes import ALLOWED_SCOPE_INCLUDES, scopes_allow

INSUFFICIENT_SCOPES = "Insufficient scopes on access token."


class InsufficientScopes(exceptions.APIException):
    """Canvas's AccessTokenScopeError: 401 without ``WWW-Authenticate``."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = INSUFFICIENT_SCOPES
    default_code = "insufficient_scopes"


class IsAuthenticatedCanvas(BasePermission):
    """A signed-in caller; anyone else gets Canvas's 401 "user authorization required"."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user is not None and getattr(user, "is_authenticated", False))


class TokenScopes(BasePermission):
    """A token from a key that enforces scopes may call only the endpoints it was granted.

    Canvas's ``validate_scopes``: the request's method and path must match one
    of the token's scopes, else 401 "Insufficient scopes on access token.";
    a key that does not allow includes has every ``include[]`` value but
    ``uuid`` dropped, silently. Tokens without a policy (the browser session,
    unscoped keys, hand-issued tokens without scopes) pass.
    """

    def has_permission(self, request, view) -> bool:
        policy = getattr(request.auth, "scope_policy", None)
        if policy is None or not policy.enforced:
            return True
        if not scopes_allow(policy.scopes, request.method, request.path):
            raise InsufficientScopes()
        if not policy.allow_includes:
            request.allowed_includes = ALLOWED_SCOPE_INCLUDES
        return True
