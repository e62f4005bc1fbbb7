"""Webhooks: signed JSON posts of link and pairing-code events to other systems.

Deliveries are queued by ``notifications.enqueue_for_event`` in the same
transaction as the audit event and posted later by
``manage.py send_queued_notifications``. Each post carries

    X-Observers-Timestamp: <unix seconds>
    X-Observers-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

so the receiver can check both who sent it and that it is fresh.
"""

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from datetime import datetime
from urllib.parse import urlsplit

from django.utils import timezone

from ..models import AuditEvent, DeliveryStatus, WebhookDelivery, WebhookEndpoint
from ..models.notifications import WEBHOOK_EVENTS

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Observers-Signature"
TIMESTAMP_HEADER = "X-Observers-Timestamp"
EVENT_HEADER = "X-Observers-Event"
DELIVERY_HEADER = "X-Observers-Delivery"
TIMEOUT_SECONDS = 5
RESPONSE_EXCERPT_CHARS = 500


def _person(user) -> dict | None:
    return None if user is None else {"id": user.pk, "name": user.name}


def event_payload(event: AuditEvent) -> dict:
    """The JSON document posted for an audit event."""
    link = event.link
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
        "student": _person(event.student),
        "link": (
            None
            if link is None
            else {
                "id": link.pk,
                "workflow_state": link.workflow_state,
                "source": link.source,
            }
        ),
        "pairing_code": None if event.pairing_code_id is None else {"id": event.pairing_code_id},
    }


def active_endpoints(root_account_id: int) -> list[WebhookEndpoint]:
    return list(WebhookEndpoint.objects.filter(root_account_id=root_account_id, is_active=True))


def plan_deliveries(event: AuditEvent, endpoints: list[WebhookEndpoint]) -> list[WebhookDelivery]:
    """Unsaved deliveries of an event to each of ``endpoints`` subscribed to its type."""
    if event.action not in WEBHOOK_EVENTS:
        return []
    subscribed = [endpoint for endpoint in endpoints if event.action in (endpoint.events or [])]
    if not subscribed:
        return []
    body = json.dumps(event_payload(event), separators=(",", ":"), sort_keys=True)
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

    Only http and https URLs are posted; redirects are not followed, so a
    signed body never reaches a host the staff did not register.
    """
    endpoint = delivery.endpoint
    if urlsplit(endpoint.url).scheme not in {"http", "https"}:
        return None, "", "only http and https URLs are delivered"
    timestamp = int(now.timestamp())
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        endpoint.url,
        data=delivery.body.encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "observers-webhooks/1",
            EVENT_HEADER: delivery.event_type,
            DELIVERY_HEADER: str(delivery.pk),
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(secret=endpoint.secret, timestamp=timestamp, body=delivery.body),
        },
    )
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            return response.status, _excerpt(response), ""
    except urllib.error.HTTPError as exc:
        return exc.code, _excerpt(exc), f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, "", f"{type(exc).__name__}: {exc}"[:1000]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _excerpt(response) -> str:
    try:
        return response.read(RESPONSE_EXCERPT_CHARS * 4).decode("utf-8", "replace")[
            :RESPONSE_EXCERPT_CHARS
        ]
    except OSError:
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
