"""Webhooks: queued with the event, posted signed to a real local HTTP server, retried, given up."""

import datetime as dt
import json
import time

import pytest
from django.core.management import call_command
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from linking.models import DeliveryStatus, LinkSource, WebhookDelivery, WebhookEndpoint
from linking.services import notifications, webhooks
from linking.services.links import unlink_observer
from linking.services.pairing import issue_pairing_code, redeem_pairing_code, revoke_pairing_code
from tests import factories

ALL_EVENTS = [
    "link.created",
    "link.restored",
    "link.deleted",
    "pairing_code.redeemed",
    "pairing_code.revoked",
]


SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def endpoint(receiver, root_account):
    return WebhookEndpoint.objects.create(
        root_account=root_account, url=receiver.url, secret=SECRET, events=ALL_EVENTS
    )


def test_link_event_is_posted_to_the_standard_webhooks_spec(
    endpoint, receiver, link, student, observer, root_account
):
    made = link(observer, student, root_account, source=LinkSource.ADMIN)
    delivery = WebhookDelivery.objects.get()
    assert receiver.requests == []  # nothing is posted during the change itself

    call_command("send_queued_notifications")

    (request,) = receiver.requests
    headers = request["headers"]
    assert request["path"] == "/hooks/observers"
    assert headers["Content-Type"] == "application/json"
    assert headers["webhook-id"] == f"msg_{delivery.pk}"
    assert headers["webhook-event"] == "link.created"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    # A receiver written with the standardwebhooks library accepts it ...
    payload = Webhook(SECRET).verify(request["body"], headers)
    # ... and refuses it with another secret, or with the body changed.
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "B" * 32).verify(request["body"], headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(request["body"].replace("Olive", "Mallory"), headers)
    assert payload == {
        "id": delivery.event_id,
        "type": "link.created",
        "occurred_at": delivery.event.created_at.isoformat(),
        "root_account": {"id": root_account.pk, "name": "Default School"},
        "observer": {"id": observer.pk, "name": "Olive Observer"},
        "student": {"id": student.pk, "name": "Sam Student"},
        "link": {
            "id": made.pk,
            "workflow_state": "active",
            "source": "admin",
            "kind": "",
            "ends_at": None,
        },
        "pairing_code": None,
        "actor": {"user": None, "source": "system"},
    }
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT
    assert delivery.attempts == 1
    assert delivery.last_status_code == 200
    assert delivery.last_response_excerpt == '{"received": true}'
    (attempt,) = delivery.attempt_log.all()
    assert (attempt.status_code, attempt.response_excerpt) == (200, '{"received": true}')


def test_an_old_signature_does_not_verify(endpoint, frozen_now):
    body = '{"type":"ping"}'
    headers = webhooks.signed_headers(
        endpoint=endpoint,
        msg_id="msg_1",
        event_type="ping",
        body=body,
        now=frozen_now.now - dt.timedelta(minutes=6),
    )
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(body, headers)


def test_every_subscribed_event_type_is_queued_once(
    endpoint, link, student, observer, root_account, system_actor
):
    course = factories.CourseFactory(account=root_account)
    factories.EnrollmentFactory(user=student, course=course)
    made = link(observer, student, root_account)
    unlink_observer(link=made, actor=system_actor)
    link(observer, student, root_account)
    unlink_observer(link=made, actor=system_actor)
    issued = issue_pairing_code(student=student, root_account=root_account, actor=system_actor)
    redeem_pairing_code(
        code=issued.plaintext, observer=observer, root_account=root_account, actor=system_actor
    )
    spare = issue_pairing_code(student=student, root_account=root_account, actor=system_actor)
    revoke_pairing_code(pairing_code=spare.pairing_code, actor=system_actor)
    notifications.plan_all_pending()

    assert list(WebhookDelivery.objects.order_by("id").values_list("event_type", flat=True)) == [
        "link.created",
        "link.deleted",
        "link.restored",
        "link.deleted",
        "link.restored",
        "pairing_code.redeemed",
        "pairing_code.revoked",
    ]
    redeemed = WebhookDelivery.objects.get(event_type="pairing_code.redeemed")
    assert json.loads(redeemed.body)["pairing_code"] == {"id": issued.pairing_code.pk}


def test_only_active_subscribed_endpoints_of_the_same_root_account_get_the_event(
    receiver, link, student, observer, root_account, other_root_account
):
    subscribed = WebhookEndpoint.objects.create(
        root_account=root_account, url=receiver.url, events=["link.created"]
    )
    WebhookEndpoint.objects.create(
        root_account=root_account, url=receiver.url, events=["link.deleted"]
    )
    WebhookEndpoint.objects.create(
        root_account=root_account, url=receiver.url, events=["link.created"], is_active=False
    )
    WebhookEndpoint.objects.create(
        root_account=other_root_account, url=receiver.url, events=ALL_EVENTS
    )

    link(observer, student, root_account)

    assert list(WebhookDelivery.objects.values_list("endpoint", flat=True)) == [subscribed.pk]


def test_a_500_is_retried_with_back_off_and_then_delivered(
    endpoint, receiver, link, student, observer, root_account, frozen_now, settings
):
    settings.OBSERVERS_NOTIFICATION_RETRY_BASE_SECONDS = 30
    receiver.statuses = [500, 502]
    link(observer, student, root_account)
    delivery = WebhookDelivery.objects.get()

    report = notifications.deliver_due_webhooks()
    delivery.refresh_from_db()
    assert (report.sent, report.retrying, report.failed) == (0, 1, 0)
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.last_status_code == 500
    assert delivery.last_error == "HTTP 500"
    assert delivery.last_response_excerpt == '{"received": false}'
    assert delivery.next_attempt_at == frozen_now.now + dt.timedelta(seconds=30)

    frozen_now.advance(seconds=29)
    assert notifications.deliver_due_webhooks().processed == 0
    frozen_now.advance(seconds=1)
    notifications.deliver_due_webhooks()
    delivery.refresh_from_db()
    assert delivery.last_status_code == 502
    assert delivery.next_attempt_at == frozen_now.now + dt.timedelta(seconds=60)

    frozen_now.advance(seconds=60)
    notifications.deliver_due_webhooks()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT
    assert delivery.attempts == 3
    assert delivery.last_error == ""
    assert len(receiver.requests) == 3
    # Every attempt is kept, in order.
    assert list(delivery.attempt_log.values_list("status_code", "error")) == [
        (500, "HTTP 500"),
        (502, "HTTP 502"),
        (200, ""),
    ]


def test_an_unreachable_endpoint_is_recorded_and_retried(
    link, student, observer, root_account, receiver
):
    address = receiver.url
    receiver.server.shutdown()
    receiver.server.server_close()
    WebhookEndpoint.objects.create(root_account=root_account, url=address, events=ALL_EVENTS)
    link(observer, student, root_account)

    report = notifications.deliver_due_webhooks()

    delivery = WebhookDelivery.objects.get()
    assert report.retrying == 1
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.last_status_code is None
    assert "URLError" in delivery.last_error or "Connection" in delivery.last_error


def test_a_non_http_url_is_never_fetched(link, student, observer, root_account, settings):
    # Saved around the form's validation, as a row edited in the database would be.
    WebhookEndpoint.objects.create(
        root_account=root_account, url="file:///etc/passwd", events=ALL_EVENTS
    )
    link(observer, student, root_account)

    notifications.deliver_due_webhooks()

    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.last_error == "only http and https URLs are delivered"
    assert delivery.last_response_excerpt == ""
