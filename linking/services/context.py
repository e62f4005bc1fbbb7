"""Who is acting, and from where: recorded on every audit event."""

from dataclasses import dataclass

from ..models import AuditSource, User


@dataclass(frozen=True, slots=True)
class Actor:
    user: User | None
    source: str = AuditSource.SYSTEM
    ip_address: str | None = None
    user_agent: str = ""
    request_id: str = ""

    @classmethod
    def system(cls, source: str = AuditSource.SYSTEM) -> "Actor":
        return cls(user=None, source=source)
