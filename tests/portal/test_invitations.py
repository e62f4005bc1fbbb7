"""Guardian invitations: staff invite an address; only its holder accepts (via link_observer)."""

import datetime as dt
import re

import pytest
from django.core import mail
from django.test import Client

from linking.models import (
    AuditAction,
    AuditEvent,
    GuardianInvitation,
    Login,
    ObservationLink,
    User,
)
from linking.services import invitations
from linking.services.context import Actor
from linking.services.errors import NotAuthorized
from tests import factories
from tests.portal.conftest import BACKEND, HOST, OTHER_HOST

pytestmark = pytest.mark.django_db

PASSWORD = "a-Long-enough-secret-9"
State = GuardianInvitation.State


@pytest.fixture(autouse=True)
def _locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def invite(staff_a, root_account, django_capture_on_commit_callbacks):
    def send(student, email="gina@family.test"):
        with django_capture_on_commit_callbacks(execute=True):
            return invitations.invite_guardian(
                student=student,
                email=email,
                root_account=root_account,
                actor=Actor(user=staff_a),
                base_url=f"http://{HOST}/",
            )

    return send


def _path(sent) -> str:
    return sent.link.split(HOST, 1)[1]


def test_staff_invite_sends_an_email_naming_the_school_and_audits(invite, student, root_account):
    sent = invite(student)
    invitation = GuardianInvitation.objects.get()
    assert invitation.state == State.PENDING and invitation.email == "gina@family.test"
    assert sent.link.split("/")[-2] not in invitation.token_hash  # only a keyed hash is kept
    (message,) = mail.outbox
    assert message.to == ["gina@family.test"]
    assert message.subject == "Default School invites you to follow Sam Student"
    assert sent.link in message.body
    event = AuditEvent.objects.get(action=AuditAction.INVITATION_SENT)
    assert event.student == student and event.detail["invitation_id"] == invitation.pk


def test_only_staff_of_the_school_may_invite(student, parent, staff_b, root_account):
    for outsider in (parent, staff_b):
        with pytest.raises(NotAuthorized):
            invitations.invite_guardian(
                student=student,
                email="x@family.test",
                root_account=root_account,
                actor=Actor(user=outsider),
                base_url="http://x/",
            )
    assert not GuardianInvitation.objects.exists() and mail.outbox == []


def test_a_new_guardian_signs_up_from_the_link_and_is_linked(invite, student, root_account):
    sent = invite(student)
    web = Client(HTTP_HOST=HOST)
    page = web.get(_path(sent)).content.decode()
    assert "Sam Student" in page and "gina@family.test" in page
    signup = f"{_path(sent)}signup/"
    weak = web.post(
        signup,
        {"name": "Gina Guardian", "password1": "Gina Guardian", "password2": "Gina Guardian"},
    )
    assert weak.status_code == 200 and "too similar" in weak.content.decode()
    done = web.post(signup, {"name": "Gina Guardian", "password1": PASSWORD, "password2": PASSWORD})
    assert done.status_code == 302 and done["Location"] == "/observing/"
    gina = User.objects.get(name="Gina Guardian")
    assert Login.objects.get(user=gina).unique_id == "gina@family.test"
    assert gina.email_unverified_since is None  # the link proved the address
    link = ObservationLink.objects.active().get(observer=gina, student=student)
    assert link.source == "invitation"
    invitation = GuardianInvitation.objects.get()
    assert invitation.state == State.ACCEPTED and invitation.accepted_by == gina
    assert invitation.link == link
    assert AuditEvent.objects.filter(action=AuditAction.INVITATION_ACCEPTED, observer=gina).exists()
    # Used: the link now says so.
    assert web.get(_path(sent)).status_code == 410


def test_an_existing_parent_signs_in_and_confirms(invite, student, root_account, make_user):
    gina = make_user("Gina Guardian", email="gina@family.test")
    factories.LoginFactory(user=gina, root_account=root_account, unique_id="gina@family.test")
    sent = invite(student)
    web = Client(HTTP_HOST=HOST)
    web.force_login(gina, backend=BACKEND)
    confirm = web.get(_path(sent))
    assert "Yes, observe Sam Student" in confirm.content.decode()
    assert not ObservationLink.objects.filter(observer=gina).exists()  # nothing before yes
    assert web.post(_path(sent), {"accept": "1"})["Location"] == "/observing/"
    assert ObservationLink.objects.active().filter(observer=gina, student=student).exists()


def test_another_account_cannot_accept_it(invite, student, parent, root_account):
    sent = invite(student)
    web = Client(HTTP_HOST=HOST)
    web.force_login(parent, backend=BACKEND)
    assert web.get(_path(sent)).status_code == 403
    refused = web.post(_path(sent), {"accept": "1"})
    assert refused.status_code == 403
    assert "This invitation is for another address" in refused.content.decode()
    assert not ObservationLink.objects.filter(observer=parent).exists()
    assert GuardianInvitation.objects.get().state == State.PENDING
    with pytest.raises(invitations.InvitationForAnotherAddress):
        invitations.accept_invitation(
            invitation=GuardianInvitation.objects.get(), user=parent, actor=Actor(user=parent)
        )


def test_an_unconfirmed_address_does_not_hold_the_invitation(invite, student, make_user):
    # Same e-mail on the user, but typed at sign-up and never confirmed, and another login id.
    claimant = make_user("Claire", email="gina@family.test")
    claimant.email_unverified_since = dt.datetime.now(dt.UTC)
    claimant.save()
    invitation = invite(student).invitation
    assert not invitations.holds_address(claimant, invitation)


def test_declining_links_nothing(invite, student, root_account, make_user):
    gina = make_user("Gina", email="gina@family.test")
    factories.LoginFactory(user=gina, root_account=root_account, unique_id="gina@family.test")
    sent = invite(student)
    web = Client(HTTP_HOST=HOST)
    web.force_login(gina, backend=BACKEND)
    assert web.post(_path(sent), {"decline": "1"}).status_code == 302
    assert GuardianInvitation.objects.get().state == State.DECLINED
    assert not ObservationLink.objects.filter(observer=gina).exists()
    assert AuditEvent.objects.filter(action=AuditAction.INVITATION_DECLINED).count() == 1


def test_withdrawn_expired_and_resent(invite, student, staff_a, frozen_now):
    first = invite(student)
    again = invite(student)  # the same address again: one invitation, a new link
    assert GuardianInvitation.objects.count() == 1 and len(mail.outbox) == 2
    web = Client(HTTP_HOST=HOST)
    assert web.get(_path(first)).status_code == 404  # the old link died with the resend
    assert web.get(_path(again)).status_code == 200
    frozen_now.advance(days=16)
    assert web.get(_path(again)).status_code == 410
    invitation = GuardianInvitation.objects.get()
    assert invitation.current_state == State.EXPIRED
    assert GuardianInvitation.objects.expired().count() == 1
    renewed = invitations.resend_invitation(
        invitation=invitation, actor=Actor(user=staff_a), base_url=f"http://{HOST}/"
    )
    assert web.get(_path(renewed)).status_code == 200
    assert invitations.withdraw_invitation(invitation=invitation, actor=Actor(user=staff_a))
    assert web.get(_path(renewed)).status_code == 410
    assert GuardianInvitation.objects.get().state == State.WITHDRAWN


def test_the_link_does_not_open_on_another_schools_host(invite, student, other_root_account):
    sent = invite(student)
    assert Client(HTTP_HOST=OTHER_HOST).get(_path(sent)).status_code == 404
    assert Client(HTTP_HOST=HOST).get("/invitations/not-a-token/").status_code == 404


def test_admin_invites_lists_by_state_resends_and_withdraws(
    staff_a, student, root_account, staff_b, django_capture_on_commit_callbacks
):
    admin = Client(HTTP_HOST=HOST)
    admin.force_login(staff_a, backend=BACKEND)
    form = admin.get("/admin/linking/guardianinvitation/add/")
    assert form.status_code == 200
    bad = admin.post(
        "/admin/linking/guardianinvitation/add/", {"student": student.pk, "email": "nope"}
    )
    assert bad.status_code == 200 and not GuardianInvitation.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        made = admin.post(
            "/admin/linking/guardianinvitation/add/",
            {"student": student.pk, "email": "gina@family.test"},
        )
    assert made.status_code == 302
    invitation = GuardianInvitation.objects.get()
    assert re.search(r"/invitations/[\w-]+/", mail.outbox[0].body)
    pending = admin.get("/admin/linking/guardianinvitation/?state=pending")
    assert pending.context["cl"].result_count == 1
    assert (
        admin.get("/admin/linking/guardianinvitation/?state=withdrawn").context["cl"].result_count
        == 0
    )
    with django_capture_on_commit_callbacks(execute=True):
        admin.post(
            "/admin/linking/guardianinvitation/",
            {"action": "resend", "_selected_action": [invitation.pk]},
        )
    assert len(mail.outbox) == 2
    admin.post(
        "/admin/linking/guardianinvitation/",
        {"action": "withdraw", "_selected_action": [invitation.pk]},
    )
    assert GuardianInvitation.objects.get().state == State.WITHDRAWN
    other = Client(HTTP_HOST=OTHER_HOST)
    other.force_login(staff_b, backend=BACKEND)
    assert other.get("/admin/linking/guardianinvitation/").context["cl"].result_count == 0


def test_signing_up_with_an_address_that_has_an_account_says_sign_in(
    invite, student, root_account, make_user
):
    gina = make_user("Gina", email="gina@family.test")
    factories.LoginFactory(user=gina, root_account=root_account, unique_id="GINA@family.test")
    sent = invite(student)
    response = Client(HTTP_HOST=HOST).post(
        f"{_path(sent)}signup/",
        {"name": "Someone Else", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 200
    assert "There is already an account with this address here." in response.content.decode()
    assert not User.objects.filter(name="Someone Else").exists()
    assert GuardianInvitation.objects.get().state == State.PENDING


def test_an_adult_student_approves_an_accepted_invitation_first(
    invite, student, root_account, make_user
):
    # services.rules: a student of age approves their own new observers.
    student.birth_date = dt.date.today().replace(year=dt.date.today().year - 20)
    student.save()
    gina = make_user("Gina", email="gina@family.test")
    factories.LoginFactory(user=gina, root_account=root_account, unique_id="gina@family.test")
    sent = invite(student)
    web = Client(HTTP_HOST=HOST)
    web.force_login(gina, backend=BACKEND)
    response = web.post(_path(sent), {"accept": "1"}, follow=True)
    assert "Sam Student must approve the link first." in response.content.decode()
    link = ObservationLink.objects.get(observer=gina, student=student)
    assert link.workflow_state == ObservationLink.State.PENDING
    assert GuardianInvitation.objects.get().state == State.ACCEPTED


def test_a_restriction_on_the_address_refuses_the_acceptance(
    invite, student, root_account, make_user, staff_a
):
    from linking.services import safeguarding

    gina = make_user("Gina", email="gina@family.test")
    factories.LoginFactory(user=gina, root_account=root_account, unique_id="gina@family.test")
    sent = invite(student)
    safeguarding.record_restriction(
        root_account=root_account,
        student=student,
        actor=Actor(user=staff_a),
        reason="Court order",
        observer_email="gina@family.test",
    )
    web = Client(HTTP_HOST=HOST)
    web.force_login(gina, backend=BACKEND)
    refused = web.post(_path(sent), {"accept": "1"})
    assert refused.status_code == 409
    page = refused.content.decode()
    assert "This invitation cannot be used. Ask the school" in page and "Court order" not in page
    assert not ObservationLink.objects.filter(observer=gina).exists()
    assert GuardianInvitation.objects.get().state == State.PENDING
    # Every refusal is audited: the rule and the path, never the reason.
    refusal = AuditEvent.objects.get(action=AuditAction.LINK_REFUSED)
    assert (refusal.observer, refusal.student) == (gina, student)
    assert refusal.detail["rule"] == "restriction" and refusal.detail["source"] == "invitation"
    assert "Court order" not in str(refusal.detail)


def test_a_student_invites_by_email_where_the_school_allows_it(
    signed_in, student, root_account, settings, django_capture_on_commit_callbacks
):
    web = signed_in(student)
    assert 'action="/pairing/invite/"' not in web.get("/pairing/").content.decode()
    refused = web.post("/pairing/invite/", {"email": "mum@family.test"})
    assert refused.status_code == 403 and not GuardianInvitation.objects.exists()

    root_account.students_may_invite = True
    root_account.save()
    assert 'action="/pairing/invite/"' in web.get("/pairing/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        sent = web.post("/pairing/invite/", {"email": "mum@family.test"}, follow=True)
    assert "An invitation was sent to mum@family.test." in sent.content.decode()
    invitation = GuardianInvitation.objects.get()
    assert invitation.student == student and invitation.invited_by == student
    assert [m.to for m in mail.outbox] == [["mum@family.test"]]
    bad = web.post("/pairing/invite/", {"email": "not an address"}, follow=True)
    assert "Enter a valid e-mail address." in bad.content.decode()

    settings.OBSERVERS_RESET_REQUESTS = 2
    web.post("/pairing/invite/", {"email": "dad@family.test"})
    assert web.post("/pairing/invite/", {"email": "gran@family.test"}).status_code == 429
    assert GuardianInvitation.objects.count() == 2


def test_a_parent_cannot_use_the_students_invite(signed_in, parent, root_account):
    root_account.students_may_invite = True
    root_account.save()
    response = signed_in(parent).post("/pairing/invite/", {"email": "x@family.test"})
    assert response.status_code == 403 and not GuardianInvitation.objects.exists()


def test_a_student_cannot_invite_for_another_student(student, make_student, root_account):
    root_account.students_may_invite = True
    root_account.save()
    other = make_student("Olga Other")
    with pytest.raises(NotAuthorized):
        invitations.invite_guardian(
            student=other,
            email="x@family.test",
            root_account=root_account,
            actor=Actor(user=student),
            base_url="http://x/",
        )
