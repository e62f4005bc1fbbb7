"""E-mail notifications and webhook deliveries for link and pairing-code events.

The audit trail is the outbox: ``audit.record_event`` marks each event that
may notify someone (``notifications_pending``) in the same transaction as
the change, so a rolled-back change notifies no one, and a request spends
nothing on notifications. The task worker (``linking.tasks``) sees pending
events within a second, plans them in bulk (``plan_pending``: who is told
what, from the root account's settings, each person's preferences and the
webhook endpoints at that moment), then delivers the queue with retries and
exponential back-off (``services.deliveries``).

Who gets what (each can be turned off per root account in NotificationSettings,
and per person on their preferences page, linked from every e-mail):

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
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.html import format_html
from django.utils.translation import gettext as _

from ..models import (
    Account,
    AuditAction,
    AuditEvent,
    DeliveryStatus,
    EmailNotification,
    EmailPreference,
    LinkSource,
    NotificationSettings,
    ObservationLink,
    ProtectedStudent,
    UnrecognisedLinkReport,
    User,
    WebhookDelivery,
)
from . import deliveries as _deliveries
from . import webhooks
from .context import Actor
from .deliveries import CLAIM_MARGIN_SECONDS, DeliveryReport
from .errors import LinkingError

logger = logging.getLogger(__name__)

Kind = EmailNotification.Kind

PREFERENCES_SALT = "linking.notifications.preferences"
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
        muted = _muted_kinds({(email.recipient_id, email.root_account_id) for email in emails})
        emails = [
            email
            for email in emails
            if email.kind not in muted.get((email.recipient_id, email.root_account_id), ())
        ]
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
        preferences = unsubscribe_url(recipient=recipient, root_account=message.root_account)
        message.body_text = render_to_string(f"{template}.txt", context) + _preferences_footer(
            preferences
        )
        message.body_html = _with_preferences_link(
            render_to_string(f"{template}.html", context), preferences
        )
    return message


def _source_label(source: str) -> str:
    try:
        return str(LinkSource(source).label)
    except ValueError:
        return source


def absolute_url(root_account: Account | None, path: str) -> str:
    """``path`` on the root account's host, with the scheme and port of ``OBSERVERS_BASE_URL``.

    A root account without a domain uses the base URL's host. The one
    setting keeps every link in e-mails on the port the service answers on.
    """
    base = urlsplit(settings.OBSERVERS_BASE_URL)
    host = (root_account.domain if root_account is not None else "") or base.hostname
    netloc = f"{host}:{base.port}" if base.port else host
    return f"{base.scheme}://{netloc}{base.path.rstrip('/')}{path}"


def report_url(*, event: AuditEvent, recipient: User) -> str:
    """The absolute, signed "this wasn't me" URL on the root account's own host."""
    token = signing.dumps({"e": event.pk, "u": recipient.pk}, salt=REPORT_SALT)
    return absolute_url(event.root_account, reverse("notifications:report", args=[token]))


# Preferences -------------------------------------------------------------------


class InvalidPreferencesLink(LinkingError):
    code = "invalid_preferences_link"
    default_message = "This link is not valid."


class UnknownEmailKind(LinkingError):
    code = "unknown_email_kind"
    default_message = "There is no such kind of e-mail."


def _muted_kinds(pairs: set[tuple[int, int]]) -> dict[tuple[int, int], set[str]]:
    """Kinds each (person, root account) turned off: one query for a whole plan."""
    if not pairs:
        return {}
    rows = EmailPreference.objects.filter(
        user_id__in={user for user, _ in pairs}, root_account_id__in={root for _, root in pairs}
    ).values_list("user_id", "root_account_id", "muted_kinds")
    return {(user, root): set(kinds or []) for user, root, kinds in rows}


def preferences_from_token(token: str) -> tuple[User, Account]:
    """The person and root account a preferences link was made for. Raises InvalidPreferencesLink.

    The link carries no expiry: it sits in every e-mail, and a person may
    want to unsubscribe from an old one. It only ever changes what that
    person is e-mailed.
    """
    try:
        data = signing.loads(token, salt=PREFERENCES_SALT)
        user_id, root_id = int(data["u"]), int(data["r"])
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise InvalidPreferencesLink() from exc
    user = User.objects.filter(pk=user_id).first()
    root_account = Account.objects.filter(pk=root_id, parent__isnull=True).first()
    if user is None or root_account is None:
        raise InvalidPreferencesLink()
    return user, root_account


# Kinds a person may turn off. A link awaiting an adult student's approval
# asks them to decide (who may observe them): like a password reset it is not
# subject to preferences, or a pending link could wait unseen.
PREFERENCE_KINDS = [kind for kind in Kind.values if kind != Kind.APPROVAL_TO_STUDENT]


def muted_kinds_for(*, user: User, root_account: Account) -> set[str]:
    found = EmailPreference.objects.filter(user=user, root_account=root_account).first()
    return set(found.muted_kinds or []) if found else set()


@transaction.atomic
def set_email_preferences(*, user: User, root_account: Account, muted_kinds: Iterable[str]) -> None:
    """Rule: a person chooses which notification e-mails (kinds) they get in a root account.

    Raises UnknownEmailKind for a kind that does not exist. E-mails already
    queued are not recalled; the planner leaves muted kinds out from now on.
    Transactional e-mails (sign-in, password reset, a link awaiting the
    student's approval) are not affected.
    """
    kinds = sorted(set(muted_kinds))
    for kind in kinds:
        if kind not in PREFERENCE_KINDS:
            raise UnknownEmailKind()
    EmailPreference.objects.update_or_create(
        user=user,
        root_account=root_account,
        defaults={"muted_kinds": kinds, "updated_at": timezone.now()},
    )


def unsubscribe_all(*, user: User, root_account: Account) -> None:
    """One-click unsubscribe (RFC 8058): turn off every notification e-mail in the root account."""
    set_email_preferences(user=user, root_account=root_account, muted_kinds=PREFERENCE_KINDS)


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


def _claim_emails(*, batch: int, now: datetime) -> tuple[list[int], datetime]:
    # Two workers sending at once must not send a row twice: rows are locked
    # (skipping ones another worker holds) and pushed one claim ahead before
    # anything is sent; the sender starts no message the claim could not cover.
    until = now + timedelta(seconds=_deliveries.claim_seconds())
    with transaction.atomic():
        due = EmailNotification.objects.due(now).order_by("next_attempt_at", "id")
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        ids = list(due.values_list("pk", flat=True)[:batch])
        EmailNotification.objects.filter(pk__in=ids).update(next_attempt_at=until)
    return ids, until


def unsubscribe_url(*, recipient: User, root_account: Account) -> str:
    """The absolute, signed link to a person's e-mail preferences in one root account."""
    token = signing.dumps({"u": recipient.pk, "r": root_account.pk}, salt=PREFERENCES_SALT)
    return absolute_url(root_account, reverse("notifications:preferences", args=[token]))


def deliver_due_emails(*, batch: int = 100) -> DeliveryReport:
    """Send queued e-mails that are due; a failure is retried with back-off, then given up.

    Each message carries ``List-Unsubscribe`` (with RFC 8058 one-click) and a
    link to the recipient's preferences page.
    """
    started = time.monotonic()
    now = timezone.now()
    report = DeliveryReport()
    ids, _until = _claim_emails(batch=batch, now=now)
    if not ids:
        return report
    last_start = (
        started + _deliveries.claim_seconds() - settings.EMAIL_TIMEOUT - CLAIM_MARGIN_SECONDS
    )
    mail_connection = get_connection()
    messages = EmailNotification.objects.filter(pk__in=ids).select_related(*_RENDER_RELATED)
    for message in messages.order_by("id"):
        if time.monotonic() > last_start:
            # Not started: due again right away, for this task's next round or another's.
            EmailNotification.objects.filter(pk=message.pk).update(next_attempt_at=now)
            report.more = True
            continue
        message.attempts += 1
        if not message.subject:
            render_email(message)
            if not message.subject:  # its event or recipient is gone: nothing to say
                message.status = DeliveryStatus.FAILED
                message.last_error = "nothing to send: the event or the recipient no longer exists"
                message.save(update_fields=["status", "attempts", "last_error"])
                report.failed += 1
                continue
            message.save(update_fields=["subject", "body_text", "body_html"])
        headers = {"Auto-Submitted": "auto-generated"}
        if message.recipient is not None:
            preferences = unsubscribe_url(
                recipient=message.recipient, root_account=message.root_account
            )
            headers["List-Unsubscribe"] = f"<{preferences}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.body_text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[message.to_email],
            headers=headers,
            connection=mail_connection,
        )
        email.attach_alternative(message.body_html, "text/html")
        try:
            email.send()
        except Exception as exc:  # any failure of the mail server is retried
            error = f"{type(exc).__name__}: {exc}"[:1000]
            next_at = _deliveries.next_attempt_at(
                created_at=message.created_at, attempts=message.attempts, now=timezone.now()
            )
            message.last_error = error
            if next_at is None:
                message.status = DeliveryStatus.FAILED
                report.failed += 1
                logger.warning("E-mail notification %s gave up: %s", message.pk, error)
            else:
                message.next_attempt_at = next_at
                report.retrying += 1
            report.errors.append(error)
            message.save(update_fields=["status", "attempts", "next_attempt_at", "last_error"])
            continue
        message.status = DeliveryStatus.SENT
        message.sent_at = timezone.now()
        message.last_error = ""
        message.save(update_fields=["status", "attempts", "sent_at", "last_error"])
        report.sent += 1
    return report


def _preferences_footer(url: str) -> str:
    """The text e-mail's last lines (rendered inside the message's language)."""
    return "\n-- \n" + _("Choose which e-mails you get: %(url)s") % {"url": url} + "\n"


def _with_preferences_link(html: str, url: str) -> str:
    link = format_html('<p><a href="{}">{}</a></p>', url, _("Choose which e-mails you get"))
    return html.replace("</body>", f"{link}</body>", 1) if "</body>" in html else html + link


def deliver_due_webhooks(*, batch: int = 100) -> DeliveryReport:
    """One batch of due webhook deliveries per endpoint (see ``services.deliveries``)."""
    return _deliveries.deliver_due_webhooks(batch=batch)


def deliver_due(*, batch: int = 100) -> DeliveryReport:
    """Plan every pending event, then one pass over both queues (``batch`` of each kind)."""
    plan_all_pending()
    return deliver_due_emails(batch=batch).add(deliver_due_webhooks(batch=batch))


@transaction.atomic
def retry_now(*, emails=(), deliveries=()) -> int:
    """Queue messages again, due now: failed or pending e-mails, and any webhook delivery.

    A sent e-mail is not sent twice (people do not want the same e-mail
    again); a webhook delivery is, with its original ``webhook-id``, since a
    receiver may have lost what it got (see ``deliveries.send_again``).
    """
    now = timezone.now()
    count = (
        EmailNotification.objects.filter(pk__in=[item.pk for item in emails])
        .exclude(status=DeliveryStatus.SENT)
        .update(status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=now, created_at=now)
    )
    return count + _deliveries.send_again(deliveries=deliveries)


@transaction.atomic
def mark_reports_reviewed(*, reports) -> int:
    """Mark "this wasn't me" reports as handled by staff; returns how many changed."""
    return UnrecognisedLinkReport.objects.filter(
        pk__in=[report.pk for report in reports], reviewed=False
    ).update(reviewed=True)
