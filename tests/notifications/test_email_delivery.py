"""Delivering the e-mail queue: send_queued_notifications, retries and give-up."""

import datetime as dt

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.template.loader import render_to_string

from linking.models import DeliveryStatus, EmailNotification, LinkSource
from linking.services import deliveries, notifications


@pytest.fixture(autouse=True)
def _locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.DEFAULT_FROM_EMAIL = "school@example.test"


def test_command_sends_queued_emails_with_text_and_html_parts(
    link, student, observer, root_account, capsys, frozen_now
):
    link(observer, student, root_account, source=LinkSource.ADMIN)
    assert mail.outbox == []  # nothing is sent during the change itself

    call_command("send_queued_notifications")

    assert "sent 2, retrying 0, failed 0" in capsys.readouterr().out
    assert sorted(message.to[0] for message in mail.outbox) == [
        "olive@example.test",
        "sam@example.test",
    ]
    to_student = next(message for message in mail.outbox if message.to == ["sam@example.test"])
    assert to_student.subject == "Olive Observer can now see your courses"
    assert to_student.from_email == "school@example.test"
    assert "Olive Observer is now linked to you" in to_student.body
    assert "How the link was made: staff admin" in to_student.body
    ((html, mimetype),) = to_student.alternatives
    assert mimetype == "text/html"
    assert "<strong>Olive Observer</strong>" in html
    assert "/notifications/report/" in html
    assert to_student.extra_headers["Auto-Submitted"] == "auto-generated"
    rows = EmailNotification.objects.all()
    assert {row.status for row in rows} == {DeliveryStatus.SENT}
    assert {row.attempts for row in rows} == {1}
    assert {row.sent_at for row in rows} == {frozen_now.now}

    # A second pass finds nothing left to send.
    call_command("send_queued_notifications")
    assert len(mail.outbox) == 2


def test_names_are_not_html_escaped_in_the_text_part(link, make_user, observer, root_account):
    student = make_user("Seán O'Brien & Co", root_account, email="sean@example.test")
    link(observer, student, root_account, source=LinkSource.ADMIN)

    call_command("send_queued_notifications")

    to_observer = next(message for message in mail.outbox if message.to == ["olive@example.test"])
    assert "Seán O'Brien & Co" in to_observer.subject
    assert "Seán O'Brien & Co" in to_observer.body
    assert "O&#x27;Brien &amp; Co" in to_observer.alternatives[0][0]


def test_failed_sending_is_retried_with_back_off_then_given_up(
    link, student, observer, root_account, settings, frozen_now
):
    settings.EMAIL_BACKEND = "tests.notifications.backends.RefusingBackend"
    settings.OBSERVERS_NOTIFICATION_RETRY_HOURS = 1
    settings.OBSERVERS_NOTIFICATION_RETRY_BASE_SECONDS = 600
    link(observer, student, root_account)
    message = EmailNotification.objects.get()
    start = frozen_now.now

    report = notifications.deliver_due_emails()
    message.refresh_from_db()
    assert (report.sent, report.retrying, report.failed) == (0, 1, 0)
    assert message.status == DeliveryStatus.PENDING
    assert message.attempts == 1
    assert message.next_attempt_at == start + dt.timedelta(minutes=10)
    assert "ConnectionRefusedError" in message.last_error

    # Not due yet: nothing is tried.
    frozen_now.advance(minutes=9, seconds=59)
    assert notifications.deliver_due_emails().processed == 0

    frozen_now.advance(seconds=1)
    notifications.deliver_due_emails()
    message.refresh_from_db()
    assert message.attempts == 2
    assert message.next_attempt_at == frozen_now.now + dt.timedelta(minutes=20)

    # The next wait (40 minutes) would end past the one-hour window: given up.
    frozen_now.advance(minutes=20)
    report = notifications.deliver_due_emails()
    message.refresh_from_db()
    assert (report.sent, report.retrying, report.failed) == (0, 0, 1)
    assert message.status == DeliveryStatus.FAILED
    assert message.attempts == 3
    assert message.sent_at is None

    frozen_now.advance(days=1)
    assert notifications.deliver_due_emails().processed == 0


def test_a_message_that_failed_once_is_sent_on_the_next_attempt(
    link, student, observer, root_account, settings, frozen_now
):
    settings.EMAIL_BACKEND = "tests.notifications.backends.RefusingBackend"
    link(observer, student, root_account)
    notifications.deliver_due_emails()

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    frozen_now.advance(minutes=1)
    notifications.deliver_due_emails()

    message = EmailNotification.objects.get()
    assert message.status == DeliveryStatus.SENT
    assert message.attempts == 2
    assert message.last_error == ""
    assert [sent.to for sent in mail.outbox] == [["sam@example.test"]]


def test_back_off_doubles_and_is_capped():
    assert deliveries.retry_delay(1) == dt.timedelta(minutes=1)
    assert deliveries.retry_delay(4) == dt.timedelta(minutes=8)
    assert deliveries.retry_delay(30) == dt.timedelta(hours=6)


def test_batch_limits_one_pass(link, make_user, observer, root_account):
    for number in range(3):
        link(observer, make_user(f"Student {number}", root_account), root_account)
    assert EmailNotification.objects.count() == 3

    call_command("send_queued_notifications", "--batch", "2")
    assert len(mail.outbox) == 2
    call_command("send_queued_notifications", "--batch", "2")
    assert len(mail.outbox) == 3


def test_command_rejects_a_nonsense_batch(db):
    with pytest.raises(CommandError, match="--batch"):
        call_command("send_queued_notifications", "--batch", "0")


def test_retry_now_puts_a_given_up_message_back(link, student, observer, root_account, settings):
    settings.EMAIL_BACKEND = "tests.notifications.backends.RefusingBackend"
    settings.OBSERVERS_NOTIFICATION_RETRY_HOURS = 0
    link(observer, student, root_account)
    notifications.deliver_due_emails()
    message = EmailNotification.objects.get()
    assert message.status == DeliveryStatus.FAILED

    assert notifications.retry_now(emails=[message]) == 1
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    notifications.deliver_due_emails()

    message.refresh_from_db()
    assert message.status == DeliveryStatus.SENT
    assert len(mail.outbox) == 1


def test_recent_for_lists_a_persons_latest_notifications_in_one_root_account(
    link, make_user, student, root_account, other_root_account
):
    observers = [make_user(f"Observer {n}", root_account) for n in range(3)]
    for observer in observers:
        link(observer, student, root_account)

    recent = notifications.recent_for(student, root_account, limit=2)

    assert [item.subject for item in recent] == [
        "Observer 2 can now see your courses",
        "Observer 1 can now see your courses",
    ]
    assert notifications.recent_for(student, other_root_account) == []
    assert notifications.recent_for(observers[2], root_account) == []
    assert [item.subject for item in notifications.recent_for(observers[0], root_account)] == [
        "Observer 2 is now also observing Sam Student",
        "Observer 1 is now also observing Sam Student",
    ]


def test_the_portal_include_lists_recent_notifications(link, student, observer, root_account):
    link(observer, student, root_account)

    html = render_to_string(
        "linking/_notifications.html",
        {"notifications": notifications.recent_for(student, root_account)},
    )

    assert "Recent notifications" in html
    assert "Olive Observer can now see your courses" in html
    assert render_to_string("linking/_notifications.html", {"notifications": []}).strip() == ""


def test_the_sender_plans_pending_events_before_sending(
    student, observer, root_account, system_actor, capsys
):
    from linking.services.links import link_observer

    link_observer(
        observer=observer,
        student=student,
        root_account=root_account,
        actor=system_actor,
        source=LinkSource.ADMIN,
    )
    assert EmailNotification.objects.count() == 0  # the request wrote only the audit event

    call_command("send_queued_notifications")

    assert "sent 2, retrying 0, failed 0" in capsys.readouterr().out
    assert sorted(message.to[0] for message in mail.outbox) == [
        "olive@example.test",
        "sam@example.test",
    ]
    assert EmailNotification.objects.filter(status=DeliveryStatus.SENT).count() == 2
