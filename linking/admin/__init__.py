"""Staff admin: one module per area, registered on import."""

from . import core, notifications, rules, sis  # noqa: F401
