"""/metrics: requests by endpoint and status, rate-limit refusals, the queue, SIS outcomes."""

import datetime as dt

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from linking.models import AuditEvent, SisBatch
from linking.services import links
from linking.services.context import Actor
from linking.services.queue_status import queue_status
from tests import factories

pytestmark = pytest.mark.django_db

HOST = "default.test"


def scrape(client=None, **headers) -> dict:
    """{(sample name, frozenset(labels)): value} of one scrape from 127.0.0.1."""
    client = client or Client(HTTP_HOST=HOST)
    response = client.get("/metrics", **headers)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_requests_are_counted_by_endpoint_and_status(root_account):
    web = Client(HTTP_HOST=HOST)
    name = "django_http_responses_total_by_status_view_method_total"
    before = scrape()
    assert web.get("/login/").status_code == 200
    assert web.get("/observing/").status_code == 302
    after = scrape()
    ok = {"status": "200", "view": "linking:login", "method": "GET"}
    redirect = {"status": "302", "view": "linking:observing", "method": "GET"}
    assert value(after, name, **ok) == value(before, name, **ok) + 1
    assert value(after, name, **redirect) == value(before, name, **redirect) + 1


def test_metrics_are_refused_to_other_addresses_without_the_token(root_account, settings):
    settings.METRICS_TOKEN = "scrape-secret-123"
    outsider = Client(HTTP_HOST=HOST, REMOTE_ADDR="203.0.113.9")
    assert outsider.get("/metrics").status_code == 403
    assert outsider.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    samples = scrape(outsider, HTTP_AUTHORIZATION="Bearer scrape-secret-123")
    assert ("observers_queue_depth", frozenset()) in samples
    settings.METRICS_ALLOWED = ["203.0.113.0/24"]
    assert outsider.get("/metrics").status_code == 200


def test_rate_limit_refusals_are_counted(root_account, settings):
    settings.OBSERVERS_RATE_LIMIT_FAILURES = 2
    factories.LoginFactory(root_account=root_account, unique_id="sam@school.test")
    web = Client(HTTP_HOST=HOST, REMOTE_ADDR="10.9.9.9")
    before = value(scrape(), "observers_rate_limit_refusals_total")
    statuses = [
        web.post("/login/", {"username": "sam@school.test", "password": "wrong"}).status_code
        for _ in range(4)
    ]
    assert statuses == [200, 200, 429, 429]
    assert value(scrape(), "observers_rate_limit_refusals_total") == before + 2


def test_queue_depth_and_age_of_the_oldest_waiting_item(root_account, make_user, frozen_now):
    assert queue_status().depth == 0
    samples = scrape()
    assert value(samples, "observers_queue_depth") == 0
    assert value(samples, "observers_queue_oldest_age_seconds") == 0

    parent = make_user("Pat Parent", root_account)
    student = make_user("Sam Student", root_account)
    links.link_observer(
        observer=parent, student=student, root_account=root_account, actor=Actor.system()
    )
    assert AuditEvent.objects.filter(notifications_pending=True).count() == 1
    frozen_now.advance(minutes=5)

    samples = scrape()
    assert value(samples, "observers_queue_depth") == 1
    assert value(samples, "observers_queue_oldest_age_seconds") == pytest.approx(300, abs=1)


def test_sis_batch_outcomes(root_account):
    for state in ["imported", "imported", "imported_with_messages", "failed"]:
        SisBatch.objects.create(root_account=root_account, workflow_state=state)
    samples = scrape()
    assert value(samples, "observers_sis_batches_total", state="imported") == 2
    assert value(samples, "observers_sis_batches_total", state="imported_with_messages") == 1
    assert value(samples, "observers_sis_batches_total", state="failed") == 1
    assert value(samples, "observers_sis_batches_total", state="aborted") == 0


def test_queue_status_reports_the_oldest_of_every_kind(root_account, make_user):
    from django.utils import timezone

    from linking.models import EmailNotification

    student = make_user("Sam Student", root_account)
    old = timezone.now() - dt.timedelta(hours=2)
    EmailNotification.objects.create(
        root_account=root_account,
        recipient=student,
        kind=EmailNotification.Kind.NEW_OBSERVER_TO_STUDENT,
        to_email="sam@example.test",
        subject="s",
        body_text="b",
        created_at=old,
    )
    status = queue_status()
    assert status.depth == 1
    assert status.oldest_queued_at == old
