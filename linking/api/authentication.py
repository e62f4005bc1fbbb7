"""API authentication: bearer tokens for clients, the browser session for the browsable API.

A token is only ever read from the ``Authorization`` header. Canvas also
accepts ``access_token`` in the query string or body; this service never
does, because URLs end up in logs and ``access_token`` in ``POST observees``
is the student's token to link with, not the caller's credentials.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from linking.services.scopes import API_SCOPES
from linking.services.tokens import authenticate_access_token

REALM = 'Bearer realm="canvas-lms"'


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed()
        try:
            plaintext = header[1].decode("ascii")
        except UnicodeDecodeError as error:
            raise exceptions.AuthenticationFailed() from error
        token = authenticate_access_token(
            plaintext, root_account=getattr(request, "root_account", None)
        )
        if token is None:
            raise exceptions.AuthenticationFailed()
        return token.user, token

    def authenticate_header(self, request):
        return REALM


class CanvasSessionAuthentication(authentication.SessionAuthentication):
    """The signed-in browser session, with CSRF checks on unsafe methods (DRF's rules)."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user, auth = result
        if not user.is_active:
            return None
        return user, auth


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Describes the bearer token in the OpenAPI schema: a token issued by hand or by OAuth2."""

    target_class = BearerTokenAuthentication
    name = ["bearerAuth", "oauth2"]

    def get_security_requirement(self, auto_schema):
        return [{"bearerAuth": []}, {"oauth2": []}]

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "description": "An access token: `Authorization: Bearer <token>`.",
            },
            {
                "type": "oauth2",
                "description": (
                    "Canvas's OAuth2 flow with a school's developer key (client_id = the key's "
                    "id). Scopes are enforced when the key enforces them."
                ),
                "flows": {
                    "authorizationCode": {
                        "authorizationUrl": "/login/oauth2/auth",
                        "tokenUrl": "/login/oauth2/token",
                        "refreshUrl": "/login/oauth2/token",
                        "scopes": {scope: scope for scope in API_SCOPES},
                    }
                },
            },
        ]


class CanvasSessionScheme(OpenApiAuthenticationExtension):
    target_class = CanvasSessionAuthentication
    name = "cookieAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}
