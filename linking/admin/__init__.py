"""Staff admin: one module per area, registered on import."""

from . import core, notifications, sis  # noqa: F401
