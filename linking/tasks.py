"""Background work of the linking app, on Django's task framework (django-tasks).

The audit trail stays the outbox: requests only mark events pending, in
their own transaction. The worker's scheduler (``services.scheduling``)
notices pending events and due deliveries every second and enqueues the
tasks below, which plan and deliver through the services. Each task is
safe to run twice or side by side: the rows it works on are claimed in the
database, so a duplicate task finds nothing left to do.

Register further periodic work here (or in another app's ``tasks.py``) with
``scheduling.register_periodic``; see docs/notifications.md.
"""

from datetime import timedelta

from django.conf import settings
from django.core.management import call_command
from django_tasks import task

from .models import AuditEvent, EmailNotification
from .services import deliveries, notifications
from .services.scheduling import prune_history, register_periodic

# A delivery task hands over to a fresh one after this long, so one endpoint
# with a large backlog does not keep a worker from other queues' work.
DELIVERY_TASK_SECONDS = 60


# A planning task plans at most this many events, starts their deliveries and
# hands over, so a large backlog (an SIS import) is posted while it is planned.
PLAN_TASK_EVENTS = 5000


@task()
def plan_notifications() -> int:
    """Plan pending audit events (oldest first), then start the deliveries that came due."""
    planned = 0
    while planned < PLAN_TASK_EVENTS:
        batch = notifications.plan_pending(batch=500)
        if not batch:
            break
        planned += batch
    start_due_deliveries()
    if planned >= PLAN_TASK_EVENTS:
        planning().enqueue()
    return planned


def planning():
    """The planning task, behind deliveries where the backend has priorities (the database's).

    A planned backlog is then posted while more is planned, and planning
    never starves posting. RQ has no priorities: its tasks run in order.
    """
    if plan_notifications.get_backend().supports_priority:
        return plan_notifications.using(priority=-10)
    return plan_notifications


@task()
def deliver_webhooks(endpoint_id: int) -> dict:
    """Post one endpoint's due deliveries; queue a follow-up while there are more."""
    report = deliveries.drain_endpoint(endpoint_id, time_budget=DELIVERY_TASK_SECONDS)
    if report.more:
        deliver_webhooks.enqueue(endpoint_id)
    return {"sent": report.sent, "retrying": report.retrying, "failed": report.failed}


@task()
def send_emails() -> dict:
    """Send the due e-mails, batch by batch, for up to a minute."""
    total = deliveries.DeliveryReport()
    for _ in range(100):
        report = notifications.deliver_due_emails(batch=100)
        total = total.add(report)
        if not report.processed and not report.more:
            break
    else:
        send_emails.enqueue()
    return {"sent": total.sent, "retrying": total.retrying, "failed": total.failed}


@task()
def start_due_deliveries_task() -> int:
    """Enqueue delivery tasks for whatever is due (retries that came due, re-enabled endpoints)."""
    return start_due_deliveries()


def start_due_deliveries() -> int:
    """Enqueue one delivery task per endpoint with due rows (more for a large backlog)."""
    started = 0
    backlog = deliveries.DEFAULT_BATCH
    for endpoint_id in deliveries.endpoints_with_due_deliveries():
        due = deliveries.WebhookDelivery.objects.due().filter(endpoint_id=endpoint_id)
        parallel = settings.OBSERVERS_WEBHOOK_PARALLEL_TASKS if due[backlog:].exists() else 1
        for _ in range(max(1, parallel)):
            deliver_webhooks.enqueue(endpoint_id)
            started += 1
    if EmailNotification.objects.due().exists():
        send_emails.enqueue()
        started += 1
    return started


@task()
def prune_task_history() -> int:
    """Forget old scheduler slots and (on the database backend) old finished task rows."""
    pruned = prune_history()
    if settings.TASK_BACKEND == "database":
        call_command("prune_db_task_results", min_age_days=7, verbosity=0)
    return pruned


@task()
def remove_expired_sis_uploads() -> int:
    """Delete SIS uploads previewed in the admin but never confirmed, once expired.

    Uploads live on the web host's disk; this sweeps the worker's host (the
    same host with ``make run`` or one machine), and every new upload sweeps
    the web host too.
    """
    from .admin.sis_uploads import remove_expired_uploads

    return remove_expired_uploads()


@task()
def apply_link_rules() -> dict:
    """The rules of who may observe that run by the clock: end dates, coming of age.

    Hourly, so a link's end date takes effect within the hour and a student
    who comes of age today gets the school's policy today; each link and
    student is changed once (safeguarding.apply_link_rules is idempotent).
    """
    from django.utils import timezone

    from .models import AuditSource
    from .services import safeguarding
    from .services.context import Actor

    run = safeguarding.apply_link_rules(now=timezone.now(), actor=Actor.system(AuditSource.SYSTEM))
    return {
        "ended_by_date": run.ended_by_date,
        "changed_by_coming_of_age": run.changed_by_coming_of_age,
    }


@task()
def prune_authorization_codes() -> int:
    """Forget OAuth2 authorization codes a day after they expired (services.oauth)."""
    from .services import oauth

    return oauth.prune_authorization_codes()


@task()
def send_invitation_emails() -> int:
    """Send the e-mails of invitations made in bulk (services.invitations.send_due_mail).

    A large run hands over to a fresh task after each batch, so other work
    gets its turn; the rows are the outbox, so a lost task loses nothing.
    """
    from .services import invitations

    sent = invitations.send_due_mail(batch=100)
    if _invitation_mail_due():
        send_invitation_emails.enqueue()
    return sent


@task()
def expire_invitations() -> int:
    """Record lapsed invitations as expired, once each, with their ``invitation.expired`` event."""
    from .services import invitations

    return invitations.record_expiries()


def _invitation_mail_due() -> bool:
    from .models import GuardianInvitation

    return (
        GuardianInvitation.objects.mail_due()
        .filter(state=GuardianInvitation.State.PENDING)
        .exists()
    )


def _invitations_lapsed() -> bool:
    from .models import GuardianInvitation

    return GuardianInvitation.objects.lapsed().exists()


def _planning_needed() -> bool:
    """Events are pending and no planning task is already waiting to run them."""
    if not AuditEvent.objects.filter(notifications_pending=True).exists():
        return False
    if settings.TASK_BACKEND == "database":
        from django_tasks_db.models import DBTaskResult

        return not DBTaskResult.objects.filter(
            task_path=plan_notifications.module_path, status="READY"
        ).exists()
    return True


def _deliveries_due() -> bool:
    return (
        bool(deliveries.endpoints_with_due_deliveries()) or EmailNotification.objects.due().exists()
    )


register_periodic(planning(), every=timedelta(seconds=1), only_if=_planning_needed)
register_periodic(start_due_deliveries_task, every=timedelta(seconds=5), only_if=_deliveries_due)
register_periodic(prune_task_history, every=timedelta(hours=1))
register_periodic(remove_expired_sis_uploads, every=timedelta(minutes=15))
register_periodic(apply_link_rules, every=timedelta(hours=1))
register_periodic(prune_authorization_codes, every=timedelta(hours=1))
register_periodic(send_invitation_emails, every=timedelta(seconds=5), only_if=_invitation_mail_due)
register_periodic(expire_invitations, every=timedelta(minutes=5), only_if=_invitations_lapsed)
