"""Webhooks to the Standard Webhooks specification: payloads, signatures, endpoints, posting.

Deliveries are queued by ``notifications.plan_pending`` from the audit events
a change marked pending, and posted by the delivery tasks
(``services.deliveries``, run by the task worker). Each post carries

    webhook-id: msg_<delivery id>           (the same on every retry: dedupe on it)
    webhook-timestamp: <unix seconds>       (the moment of this attempt)
    webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>

as https://www.standardwebhooks.com/ describes, so any Standard Webhooks
library verifies it (``standardwebhooks.Webhook(secret).verify(body,
headers)``). Secrets are in the spec's ``whsec_<base64 key>`` form. A rotated
secret keeps signing beside the new one for an overlap, during which the
header carries both signatures separated by a space.

The payload is a snapshot of the event as it happened (``snapshot_for``,
taken by ``audit.record_event`` in the change's own transaction), so a later
change to the link never rewrites what an earlier event said.

Server-side request forgery: a webhook URL is staff input, and the service
posts to it from inside the school's network. Unless
``settings.OBSERVERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES`` is on, a URL whose
host is or resolves to a loopback, private, link-local, multicast, reserved
or otherwise non-global address is refused when staff register it
(``check_webhook_url``) and again before each batch of posts to it (see
``services.deliveries``), since DNS answers can change. Posts then connect to the very address that
was checked, so a second, different DNS answer cannot slip in between check
and connect.
"""

import base64
import binascii
import contextlib
import heapq
import http.client
import ipaddress
import itertools
import json
import logging
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from ..models import AuditEvent, WebhookDelivery, WebhookEndpoint
from ..models.notifications import WEBHOOK_EVENTS, WEBHOOK_SECRET_PREFIX, generate_webhook_secret
from .errors import LinkingError

logger = logging.getLogger(__name__)

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
PING_EVENT = "ping"
TIMEOUT_SECONDS = 5
RESPONSE_EXCERPT_CHARS = 500
# A keep-alive connection is reused only when the answer's body was read whole within this.
MAX_BODY_READ = 64 * 1024
ALLOWED_SCHEMES = {"http", "https"}
USER_AGENT = "observers-webhooks/2"


class UnsafeWebhookUrl(LinkingError):
    code = "unsafe_webhook_url"
    default_message = "This URL cannot receive webhooks."


class InvalidWebhookSecret(LinkingError):
    code = "invalid_webhook_secret"
    default_message = "A webhook secret is whsec_ followed by a base64 key of 24 to 64 bytes."


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


# Secrets ---------------------------------------------------------------------------


def check_secret(secret: str) -> None:
    """Rule: a secret is ``whsec_`` and base64 of 24 to 64 bytes. Raises InvalidWebhookSecret."""
    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        raise InvalidWebhookSecret()
    try:
        key = base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidWebhookSecret() from exc
    if not 24 <= len(key) <= 64:
        raise InvalidWebhookSecret()


@transaction.atomic
def rotate_secret(*, endpoint: WebhookEndpoint, overlap: timedelta | None = None) -> str:
    """Give the endpoint a new secret; the old one keeps signing beside it for ``overlap``.

    During the overlap every post carries two signatures (new, then old), so
    the receiver can switch to the new secret whenever it likes within that
    time. Rotating again during an overlap drops the oldest secret. Returns
    the new secret.
    """
    if overlap is None:
        overlap = timedelta(hours=settings.OBSERVERS_WEBHOOK_ROTATION_OVERLAP_HOURS)
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = timezone.now() + overlap
    endpoint.secret = generate_webhook_secret()
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
    return endpoint.secret


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets a post made at ``now`` is signed with: the current one, then a rotated one."""
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and now < expires:
        secrets.append(endpoint.previous_secret)
    return secrets


def sign(*, secrets: list[str], msg_id: str, timestamp: datetime, body: str) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per secret, space separated."""
    return " ".join(
        Webhook(secret).sign(msg_id=msg_id, timestamp=timestamp, data=body) for secret in secrets
    )


def signed_headers(
    *, endpoint: WebhookEndpoint, msg_id: str, event_type: str, body: str, now: datetime
) -> dict[str, str]:
    """Every header of one post, signed for the moment ``now`` (each attempt signs afresh)."""
    stamp = now.replace(microsecond=0)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(int(stamp.timestamp())),
        SIGNATURE_HEADER: sign(
            secrets=signing_secrets(endpoint, now), msg_id=msg_id, timestamp=stamp, body=body
        ),
        "webhook-event": event_type,
    }


def message_id(delivery: WebhookDelivery) -> str:
    return f"msg_{delivery.pk}"


# Payloads ---------------------------------------------------------------------------


def _person(user) -> dict | None:
    return None if user is None else {"id": user.pk, "name": user.name}


def _root(account) -> dict | None:
    return None if account is None else {"id": account.pk, "name": account.name}


_ACTION_STATE = {
    "link.created": "active",
    "link.restored": "active",
    "link.deleted": "deleted",
}


# The state an invitation is in right after each of its events.
_INVITATION_STATE = {
    "invitation.sent": "pending",
    "invitation.resent": "pending",
    "invitation.accepted": "accepted",
    "invitation.declined": "declined",
    "invitation.withdrawn": "withdrawn",
    "invitation.expired": "expired",
}


def invitation_snapshot(action: str, invitation) -> dict:
    """An invitation as its event's payload shows it: never its token (nor the token's hash)."""
    return {
        "id": invitation.pk,
        "state": _INVITATION_STATE.get(action, invitation.state),
        "email": invitation.email,
        "created_at": invitation.created_at.isoformat(),
        "expires_at": invitation.expires_at.isoformat(),
    }


def snapshot_for(
    *,
    action: str,
    source: str,
    actor_user,
    root_account,
    observer,
    student,
    link,
    pairing_code,
    invitation=None,
) -> dict:
    """What an event's payload says beyond its id, type and time, as things are right now.

    Called by ``audit.record_event`` inside the change's transaction, from
    the objects the service already holds (no query). Invitation events
    carry an ``invitation`` object too.
    """
    snapshot = {
        "root_account": _root(root_account),
        "observer": _person(observer),
        "student": _person(student),
        "link": (
            None
            if link is None
            else {
                "id": link.pk,
                "workflow_state": _ACTION_STATE.get(action, link.workflow_state),
                "source": link.source,
                # Ours, not Canvas's: who the observer is and when the link ends.
                "kind": link.kind,
                "ends_at": link.ends_at.isoformat() if link.ends_at else None,
            }
        ),
        "pairing_code": None if pairing_code is None else {"id": pairing_code.pk},
        "actor": {"user": _person(actor_user), "source": source},
    }
    if action in _INVITATION_STATE:
        snapshot["invitation"] = (
            invitation_snapshot(action, invitation) if invitation is not None else None
        )
    return snapshot


def event_payload(event: AuditEvent, *, protected: bool = False) -> dict:
    """The JSON document posted for an audit event: its snapshot, with id, type and time.

    Events written without a snapshot (SIS bulk inserts, rows older than
    snapshots) describe the link's state as the event's action implies and
    its source as the event recorded it. A protected student
    (services.rules) is sent by id alone, marked ``"protected": true``:
    their name never leaves the service.
    """
    snapshot = event.snapshot
    if snapshot is None:
        link = event.link
        snapshot = snapshot_for(
            action=event.action,
            source=event.source,
            actor_user=None,
            root_account=event.root_account,
            observer=event.observer,
            student=event.student,
            link=link,
            pairing_code=event.pairing_code if event.pairing_code_id else None,
        )
        if link is not None and (event.detail or {}).get("source"):
            snapshot["link"]["source"] = event.detail["source"]
        if event.actor_id is not None:
            snapshot["actor"]["user"] = {"id": event.actor_id, "name": event.actor.name}
        if event.action in _INVITATION_STATE:
            detail = event.detail or {}
            snapshot["invitation"] = {
                "id": detail.get("invitation_id"),
                "state": _INVITATION_STATE[event.action],
            }
    if protected and snapshot.get("student") is not None:
        snapshot = {**snapshot, "student": {"id": snapshot["student"]["id"], "protected": True}}
    return {
        "id": event.pk,
        "type": event.action,
        "occurred_at": event.created_at.isoformat(),
        **snapshot,
    }


def encode(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)


def order_key(event: AuditEvent) -> str:
    """Deliveries with one key reach an endpoint in event order: per link, invitation or code."""
    invitation_id = (event.detail or {}).get("invitation_id")
    if event.action in _INVITATION_STATE and invitation_id is not None:
        return f"invitation:{invitation_id}"
    if event.link_id is not None:
        return f"link:{event.link_id}"
    if event.pairing_code_id is not None:
        return f"code:{event.pairing_code_id}"
    return f"event:{event.pk}"


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
    body = encode(event_payload(event, protected=protected))
    now = timezone.now()
    key = order_key(event)
    return [
        WebhookDelivery(
            endpoint=endpoint,
            event=event,
            event_type=event.action,
            order_key=key,
            body=body,
            created_at=now,
            next_attempt_at=now,
        )
        for endpoint in subscribed
    ]


@transaction.atomic
def queue_ping(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Queue a ``ping`` event to one endpoint (the admin's test-send), due now.

    A ping goes to an endpoint whether it subscribed to anything or not, and
    even while it is turned off, so staff can check a receiver before
    turning it on; it is delivered and retried like any event.
    """
    now = timezone.now()
    ping_id = f"ping_{uuid.uuid4().hex}"
    body = encode(
        {
            "id": ping_id,
            "type": PING_EVENT,
            "occurred_at": now.isoformat(),
            "root_account": _root(endpoint.root_account),
            "endpoint": {"id": endpoint.pk, "url": endpoint.url},
        }
    )
    return WebhookDelivery.objects.create(
        endpoint=endpoint,
        event=None,
        event_type=PING_EVENT,
        order_key=ping_id,
        body=body,
        created_at=now,
        next_attempt_at=now,
    )


# Posting ----------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one post came to."""

    status_code: int | None
    excerpt: str
    error: str
    started_at: datetime
    duration_ms: int
    retry_after: timedelta | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class Target:
    """Where an endpoint's posts go: the URL's parts and the address that was checked."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def resolve_target(url: str) -> Target:
    """Check an endpoint URL and resolve it to the address posts connect to.

    Raises UnsafeWebhookUrl (bad scheme, forbidden address) or OSError (no
    such host).
    """
    scheme, host, port = _split_url(url)
    addresses = resolve_addresses(host, port)
    check_addresses(host, addresses)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme=scheme, host=host, port=port, path=path, address=addresses[0])


class _Deadlines:
    """One thread that shuts down sockets whose post ran past its whole-post deadline.

    A socket timeout bounds each read, not the post: a receiver sending one
    byte a second would keep a post alive for ever. Shutting the socket down
    makes the blocked read return at once, whatever it was waiting for.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, socket.socket]] = []
        self._live: set[int] = set()
        self._counter = itertools.count()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, sock: socket.socket, deadline: float) -> int:
        with self._condition:
            token = next(self._counter)
            heapq.heappush(self._heap, (deadline, token, sock))
            self._live.add(token)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="webhook-deadlines", daemon=True
                )
                self._thread.start()
            self._condition.notify()
            return token

    def disarm(self, token: int) -> bool:
        """Stop watching a post; True when its deadline had already fired."""
        with self._condition:
            if token in self._live:
                self._live.discard(token)
                return False
            return True

    def _run(self) -> None:
        with self._condition:
            while True:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._condition.wait(timeout=30)
                    if not self._heap:
                        self._thread = None
                        return
                    continue
                deadline, token, sock = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._condition.wait(timeout=wait)
                    continue
                heapq.heappop(self._heap)
                self._live.discard(token)
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


_deadlines = _Deadlines()


def post_timeout() -> float:
    return float(getattr(settings, "OBSERVERS_WEBHOOK_TIMEOUT_SECONDS", TIMEOUT_SECONDS))


class Poster:
    """Posts deliveries over keep-alive connections, one set of connections per thread.

    Safe to share between the threads of a pool: each thread keeps its own
    connection to each checked address, so a delivery task posting to one
    receiver pays one TCP (and TLS) handshake per thread, not per post.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def close(self) -> None:
        """Close this thread's connections (each pool thread calls it before it ends)."""
        for connection in getattr(self._local, "connections", {}).values():
            connection.close()
        self._local.connections = {}

    def _connection(self, target: Target, timeout: float) -> http.client.HTTPConnection:
        connections = getattr(self._local, "connections", None)
        if connections is None:
            connections = self._local.connections = {}
        found = connections.get(target)
        if found is None:
            connection_class = (
                _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
            )
            found = connections[target] = connection_class(
                target.host, target.port, address=target.address, timeout=timeout
            )
        found.timeout = timeout
        if found.sock is not None:
            found.sock.settimeout(timeout)
        return found

    def _drop(self, target: Target) -> None:
        connection = getattr(self._local, "connections", {}).pop(target, None)
        if connection is not None:
            connection.close()

    def post(self, *, target: Target, headers: dict[str, str], body: str) -> Outcome:
        """POST ``body`` to ``target``; the whole post must finish within the post timeout.

        Redirects are not followed and proxies from the environment are not
        used, so a signed body never reaches a host the staff did not
        register. Never raises for network trouble: it is in the outcome.
        """
        timeout = post_timeout()
        started_at = timezone.now()
        began = time.monotonic()
        deadline = began + timeout
        token = None
        reused = False
        fired = False
        try:
            for retry_stale in (True, False):
                connection = self._connection(target, timeout)
                reused = connection.sock is not None
                if connection.sock is None:
                    connection.connect()
                token = _deadlines.arm(connection.sock, deadline)
                try:
                    connection.request("POST", target.path, body=body.encode(), headers=headers)
                    response = connection.getresponse()
                    break
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    fired, token = _deadlines.disarm(token), None
                    if fired:
                        raise
                    self._drop(target)
                    # A kept-alive connection the receiver had closed: try once on a new one.
                    if not (reused and retry_stale) or time.monotonic() >= deadline:
                        raise
            body_bytes = response.read(MAX_BODY_READ)
            whole = response.isclosed()
            status = response.status
            retry_after = _retry_after(response.getheader("Retry-After"), started_at)
            if not whole or response.will_close:
                self._drop(target)
            fired, token = _deadlines.disarm(token), None
            if fired:
                # The answer was cut short: the post did not finish in time.
                raise TimeoutError("whole-post deadline")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self._drop(target)
            elapsed = time.monotonic() - began
            if token is not None:
                fired, token = _deadlines.disarm(token) or fired, None
            if fired or elapsed >= timeout:
                error = f"timed out: the whole post is limited to {timeout:g} s"
            else:
                error = f"{type(exc).__name__}: {exc}"[:1000]
            return Outcome(None, "", error, started_at, int(elapsed * 1000), retry_after=None)
        finally:
            if token is not None:
                _deadlines.disarm(token)
        excerpt = body_bytes[: RESPONSE_EXCERPT_CHARS * 4].decode("utf-8", "replace")[
            :RESPONSE_EXCERPT_CHARS
        ]
        return Outcome(
            status,
            excerpt,
            "" if 200 <= status < 300 else f"HTTP {status}",
            started_at,
            int((time.monotonic() - began) * 1000),
            retry_after=retry_after if status in (429, 503) else None,
        )


def _retry_after(value: str | None, now: datetime) -> timedelta | None:
    """A Retry-After header (seconds or an HTTP date) as a delay, or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(when - now, timedelta(0))


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
