"""Staff admin pages for webhook endpoints, the delivery log and the e-mail queue."""

import pytest
from django.urls import reverse

from linking.models import DeliveryStatus, EmailNotification, WebhookDelivery, WebhookEndpoint
from tests import factories

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def superuser(db):
    return factories.UserFactory(name="Site Operator", is_staff=True, is_superuser=True)


@pytest.fixture
def school_staff(root_account):
    return factories.AccountAdminFactory(account=root_account).user


@pytest.fixture
def outsider_staff(other_root_account):
    return factories.AccountAdminFactory(account=other_root_account).user


def test_staff_register_an_endpoint_with_its_events(client, school_staff, root_account):
    client.force_login(school_staff)

    response = client.post(
        reverse("admin:linking_webhookendpoint_add"),
        {
            "root_account": root_account.pk,
            "url": "https://sis.example.test/hooks",
            "description": "SIS sync",
            "events": ["link.created", "link.deleted"],
            "is_active": "on",
            "secret": SECRET,
        },
        HTTP_HOST="default.test",
    )

    assert response.status_code == 302, response.content
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.root_account == root_account
    assert endpoint.events == ["link.created", "link.deleted"]
    assert endpoint.secret == SECRET


def test_a_non_http_url_is_a_form_error(client, superuser, root_account):
    client.force_login(superuser)

    response = client.post(
        reverse("admin:linking_webhookendpoint_add"),
        {
            "root_account": root_account.pk,
            "url": "ftp://files.example.test/",
            "events": ["link.created"],
            "secret": "x",
        },
        HTTP_HOST="default.test",
    )

    assert response.status_code == 200
    assert "url" in response.context["adminform"].form.errors
    assert WebhookEndpoint.objects.count() == 0


def test_delivery_log_shows_status_and_attempts(
    client, superuser, link, student, observer, root_account
):
    endpoint = WebhookEndpoint.objects.create(
        root_account=root_account, url="http://127.0.0.1:9/", events=["link.created"]
    )
    link(observer, student, root_account)
    WebhookDelivery.objects.update(attempts=2, last_status_code=502, last_error="HTTP 502")
    client.force_login(superuser)

    listing = client.get(
        reverse("admin:linking_webhookdelivery_changelist"), HTTP_HOST="default.test"
    )
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    detail = client.get(
        reverse("admin:linking_webhookdelivery_change", args=[delivery.pk]),
        HTTP_HOST="default.test",
    )

    assert listing.status_code == 200
    assert b"502" in listing.content
    assert detail.status_code == 200
    assert b"HTTP 502" in detail.content


def test_retry_action_requeues_a_given_up_email(
    client, superuser, link, student, observer, root_account
):
    link(observer, student, root_account)
    EmailNotification.objects.update(status=DeliveryStatus.FAILED, attempts=6)
    message = EmailNotification.objects.get()
    client.force_login(superuser)

    response = client.post(
        reverse("admin:linking_emailnotification_changelist"),
        {"action": "retry_now", "_selected_action": [message.pk]},
        HTTP_HOST="default.test",
    )

    assert response.status_code == 302
    message.refresh_from_db()
    assert (message.status, message.attempts) == (DeliveryStatus.PENDING, 0)


def test_another_schools_staff_cannot_see_the_endpoint_or_its_deliveries(
    client, outsider_staff, link, student, observer, root_account
):
    endpoint = WebhookEndpoint.objects.create(
        root_account=root_account, url="https://hooks.example.test/", events=["link.created"]
    )
    link(observer, student, root_account)
    WebhookDelivery.objects.update(status=DeliveryStatus.FAILED, attempts=6)
    delivery = WebhookDelivery.objects.get()
    client.force_login(outsider_staff)

    change = client.get(
        reverse("admin:linking_webhookendpoint_change", args=[endpoint.pk]),
        HTTP_HOST="external.test",
    )
    listing = client.get(
        reverse("admin:linking_webhookdelivery_changelist"), HTTP_HOST="external.test"
    )
    email_listing = client.get(
        reverse("admin:linking_emailnotification_changelist"), HTTP_HOST="external.test"
    )
    retry = client.post(
        reverse("admin:linking_webhookdelivery_changelist"),
        {"action": "retry_now", "_selected_action": [delivery.pk]},
        HTTP_HOST="external.test",
    )

    assert change.status_code == 404
    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 0
    assert email_listing.context["cl"].result_count == 0
    assert retry.status_code in (200, 302)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 6)


@pytest.mark.parametrize(
    "model",
    [
        "notificationsettings",
        "emailnotification",
        "webhookendpoint",
        "webhookdelivery",
        "unrecognisedlinkreport",
    ],
)
def test_every_notification_admin_list_opens(client, school_staff, model):
    client.force_login(school_staff)

    response = client.get(reverse(f"admin:linking_{model}_changelist"), HTTP_HOST="default.test")

    assert response.status_code == 200


def test_a_secret_not_in_the_whsec_form_is_a_form_error(client, school_staff, root_account):
    client.force_login(school_staff)

    response = client.post(
        reverse("admin:linking_webhookendpoint_add"),
        {
            "root_account": root_account.pk,
            "url": "https://hooks.example.test/",
            "events": ["link.created"],
            "is_active": "on",
            "secret": "a-long-shared-secret",
        },
        HTTP_HOST="default.test",
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["secret"] == [
        "A webhook secret is whsec_ followed by a base64 key of 24 to 64 bytes."
    ]
    assert WebhookEndpoint.objects.count() == 0


def test_the_delivery_page_lists_every_attempt(
    client, school_staff, receiver, link, student, observer, root_account, settings, frozen_now
):
    from linking.services import notifications

    WebhookEndpoint.objects.create(
        root_account=root_account, url=receiver.url, secret=SECRET, events=["link.created"]
    )
    link(observer, student, root_account)
    receiver.statuses = [503, 201]
    notifications.deliver_due_webhooks()
    frozen_now.advance(hours=1)
    notifications.deliver_due_webhooks()
    delivery = WebhookDelivery.objects.get()
    client.force_login(school_staff)

    page = client.get(
        reverse("admin:linking_webhookdelivery_change", args=[delivery.pk]),
        HTTP_HOST="default.test",
    )

    assert page.status_code == 200
    inline = page.context["inline_admin_formsets"][0]
    assert [form.original.status_code for form in inline] == [503, 201]
    assert b"HTTP 503" in page.content


def test_staff_send_a_ping_and_rotate_the_secret(client, school_staff, root_account, receiver):
    endpoint = WebhookEndpoint.objects.create(
        root_account=root_account, url=receiver.url, secret=SECRET, events=[]
    )
    client.force_login(school_staff)
    changelist = reverse("admin:linking_webhookendpoint_changelist")

    ping = client.post(
        changelist,
        {"action": "send_ping", "_selected_action": [endpoint.pk]},
        HTTP_HOST="default.test",
    )
    rotate = client.post(
        changelist,
        {"action": "rotate_secret", "_selected_action": [endpoint.pk]},
        HTTP_HOST="default.test",
    )

    assert (ping.status_code, rotate.status_code) == (302, 302)
    queued = WebhookDelivery.objects.get(endpoint=endpoint)
    assert (queued.event_type, queued.status) == ("ping", DeliveryStatus.PENDING)
    endpoint.refresh_from_db()
    assert endpoint.secret != SECRET and endpoint.secret.startswith("whsec_")
    assert endpoint.previous_secret == SECRET
    assert endpoint.previous_secret_expires_at is not None


def test_another_schools_staff_cannot_ping_or_rotate(client, outsider_staff, root_account):
    endpoint = WebhookEndpoint.objects.create(
        root_account=root_account, url="https://hooks.example.test/", secret=SECRET
    )
    client.force_login(outsider_staff)

    for action in ("send_ping", "rotate_secret"):
        client.post(
            reverse("admin:linking_webhookendpoint_changelist"),
            {"action": action, "_selected_action": [endpoint.pk]},
            HTTP_HOST="external.test",
        )

    endpoint.refresh_from_db()
    assert endpoint.secret == SECRET
    assert WebhookDelivery.objects.count() == 0
