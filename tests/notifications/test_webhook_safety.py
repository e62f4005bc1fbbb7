"""Webhook URLs may not reach loopback, private, link-local, multicast or reserved addresses.

Checked when staff register an endpoint and again right before every post
(DNS answers can change), unless OBSERVERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES
is on. Host names other than localhost are answered by a stand-in for the
system resolver (``dns`` fixture); the posts themselves go over real sockets.
"""

import re
import socket
import ssl
import subprocess

import pytest
from django.urls import reverse

from linking.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from linking.services import notifications, webhooks
from tests import factories
from tests.notifications.conftest import Receiver

PUBLIC_ADDRESS = "93.184.215.14"


@pytest.fixture
def dns(monkeypatch):
    """dns["name"] = ["address", ...]: what the resolver answers for a name from now on."""
    answers: dict[str, list[str]] = {}
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real_getaddrinfo(host, port, *args, **kwargs)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in answers[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8000/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("https://192.168.0.10/hook", "private"),
        ("http://172.16.5.4/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://240.0.0.1/hook", "reserved"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://100.64.0.1/hook", "not globally routable"),
    ],
)
def test_registration_refuses_non_public_addresses(url, reason, forbid_private_webhooks):
    with pytest.raises(webhooks.UnsafeWebhookUrl) as caught:
        webhooks.check_webhook_url(url=url)

    assert f"a {reason} address" in caught.value.message
    assert caught.value.code == "unsafe_webhook_url"


def test_registration_refuses_a_name_resolving_to_a_private_address(dns, forbid_private_webhooks):
    dns["intranet.example.test"] = ["10.0.0.7"]
    dns["mixed.example.test"] = [PUBLIC_ADDRESS, "192.168.1.1"]

    with pytest.raises(webhooks.UnsafeWebhookUrl, match=re.escape("resolves to 10.0.0.7")):
        webhooks.check_webhook_url(url="https://intranet.example.test/hook")
    # One private answer among public ones is enough to refuse.
    with pytest.raises(webhooks.UnsafeWebhookUrl, match=re.escape("resolves to 192.168.1.1")):
        webhooks.check_webhook_url(url="https://mixed.example.test/hook")


def test_registration_accepts_public_and_not_yet_resolvable_hosts(dns, forbid_private_webhooks):
    dns["sis.example.test"] = [PUBLIC_ADDRESS]

    webhooks.check_webhook_url(url="https://sis.example.test/hooks")
    webhooks.check_webhook_url(url=f"http://{PUBLIC_ADDRESS}:8080/hooks")
    # Not in DNS yet: accepted now, checked again before every post.
    webhooks.check_webhook_url(url="https://not-yet.invalid/hooks")


def test_the_setting_allows_private_addresses(allow_private_webhooks):
    webhooks.check_webhook_url(url="http://127.0.0.1:8000/hook")
    webhooks.check_webhook_url(url="http://localhost:8000/hook")
    with pytest.raises(webhooks.UnsafeWebhookUrl):
        webhooks.check_webhook_url(url="file:///etc/passwd")


@pytest.fixture
def school_staff(root_account):
    return factories.AccountAdminFactory(account=root_account).user


def register(client, root_account, url):
    return client.post(
        reverse("admin:linking_webhookendpoint_add"),
        {
            "root_account": root_account.pk,
            "url": url,
            "events": ["link.created"],
            "is_active": "on",
            "secret": "whsec_" + "A" * 43 + "=",
        },
        HTTP_HOST="default.test",
    )


def test_admin_form_refuses_a_private_address(
    client, school_staff, root_account, forbid_private_webhooks
):
    client.force_login(school_staff)

    response = register(client, root_account, "http://169.254.169.254/latest/meta-data/")

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["url"]
    assert errors == [
        "169.254.169.254 is a link-local address; webhooks are only posted to public "
        "addresses (OBSERVERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES is off)"
    ]
    assert WebhookEndpoint.objects.count() == 0


def test_admin_form_accepts_a_local_receiver_when_allowed(
    client, school_staff, root_account, allow_private_webhooks
):
    client.force_login(school_staff)

    response = register(client, root_account, "http://localhost:9000/hooks")

    assert response.status_code == 302, response.content
    assert WebhookEndpoint.objects.get().url == "http://localhost:9000/hooks"


def test_delivery_to_a_private_address_is_refused_and_recorded(
    receiver, link, student, observer, root_account, settings, frozen_now
):
    # Saved around the form's check, as a row edited in the database would be.
    WebhookEndpoint.objects.create(
        root_account=root_account, url=receiver.url, events=["link.created"]
    )
    link(observer, student, root_account)
    settings.OBSERVERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    settings.OBSERVERS_NOTIFICATION_RETRY_HOURS = 1

    first = notifications.deliver_due_webhooks()
    frozen_now.advance(hours=1)
    second = notifications.deliver_due_webhooks()

    assert receiver.requests == []
    assert (first.retrying, second.failed) == (1, 1)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == 2
    assert delivery.last_status_code is None
    assert delivery.last_error == (
        "refused: 127.0.0.1 is a loopback address; webhooks are only posted to public "
        "addresses (OBSERVERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES is off)"
    )


def test_delivery_checks_dns_again_when_the_name_now_points_inside(
    dns, receiver, link, student, observer, root_account, settings
):
    settings.OBSERVERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    port = receiver.server.server_address[1]
    url = f"http://hooks.example.test:{port}/hooks/observers"
    dns["hooks.example.test"] = [PUBLIC_ADDRESS]
    webhooks.check_webhook_url(url=url)  # what the admin form ran at registration
    WebhookEndpoint.objects.create(root_account=root_account, url=url, events=["link.created"])
    link(observer, student, root_account)

    dns["hooks.example.test"] = ["127.0.0.1"]  # the answer changed since
    notifications.deliver_due_webhooks()

    assert receiver.requests == []
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.last_error.startswith("refused: hooks.example.test resolves to 127.0.0.1")


def test_delivery_connects_to_the_checked_address_with_the_registered_host_name(
    dns, receiver, link, student, observer, root_account
):
    port = receiver.server.server_address[1]
    dns["hooks.example.test"] = ["127.0.0.1"]
    WebhookEndpoint.objects.create(
        root_account=root_account,
        url=f"http://hooks.example.test:{port}/hooks/observers?tenant=1",
        events=["link.created"],
    )
    link(observer, student, root_account)

    report = notifications.deliver_due_webhooks()

    assert report.sent == 1
    (request,) = receiver.requests
    assert request["path"] == "/hooks/observers?tenant=1"
    assert request["headers"]["Host"] == f"hooks.example.test:{port}"
    assert WebhookDelivery.objects.get().status == DeliveryStatus.SENT


def test_an_unresolvable_host_is_recorded_and_retried(
    link, student, observer, root_account, forbid_private_webhooks
):
    WebhookEndpoint.objects.create(
        root_account=root_account, url="https://gone.invalid/hook", events=["link.created"]
    )
    link(observer, student, root_account)

    report = notifications.deliver_due_webhooks()

    delivery = WebhookDelivery.objects.get()
    assert report.retrying == 1
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.last_error.startswith("could not resolve gone.invalid: gaierror")


@pytest.fixture
def tls_receiver(tmp_path, allow_private_webhooks):
    """A receiver on 127.0.0.1 speaking HTTPS, self-signed for the name hooks.example.test."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=hooks.example.test", "-addext", "subjectAltName=DNS:hooks.example.test",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    receiver = Receiver()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    receiver.cert = cert
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def test_https_verifies_the_certificate_against_the_registered_name(
    dns, tls_receiver, link, student, observer, root_account, monkeypatch
):
    port = tls_receiver.server.server_address[1]
    dns["hooks.example.test"] = ["127.0.0.1"]
    WebhookEndpoint.objects.create(
        root_account=root_account,
        url=f"https://hooks.example.test:{port}/hooks/observers",
        events=["link.created"],
    )
    link(observer, student, root_account)

    # An untrusted (self-signed) certificate is refused and recorded.
    notifications.deliver_due_webhooks()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    assert "CERTIFICATE_VERIFY_FAILED" in delivery.last_error
    assert tls_receiver.requests == []

    # Trusted, it is accepted for the registered name although the socket goes to 127.0.0.1.
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_receiver.cert))
    notifications.retry_now(deliveries=[delivery])
    report = notifications.deliver_due_webhooks()

    assert report.sent == 1
    (request,) = tls_receiver.requests
    assert request["headers"]["Host"] == f"hooks.example.test:{port}"
