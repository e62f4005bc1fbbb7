"""Staff admin: one module per area, registered on import."""

from . import core, notifications, sis, sso  # noqa: F401
