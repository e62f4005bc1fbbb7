"""Deliveries on the task queue: real worker loops, a slow real receiver, exactly once.

Issue 17, defect 1: a pass that outlasted its claim let a second sender take
the same rows and post them twice, with stale signatures. Here two
django-tasks-db workers (each in its own thread, as two processes would run
them; on PostgreSQL, since SQLite's shared in-memory test database refuses a
second writer instead of waiting) drain one endpoint behind a receiver
slow enough that a batch takes longer than the claim: every delivery must
arrive once, signed within seconds of its post.
"""

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connections
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult
from standardwebhooks.webhooks import Webhook

from linking import tasks
from linking.models import (
    DeliveryStatus,
    PeriodicTaskRun,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from linking.services import notifications, scheduling

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def run_workers(count: int) -> None:
    """Run ``count`` database-backend workers side by side until the queue is empty."""

    def work(number: int) -> None:
        try:
            Worker(
                queue_names=["default"],
                interval=0.05,
                batch=True,
                backend_name="default",
                startup_delay=False,
                max_tasks=None,
                worker_id=f"test-worker-{number}",
                excluded_queue_names=[],
            ).run()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)


@pytest.fixture
def slow_endpoint(receiver, root_account, settings):
    settings.OBSERVERS_WEBHOOK_CLAIM_SECONDS = 5
    settings.OBSERVERS_WEBHOOK_TIMEOUT_SECONDS = 1
    settings.OBSERVERS_WEBHOOK_CONCURRENCY = 2
    receiver.delay = 0.3
    return WebhookEndpoint.objects.create(
        root_account=root_account, url=receiver.url, secret=SECRET, events=["link.created"]
    )


def test_two_workers_and_a_slow_receiver_post_each_delivery_once(
    postgresql_only, slow_endpoint, receiver, make_user, root_account, link_unplanned
):
    observer = make_user("Olive Observer", root_account)
    for number in range(24):
        link_unplanned(observer, make_user(f"Student {number}", root_account), root_account)
    notifications.plan_all_pending()
    # Two delivery tasks for one endpoint, as a large backlog gets.
    tasks.deliver_webhooks.enqueue(slow_endpoint.pk)
    tasks.deliver_webhooks.enqueue(slow_endpoint.pk)

    run_workers(2)

    ids = [request["headers"]["webhook-id"] for request in receiver.requests]
    assert len(ids) == 24
    assert Counter(ids).most_common(1)[0][1] == 1  # no delivery posted twice
    for request in receiver.requests:
        # Signed at the moment of the post: the library's 5-minute check and a tight one pass.
        Webhook(SECRET).verify(request["body"], request["headers"])
        assert abs(int(request["headers"]["webhook-timestamp"]) - request["at"]) <= 1
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.SENT, attempts=1).count() == 24
    assert WebhookAttempt.objects.count() == 24
    assert not WebhookDelivery.objects.exclude(claim_token="").exists()
    # The batch outlasted the claim, so the first task stopped starting posts in time
    # and a later claim took the rest.
    assert DBTaskResult.objects.filter(status="SUCCESSFUL").count() == 2


def test_a_batch_starts_no_post_its_claim_could_not_cover(
    db, slow_endpoint, receiver, make_user, root_account, link, settings
):
    settings.OBSERVERS_WEBHOOK_CONCURRENCY = 1
    observer = make_user("Olive Observer", root_account)
    for number in range(12):
        link(observer, make_user(f"Student {number}", root_account), root_account)

    # One claim covers 5 s; each post may take 1 s and 2 s stay spare: posts start for 2 s.
    report = notifications.deliver_due_webhooks()

    posted = len(receiver.requests)
    assert 3 <= posted < 12
    assert report.sent == posted
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.SENT).count() == posted
    # The rest were released unposted, due now and free for the next claim.
    rest = WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING)
    assert rest.count() == 12 - posted
    assert set(rest.values_list("attempts", "claim_token")) == {(0, "")}


def test_the_worker_command_plans_and_delivers_on_the_database_backend(
    transactional_db, receiver, link_unplanned, student, observer, root_account, mailoutbox
):
    WebhookEndpoint.objects.create(
        root_account=root_account, url=receiver.url, secret=SECRET, events=["link.created"]
    )
    link_unplanned(observer, student, root_account)

    # --burst: the scheduler enqueues what is due (planning), the worker runs it
    # and whatever it enqueues (delivery tasks), then exits.
    call_command("run_worker", "--burst")

    assert len(receiver.requests) == 1
    assert WebhookDelivery.objects.get().status == DeliveryStatus.SENT
    assert [message.to for message in mailoutbox] == [["sam@example.test"]]
    names = set(DBTaskResult.objects.values_list("task_path", flat=True))
    assert names == {
        "linking.tasks.plan_notifications",
        "linking.tasks.deliver_webhooks",
        "linking.tasks.send_emails",
        "linking.tasks.prune_task_history",
        "linking.tasks.remove_expired_sis_uploads",
        "linking.tasks.apply_link_rules",
        "linking.tasks.prune_authorization_codes",
    }
    assert not DBTaskResult.objects.exclude(status="SUCCESSFUL").exists()


def test_each_periodic_slot_is_enqueued_once_by_several_schedulers(db, frozen_now):
    entry = scheduling.register_periodic(
        tasks.prune_task_history, every=timedelta(minutes=5), name="test.prune"
    )
    try:
        first = scheduling.run_due()
        second = scheduling.run_due()  # a second worker's scheduler, same slot
        frozen_now.advance(minutes=5)
        third = scheduling.run_due()
    finally:
        scheduling._registry.pop(entry.name)
    assert "test.prune" in first
    assert "test.prune" not in second
    assert "test.prune" in third
    assert PeriodicTaskRun.objects.filter(name="test.prune").count() == 2
    # One task enqueued per slot taken, whichever scheduler took it.
    assert DBTaskResult.objects.count() == PeriodicTaskRun.objects.count()


def test_periodic_work_waits_while_only_if_says_nothing_is_to_do(db, frozen_now):
    waiting = {"now": False}
    entry = scheduling.register_periodic(
        tasks.prune_task_history,
        every=timedelta(seconds=1),
        only_if=lambda: waiting["now"],
        name="test.conditional",
    )
    try:
        assert "test.conditional" not in scheduling.run_due()
        waiting["now"] = True
        assert "test.conditional" in scheduling.run_due()
    finally:
        scheduling._registry.pop(entry.name)
    assert PeriodicTaskRun.objects.filter(name="test.conditional").count() == 1


def test_a_periodic_task_runs_at_most_once_a_second():
    with pytest.raises(ValueError, match="once a second"):
        scheduling.register_periodic(tasks.prune_task_history, every=timedelta(milliseconds=10))


def test_old_slot_records_are_pruned(db, frozen_now):
    PeriodicTaskRun.objects.create(name="x", slot=frozen_now.now - timedelta(days=2))
    PeriodicTaskRun.objects.create(name="x", slot=frozen_now.now)

    assert scheduling.prune_history() == 1
    assert list(PeriodicTaskRun.objects.values_list("slot", flat=True)) == [frozen_now.now]


def test_the_request_that_links_enqueues_nothing(
    transactional_db, link_unplanned, student, observer, root_account
):
    # The outbox stays the audit trail: the committed change wrote no task row.
    link_unplanned(observer, student, root_account)
    assert DBTaskResult.objects.count() == 0
    # The worker's scheduler sees the pending event and enqueues the planner.
    assert "linking.tasks.plan_notifications" in scheduling.run_due()


def test_expired_sis_uploads_are_removed_by_a_periodic_task(db, settings, tmp_path, monkeypatch):
    import os

    from linking.admin import sis_uploads

    monkeypatch.setattr(sis_uploads, "upload_root", lambda: tmp_path)
    settings.SIS_UPLOAD_EXPIRY_SECONDS = 60
    old = tmp_path / "upload-old"
    fresh = tmp_path / "upload-fresh"
    old.mkdir()
    fresh.mkdir()
    os.utime(old, (0, 0))

    assert "linking.tasks.remove_expired_sis_uploads" in {e.name for e in scheduling.registered()}
    assert tasks.remove_expired_sis_uploads.call() == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["upload-fresh"]


def test_rows_of_a_worker_that_died_are_posted_once_its_claim_ends(
    db, receiver, link, make_user, root_account, frozen_now
):
    WebhookEndpoint.objects.create(
        root_account=root_account, url=receiver.url, secret=SECRET, events=["link.created"]
    )
    observer = make_user("Olive Observer", root_account)
    link(observer, make_user("Sam Student", root_account), root_account)
    from linking.services import deliveries

    _token, rows = deliveries.claim(endpoint_id=WebhookEndpoint.objects.get().pk)
    assert len(rows) == 1  # ... and the worker holding them is killed here

    assert notifications.deliver_due_webhooks().processed == 0  # still claimed
    frozen_now.advance(seconds=301)
    report = notifications.deliver_due_webhooks()

    assert report.sent == 1
    assert len(receiver.requests) == 1
    assert WebhookDelivery.objects.get().status == DeliveryStatus.SENT


def test_a_sender_whose_claim_was_taken_over_records_nothing(
    db, receiver, link, make_user, root_account, frozen_now
):
    from linking.services import deliveries, webhooks

    endpoint = WebhookEndpoint.objects.create(
        root_account=root_account, url=receiver.url, secret=SECRET, events=["link.created"]
    )
    link(make_user("Olive Observer", root_account), make_user("Sam", root_account), root_account)
    stale_token, rows = deliveries.claim(endpoint_id=endpoint.pk)
    frozen_now.advance(seconds=301)
    fresh_token, again = deliveries.claim(endpoint_id=endpoint.pk)
    assert [row.pk for row in again] == [row.pk for row in rows]

    outcome = webhooks.Outcome(500, "", "HTTP 500", frozen_now.now, 5)
    report = deliveries._record(endpoint, stale_token, rows, [(rows[0], outcome)])

    assert report.processed == 0
    delivery = WebhookDelivery.objects.get()
    assert (delivery.claim_token, delivery.attempts) == (fresh_token, 0)
    assert WebhookAttempt.objects.count() == 0
