"""Bulk writers (the SIS import) and notifications.suppressed().

The SIS import inserts its audit events in bulk rather than through
record_event; ``enqueue_for_events`` is the call it makes after the insert.
These tests insert events the way the importer does and hand them over.
"""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from linking.models import (
    AuditAction,
    AuditEvent,
    AuditSource,
    EmailNotification,
    LinkSource,
    ObservationLink,
    WebhookDelivery,
    WebhookEndpoint,
)
from linking.services import notifications

Kind = EmailNotification.Kind


def bulk_sis_links(root_account, pairs):
    links = ObservationLink.objects.bulk_create(
        ObservationLink(observer=o, student=s, root_account=root_account, source=LinkSource.SIS)
        for o, s in pairs
    )
    return AuditEvent.objects.bulk_create(
        AuditEvent(
            action=AuditAction.LINK_CREATED,
            source=AuditSource.SIS,
            root_account_id=root_account.pk,
            observer_id=link.observer_id,
            student_id=link.student_id,
            link_id=link.pk,
            detail={"source": LinkSource.SIS},
        )
        for link in links
    )


def test_bulk_events_queue_like_single_ones(make_user, root_account):
    pairs = [
        (make_user(f"Parent {n}", root_account), make_user(f"Child {n}", root_account))
        for n in range(3)
    ]
    events = [AuditEvent.objects.get(pk=event.pk) for event in bulk_sis_links(root_account, pairs)]

    with CaptureQueriesContext(connection) as queries:
        notifications.enqueue_for_events(events)

    assert sorted(EmailNotification.objects.values_list("kind", "recipient__name")) == sorted(
        [(Kind.NEW_OBSERVER_TO_STUDENT, f"Child {n}") for n in range(3)]
        + [(Kind.STAFF_LINK_TO_OBSERVER, f"Parent {n}") for n in range(3)]
    )
    # People, links and the root account in bulk; settings and endpoints once;
    # one "other observers" lookup per event; one insert.
    assert len(queries) <= 4 + 2 + 3 + 1


def test_suppressed_bulk_import_queues_no_email_but_webhooks(make_user, root_account):
    WebhookEndpoint.objects.create(
        root_account=root_account, url="http://127.0.0.1:9/", events=["link.created"]
    )
    pairs = [(make_user("Parent", root_account), make_user("Child", root_account))]

    with notifications.suppressed():
        assert notifications.emails_suppressed()
        notifications.enqueue_for_events(bulk_sis_links(root_account, pairs))

    assert not notifications.emails_suppressed()
    assert EmailNotification.objects.count() == 0
    assert list(WebhookDelivery.objects.values_list("event_type", flat=True)) == ["link.created"]
