"""Staff admin: one module per area, registered on import."""

from . import core, notifications, rules, sis, sso  # noqa: F401
