"""E-mail (issue 17, defect 7): backends from settings, List-Unsubscribe, preferences."""

import email
import re

import pytest
from django.core import mail
from django.urls import reverse

from linking.models import EmailNotification, EmailPreference
from linking.services import notifications

Kind = EmailNotification.Kind


def preferences_path(message) -> str:
    url = message.extra_headers["List-Unsubscribe"].strip("<>")
    assert url.startswith("http://default.test:8000/notifications/preferences/")
    return url.removeprefix("http://default.test:8000")


def test_the_file_backend_works_from_settings_alone(
    link, student, observer, root_account, settings, tmp_path
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    link(observer, student, root_account)

    report = notifications.deliver_due_emails()

    assert report.sent == 1
    (written,) = (tmp_path / "mail").iterdir()
    saved = email.message_from_string(written.read_text())
    assert saved["To"] == "sam@example.test"
    assert (
        saved["List-Unsubscribe"]
        .strip()
        .startswith("<http://default.test:8000/notifications/preferences/")
    )
    assert saved["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_every_email_carries_list_unsubscribe_and_a_preferences_link(
    link, student, observer, root_account
):
    link(observer, student, root_account)
    notifications.deliver_due_emails()

    (message,) = mail.outbox
    path = preferences_path(message)
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f"Choose which e-mails you get: http://default.test:8000{path}" in message.body
    assert f'href="http://default.test:8000{path}"' in message.alternatives[0][0]


def test_a_person_turns_a_kind_off_and_the_planner_leaves_it_out(
    client, link, make_user, student, observer, root_account
):
    link(observer, student, root_account)
    notifications.deliver_due_emails()
    path = preferences_path(mail.outbox[0])

    page = client.get(path, HTTP_HOST="default.test")
    assert page.status_code == 200
    assert b"Your e-mail preferences" in page.content
    assert EmailPreference.objects.count() == 0  # looking changes nothing

    saved = client.post(
        path,
        {"kinds": [Kind.LINK_REMOVED_TO_OBSERVER, Kind.STAFF_LINK_TO_OBSERVER]},
        HTTP_HOST="default.test",
    )
    assert saved.status_code == 200
    assert b"Saved." in saved.content
    preference = EmailPreference.objects.get(user=student, root_account=root_account)
    assert preference.muted_kinds == sorted(
        [Kind.NEW_OBSERVER_TO_STUDENT, Kind.NEW_OBSERVER_TO_OBSERVERS]
    )

    link(make_user("Second Observer", root_account), student, root_account)

    # The student asked for no new-observer e-mails; the first observer still gets theirs.
    recipients = list(EmailNotification.objects.order_by("id").values_list("to_email", "kind"))
    assert recipients == [
        ("sam@example.test", Kind.NEW_OBSERVER_TO_STUDENT),
        ("olive@example.test", Kind.NEW_OBSERVER_TO_OBSERVERS),
    ]


def test_one_click_unsubscribe_turns_every_kind_off(client, link, student, observer, root_account):
    link(observer, student, root_account)
    notifications.deliver_due_emails()
    path = preferences_path(mail.outbox[0])

    # What a mail client sends (RFC 8058): no form, no CSRF token.
    client_with_csrf = client.__class__(enforce_csrf_checks=True)
    response = client_with_csrf.post(
        path, {"List-Unsubscribe": "One-Click"}, HTTP_HOST="default.test"
    )

    assert response.status_code == 200
    assert notifications.muted_kinds_for(user=student, root_account=root_account) == set(
        notifications.PREFERENCE_KINDS
    )


@pytest.mark.parametrize("host", ["external.test"])
def test_a_preferences_link_works_only_on_its_schools_host(
    client, link, student, observer, root_account, other_root_account, host
):
    link(observer, student, root_account)
    notifications.deliver_due_emails()
    path = preferences_path(mail.outbox[0])

    response = client.post(path, {"List-Unsubscribe": "One-Click"}, HTTP_HOST=host)

    assert response.status_code == 404
    assert EmailPreference.objects.count() == 0


def test_a_tampered_preferences_link_is_refused(client, student, root_account):
    token = notifications.unsubscribe_url(recipient=student, root_account=root_account).rsplit(
        "/", 2
    )[-2]
    forged = re.sub(r".$", "x" if not token.endswith("x") else "y", token)

    response = client.post(
        reverse("notifications:preferences", args=[forged]),
        {"List-Unsubscribe": "One-Click"},
        HTTP_HOST="default.test",
    )

    assert response.status_code == 404
    assert EmailPreference.objects.count() == 0


def test_an_unknown_kind_is_refused_by_the_service(student, root_account):
    with pytest.raises(notifications.UnknownEmailKind):
        notifications.set_email_preferences(
            user=student, root_account=root_account, muted_kinds=["password_reset"]
        )
    assert EmailPreference.objects.count() == 0


def test_the_footer_and_the_page_speak_the_recipients_language(
    client, link, make_user, observer, root_account
):
    estudiante = make_user("Ana Alumna", root_account, email="ana@example.test", locale="es")
    link(observer, estudiante, root_account)
    notifications.deliver_due_emails()

    (message,) = mail.outbox
    assert "Elija qué correos recibe: http://default.test:8000/notifications/" in message.body
    page = client.get(
        preferences_path(message), HTTP_HOST="default.test", HTTP_ACCEPT_LANGUAGE="es"
    )
    assert "Sus preferencias de correo" in page.content.decode()
    assert "nuevo observador (al estudiante)" in page.content.decode()


def test_a_link_awaiting_approval_is_e_mailed_whatever_the_preferences(student, root_account):
    """The approval request asks the student to decide: it cannot be turned off."""
    from linking.services.notifications import PREFERENCE_KINDS, UnknownEmailKind

    assert Kind.APPROVAL_TO_STUDENT not in PREFERENCE_KINDS
    notifications.unsubscribe_all(user=student, root_account=root_account)
    preference = EmailPreference.objects.get(user=student, root_account=root_account)
    assert Kind.APPROVAL_TO_STUDENT not in preference.muted_kinds
    with pytest.raises(UnknownEmailKind):
        notifications.set_email_preferences(
            user=student, root_account=root_account, muted_kinds=[Kind.APPROVAL_TO_STUDENT]
        )
    preference.refresh_from_db()
    assert Kind.APPROVAL_TO_STUDENT not in preference.muted_kinds
