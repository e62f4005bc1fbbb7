"""Staff admin: one module per area, registered on import."""

from . import core, developer_keys, notifications, sis  # noqa: F401
