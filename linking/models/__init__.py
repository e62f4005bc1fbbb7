"""The linking domain's models, one module per part of the domain."""

from . import lookups  # noqa: F401 - registers the any_of lookup
from .audit import AuditAction, AuditEvent, AuditSource
from .courses import Course, Enrollment, EnrollmentState, EnrollmentType, Term
from .developer_keys import AuthorizationCode, DeveloperKey
from .invitations import GuardianInvitation
from .links import LinkEnd, LinkKind, LinkSource, ObservationLink
from .notifications import (
    DeliveryStatus,
    EmailNotification,
    EmailPreference,
    NotificationSettings,
    PeriodicTaskRun,
    UnrecognisedLinkReport,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from .pairing import PairingCode
from .people import AccessToken, Login, User, derive_sortable_name
from .ratelimit import RateLimitCounter
from .rules import ComingOfAge, ObservationRestriction, ProtectedStudent
from .sis import SisBatch
from .sso import IdentityProvider, SsoMatch
from .tenancy import (
    Account,
    AccountAdmin,
    ComingOfAgePolicy,
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
    "AuthorizationCode",
    "ComingOfAge",
    "ComingOfAgePolicy",
    "Course",
    "CourseRoleOverride",
    "DeliveryStatus",
    "DeveloperKey",
    "EmailNotification",
    "EmailPreference",
    "Enrollment",
    "EnrollmentState",
    "EnrollmentType",
    "GuardianInvitation",
    "IdentityProvider",
    "LinkEnd",
    "LinkKind",
    "LinkSource",
    "Login",
    "NotificationSettings",
    "ObservationLink",
    "ObservationRestriction",
    "PairingCode",
    "PeriodicTaskRun",
    "Permission",
    "ProtectedStudent",
    "RateLimitCounter",
    "Role",
    "SelfRegistration",
    "SisBatch",
    "SsoMatch",
    "Term",
    "UnrecognisedLinkReport",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "derive_sortable_name",
]
