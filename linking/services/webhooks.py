"""Webhooks: signed JSON posts of link and pairing-code events to other systems.

Deliveries are queued by ``notifications.plan_pending`` from the audit events
a change marked pending, and posted by ``manage.py send_queued_notifications``
(which plans first). Each post carries

    X-Observers-Timestamp: <unix seconds>
    X-Observers-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

so the receiver can check both who sent it and that it is fresh.

Server-side request forgery: a webhook URL is staff input, and the service
posts to it from inside the school's network. Unless
``settings.OBSERVERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES`` is on, a URL whose
host is or resolves to a loopback, private, link-local, multicast, reserved
or otherwise non-global address is refused when staff register it
(``check_webhook_url``) and again right before each post, since DNS answers
can change. The post then connects to the very address that was checked, so
a second, different DNS answer cannot slip in between check and connect.
"""

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import socket
import ssl
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from ..models import AuditEvent, DeliveryStatus, WebhookDelivery, WebhookEndpoint
from ..models.notifications import WEBHOOK_EVENTS
from .errors import LinkingError

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Observers-Signature"
TIMESTAMP_HEADER = "X-Observers-Timestamp"
EVENT_HEADER = "X-Observers-Event"
DELIVERY_HEADER = "X-Observers-Delivery"
TIMEOUT_SECONDS = 5
RESPONSE_EXCERPT_CHARS = 500
ALLOWED_SCHEMES = {"http", "https"}


class UnsafeWebhookUrl(LinkingError):
    code = "unsafe_webhook_url"
    default_message = "This URL cannot receive webhooks."


def private_addresses_allowed() -> bool:
    return bool(getattr(settings, "OBSERVERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False))


def _forbidden_reason(address: str) -> str | None:
    """Why an IP address may not receive webhooks, or None when it is a public address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for reason, flag in (
        # Most specific first: Python counts link-local and reserved ranges as private too.
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("not globally routable", not ip.is_global),
    ):
        if flag:
            return reason
    return None


def _split_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a webhook URL. Raises UnsafeWebhookUrl."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeWebhookUrl("The URL is not valid.") from exc
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeWebhookUrl("only http and https URLs are delivered")
    if not parts.hostname:
        raise UnsafeWebhookUrl("The URL has no host name.")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (an IP literal is its own answer)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def check_addresses(host: str, addresses: list[str]) -> None:
    """Refuse addresses a webhook may not reach. Raises UnsafeWebhookUrl.

    Every answer must be public: a name with one public and one private
    address is refused too. Passes everything when private addresses are
    allowed by ``OBSERVERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES``.
    """
    if private_addresses_allowed():
        return
    for address in addresses:
        reason = _forbidden_reason(address)
        if reason:
            where = address if host == address else f"{host} resolves to {address}, which"
            raise UnsafeWebhookUrl(
                f"{where} is a {reason} address; webhooks are only posted to public "
                "addresses (OBSERVERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES is off)"
            )


def check_webhook_url(*, url: str) -> None:
    """Rule: staff may register only http(s) URLs of public hosts. Raises UnsafeWebhookUrl.

    An IP literal, or a host name that resolves, to a loopback, private,
    link-local, multicast or reserved address is refused unless
    ``OBSERVERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES`` is on. A name that does not
    resolve (yet) is accepted: every post checks the address again anyway.
    """
    _scheme, host, port = _split_url(url)
    if private_addresses_allowed():
        return
    try:
        addresses = resolve_addresses(host, port)
    except (OSError, UnicodeError):
        return
    check_addresses(host, addresses)


def _person(user) -> dict | None:
    return None if user is None else {"id": user.pk, "name": user.name}


def event_payload(event: AuditEvent, *, protected: bool = False) -> dict:
    """The JSON document posted for an audit event.

    A protected student (services.rules) is sent by id alone, marked
    ``"protected": true``: their name never leaves the service.
    """
    link = event.link
    student = _person(event.student)
    if protected and student is not None:
        student = {"id": student["id"], "protected": True}
    return {
        "id": event.pk,
        "type": event.action,
        "occurred_at": event.created_at.isoformat(),
        "root_account": (
            None
            if event.root_account is None
            else {"id": event.root_account.pk, "name": event.root_account.name}
        ),
        "observer": _person(event.observer),
        "student": student,
        "link": (
            None
            if link is None
            else {
                "id": link.pk,
                "workflow_state": link.workflow_state,
                "source": link.source,
                # Ours, not Canvas's: who the observer is and when the link ends.
                "kind": link.kind,
                "ends_at": link.ends_at.isoformat() if link.ends_at else None,
            }
        ),
        "pairing_code": None if event.pairing_code_id is None else {"id": event.pairing_code_id},
    }


def active_endpoints(root_account_id: int) -> list[WebhookEndpoint]:
    return list(WebhookEndpoint.objects.filter(root_account_id=root_account_id, is_active=True))


def plan_deliveries(
    event: AuditEvent, endpoints: list[WebhookEndpoint], *, protected: bool = False
) -> list[WebhookDelivery]:
    """Unsaved deliveries of an event to each of ``endpoints`` subscribed to its type."""
    if event.action not in WEBHOOK_EVENTS:
        return []
    subscribed = [endpoint for endpoint in endpoints if event.action in (endpoint.events or [])]
    if not subscribed:
        return []
    body = json.dumps(
        event_payload(event, protected=protected), separators=(",", ":"), sort_keys=True
    )
    now = timezone.now()
    return [
        WebhookDelivery(
            endpoint=endpoint,
            event=event,
            event_type=event.action,
            body=body,
            created_at=now,
            next_attempt_at=now,
        )
        for endpoint in subscribed
    ]


def sign(*, secret: str, timestamp: int, body: str) -> str:
    """The signature header value for a body posted at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    *, secret: str, header: str, body: str, now: datetime | None = None, tolerance: int = 300
) -> bool:
    """Check a signature header as a receiver would: right HMAC, timestamp within tolerance."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    current = int((now or timezone.now()).timestamp())
    if abs(current - timestamp) > tolerance:
        return False
    expected = sign(secret=secret, timestamp=timestamp, body=body)
    return hmac.compare_digest(expected, f"t={timestamp},v1={parts.get('v1', '')}")


def post(delivery: WebhookDelivery, *, now: datetime) -> tuple[int | None, str, str]:
    """POST one delivery. Returns (status code or None, response excerpt, error text).

    Only http and https URLs are posted. The host is resolved and checked
    (see ``check_addresses``) right before connecting, and the connection
    goes to the checked address. Redirects are not followed and proxies from
    the environment are not used, so a signed body never reaches a host the
    staff did not register.
    """
    endpoint = delivery.endpoint
    try:
        scheme, host, port = _split_url(endpoint.url)
    except UnsafeWebhookUrl as exc:
        return None, "", exc.message
    try:
        addresses = resolve_addresses(host, port)
    except (OSError, UnicodeError) as exc:
        return None, "", f"could not resolve {host}: {type(exc).__name__}: {exc}"[:1000]
    try:
        check_addresses(host, addresses)
    except UnsafeWebhookUrl as exc:
        logger.warning("Webhook delivery %s refused: %s", delivery.pk, exc.message)
        return None, "", f"refused: {exc.message}"
    parts = urlsplit(endpoint.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "observers-webhooks/1",
        EVENT_HEADER: delivery.event_type,
        DELIVERY_HEADER: str(delivery.pk),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret=endpoint.secret, timestamp=timestamp, body=delivery.body),
    }
    timeout = getattr(settings, "OBSERVERS_WEBHOOK_TIMEOUT_SECONDS", TIMEOUT_SECONDS)
    connection_class = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(host, port, address=addresses[0], timeout=timeout)
    try:
        connection.request("POST", target, body=delivery.body.encode(), headers=headers)
        response = connection.getresponse()
        status, excerpt = response.status, _excerpt(response)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return None, "", f"{type(exc).__name__}: {exc}"[:1000]
    finally:
        connection.close()
    return status, excerpt, "" if 200 <= status < 300 else f"HTTP {status}"


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to an already checked address; the Host header keeps the URL's name."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.pinned_address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.pinned_address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an already checked address; the certificate is verified against the URL's name."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.pinned_address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.pinned_address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _excerpt(response) -> str:
    try:
        return response.read(RESPONSE_EXCERPT_CHARS * 4).decode("utf-8", "replace")[
            :RESPONSE_EXCERPT_CHARS
        ]
    except (OSError, http.client.HTTPException):
        return ""


def record_attempt(
    delivery: WebhookDelivery,
    *,
    now: datetime,
    status_code: int | None,
    excerpt: str,
    error: str,
    next_attempt_at: datetime | None,
) -> None:
    """Store an attempt's outcome: sent on 2xx, else retried at ``next_attempt_at`` or given up."""
    succeeded = status_code is not None and 200 <= status_code < 300
    delivery.last_attempt_at = now
    delivery.last_status_code = status_code
    delivery.last_response_excerpt = excerpt
    delivery.last_error = "" if succeeded else error
    if succeeded:
        delivery.status = DeliveryStatus.SENT
        delivery.sent_at = now
    elif next_attempt_at is None:
        delivery.status = DeliveryStatus.FAILED
        logger.warning("Webhook delivery %s gave up: %s", delivery.pk, error)
    else:
        delivery.next_attempt_at = next_attempt_at
    delivery.save(
        update_fields=[
            "status",
            "sent_at",
            "next_attempt_at",
            "last_attempt_at",
            "last_status_code",
            "last_response_excerpt",
            "last_error",
        ]
    )
