"""Staff admin: one module per area, registered on import."""

from . import core, developer_keys, notifications, rules, sis, sso  # noqa: F401
