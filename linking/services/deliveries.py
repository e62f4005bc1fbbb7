"""Posting queued webhook deliveries: claims, order, concurrency, retries, the attempt log.

A delivery task (``linking.tasks.deliver_webhooks``) drains one endpoint:

1. **Claim** (``claim``): in one short transaction that locks the endpoint's
   row, so claims on one endpoint never interleave, take up to a batch of due
   deliveries whose earlier deliveries of the same link (``order_key``) are
   neither waiting for a retry nor claimed by another task, and stamp them
   with a claim token valid for ``OBSERVERS_WEBHOOK_CLAIM_SECONDS``.
2. **Post** (``_post_batch``): each link's deliveries in event order, links
   side by side on ``OBSERVERS_WEBHOOK_CONCURRENCY`` threads with keep-alive
   connections. Each post must finish whole within the post timeout, and no
   post starts once the claim could run out before it ends, so a claim never
   expires under a post and another task never posts the same row again.
   When a post fails, the link's later deliveries of the batch wait for it.
3. **Record** (``_record``): one transaction writes every outcome of the
   batch, only to rows still carrying this task's claim token, and keeps each
   attempt (``WebhookAttempt``).

Retries: about ``base x 2^n`` seconds (capped at 6 hours, +-20 % jitter) for
``OBSERVERS_NOTIFICATION_RETRY_HOURS`` (three days) after the delivery was
queued, or later when a 429 or 503 answer says so in ``Retry-After``; then
the delivery is given up. A 410 answer turns the endpoint off at once; an
endpoint that has not accepted a post for the whole retry window is turned
off when its deliveries are given up, and the school's staff are e-mailed.
An endpoint that is off keeps its queued deliveries for when it is back on.
"""

import logging
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from ..models import (
    AccountAdmin,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from . import webhooks

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 500
MAX_RETRY_DELAY = timedelta(hours=6)
MAX_RETRY_AFTER = timedelta(hours=24)
# Room left between the last post's deadline and the claim's end.
CLAIM_MARGIN_SECONDS = 2.0

_random = random.SystemRandom()


@dataclass
class DeliveryReport:
    """Counts of one delivery pass."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    more: bool = False

    @property
    def processed(self) -> int:
        return self.sent + self.retrying + self.failed

    def add(self, other: "DeliveryReport") -> "DeliveryReport":
        return DeliveryReport(
            sent=self.sent + other.sent,
            retrying=self.retrying + other.retrying,
            failed=self.failed + other.failed,
            errors=self.errors + other.errors,
            more=self.more or other.more,
        )


# Retry policy (e-mails use it too) ------------------------------------------------


def retry_window() -> timedelta:
    return timedelta(hours=settings.OBSERVERS_NOTIFICATION_RETRY_HOURS)


def retry_delay(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failure: base x 2^(attempts-1), capped, with jitter.

    Jitter (``OBSERVERS_NOTIFICATION_RETRY_JITTER``, +-20 % by default) keeps
    the retries of many deliveries that failed together from arriving together.
    """
    base = settings.OBSERVERS_NOTIFICATION_RETRY_BASE_SECONDS
    delay = min(timedelta(seconds=base * 2 ** max(attempts - 1, 0)), MAX_RETRY_DELAY)
    spread = settings.OBSERVERS_NOTIFICATION_RETRY_JITTER
    return delay * (1 + _random.uniform(-spread, spread)) if spread else delay


def next_attempt_at(
    *, created_at: datetime, attempts: int, now: datetime, retry_after: timedelta | None = None
) -> datetime | None:
    """When to try again after a failed attempt, or None once the retry window is over."""
    delay = retry_delay(attempts)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    when = now + delay
    return None if when > created_at + retry_window() else when


# Claiming ---------------------------------------------------------------------------


def claim_seconds() -> float:
    return float(settings.OBSERVERS_WEBHOOK_CLAIM_SECONDS)


def claimable(endpoint: WebhookEndpoint, now: datetime):
    """Due, unclaimed deliveries of the endpoint whose link has nothing in the way.

    A link (``order_key``) is in the way while any of its pending deliveries
    waits for a retry or is claimed by another task: its later deliveries
    must not overtake. Only rows already attempted or claimed can be in the
    way, which a small partial index covers, so the check costs the same
    with a backlog of a hundred or a hundred thousand.
    """
    pending = WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.PENDING)
    in_the_way = (
        pending.filter(Q(claimed_until__isnull=False) | Q(attempts__gt=0))
        .filter(Q(next_attempt_at__gt=now) | Q(claimed_until__gt=now))
        .values("order_key")
    )
    due = pending.filter(next_attempt_at__lte=now).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lte=now)
    )
    if not endpoint.is_active:
        # Queued events wait for the endpoint to be turned on; a ping is sent anyway.
        due = due.filter(event_type=webhooks.PING_EVENT)
    return due.exclude(order_key__in=in_the_way).order_by("id")


def claim(*, endpoint_id: int, batch: int = DEFAULT_BATCH) -> tuple[str, list[WebhookDelivery]]:
    """Claim up to ``batch`` deliveries of one endpoint for this task: (claim token, rows).

    The endpoint's row is locked for the claim's short transaction, so two
    tasks claiming for one endpoint take turns and each sees the other's
    claims: a link's deliveries never go out from two tasks at once.
    """
    token = uuid.uuid4().hex
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().filter(pk=endpoint_id).first()
        if endpoint is None:
            return token, []
        now = timezone.now()
        ids = list(claimable(endpoint, now).values_list("pk", flat=True)[:batch])
        if not ids:
            return token, []
        WebhookDelivery.objects.filter(pk__in=ids).update(
            claimed_until=now + timedelta(seconds=claim_seconds()), claim_token=token
        )
    rows = list(WebhookDelivery.objects.filter(pk__in=ids).select_related("endpoint__root_account"))
    rows.sort(key=lambda delivery: delivery.pk)
    return token, rows


# Posting ----------------------------------------------------------------------------


def _post_chain(
    chain: list[WebhookDelivery],
    *,
    target: webhooks.Target,
    poster: webhooks.Poster,
    last_start: float,
) -> list[tuple[WebhookDelivery, webhooks.Outcome]]:
    """Post one link's deliveries in order; stop at the first failure or when time is up."""
    done = []
    for delivery in chain:
        if time.monotonic() > last_start:
            break
        headers = webhooks.signed_headers(
            endpoint=delivery.endpoint,
            msg_id=webhooks.message_id(delivery),
            event_type=delivery.event_type,
            body=delivery.body,
            now=timezone.now(),
        )
        outcome = poster.post(target=target, headers=headers, body=delivery.body)
        done.append((delivery, outcome))
        if not outcome.succeeded:
            break
    return done


def _post_batch(
    endpoint: WebhookEndpoint,
    rows: list[WebhookDelivery],
    *,
    claimed_at: float,
    pool: ThreadPoolExecutor,
    poster: webhooks.Poster,
) -> list[tuple[WebhookDelivery, webhooks.Outcome]]:
    now = timezone.now()
    try:
        target = webhooks.resolve_target(endpoint.url)
    except webhooks.UnsafeWebhookUrl as exc:
        logger.warning("Webhook endpoint %s refused: %s", endpoint.pk, exc.message)
        refused = exc.message if "only http" in exc.message else f"refused: {exc.message}"
        return [(row, webhooks.Outcome(None, "", refused, now, 0)) for row in rows]
    except (OSError, UnicodeError) as exc:
        host = urlsplit(endpoint.url).hostname
        error = f"could not resolve {host}: {type(exc).__name__}: {exc}"[:1000]
        return [(row, webhooks.Outcome(None, "", error, now, 0)) for row in rows]
    chains: dict[str, list[WebhookDelivery]] = {}
    for row in rows:
        chains.setdefault(row.order_key or f"row:{row.pk}", []).append(row)
    last_start = claimed_at + claim_seconds() - webhooks.post_timeout() - CLAIM_MARGIN_SECONDS
    futures = [
        pool.submit(_post_chain, chain, target=target, poster=poster, last_start=last_start)
        for chain in chains.values()
    ]
    return [pair for future in futures for pair in future.result()]


# Recording --------------------------------------------------------------------------


def _apply(delivery: WebhookDelivery, outcome: webhooks.Outcome, now: datetime) -> tuple[str, bool]:
    """Set the delivery's fields from an attempt: (new status, whether the receiver said 410)."""
    delivery.attempts += 1
    delivery.last_attempt_at = outcome.started_at
    delivery.last_status_code = outcome.status_code
    delivery.last_response_excerpt = outcome.excerpt
    delivery.last_error = "" if outcome.succeeded else outcome.error
    delivery.claimed_until = None
    delivery.claim_token = ""
    gone = outcome.status_code == 410
    if outcome.succeeded:
        delivery.status = DeliveryStatus.SENT
        delivery.sent_at = outcome.started_at
        return delivery.status, False
    retry = (
        None
        if gone or outcome.error.startswith("only http")
        else next_attempt_at(
            created_at=delivery.created_at,
            attempts=delivery.attempts,
            now=now,
            retry_after=outcome.retry_after,
        )
    )
    if retry is None:
        delivery.status = DeliveryStatus.FAILED
        logger.warning("Webhook delivery %s gave up: %s", delivery.pk, outcome.error)
    else:
        delivery.next_attempt_at = retry
    return delivery.status, gone


_RECORDED = [
    "status",
    "attempts",
    "sent_at",
    "next_attempt_at",
    "last_attempt_at",
    "last_status_code",
    "last_response_excerpt",
    "last_error",
    "claimed_until",
    "claim_token",
]


def _record(
    endpoint: WebhookEndpoint,
    token: str,
    rows: list[WebhookDelivery],
    results: list[tuple[WebhookDelivery, webhooks.Outcome]],
) -> DeliveryReport:
    report = DeliveryReport()
    now = timezone.now()
    gone = False
    with transaction.atomic():
        owned = set(
            WebhookDelivery.objects.filter(pk__in=[row.pk for row in rows], claim_token=token)
            .select_for_update()
            .values_list("pk", flat=True)
        )
        attempts = []
        # Accepted posts are written a few UPDATEs per batch (one per distinct answer);
        # the exact time of each is in its attempt row.
        accepted: dict[tuple[int, str], list[tuple[WebhookDelivery, webhooks.Outcome]]] = {}
        for delivery, outcome in results:
            if delivery.pk not in owned:
                logger.error("Webhook delivery %s lost its claim while posting", delivery.pk)
                continue
            attempts.append(
                WebhookAttempt(
                    delivery=delivery,
                    attempted_at=outcome.started_at,
                    duration_ms=outcome.duration_ms,
                    status_code=outcome.status_code,
                    response_excerpt=outcome.excerpt,
                    error="" if outcome.succeeded else outcome.error,
                )
            )
            if outcome.succeeded:
                accepted.setdefault((outcome.status_code, outcome.excerpt), []).append(
                    (delivery, outcome)
                )
                report.sent += 1
                continue
            status, said_gone = _apply(delivery, outcome, now)
            gone = gone or said_gone
            delivery.save(update_fields=_RECORDED)
            report.errors.append(outcome.error)
            if status == DeliveryStatus.FAILED:
                report.failed += 1
            else:
                report.retrying += 1
        for (status_code, excerpt), pairs in accepted.items():
            last = max(outcome.started_at for _, outcome in pairs)
            WebhookDelivery.objects.filter(pk__in=[delivery.pk for delivery, _ in pairs]).update(
                status=DeliveryStatus.SENT,
                attempts=F("attempts") + 1,
                sent_at=last,
                last_attempt_at=last,
                last_status_code=status_code,
                last_response_excerpt=excerpt,
                last_error="",
                claimed_until=None,
                claim_token="",
            )
        WebhookAttempt.objects.bulk_create(attempts, batch_size=500)
        # Claimed but not posted (their link waits for an earlier failure, or time ran out).
        posted = {delivery.pk for delivery, _ in results}
        WebhookDelivery.objects.filter(
            pk__in=[row.pk for row in rows if row.pk not in posted], claim_token=token
        ).update(claimed_until=None, claim_token="")
        if gone:
            disable_endpoint(endpoint=endpoint, reason="the receiver answered 410 Gone")
        elif report.failed and not _accepted_recently(endpoint, now):
            disable_endpoint(
                endpoint=endpoint,
                reason=f"no post accepted for {settings.OBSERVERS_NOTIFICATION_RETRY_HOURS} hours",
            )
    return report


def _accepted_recently(endpoint: WebhookEndpoint, now: datetime) -> bool:
    return WebhookAttempt.objects.filter(
        delivery__endpoint=endpoint,
        status_code__gte=200,
        status_code__lt=300,
        attempted_at__gte=now - retry_window(),
    ).exists()


def disable_endpoint(*, endpoint: WebhookEndpoint, reason: str) -> bool:
    """Turn an endpoint off and e-mail the school's staff; False when it was already off.

    Its queued deliveries are kept: they go out once staff turn it on again.
    """
    with transaction.atomic():
        updated = WebhookEndpoint.objects.filter(pk=endpoint.pk, is_active=True).update(
            is_active=False, disabled_reason=reason[:255]
        )
    if not updated:
        return False
    endpoint.is_active, endpoint.disabled_reason = False, reason[:255]
    logger.warning("Webhook endpoint %s turned off: %s", endpoint.pk, reason)
    staff = (
        AccountAdmin.objects.filter(
            root_account_id=endpoint.root_account_id, workflow_state=AccountAdmin.State.ACTIVE
        )
        .exclude(user__email="")
        .values_list("user__email", flat=True)
        .distinct()
    )
    recipients = sorted(set(staff))
    if recipients:
        transaction.on_commit(
            lambda: send_mail(
                subject=f"Webhook endpoint turned off: {endpoint.url}"[:200],
                message=(
                    f"The webhook endpoint {endpoint.url} was turned off: {reason}.\n\n"
                    "Its queued deliveries are kept. Turn it on again in the admin "
                    "(Webhook endpoints) once the receiver works; they are then sent.\n"
                ),
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=recipients,
                fail_silently=True,
            )
        )
    return True


# Draining ---------------------------------------------------------------------------


def drain_endpoint(
    endpoint_id: int, *, batch: int = DEFAULT_BATCH, time_budget: float | None = None
) -> DeliveryReport:
    """Post the endpoint's due deliveries batch by batch until none is left or time is up.

    ``report.more`` says deliveries were still claimable when the budget ran
    out (the task then queues itself again).
    """
    report = DeliveryReport()
    started = time.monotonic()
    poster = webhooks.Poster()
    concurrency = max(1, settings.OBSERVERS_WEBHOOK_CONCURRENCY)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="webhook") as pool:
        try:
            while True:
                claimed_at = time.monotonic()
                token, rows = claim(endpoint_id=endpoint_id, batch=batch)
                if not rows:
                    break
                endpoint = rows[0].endpoint
                results = _post_batch(
                    endpoint, rows, claimed_at=claimed_at, pool=pool, poster=poster
                )
                report = report.add(_record(endpoint, token, rows, results))
                if time_budget is not None and time.monotonic() - started > time_budget:
                    report.more = True
                    break
        finally:
            # Each pool thread closes its own keep-alive connections.
            list(pool.map(lambda _: poster.close(), range(concurrency)))
    return report


def endpoints_with_due_deliveries(now: datetime | None = None) -> list[int]:
    """Endpoints that have a delivery to post now (off ones only for a ping)."""
    now = now or timezone.now()
    due = WebhookDelivery.objects.due(now).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lte=now)
    )
    due = due.filter(Q(endpoint__is_active=True) | Q(event_type=webhooks.PING_EVENT))
    return sorted(set(due.values_list("endpoint_id", flat=True)))


def deliver_due_webhooks(*, batch: int = DEFAULT_BATCH) -> DeliveryReport:
    """One batch of due deliveries for every endpoint that has some (the tasks drain fully)."""
    report = DeliveryReport()
    for endpoint_id in endpoints_with_due_deliveries():
        report = report.add(drain_endpoint(endpoint_id, batch=batch, time_budget=0))
    return report


@transaction.atomic
def send_again(*, deliveries) -> int:
    """Queue deliveries again, due now, whatever their status (sent ones too).

    The receiver gets the same ``webhook-id`` as before, so one that already
    processed it can tell; the earlier attempts stay in the log.
    """
    now = timezone.now()
    return WebhookDelivery.objects.filter(pk__in=[item.pk for item in deliveries]).update(
        status=DeliveryStatus.PENDING,
        next_attempt_at=now,
        created_at=now,
        claimed_until=None,
        claim_token="",
    )
