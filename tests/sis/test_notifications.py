"""SIS imports cause the same e-mails and webhooks as one-by-one linking, unless suppressed."""

import io

from django.core.management import call_command

from linking.models import AuditEvent, ObservationLink
from linking.models.notifications import EmailNotification, WebhookDelivery, WebhookEndpoint
from linking.services import notifications

HEADER = "observer_id,student_id,status\n"


def test_import_queues_emails_and_webhooks_for_each_new_link(
    sis_dir, sis_users, root_account, run_import
):
    endpoint = WebhookEndpoint.objects.create(
        root_account=root_account, url="http://127.0.0.1:9/hook", events=["link.created"]
    )
    path = sis_dir("links.csv", HEADER + "U001,U002,active\nU003,U004,active\n")

    run_import(path)

    links = list(ObservationLink.objects.active().order_by("pk"))
    assert len(links) == 2
    events = AuditEvent.objects.filter(action="link.created")
    assert events.count() == 2
    assert set(events.values_list("notifications_pending", flat=True)) == {True}
    assert notifications.plan_all_pending() == 2
    # Each link: one e-mail to the student and one to the observer (a link made by SIS).
    for link in links:
        recipients = set(
            EmailNotification.objects.filter(event__link=link).values_list(
                "recipient_id", flat=True
            )
        )
        assert recipients == {link.student_id, link.observer_id}
    deliveries = WebhookDelivery.objects.filter(endpoint=endpoint)
    assert sorted(d.event.link_id for d in deliveries) == [link.pk for link in links]


def test_no_notifications_flag_suppresses_emails_but_not_webhooks(sis_dir, sis_users, root_account):
    WebhookEndpoint.objects.create(
        root_account=root_account, url="http://127.0.0.1:9/hook", events=["link.created"]
    )
    path = sis_dir("links.csv", HEADER + "U001,U002,active\n")

    call_command(
        "sis_import",
        str(path),
        "--domain",
        "default.test",
        "--no-notifications",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )

    assert ObservationLink.objects.active().count() == 1
    assert notifications.plan_all_pending() == 1
    assert EmailNotification.objects.count() == 0
    assert WebhookDelivery.objects.count() == 1


def test_dry_run_queues_nothing(sis_dir, sis_users, root_account, run_import):
    path = sis_dir("links.csv", HEADER + "U001,U002,active\n")

    run_import(path, dry_run=True)

    assert ObservationLink.objects.count() == 0
    assert notifications.plan_all_pending() == 0
    assert EmailNotification.objects.count() == 0
    assert WebhookDelivery.objects.count() == 0
