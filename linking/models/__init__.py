"""The linking domain's models, one module per part of the domain."""

from . import lookups  # noqa: F401 - registers the any_of lookup
from .audit import AuditAction, AuditEvent, AuditSource
from .courses import Course, Enrollment, EnrollmentState, EnrollmentType, Term
from .invitations import GuardianInvitation
from .links import LinkKind, LinkSource, ObservationLink
from .notifications import (
    DeliveryStatus,
    EmailNotification,
    NotificationSettings,
    UnrecognisedLinkReport,
    WebhookDelivery,
    WebhookEndpoint,
)
from .pairing import PairingCode
from .people import AccessToken, Login, User, derive_sortable_name
from .ratelimit import RateLimitCounter
from .sis import SisBatch
from .tenancy import (
    Account,
    AccountAdmin,
    CourseRoleOverride,
    Permission,
    Role,
    SelfRegistration,
)

__all__ = [
    "AccessToken",
    "Account",
    "AccountAdmin",
    "AuditAction",
    "AuditEvent",
    "AuditSource",
    "Course",
    "CourseRoleOverride",
    "DeliveryStatus",
    "EmailNotification",
    "Enrollment",
    "EnrollmentState",
    "EnrollmentType",
    "GuardianInvitation",
    "LinkKind",
    "LinkSource",
    "Login",
    "NotificationSettings",
    "ObservationLink",
    "PairingCode",
    "Permission",
    "RateLimitCounter",
    "Role",
    "SelfRegistration",
    "SisBatch",
    "Term",
    "UnrecognisedLinkReport",
    "User",
    "WebhookDelivery",
    "WebhookEndpoint",
    "derive_sortable_name",
]
