"""The API's endpoints as Canvas scopes, and matching a request against a token's scopes.

A scope is ``url:<VERB>|<route>`` with the route written as Canvas writes it
(``/api/v1/users/:user_id/observees``). Matching follows Canvas
(``AccessToken#url_scopes_for_method``): ``:param`` matches one path
segment, an optional ``.format`` suffix is allowed, HEAD counts as GET, and
``/login/oauth2/token`` is always allowed so a token can always log itself out.
"""

import re
from functools import cache

from django.utils.translation import gettext_lazy as _

# Every endpoint of the API, in the order the admin lists them, with what it
# lets an app do (shown on the consent page and in the admin).
SCOPE_DESCRIPTIONS = {
    "url:GET|/api/v1/users/:user_id/observees": _("list the students you observe"),
    "url:POST|/api/v1/users/:user_id/observees": _("link you to a student"),
    "url:GET|/api/v1/users/:user_id/observees/:observee_id": _("show a student you observe"),
    "url:PUT|/api/v1/users/:user_id/observees/:observee_id": _("link a student by id (staff)"),
    "url:DELETE|/api/v1/users/:user_id/observees/:observee_id": _("unlink a student"),
    "url:GET|/api/v1/users/:user_id/observers": _("list your observers"),
    "url:GET|/api/v1/users/:user_id/observers/:observer_id": _("show one of your observers"),
    "url:POST|/api/v1/users/:user_id/observer_pairing_codes": _("create pairing codes"),
    "url:GET|/api/v1/users/:id": _("read your profile (name)"),
    "url:GET|/api/v1/users/:user_id/enrollments": _("list your enrollments"),
    "url:GET|/api/v1/courses/:course_id/enrollments": _("list a course's enrollments you see"),
    "url:GET|/api/v1/courses": _("list your courses"),
    "url:GET|/api/v1/users/:user_id/courses": _("list a user's courses you may see"),
}
API_SCOPES: tuple[str, ...] = tuple(SCOPE_DESCRIPTIONS)
KNOWN_SCOPES = frozenset(API_SCOPES)
ALWAYS_ALLOWED = re.compile(r"^/login/oauth2/token$")
# Canvas keeps only these include[] values for a key that does not allow includes.
ALLOWED_SCOPE_INCLUDES = frozenset({"uuid"})

_PARAM = re.compile(r":[A-Za-z_]+")


def unknown_scopes(scopes) -> list[str]:
    return [scope for scope in scopes if scope not in KNOWN_SCOPES]


@cache
def _pattern(route: str) -> re.Pattern:
    parts = _PARAM.split(route)
    body = "[^/]+".join(re.escape(part) for part in parts)
    return re.compile(rf"^{body}(?:\.[^/]+|)/?$")


def scopes_allow(scopes, method: str, path: str) -> bool:
    """Whether a token holding ``scopes`` may send ``method`` to ``path`` (query excluded)."""
    if ALWAYS_ALLOWED.match(path):
        return True
    verb = "GET" if method.upper() == "HEAD" else method.upper()
    prefix = f"url:{verb}|"
    return any(
        _pattern(scope[len(prefix) :]).match(path) for scope in scopes if scope.startswith(prefix)
    )
