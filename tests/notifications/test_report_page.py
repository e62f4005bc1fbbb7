"""The "this wasn't me" page linked from new-observer e-mails."""

from urllib.parse import urlsplit

import pytest
from django.core import signing

from linking.models import EmailNotification, UnrecognisedLinkReport
from linking.services import notifications


@pytest.fixture
def report_path(link, student, observer, root_account):
    link(observer, student, root_account)
    message = notifications.render_email(EmailNotification.objects.get(recipient=student))
    url = next(line for line in message.body_text.splitlines() if "/report/" in line)
    assert url.startswith("http://default.test:8000/notifications/report/")
    return urlsplit(url).path


def test_get_shows_the_link_and_records_nothing(client, report_path):
    response = client.get(report_path, HTTP_HOST="default.test")

    assert response.status_code == 200
    assert b"Olive Observer was linked as an observer of Sam Student" in response.content
    assert UnrecognisedLinkReport.objects.count() == 0


def test_post_records_one_report_for_staff_and_thanks(
    client, report_path, student, observer, root_account
):
    response = client.post(
        report_path, HTTP_HOST="default.test", REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="Mail"
    )

    assert response.status_code == 200
    assert b"Thank you" in response.content
    report = UnrecognisedLinkReport.objects.get()
    assert report.root_account == root_account
    assert (report.student, report.observer, report.reported_by) == (student, observer, student)
    assert report.link == student.observer_links.get()
    assert report.ip_address == "203.0.113.7"
    assert report.user_agent == "Mail"
    assert report.reviewed is False
    # The link itself is untouched: staff decide.
    assert student.observer_links.get().workflow_state == "active"

    client.post(report_path, HTTP_HOST="default.test")
    assert UnrecognisedLinkReport.objects.count() == 1


def test_a_tampered_token_is_refused(client, report_path):
    response = client.post(report_path[:-3] + "xx/", HTTP_HOST="default.test")

    assert response.status_code == 404
    assert b"not valid" in response.content
    assert UnrecognisedLinkReport.objects.count() == 0


def test_the_page_is_refused_on_another_schools_host(client, report_path, other_root_account):
    response = client.post(report_path, HTTP_HOST="external.test")

    assert response.status_code == 404
    assert UnrecognisedLinkReport.objects.count() == 0


def test_a_token_for_an_email_without_a_report_link_is_refused(
    client, link, make_user, observer, root_account
):
    student = make_user("Other", root_account)
    link(observer, student, root_account, source="admin")
    to_observer = EmailNotification.objects.get(kind=EmailNotification.Kind.STAFF_LINK_TO_OBSERVER)
    token = signing.dumps(
        {"e": to_observer.event_id, "u": observer.pk}, salt=notifications.REPORT_SALT
    )

    response = client.post(f"/notifications/report/{token}/", HTTP_HOST="default.test")

    assert response.status_code == 404
    assert UnrecognisedLinkReport.objects.count() == 0


def test_an_expired_token_is_refused(client, report_path, monkeypatch):
    import time

    later = time.time() + notifications.REPORT_MAX_AGE.total_seconds() + 60
    monkeypatch.setattr(signing.time, "time", lambda: later)

    response = client.post(report_path, HTTP_HOST="default.test")

    assert response.status_code == 404
    assert UnrecognisedLinkReport.objects.count() == 0


def test_mark_reports_reviewed(client, report_path):
    client.post(report_path, HTTP_HOST="default.test")
    report = UnrecognisedLinkReport.objects.get()

    assert notifications.mark_reports_reviewed(reports=[report]) == 1
    assert notifications.mark_reports_reviewed(reports=[report]) == 0
    report.refresh_from_db()
    assert report.reviewed is True
