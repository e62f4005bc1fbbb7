"""E-mails are queued unrendered and rendered once, by the sender."""

import pytest
from django.core import mail

from linking.models import DeliveryStatus, EmailNotification, LinkSource
from linking.services import notifications


@pytest.fixture(autouse=True)
def _locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def test_sender_renders_and_keeps_what_it_sent(link, student, observer, root_account):
    link(observer, student, root_account, source=LinkSource.ADMIN)
    queued = EmailNotification.objects.get(recipient=student)
    assert (queued.subject, queued.body_text, queued.body_html) == ("", "", "")

    report = notifications.deliver_due_emails()

    assert report.sent == 2
    sent = EmailNotification.objects.get(recipient=student)
    assert sent.status == DeliveryStatus.SENT
    outgoing = next(m for m in mail.outbox if m.to == [student.email])
    assert outgoing.subject == sent.subject and "Olive Observer" in sent.subject
    assert outgoing.body == sent.body_text
    assert outgoing.alternatives[0].content == sent.body_html


def test_message_whose_event_is_gone_fails_without_sending(link, student, observer, root_account):
    link(observer, student, root_account, source=LinkSource.ADMIN)
    EmailNotification.objects.update(event=None)

    report = notifications.deliver_due_emails()

    assert (report.sent, report.failed) == (0, 2)
    assert mail.outbox == []
    assert set(EmailNotification.objects.values_list("status", flat=True)) == {
        DeliveryStatus.FAILED
    }
