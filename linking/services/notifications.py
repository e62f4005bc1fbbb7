"""E-mail notifications and webhook deliveries for link and pairing-code events.

The audit trail is the outbox: ``audit.record_event`` marks each event that
may notify someone (``notifications_pending``) in the same transaction as
the change, so a rolled-back change notifies no one, and a request spends
nothing on notifications. ``manage.py send_queued_notifications`` first plans
the pending events in bulk (``plan_pending``: who is told what, from the
root account's settings and webhook endpoints at that moment), then delivers
the queue with retries and exponential back-off.

Who gets what (each can be turned off per root account in NotificationSettings):

- link created or restored: the student, and the student's other observers in
  that root account, with a signed "this wasn't me" link;
- link created or restored by staff or an SIS import: also the observer;
- link removed: the observer;
- link pending (it awaits the student's approval, services.rules): the student.

Nothing names a protected student (services.rules): no e-mail is planned
for an event about one, and webhook payloads carry their id without a name.

SIS imports (or any bulk job) can hold the e-mails back with
``with notifications.suppressed(): ...``; webhooks are still queued, since
other systems need to see every change.
"""

import contextlib
import contextvars
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import connection, transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from ..models import (
    Account,
    AuditAction,
    AuditEvent,
    DeliveryStatus,
    EmailNotification,
    LinkSource,
    NotificationSettings,
    ObservationLink,
    ProtectedStudent,
    UnrecognisedLinkReport,
    User,
    WebhookDelivery,
)
from . import webhooks
from .context import Actor
from .errors import LinkingError

logger = logging.getLogger(__name__)

Kind = EmailNotification.Kind

DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_RETRY_BASE_SECONDS = 60
MAX_RETRY_DELAY = timedelta(hours=6)
# A claimed row is not picked up by another worker for this long; if the
# worker dies mid-send the row becomes due again afterwards.
CLAIM_LEASE = timedelta(minutes=5)
REPORT_SALT = "linking.notifications.unrecognised-link"
REPORT_MAX_AGE = timedelta(days=30)

_NEW_LINK_ACTIONS = {AuditAction.LINK_CREATED, AuditAction.LINK_RESTORED}
_STAFF_SOURCES = {LinkSource.ADMIN, LinkSource.SIS}
_TEMPLATES = {
    Kind.NEW_OBSERVER_TO_STUDENT: "email/new_observer_student",
    Kind.NEW_OBSERVER_TO_OBSERVERS: "email/new_observer_observers",
    Kind.LINK_REMOVED_TO_OBSERVER: "email/link_removed_observer",
    Kind.STAFF_LINK_TO_OBSERVER: "email/staff_link_observer",
    Kind.APPROVAL_TO_STUDENT: "email/approval_student",
}
# Events that send e-mails but no webhook (endpoints subscribe to WEBHOOK_EVENTS).
_EMAIL_ONLY_ACTIONS = {AuditAction.LINK_PENDING}
_REPORTABLE = {Kind.NEW_OBSERVER_TO_STUDENT, Kind.NEW_OBSERVER_TO_OBSERVERS}

_suppressed: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "notifications_suppressed", default=False
)


class InvalidReportLink(LinkingError):
    code = "invalid_report_link"
    default_message = "This link is not valid or has expired."


@contextlib.contextmanager
def suppressed() -> Iterator[None]:
    """Queue no e-mails for changes made inside the block (webhooks still go)."""
    token = _suppressed.set(True)
    try:
        yield
    finally:
        _suppressed.reset(token)


def emails_suppressed() -> bool:
    return _suppressed.get()


# Queueing ------------------------------------------------------------------


def may_notify(action: str, root_account) -> bool:
    """Whether an event can cause e-mails or webhook deliveries (else it is never planned)."""
    notifying = action in webhooks.WEBHOOK_EVENTS or action in _EMAIL_ONLY_ACTIONS
    return notifying and root_account is not None


def plan_pending(*, batch: int = 500) -> int:
    """Queue the e-mails and webhook deliveries of up to ``batch`` pending audit events.

    Oldest first, in one transaction that also clears the events' flag, so
    an event is planned exactly once; concurrent planners skip each other's
    rows. E-mails are left out for events recorded inside a
    ``suppressed()`` block. Returns the number of events planned.
    """
    with transaction.atomic():
        pending = AuditEvent.objects.filter(notifications_pending=True).order_by("id")
        if connection.features.has_select_for_update_skip_locked:
            pending = pending.select_for_update(skip_locked=True)
        events = list(pending[:batch])
        if not events:
            return 0
        enqueue_for_events(events)
        AuditEvent.objects.filter(pk__in=[event.pk for event in events]).update(
            notifications_pending=False
        )
    return len(events)


def plan_all_pending(*, batch: int = 500) -> int:
    """``plan_pending`` until no event is pending; returns how many were planned."""
    total = 0
    while planned := plan_pending(batch=batch):
        total += planned
    return total


def enqueue_for_events(events: Iterable[AuditEvent]) -> None:
    """Queue the e-mails and webhook deliveries of saved events, in bulk (``plan_pending``).

    Events nobody is told about are skipped, and e-mails for events recorded
    in a ``suppressed()`` block (or queued inside one); related people, links
    and root accounts are loaded in bulk, settings and endpoints once per
    root account.
    """
    relevant = [event for event in events if may_notify(event.action, event.root_account_id)]
    if not relevant:
        return
    _attach_related(relevant)
    protected = _protected_pairs(relevant)
    by_root: dict[int, tuple[NotificationSettings, list]] = {}
    emails: list[EmailNotification] = []
    deliveries: list[WebhookDelivery] = []
    mailed = set() if emails_suppressed() else {e.pk for e in relevant if not e.emails_suppressed}
    others = _other_observers([e for e in relevant if e.pk in mailed])
    for event in relevant:
        if event.root_account_id not in by_root:
            by_root[event.root_account_id] = (
                settings_for(event.root_account),
                webhooks.active_endpoints(event.root_account_id),
            )
        config, endpoints = by_root[event.root_account_id]
        is_protected = (event.student_id, event.root_account_id) in protected
        deliveries.extend(webhooks.plan_deliveries(event, endpoints, protected=is_protected))
        if event.pk in mailed and not is_protected:
            emails.extend(_plan_emails(event, config, others))
    if deliveries:
        WebhookDelivery.objects.bulk_create(deliveries, batch_size=1000)
    if emails:
        EmailNotification.objects.bulk_create(emails, batch_size=1000)


# What planning reads of people and links (e-mails render later, from a fresh query).
_PERSON_FIELDS = ("id", "name", "email", "locale", "workflow_state", "email_unverified_since")
_LINK_FIELDS = ("id", "workflow_state", "source", "kind", "ends_at")


def _attach_related(events: list[AuditEvent]) -> None:
    """Load the people, links and root accounts the events do not already hold, in bulk.

    People (observers and students) come in one query, with only the columns
    planning reads, so a bulk writer's thousand events stay cheap.
    """
    loaders = (
        (("observer", "student"), User.objects.only(*_PERSON_FIELDS)),
        (("link",), ObservationLink.objects.only(*_LINK_FIELDS)),
        (("root_account",), Account.objects.all()),
    )
    for names, queryset in loaders:
        relations = [AuditEvent._meta.get_field(name) for name in names]
        missing = {
            getattr(event, relation.attname)
            for event in events
            for relation in relations
            if getattr(event, relation.attname) is not None and not relation.is_cached(event)
        }
        if not missing:
            continue
        found = queryset.in_bulk(missing)
        for event in events:
            for relation in relations:
                key = getattr(event, relation.attname)
                if key in found and not relation.is_cached(event):
                    setattr(event, relation.name, found[key])


def _protected_pairs(events: list[AuditEvent]) -> set[tuple[int, int]]:
    """(student id, root account id) of the events' protected students (one query)."""
    students = {event.student_id for event in events if event.student_id is not None}
    if not students:
        return set()
    return set(
        ProtectedStudent.objects.filter(
            student_id__in=students,
            root_account_id__in={event.root_account_id for event in events},
        ).values_list("student_id", "root_account_id")
    )


def settings_for(root_account: Account) -> NotificationSettings:
    """The root account's settings; an unsaved all-on default when it has none."""
    found = NotificationSettings.objects.filter(root_account=root_account).first()
    return found or NotificationSettings(root_account=root_account)


def _other_observers(events: list[AuditEvent]) -> dict[tuple[int, int], list[User]]:
    """Active observers of each new link's student, per (student, root account): one query."""
    pairs = {
        (event.student_id, event.root_account_id)
        for event in events
        if event.action in _NEW_LINK_ACTIONS and event.student_id is not None
    }
    if not pairs:
        return {}
    found: dict[tuple[int, int], list[User]] = {}
    links = (
        ObservationLink.objects.active()
        .filter(
            student_id__in={student for student, _ in pairs},
            root_account_id__in={root for _, root in pairs},
        )
        .select_related("observer")
        .only("student_id", "root_account_id", *(f"observer__{f}" for f in _PERSON_FIELDS))
        .order_by("observer_id")
    )
    for link in links:
        found.setdefault((link.student_id, link.root_account_id), []).append(link.observer)
    return found


def _plan_emails(
    event: AuditEvent,
    config: NotificationSettings,
    other_observers: dict[tuple[int, int], list[User]],
) -> list[EmailNotification]:
    if event.action not in _NEW_LINK_ACTIONS and event.action not in (
        AuditAction.LINK_DELETED,
        AuditAction.LINK_PENDING,
    ):
        return []
    if event.observer is None or event.student is None:
        return []
    wanted: list[tuple[str, User]] = []
    if event.action == AuditAction.LINK_PENDING:
        if config.notify_student_of_new_observer:
            wanted.append((Kind.APPROVAL_TO_STUDENT, event.student))
    elif event.action == AuditAction.LINK_DELETED:
        if config.notify_observer_of_removed_link:
            wanted.append((Kind.LINK_REMOVED_TO_OBSERVER, event.observer))
    else:
        if config.notify_student_of_new_observer:
            wanted.append((Kind.NEW_OBSERVER_TO_STUDENT, event.student))
        if config.notify_observers_of_new_observer:
            others = other_observers.get((event.student_id, event.root_account_id), [])
            wanted.extend(
                (Kind.NEW_OBSERVER_TO_OBSERVERS, observer)
                for observer in others
                if observer.pk != event.observer_id
            )
        if _link_source(event) in _STAFF_SOURCES and config.notify_observer_of_staff_link:
            wanted.append((Kind.STAFF_LINK_TO_OBSERVER, event.observer))
    return [
        _queued(event, kind, recipient)
        for kind, recipient in wanted
        if recipient.email
        and recipient.workflow_state != User.State.DELETED
        # A self-registered parent's address is only their word until confirmed.
        and recipient.email_unverified_since is None
    ]


def _link_source(event: AuditEvent) -> str:
    source = (event.detail or {}).get("source")
    if source is None and event.link is not None:
        source = event.link.source
    return source or ""


def _language_for(user: User) -> str:
    available = {code for code, _name in settings.LANGUAGES}
    locale = (user.locale or "").split("-")[0].lower()
    return locale if locale in available else settings.LANGUAGE_CODE


def _queued(event: AuditEvent, kind: str, recipient: User) -> EmailNotification:
    """An unsent, not yet rendered e-mail: rendering waits for the sender (see render_email)."""
    now = timezone.now()
    return EmailNotification(
        root_account=event.root_account,
        created_at=now,
        next_attempt_at=now,
        event=event,
        kind=kind,
        recipient=recipient,
        to_email=recipient.email,
        language=_language_for(recipient),
    )


_RENDER_RELATED = (
    "recipient",
    "event__observer",
    "event__student",
    "event__root_account",
    "event__link",
)


def render_email(message: EmailNotification) -> EmailNotification:
    """Fill in the subject and both bodies from the message's event, in its language.

    Queueing only records who is told what about which event, so a change
    (or a bulk SIS import) pays no template rendering; the sender renders
    each message once, just before sending, and keeps what it sent. A
    message already rendered is left as it is.
    """
    if message.subject or message.event is None or message.recipient is None:
        return message
    event, recipient, kind = message.event, message.recipient, message.kind
    template = _TEMPLATES[kind]
    with translation.override(message.language or settings.LANGUAGE_CODE):
        context = {
            "recipient": recipient,
            "observer": event.observer,
            "student": event.student,
            "school": event.root_account.name,
            "source_label": _source_label(_link_source(event)),
            "occurred_at": event.created_at,
            "report_url": (
                report_url(event=event, recipient=recipient) if kind in _REPORTABLE else ""
            ),
        }
        subject = " ".join(render_to_string(f"{template}_subject.txt", context).split())
        message.subject = subject[:255]
        message.body_text = render_to_string(f"{template}.txt", context)
        message.body_html = render_to_string(f"{template}.html", context)
    return message


def _source_label(source: str) -> str:
    try:
        return str(LinkSource(source).label)
    except ValueError:
        return source


def report_url(*, event: AuditEvent, recipient: User) -> str:
    """The absolute, signed "this wasn't me" URL on the root account's own host."""
    token = signing.dumps({"e": event.pk, "u": recipient.pk}, salt=REPORT_SALT)
    host = event.root_account.domain or settings.OBSERVERS_DEFAULT_DOMAIN or "localhost"
    scheme = "https" if settings.PRODUCTION else "http"
    return f"{scheme}://{host}{reverse('notifications:report', args=[token])}"


# "This wasn't me" -------------------------------------------------------------


def notification_for_report_token(token: str) -> EmailNotification:
    """The new-observer e-mail a report link came from. Raises InvalidReportLink."""
    try:
        data = signing.loads(token, salt=REPORT_SALT, max_age=REPORT_MAX_AGE)
        event_id, recipient_id = int(data["e"]), int(data["u"])
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise InvalidReportLink() from exc
    notification = (
        EmailNotification.objects.filter(
            event_id=event_id, recipient_id=recipient_id, kind__in=_REPORTABLE
        )
        .select_related("event__observer", "event__student", "event__link", "root_account")
        .first()
    )
    if notification is None or notification.event is None:
        raise InvalidReportLink()
    return notification


@transaction.atomic
def report_unrecognised_link(*, token: str, actor: Actor) -> UnrecognisedLinkReport:
    """Record that the recipient of a new-observer e-mail does not recognise the link.

    Anyone holding a valid report link (signed, at most 30 days old) may
    report, once per e-mail; reporting again returns the first report. The
    report is for the school's staff to review; it changes no link. Raises
    InvalidReportLink for a tampered, expired or unknown link.
    """
    notification = notification_for_report_token(token)
    event = notification.event
    report, _created = UnrecognisedLinkReport.objects.get_or_create(
        notification=notification,
        defaults={
            "root_account": notification.root_account,
            "event": event,
            "link": event.link,
            "reported_by": notification.recipient,
            "observer": event.observer,
            "student": event.student,
            "ip_address": actor.ip_address,
            "user_agent": (actor.user_agent or "")[:512],
        },
    )
    return report


def recent_for(user: User, root_account: Account | None, limit: int = 5) -> list[EmailNotification]:
    """The latest e-mails sent or queued to ``user`` in a root account, newest first."""
    if user is None or not user.pk:
        return []
    queryset = EmailNotification.objects.filter(recipient=user).select_related(*_RENDER_RELATED)
    if root_account is not None:
        queryset = queryset.filter(root_account=root_account)
    # Messages not sent yet are rendered for the page (not saved: the sender does that).
    return [render_email(message) for message in queryset.order_by("-created_at", "-id")[:limit]]


# Delivery ----------------------------------------------------------------------


@dataclass
class DeliveryReport:
    """Counts of one delivery pass."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def processed(self) -> int:
        return self.sent + self.retrying + self.failed

    def add(self, other: "DeliveryReport") -> "DeliveryReport":
        return DeliveryReport(
            sent=self.sent + other.sent,
            retrying=self.retrying + other.retrying,
            failed=self.failed + other.failed,
            errors=self.errors + other.errors,
        )


def max_attempts() -> int:
    return int(getattr(settings, "OBSERVERS_NOTIFICATION_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS))


def retry_delay(attempts: int) -> timedelta:
    """Exponential back-off after the ``attempts``-th failure: base, 2x base, 4x base, ..."""
    base = int(
        getattr(settings, "OBSERVERS_NOTIFICATION_RETRY_BASE_SECONDS", DEFAULT_RETRY_BASE_SECONDS)
    )
    return min(timedelta(seconds=base * 2 ** max(attempts - 1, 0)), MAX_RETRY_DELAY)


def _next_attempt(attempts: int, now: datetime) -> datetime | None:
    return None if attempts >= max_attempts() else now + retry_delay(attempts)


def _claim(model, *, batch: int, now: datetime) -> list[int]:
    # Two workers running the command at once must not send a row twice:
    # rows are locked (skipping ones another worker holds), counted as an
    # attempt and pushed one lease ahead before anything is sent.
    with transaction.atomic():
        due = model.objects.due(now).order_by("next_attempt_at", "id")
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        ids = list(due.values_list("pk", flat=True)[:batch])
        model.objects.filter(pk__in=ids).update(
            attempts=F("attempts") + 1, next_attempt_at=now + CLAIM_LEASE
        )
    return ids


def deliver_due_emails(*, batch: int = 100) -> DeliveryReport:
    """Send queued e-mails that are due; a failure is retried with back-off, then given up."""
    now = timezone.now()
    report = DeliveryReport()
    ids = _claim(EmailNotification, batch=batch, now=now)
    if not ids:
        return report
    mail_connection = get_connection()
    messages = EmailNotification.objects.filter(pk__in=ids).select_related(*_RENDER_RELATED)
    for message in messages.order_by("id"):
        if not message.subject:
            render_email(message)
            if not message.subject:  # its event or recipient is gone: nothing to say
                message.status = DeliveryStatus.FAILED
                message.last_error = "nothing to send: the event or the recipient no longer exists"
                message.save(update_fields=["status", "last_error"])
                report.failed += 1
                continue
            message.save(update_fields=["subject", "body_text", "body_html"])
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.body_text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[message.to_email],
            headers={"Auto-Submitted": "auto-generated"},
            connection=mail_connection,
        )
        email.attach_alternative(message.body_html, "text/html")
        try:
            email.send()
        except Exception as exc:  # any failure of the mail server is retried
            error = f"{type(exc).__name__}: {exc}"[:1000]
            next_at = _next_attempt(message.attempts, now)
            message.last_error = error
            if next_at is None:
                message.status = DeliveryStatus.FAILED
                report.failed += 1
                logger.warning("E-mail notification %s gave up: %s", message.pk, error)
            else:
                message.next_attempt_at = next_at
                report.retrying += 1
            report.errors.append(error)
            message.save(update_fields=["status", "next_attempt_at", "last_error"])
            continue
        message.status = DeliveryStatus.SENT
        message.sent_at = now
        message.last_error = ""
        message.save(update_fields=["status", "sent_at", "last_error"])
        report.sent += 1
    return report


def deliver_due_webhooks(*, batch: int = 100) -> DeliveryReport:
    """Post queued webhook deliveries that are due; non-2xx answers are retried, then given up."""
    now = timezone.now()
    report = DeliveryReport()
    ids = _claim(WebhookDelivery, batch=batch, now=now)
    for delivery in WebhookDelivery.objects.filter(pk__in=ids).select_related("endpoint"):
        if not delivery.endpoint.is_active:
            status_code, excerpt, error = None, "", "endpoint deactivated"
            next_at = None
        else:
            status_code, excerpt, error = webhooks.post(delivery, now=now)
            next_at = _next_attempt(delivery.attempts, now)
        webhooks.record_attempt(
            delivery,
            now=now,
            status_code=status_code,
            excerpt=excerpt,
            error=error,
            next_attempt_at=next_at,
        )
        if delivery.status == DeliveryStatus.SENT:
            report.sent += 1
        elif delivery.status == DeliveryStatus.FAILED:
            report.failed += 1
            report.errors.append(error)
        else:
            report.retrying += 1
            report.errors.append(error)
    return report


def deliver_due(*, batch: int = 100) -> DeliveryReport:
    """Plan every pending event, then one pass over both queues (``batch`` of each kind)."""
    plan_all_pending()
    return deliver_due_emails(batch=batch).add(deliver_due_webhooks(batch=batch))


@transaction.atomic
def retry_now(*, emails=(), deliveries=()) -> int:
    """Put failed or pending messages back in the queue, due now, with a fresh attempt count."""
    now = timezone.now()
    values = {"status": DeliveryStatus.PENDING, "attempts": 0, "next_attempt_at": now}
    count = (
        EmailNotification.objects.filter(pk__in=[item.pk for item in emails])
        .exclude(status=DeliveryStatus.SENT)
        .update(**values)
    )
    count += (
        WebhookDelivery.objects.filter(pk__in=[item.pk for item in deliveries])
        .exclude(status=DeliveryStatus.SENT)
        .update(**values)
    )
    return count


@transaction.atomic
def mark_reports_reviewed(*, reports) -> int:
    """Mark "this wasn't me" reports as handled by staff; returns how many changed."""
    return UnrecognisedLinkReport.objects.filter(
        pk__in=[report.pk for report in reports], reviewed=False
    ).update(reviewed=True)
