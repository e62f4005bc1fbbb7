"""An invitation speaks one language, and the invitation services' messages read in the reader's.

The invited person's saved language wins; otherwise the one chosen when
inviting (staff: the site's default unless they choose; a student: their
own), recorded on the invitation, for every e-mail and the pages its link
opens, unless the visitor chose a language themself.
"""

import re

import pytest
from django.core import mail
from django.test import Client
from django.utils import translation

from linking.api.errors import error_body
from linking.models import GuardianInvitation, ObservationLink
from linking.services import invitations
from linking.services.context import Actor
from tests import factories
from tests.portal.conftest import BACKEND, HOST

pytestmark = pytest.mark.django_db

State = GuardianInvitation.State
ADD = "/admin/linking/guardianinvitation/add/"
CHANGELIST = "/admin/linking/guardianinvitation/"
ENGLISH_SUBJECT = "Default School invites you to follow Sam Student"
SPANISH_SUBJECT = "Default School le invita a seguir a Sam Student"


@pytest.fixture(autouse=True)
def _locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def _client(user, **headers):
    client = Client(HTTP_HOST=HOST, **headers)
    client.force_login(user, backend=BACKEND)
    return client


def _path(message) -> str:
    return re.search(r"https?://[^/]+(/invitations/[\w-]+/)", message.body).group(1)


def _gina(make_user, root_account, **fields):
    """A parent of this school whose login id is the invited address."""
    gina = make_user("Gina Guardian", email="gina@family.test", **fields)
    factories.LoginFactory(user=gina, root_account=root_account, unique_id="gina@family.test")
    return gina


def test_staff_get_the_sites_language_unless_they_choose_and_resends_keep_it(
    staff_a, student, django_capture_on_commit_callbacks
):
    admin = _client(staff_a)
    form = admin.get(ADD).content.decode()
    assert re.search(r'<option value="en" selected>English</option>', form)
    with django_capture_on_commit_callbacks(execute=True):
        admin.post(ADD, {"student": student.pk, "email": "dad@family.test"})
        made = admin.post(
            ADD, {"student": student.pk, "email": "gina@family.test", "language": "es"}
        )
    assert made.status_code == 302
    assert GuardianInvitation.objects.get(email="dad@family.test").language == "en"
    spanish = GuardianInvitation.objects.get(email="gina@family.test")
    assert spanish.language == "es"
    assert [(m.to, m.subject) for m in mail.outbox] == [
        (["dad@family.test"], ENGLISH_SUBJECT),
        (["gina@family.test"], SPANISH_SUBJECT),
    ]
    assert mail.outbox[1].body.startswith("Hola:") and mail.outbox[0].body.startswith("Hello,")

    # Resent from an English admin page: still the invitation's language.
    with django_capture_on_commit_callbacks(execute=True):
        admin.post(CHANGELIST, {"action": "resend", "_selected_action": [spanish.pk]})
    assert mail.outbox[2].to == ["gina@family.test"]
    assert mail.outbox[2].subject == SPANISH_SUBJECT
    assert GuardianInvitation.objects.get(pk=spanish.pk).language == "es"

    # A language the site does not speak is the form's error; nothing is written.
    bad = admin.post(ADD, {"student": student.pk, "email": "x@family.test", "language": "fr"})
    assert bad.status_code == 200 and bad.context["form"].errors["language"]
    assert not GuardianInvitation.objects.filter(email="x@family.test").exists()


def test_the_invited_persons_saved_language_wins_at_every_send(
    staff_a, student, root_account, make_user, django_capture_on_commit_callbacks
):
    gina = _gina(make_user, root_account, locale="es-MX")
    with django_capture_on_commit_callbacks(execute=True):
        sent = invitations.invite_guardian(
            student=student,
            email="GINA@family.test",
            root_account=root_account,
            actor=Actor(user=staff_a),
            base_url=f"http://{HOST}/",
            language="en",
        )
    assert sent.invitation.language == "es"  # hers, recorded
    assert GuardianInvitation.objects.get().language == "es"
    assert mail.outbox[0].subject == SPANISH_SUBJECT

    # She switches to English on the pages: the next e-mail follows her.
    gina.locale = "en"
    gina.save()
    with django_capture_on_commit_callbacks(execute=True):
        invitations.resend_invitation(
            invitation=sent.invitation, actor=Actor(user=staff_a), base_url=f"http://{HOST}/"
        )
    assert mail.outbox[1].subject == ENGLISH_SUBJECT


def test_a_student_invites_in_their_own_language_unless_they_choose(
    signed_in, student, root_account, django_capture_on_commit_callbacks
):
    root_account.students_may_invite = True
    root_account.save()
    web = signed_in(student)
    page = web.get("/pairing/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert re.search(r'<option value="es" selected>Español</option>', page)
    assert "Idioma del correo" in page
    with django_capture_on_commit_callbacks(execute=True):
        # A form posted without the field: the student's language of the moment.
        web.post("/pairing/invite/", {"email": "mum@family.test"}, HTTP_ACCEPT_LANGUAGE="es")
        web.post(
            "/pairing/invite/",
            {"email": "dad@family.test", "language": "en"},
            HTTP_ACCEPT_LANGUAGE="es",
        )
    assert dict(GuardianInvitation.objects.values_list("email", "language")) == {
        "mum@family.test": "es",
        "dad@family.test": "en",
    }
    assert [(m.to, m.subject) for m in mail.outbox] == [
        (["mum@family.test"], SPANISH_SUBJECT),
        (["dad@family.test"], ENGLISH_SUBJECT),
    ]
    refused = web.post(
        "/pairing/invite/", {"email": "gran@family.test", "language": "fr"}, follow=True
    )
    assert "Choose one of the site&#x27;s languages." in refused.content.decode()
    assert GuardianInvitation.objects.count() == 2


def test_the_link_opens_in_the_invitations_language_unless_the_visitor_chose(
    staff_a, student, root_account, make_user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invitations.invite_guardian(
            student=student,
            email="gina@family.test",
            root_account=root_account,
            actor=Actor(user=staff_a),
            base_url=f"http://{HOST}/",
            language="es",
        )
    path = _path(mail.outbox[0])

    # No cookie: the invitation's language, over the browser's Accept-Language.
    visitor = Client(HTTP_HOST=HOST, HTTP_ACCEPT_LANGUAGE="en")
    page = visitor.get(path)
    assert page["Content-Language"] == "es"
    assert "Una invitación para seguir a un estudiante" in page.content.decode()
    signup = visitor.get(f"{path}signup/")
    assert signup["Content-Language"] == "es"

    # The visitor's own choice (the switch's cookie) wins.
    chose = Client(HTTP_HOST=HOST, HTTP_ACCEPT_LANGUAGE="es")
    chose.post("/language/", {"language": "en", "next": path})
    english = chose.get(path)
    assert english["Content-Language"] == "en"
    assert "An invitation to follow a student" in english.content.decode()

    # Signed in: a saved language wins; without one, the invitation's.
    gina = _gina(make_user, root_account)
    confirm = _client(gina, HTTP_ACCEPT_LANGUAGE="en").get(path)
    assert confirm["Content-Language"] == "es"
    assert "Sí, observar a Sam Student" in confirm.content.decode()
    gina.locale = "en"
    gina.save()
    accepted = _client(gina, HTTP_ACCEPT_LANGUAGE="es").post(path, {"accept": "1"}, follow=True)
    assert accepted["Content-Language"] == "en"
    assert "You are now observing Sam Student." in accepted.content.decode()
    assert GuardianInvitation.objects.get().state == State.ACCEPTED
    assert ObservationLink.objects.active().filter(observer=gina, student=student).exists()


def test_refusals_read_in_the_staff_members_language(
    staff_a, student, root_account, make_user, django_capture_on_commit_callbacks
):
    not_a_student = make_user("Nina Nobody", root_account)
    spanish = _client(staff_a, HTTP_ACCEPT_LANGUAGE="es")
    refused = spanish.post(ADD, {"student": not_a_student.pk, "email": "nina@family.test"})
    assert refused.status_code == 200
    assert "Solo se puede observar a estudiantes de este centro." in refused.content.decode()
    english = _client(staff_a, HTTP_ACCEPT_LANGUAGE="en")
    refused = english.post(ADD, {"student": not_a_student.pk, "email": "nina@family.test"})
    assert "Only students of this school can be observed." in refused.content.decode()
    assert not GuardianInvitation.objects.exists()

    # An answered invitation cannot be resent: said in Spanish, and nothing is sent.
    with django_capture_on_commit_callbacks(execute=True):
        sent = invitations.invite_guardian(
            student=student,
            email="gina@family.test",
            root_account=root_account,
            actor=Actor(user=staff_a),
            base_url=f"http://{HOST}/",
        )
    invitations.withdraw_invitation(invitation=sent.invitation, actor=Actor(user=staff_a))
    answer = spanish.post(
        CHANGELIST, {"action": "resend", "_selected_action": [sent.invitation.pk]}, follow=True
    )
    assert "Esta invitación ya se respondió, se retiró o ha caducado." in answer.content.decode()
    assert len(mail.outbox) == 1
    assert GuardianInvitation.objects.get().state == State.WITHDRAWN


def test_the_api_keeps_the_messages_english_as_canvas_does():
    error = invitations.InvitationNotOpen()
    with translation.override("es"):
        assert str(error.message) == "Esta invitación ya se respondió, se retiró o ha caducado."
        assert error_body(error.message) == {
            "errors": [
                {"message": "This invitation was already answered, withdrawn, or has expired."}
            ]
        }
