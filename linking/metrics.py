"""Prometheus metrics: django-prometheus's request metrics plus the service's own.

- ``django_http_responses_total_by_status_view_method`` (django-prometheus):
  requests by endpoint (URL name), method and status;
- ``observers_rate_limit_refusals_total``: guesses refused by the rate limit;
- ``observers_queue_depth`` and ``observers_queue_oldest_age_seconds``: the
  background work waiting (``services.queue_status``);
- ``observers_sis_batches_total{state}``: SIS imports by outcome.

The last three are read from the database when Prometheus scrapes, so every
worker answers the same and nothing is lost on restart. ``/metrics`` answers
only the addresses in METRICS_ALLOWED_ADDRESSES or a request bearing
METRICS_TOKEN.
"""

import hmac
import ipaddress
import os

import prometheus_client
from django.conf import settings
from django.db.models import Count
from django.http import HttpResponse, HttpResponseForbidden
from prometheus_client import multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .models import SisBatch
from .request_context import client_ip
from .services.queue_status import queue_status


class DatabaseCollector:
    """Metrics that live in the database, computed at scrape time."""

    def collect(self):
        status = queue_status()
        depth = GaugeMetricFamily(
            "observers_queue_depth",
            "Background work waiting: unplanned notification events, pending e-mails and webhooks.",
        )
        depth.add_metric([], status.depth)
        yield depth
        age = GaugeMetricFamily(
            "observers_queue_oldest_age_seconds",
            "Age of the oldest waiting item of background work (0 when none waits).",
        )
        age.add_metric([], status.oldest_age_seconds())
        yield age
        batches = CounterMetricFamily(
            "observers_sis_batches", "SIS import batches by state.", labels=["state"]
        )
        counts = dict(
            SisBatch.objects.order_by()
            .values_list("workflow_state")
            .annotate(n=Count("pk"))
            .values_list("workflow_state", "n")
        )
        for state in SisBatch.State.values:
            batches.add_metric([state], counts.get(state, 0))
        yield batches


def _allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        given = request.META.get("HTTP_AUTHORIZATION", "")
        if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return True
    address = client_ip(request)
    if address is None:
        return False
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED)


def metrics_view(request):
    if not _allowed(request):
        return HttpResponseForbidden("metrics are not served to this address\n")
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        # gunicorn workers each write their counters to files; add them up.
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = prometheus_client.REGISTRY
    database = prometheus_client.CollectorRegistry()
    database.register(DatabaseCollector())
    body = prometheus_client.generate_latest(registry) + prometheus_client.generate_latest(database)
    return HttpResponse(body, content_type=prometheus_client.CONTENT_TYPE_LATEST)
