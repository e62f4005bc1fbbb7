"""The OAuth2 endpoints in the OpenAPI schema.

They are plain Django views (their wire format is Canvas's OAuth2, not the
API's), so drf-spectacular does not see them; this post-processing hook adds
their description, next to the ``oauth2`` security scheme that names them.
"""

_OAUTH_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
    "required": ["error", "error_description"],
}
_TOKEN = {
    "type": "object",
    "properties": {
        "access_token": {"type": "string"},
        "token_type": {"type": "string", "enum": ["Bearer"]},
        "user": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "global_id": {"type": "string"},
                "effective_locale": {"type": "string"},
            },
        },
        "canvas_region": {"type": "string"},
        "refresh_token": {
            "type": "string",
            "description": "Only when a token is created (never on refresh).",
        },
        "expires_in": {"type": "integer", "description": "Seconds (3600)."},
    },
    "required": ["access_token", "token_type", "user"],
}


def _query(name: str, description: str, required: bool = False) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": {"type": "string"},
        "description": description,
    }


OAUTH_PATHS = {
    "/login/oauth2/auth": {
        "get": {
            "operationId": "oauth2_authorize",
            "summary": "Start the OAuth2 flow: sign in on the school's page, then consent",
            "tags": ["oauth2"],
            "security": [],
            "parameters": [
                _query("client_id", "The developer key's id.", required=True),
                _query("response_type", "`code`.", required=True),
                _query("redirect_uri", "One of the key's redirect URIs, exactly.", required=True),
                _query("state", "Returned unchanged with the code or the error."),
                _query("scope", "Space-separated scopes (`url:GET|/api/v1/...`)."),
                _query("code_challenge", "PKCE: base64url SHA-256 of the verifier."),
                _query("code_challenge_method", "PKCE: `S256`."),
                _query("force_login", "`1`: sign in again."),
                _query("prompt", "`none` only."),
            ],
            "responses": {
                "302": {
                    "description": "To the sign-in or consent page, or back to the "
                    "redirect URI with `code` and `state` (or `error`, "
                    "`error_description`, `state`)."
                },
                "400": {
                    "description": "redirect_uri does not match client settings",
                    "content": {"application/json": {"schema": _OAUTH_ERROR}},
                },
                "401": {
                    "description": "unknown client",
                    "content": {"application/json": {"schema": _OAUTH_ERROR}},
                },
            },
        }
    },
    "/login/oauth2/token": {
        "post": {
            "operationId": "oauth2_token",
            "summary": "Exchange a code (authorization_code) or renew a token (refresh_token)",
            "tags": ["oauth2"],
            "security": [],
            "requestBody": {
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "grant_type": {
                                    "type": "string",
                                    "enum": ["authorization_code", "refresh_token"],
                                },
                                "client_id": {"type": "string"},
                                "client_secret": {
                                    "type": "string",
                                    "description": "Or HTTP Basic; optional with PKCE.",
                                },
                                "code": {"type": "string"},
                                "code_verifier": {"type": "string"},
                                "redirect_uri": {"type": "string"},
                                "refresh_token": {"type": "string"},
                                "replace_tokens": {"type": "string"},
                            },
                            "required": ["grant_type", "client_id"],
                        }
                    }
                }
            },
            "responses": {
                "200": {
                    "description": "The token",
                    "content": {"application/json": {"schema": _TOKEN}},
                },
                "400": {
                    "description": "invalid_grant, invalid_request, unsupported_grant_type",
                    "content": {"application/json": {"schema": _OAUTH_ERROR}},
                },
                "401": {
                    "description": "invalid_client",
                    "content": {"application/json": {"schema": _OAUTH_ERROR}},
                },
            },
        },
        "delete": {
            "operationId": "oauth2_logout",
            "summary": "Log the bearer token out",
            "tags": ["oauth2"],
            "security": [{"bearerAuth": []}, {"oauth2": []}],
            "responses": {
                "200": {
                    "description": "`{}`",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "400": {
                    "description": "No access token was sent.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "401": {
                    "description": "Invalid access token.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
            },
        },
    },
}


def add_oauth_paths(result, generator, request, public):
    """drf-spectacular POSTPROCESSING_HOOKS entry: the OAuth2 endpoints join the paths."""
    result.setdefault("paths", {}).update(OAUTH_PATHS)
    return result
