"""The Spanish catalog (locale/es, committed compiled) reaches pages and e-mails."""

import pytest
from django.core import mail
from django.urls import reverse

from linking.models import EmailNotification, EnrollmentType, LinkSource
from linking.services import enrollments, notifications
from linking.services.context import Actor
from linking.services.links import link_observer, unlink_observer
from tests import factories


@pytest.fixture(autouse=True)
def _locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def test_an_email_to_a_spanish_speaker_is_in_spanish_in_both_parts(
    link, make_user, observer, root_account
):
    student = make_user("Sofía Alumna", root_account, email="sofia@example.test", locale="es")

    link(observer, student, root_account, source=LinkSource.ADMIN)
    notifications.deliver_due_emails()

    queued = EmailNotification.objects.get(recipient=student)
    assert queued.language == "es"
    (message,) = [item for item in mail.outbox if item.to == ["sofia@example.test"]]
    assert message.subject == "Olive Observer ya puede ver sus cursos"
    assert message.body.startswith("Hola, Sofía Alumna:")
    assert "Cómo se creó el vínculo: administración del centro" in message.body
    assert "avise aquí al personal del centro" in message.body
    ((html, _mimetype),) = message.alternatives
    assert '<html lang="es">' in html
    assert "<strong>Olive Observer</strong> está ahora vinculado/a a usted" in html
    assert "No he sido yo: avisar al personal del centro" in html
    assert "Por favor, no responda." in html
    # The observer has no locale: their e-mail about the same link stays English.
    (to_observer,) = [item for item in mail.outbox if item.to == ["olive@example.test"]]
    assert to_observer.subject == "You can now observe Sofía Alumna"
    ((english_html, _mimetype),) = to_observer.alternatives
    assert '<html lang="en">' in english_html


def test_link_removed_email_in_spanish(link, make_user, student, root_account, system_actor):
    parent = make_user("Pedro Padre", root_account, email="pedro@example.test", locale="es-MX")
    made = link(parent, student, root_account)

    unlink_observer(link=made, actor=system_actor)
    notifications.plan_all_pending()

    message = notifications.render_email(
        EmailNotification.objects.get(
            recipient=parent, kind=EmailNotification.Kind.LINK_REMOVED_TO_OBSERVER
        )
    )
    assert message.language == "es"
    assert message.subject == "Ya no observa a Sam Student"
    assert "Se ha eliminado su vínculo como observador/a de Sam Student" in message.body_text


def test_pages_follow_accept_language(client, root_account, make_user):
    student = make_user("Sofía Alumna", root_account)
    parent = make_user("Pedro Padre", root_account, email="pedro@example.test", locale="es")
    course = factories.CourseFactory(account=root_account)
    enrollments.enroll_user(user=student, course=course, type=EnrollmentType.STUDENT)

    link_observer(
        observer=parent,
        student=student,
        root_account=root_account,
        actor=Actor.system("admin"),
        source=LinkSource.ADMIN,
    )
    notifications.plan_all_pending()

    client.force_login(parent)
    spanish = client.get(
        reverse("linking:observing"), HTTP_HOST="default.test", HTTP_ACCEPT_LANGUAGE="es"
    )
    # A person's own choice (User.locale) comes before the browser's: without
    # one, the browser's Accept-Language decides.
    parent.locale = ""
    parent.save(update_fields=["locale"])
    english = client.get(
        reverse("linking:observing"), HTTP_HOST="default.test", HTTP_ACCEPT_LANGUAGE="en"
    )

    assert spanish.status_code == 200
    page = spanish.content.decode()
    assert '<html lang="es">' in page
    assert "Sus estudiantes" in page
    assert "Añadir un estudiante" in page
    assert "Notificaciones recientes" in page
    assert "Ya puede observar a Sofía Alumna" in page  # the e-mail subject, in Spanish
    assert "Your students" not in page
    assert "Your students" in english.content.decode()

    client.force_login(student)
    pairing = client.get(
        reverse("linking:pairing"), HTTP_HOST="default.test", HTTP_ACCEPT_LANGUAGE="es-ES,es;q=0.9"
    )
    assert pairing.status_code == 200
    assert "Crear un código de vinculación" in pairing.content.decode()


def test_login_page_in_spanish_for_an_anonymous_visitor(client, root_account):
    page = client.get(reverse("linking:login"), HTTP_HOST="default.test", HTTP_ACCEPT_LANGUAGE="es")

    assert page.status_code == 200
    content = page.content.decode()
    assert "Iniciar sesión" in content
    assert "Crear una cuenta de familia" in content
