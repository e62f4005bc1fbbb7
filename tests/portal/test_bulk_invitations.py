"""Bulk guardian invitations: who the SIS names, who is skipped and why, the admin, the command."""

import re

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from linking import tasks
from linking.models import (
    AuditAction,
    AuditEvent,
    GuardianInvitation,
    Login,
    ObservationLink,
    Role,
)
from linking.services import bulk_invitations, invitations, safeguarding
from linking.services.accounts import make_account_admin
from linking.services.context import Actor
from linking.services.errors import NotAuthorized
from linking.services.links import link_observer
from tests import factories
from tests.portal.conftest import BACKEND, HOST, OTHER_HOST

pytestmark = pytest.mark.django_db

State = GuardianInvitation.State
PASSWORD = "a-Long-enough-secret-9"


@pytest.fixture(autouse=True)
def _locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.OBSERVERS_BASE_URL = f"http://{HOST}"


class Roster:
    """People as the SIS imports them: logins with SIS ids, roles and agents, and enrollments."""

    def __init__(self, root_account, course):
        self.root_account = root_account
        self.course = course
        self.count = 0

    def person(self, name, role, *, email="", agents=(), state=Login.State.ACTIVE):
        self.count += 1
        user = factories.UserFactory(name=name, email=email)
        factories.LoginFactory(
            user=user,
            root_account=self.root_account,
            unique_id=f"sis-{self.count}",
            sis_user_id=f"SIS{self.count}",
            sis_role=role,
            sis_agent_ids=",".join(agents),
            workflow_state=state,
        )
        return user

    def sis_id(self, user):
        return Login.objects.get(user=user, root_account=self.root_account).sis_user_id

    def student(self, name, *, course=None, agents=()):
        user = self.person(name, "student", agents=agents)
        factories.EnrollmentFactory(user=user, course=course or self.course)
        return user

    def name_agents(self, user, *agents):
        Login.objects.filter(user=user).update(
            sis_agent_ids=",".join(self.sis_id(agent) for agent in agents)
        )

    def observer_enrollment(self, guardian, student, course=None):
        factories.EnrollmentFactory(
            user=guardian,
            course=course or self.course,
            type="observer",
            associated_user=student,
            sis_managed=True,
        )


@pytest.fixture
def roster(root_account, course):
    return Roster(root_account, course)


def _family(roster, number, course=None):
    """A student and a parent the student names, with an address: one to invite."""
    parent = roster.person(f"Parent {number:03d}", "parent", email=f"parent{number}@family.test")
    student = roster.student(f"Student {number:03d}", course=course)
    roster.name_agents(student, parent)
    return parent, student


def _pairs(plan):
    return [(c.guardian.name, c.student.name, c.email) for c in plan.to_invite]


def test_the_plan_takes_the_sis_guardians_and_skips_each_for_its_reason(
    roster, root_account, staff_a, course
):
    # Invited: named by the student (OneRoster), naming the student, a Canvas observer enrollment.
    named, ana = _family(roster, 1)
    naming = roster.person("Naomi Naming", "guardian", email="naomi@family.test")
    ben = roster.student("Ben Student")
    roster.name_agents(naming, ben)
    canvas = roster.person("Carl Canvas", "", email="carl@family.test")
    cleo = roster.student("Cleo Student")
    roster.observer_enrollment(canvas, cleo)
    # Skipped, each for one reason.
    no_email = roster.person("Nora Noemail", "parent")
    linked, dan = _family(roster, 2)
    link_observer(observer=linked, student=dan, root_account=root_account, actor=Actor(staff_a))
    ended, eve = _family(roster, 3)
    made, _ = link_observer(
        observer=ended, student=eve, root_account=root_account, actor=Actor(staff_a)
    )
    from linking.services.links import unlink_observer

    unlink_observer(link=made, actor=Actor(staff_a))
    _restricted, fay = _family(roster, 4)
    safeguarding.record_restriction(
        root_account=root_account,
        student=fay,
        actor=Actor(staff_a),
        reason="Court order 12",
        observer_email="parent4@family.test",
    )
    _shielded, gus = _family(roster, 5)
    safeguarding.protect_student(student=gus, root_account=root_account, actor=Actor(staff_a))
    suspended = roster.person(
        "Sue Suspended", "parent", email="sue@family.test", state=Login.State.SUSPENDED
    )
    hal = roster.student("Hal Student")
    roster.name_agents(hal, suspended, no_email)
    _already, ivy = _family(roster, 6)
    invitations.invite_guardian(
        student=ivy,
        email="PARENT6@family.test",
        root_account=root_account,
        actor=Actor(staff_a),
        base_url=f"http://{HOST}/",
    )
    twin_a, jo = _family(roster, 7)
    twin_b = roster.person("Twin B", "parent", email="parent7@family.test")
    roster.name_agents(jo, twin_a, twin_b)
    # Not guardians at all: a teacher named as an agent, a student of another course.
    teacher = roster.person("Tom Teacher", "teacher", email="tom@school.test")
    roster.name_agents(ana, named, teacher)
    elsewhere = factories.CourseFactory(account=root_account, name="Chemistry")
    _family(roster, 8, course=elsewhere)

    plan = bulk_invitations.plan_invitations(
        scope=bulk_invitations.Scope(root_account=root_account, course=course)
    )

    # By the students' sortable names ("001, Student" before "Student, Ben").
    assert _pairs(plan) == [
        ("Parent 001", "Student 001", "parent1@family.test"),
        ("Parent 007", "Student 007", "parent7@family.test"),
        ("Naomi Naming", "Ben Student", "naomi@family.test"),
        ("Carl Canvas", "Cleo Student", "carl@family.test"),
    ]
    assert plan.skipped == {
        "no_email": 1,
        "inactive": 1,
        "linked": 1,
        "link_ended": 1,
        "not_allowed": 2,
        "already_invited": 1,
        "same_address": 1,
    }
    assert "Court order" not in str(plan.skipped_rows())
    # The whole school adds the other course's family; nothing was written.
    school = bulk_invitations.plan_invitations(
        scope=bulk_invitations.Scope(root_account=root_account, account=root_account)
    )
    assert len(school.to_invite) == 5
    assert GuardianInvitation.objects.count() == 1


def test_inviting_writes_invitations_and_audits_then_the_task_mails_them_once(
    roster, root_account, staff_a, course
):
    parent, student = _family(roster, 1)
    other, sibling = _family(roster, 2)
    scope = bulk_invitations.Scope(root_account=root_account, course=course)

    result = bulk_invitations.invite_guardians(scope=scope, actor=Actor(staff_a))

    assert len(result.invited) == 2
    rows = GuardianInvitation.objects.order_by("id")
    assert [(i.student, i.email, i.state) for i in rows] == [
        (student, "parent1@family.test", State.PENDING),
        (sibling, "parent2@family.test", State.PENDING),
    ]
    assert all(i.mail_due_at is not None and i.invited_by == staff_a for i in rows)
    assert mail.outbox == []  # the request sends nothing: the task queue does
    sent = AuditEvent.objects.filter(action=AuditAction.INVITATION_SENT).order_by("id")
    assert [(e.observer, e.student, e.detail["bulk"]) for e in sent] == [
        (parent, student, True),
        (other, sibling, True),
    ]
    assert all(e.notifications_pending and e.snapshot["invitation"] for e in sent)
    summary = AuditEvent.objects.get(action=AuditAction.INVITATIONS_BULK)
    assert summary.detail["invited"] == 2 and summary.detail["course_id"] == course.pk

    assert tasks.send_invitation_emails.call() == 2
    assert sorted(m.to[0] for m in mail.outbox) == ["parent1@family.test", "parent2@family.test"]
    assert not GuardianInvitation.objects.filter(mail_due_at__isnull=False).exists()
    assert tasks.send_invitation_emails.call() == 0 and len(mail.outbox) == 2

    # The e-mailed link works: the guardian signs up with the invited address and is linked.
    message = next(m for m in mail.outbox if m.to == ["parent1@family.test"])
    assert "Default School" in message.subject
    path = re.search(r"https?://[^/]+(/invitations/[\w-]+/)", message.body).group(1)
    web = Client(HTTP_HOST=HOST)
    assert web.get(path).status_code == 200

    again = bulk_invitations.invite_guardians(scope=scope, actor=Actor(staff_a))
    assert again.invited == [] and again.plan.skipped == {"already_invited": 2}
    assert GuardianInvitation.objects.count() == 2
    assert tasks.send_invitation_emails.call() == 0 and len(mail.outbox) == 2


def test_a_withdrawn_bulk_invitation_is_never_mailed(roster, root_account, staff_a, course):
    _family(roster, 1)
    scope = bulk_invitations.Scope(root_account=root_account, course=course)
    (invitation,) = bulk_invitations.invite_guardians(scope=scope, actor=Actor(staff_a)).invited
    assert invitations.withdraw_invitation(invitation=invitation, actor=Actor(staff_a))
    assert tasks.send_invitation_emails.call() == 0
    assert mail.outbox == []


def test_a_refused_message_is_tried_again_later(
    roster, root_account, staff_a, course, frozen_now, monkeypatch
):
    _family(roster, 1)
    scope = bulk_invitations.Scope(root_account=root_account, course=course)
    bulk_invitations.invite_guardians(scope=scope, actor=Actor(staff_a))
    send = invitations.mail.send_to_person
    monkeypatch.setattr(invitations.mail, "send_to_person", lambda **kwargs: False)
    assert invitations.send_due_mail() == 0
    invitation = GuardianInvitation.objects.get()
    assert invitation.mail_due_at == frozen_now.now + invitations.MAIL_RETRY
    monkeypatch.setattr(invitations.mail, "send_to_person", send)
    assert invitations.send_due_mail() == 0  # not due yet
    frozen_now.advance(minutes=10)
    assert invitations.send_due_mail() == 1 and len(mail.outbox) == 1


def test_choosing_runs_a_fixed_number_of_queries_however_many_students(
    roster, root_account, course, django_assert_max_num_queries
):
    scope = bulk_invitations.Scope(root_account=root_account, course=course)

    def count_queries():
        with CaptureQueriesContext(connection) as captured:
            plan = bulk_invitations.plan_invitations(scope=scope)
        return len(captured), len(plan.to_invite)

    for number in range(3):
        _family(roster, number)
    few, invited_few = count_queries()
    for number in range(3, 60):
        _family(roster, number)
    many, invited_many = count_queries()
    assert (invited_few, invited_many) == (3, 60)
    assert many == few
    with django_assert_max_num_queries(few):
        bulk_invitations.plan_invitations(scope=scope)


def test_a_sub_account_covers_its_courses_and_those_below(roster, root_account, staff_a):
    district = factories.SubAccountFactory(parent=root_account, name="North", sis_account_id="N")
    school = factories.SubAccountFactory(parent=district, name="North High")
    inside = factories.CourseFactory(account=school, name="Algebra")
    outside = factories.CourseFactory(account=root_account, name="Art")
    _family(roster, 1, course=inside)
    _family(roster, 2, course=outside)
    scope = bulk_invitations.scope_for(root_account=root_account, account_sis_id="N")
    assert scope.account == district
    plan = bulk_invitations.plan_invitations(scope=scope)
    assert _pairs(plan) == [("Parent 001", "Student 001", "parent1@family.test")]


def test_only_staff_who_may_invite_in_that_school_may(
    roster, root_account, staff_a, staff_b, course, make_user
):
    _family(roster, 1)
    scope = bulk_invitations.Scope(root_account=root_account, course=course)
    reader = make_user("Rita Reader", root_account)
    role = Role.objects.create(name="Reader", root_account=root_account, read_sis=True)
    make_account_admin(user=reader, account=root_account, role=role)
    for outsider in (staff_b, reader, roster.person("A Parent", "parent")):
        with pytest.raises(NotAuthorized):
            bulk_invitations.invite_guardians(scope=scope, actor=Actor(outsider))
    assert not GuardianInvitation.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="invitation.").exists()


# Admin ----------------------------------------------------------------------------


def _admin(user, host=HOST):
    client = Client(HTTP_HOST=host)
    client.force_login(user, backend=BACKEND)
    return client


def test_admin_course_action_previews_then_invites(roster, root_account, staff_a, course):
    _family(roster, 1)
    _family(roster, 2)
    restricted, fay = _family(roster, 3)
    safeguarding.record_restriction(
        root_account=root_account,
        student=fay,
        actor=Actor(staff_a),
        reason="Court order 12",
        observer=restricted,
    )
    roster.person("Nora Noemail", "parent")
    admin = _admin(staff_a)

    action = admin.post(
        "/admin/linking/course/",
        {"action": "invite_guardians", "_selected_action": [course.pk]},
    )
    assert action.status_code == 302
    assert action["Location"] == f"/admin/linking/guardianinvitation/bulk/?course={course.pk}"
    preview = admin.get(action["Location"])
    page = preview.content.decode()
    assert preview.status_code == 200
    assert "2 guardians will be invited" in page
    assert "parent1@family.test" in page and "Student 002" in page
    assert "not allowed by the school&#x27;s rules" in page and "Court order" not in page
    assert not GuardianInvitation.objects.exists()  # the preview writes nothing

    confirmed = admin.post(
        "/admin/linking/guardianinvitation/bulk/", {"course": course.pk, "confirm": "1"}
    )
    assert confirmed.status_code == 302
    assert GuardianInvitation.objects.count() == 2
    followed = admin.get(confirmed["Location"]).content.decode()
    assert "Invited 2 guardians of Biology 101" in followed and "1 skipped" in followed
    assert AuditEvent.objects.get(action=AuditAction.INVITATIONS_BULK).actor == staff_a

    again = admin.get(f"/admin/linking/guardianinvitation/bulk/?course={course.pk}")
    assert "Nobody to invite." in again.content.decode()


def test_admin_account_action_covers_the_whole_school(roster, root_account, staff_a):
    art = factories.CourseFactory(account=root_account, name="Art")
    _family(roster, 1)
    _family(roster, 2, course=art)
    admin = _admin(staff_a)
    action = admin.post(
        "/admin/linking/account/",
        {"action": "invite_guardians", "_selected_action": [root_account.pk]},
    )
    preview = admin.get(action["Location"])
    assert "2 guardians will be invited" in preview.content.decode()
    admin.post(
        "/admin/linking/guardianinvitation/bulk/", {"account": root_account.pk, "confirm": "1"}
    )
    assert GuardianInvitation.objects.count() == 2


def test_admin_bulk_page_keeps_to_the_staff_members_school(
    roster, root_account, other_root_account, staff_a, staff_b, course, make_user
):
    _family(roster, 1)
    outsider = _admin(staff_b, OTHER_HOST)
    assert (
        outsider.get(f"/admin/linking/guardianinvitation/bulk/?course={course.pk}").status_code
        == 404
    )
    posted = outsider.post(
        "/admin/linking/guardianinvitation/bulk/", {"course": course.pk, "confirm": "1"}
    )
    assert posted.status_code == 404
    assert (
        outsider.get(
            f"/admin/linking/guardianinvitation/bulk/?account={root_account.pk}"
        ).status_code
        == 404
    )
    # A colleague without manage_user_observers sees no addresses and invites nobody.
    reader = make_user("Rita Reader", root_account)
    role = Role.objects.create(name="Reader", root_account=root_account, read_sis=True)
    make_account_admin(user=reader, account=root_account, role=role)
    page = _admin(reader).get(f"/admin/linking/guardianinvitation/bulk/?course={course.pk}")
    assert page.status_code == 403 and b"parent1@family.test" not in page.content
    for bad in ("?course=abc", "?course=999999", "", f"?course={course.pk}&account=1"):
        assert (
            _admin(staff_a).get(f"/admin/linking/guardianinvitation/bulk/{bad}").status_code == 404
        )
    assert not GuardianInvitation.objects.exists()


# Command --------------------------------------------------------------------------


def test_the_command_dry_runs_then_invites(roster, root_account, course, capsys):
    course.sis_course_id = "BIO-101"
    course.save()
    _family(roster, 1)
    nora = roster.person("Nora Noemail", "parent")
    roster.name_agents(roster.student("Ned Student"), nora)

    call_command("invite_guardians", "--course", "BIO-101", "--dry-run", "--domain", HOST)
    out = capsys.readouterr().out
    assert "Biology 101: 1 would be invited, 1 skipped" in out
    assert "Parent 001 <parent1@family.test> for Student 001" in out
    assert "no e-mail address in the SIS [no_email]" in out
    assert not GuardianInvitation.objects.exists()

    call_command("invite_guardians", "--course", "BIO-101")
    assert "Biology 101: 1 invited" in capsys.readouterr().out
    invitation = GuardianInvitation.objects.get()
    assert invitation.invited_by is None and invitation.mail_due_at is not None
    event = AuditEvent.objects.get(action=AuditAction.INVITATIONS_BULK)
    assert event.source == "command"

    call_command("invite_guardians", "--all")
    assert "0 invited, 2 skipped" in capsys.readouterr().out
    assert GuardianInvitation.objects.count() == 1


def test_the_command_refuses_what_it_cannot_do(
    roster, root_account, other_root_account, course, staff_b
):
    with pytest.raises(CommandError, match="say which with --domain"):
        call_command("invite_guardians", "--all")
    with pytest.raises(CommandError, match="No course with SIS id 'NOPE'"):
        call_command("invite_guardians", "--course", "NOPE", "--domain", HOST)
    with pytest.raises(CommandError, match="No account with SIS id 'NOPE'"):
        call_command("invite_guardians", "--account", "NOPE", "--domain", HOST)
    with pytest.raises(CommandError, match="No active login"):
        call_command("invite_guardians", "--all", "--domain", HOST, "--run-by", "nobody")
    _family(roster, 1)
    teacher = roster.person("Tom Teacher", "teacher")  # a login here, but no admin role
    login_id = Login.objects.get(user=teacher).unique_id
    with pytest.raises(CommandError, match="not authorized"):
        call_command("invite_guardians", "--all", "--domain", HOST, "--run-by", login_id)
    assert not GuardianInvitation.objects.exists()


# Expiry ---------------------------------------------------------------------------


def test_expiry_is_recorded_once_by_the_periodic_task(
    roster, root_account, staff_a, course, frozen_now
):
    _family(roster, 1)
    scope = bulk_invitations.Scope(root_account=root_account, course=course)
    bulk_invitations.invite_guardians(scope=scope, actor=Actor(staff_a))
    tasks.send_invitation_emails.call()
    assert tasks.expire_invitations.call() == 0
    frozen_now.advance(days=16)
    assert tasks._invitations_lapsed()
    assert tasks.expire_invitations.call() == 1
    invitation = GuardianInvitation.objects.get()
    assert invitation.state == State.EXPIRED and invitation.current_state == State.EXPIRED
    assert tasks.expire_invitations.call() == 0
    assert AuditEvent.objects.filter(action=AuditAction.INVITATION_EXPIRED).count() == 1
    # The pair may be invited again now, and an expired invitation can be renewed.
    again = bulk_invitations.plan_invitations(scope=scope)
    assert len(again.to_invite) == 1
    renewed = invitations.resend_invitation(
        invitation=invitation, actor=Actor(staff_a), base_url=f"http://{HOST}/"
    )
    assert renewed.invitation.state == State.PENDING
    assert AuditEvent.objects.filter(action=AuditAction.INVITATION_RESENT).count() == 1


def test_single_invitations_share_the_checks(roster, root_account, staff_a):
    _parent, student = _family(roster, 1)
    safeguarding.protect_student(student=student, root_account=root_account, actor=Actor(staff_a))
    with pytest.raises(invitations.InvitationError) as refused:
        invitations.invite_guardian(
            student=student,
            email="parent1@family.test",
            root_account=root_account,
            actor=Actor(staff_a),
            base_url=f"http://{HOST}/",
        )
    assert refused.value.code == "not_allowed"
    assert not GuardianInvitation.objects.exists() and mail.outbox == []
    assert not ObservationLink.objects.exists()


def test_a_student_cannot_invite_a_restricted_address(
    roster, root_account, staff_a, signed_in, django_capture_on_commit_callbacks
):
    root_account.students_may_invite = True
    root_account.save()
    _parent, student = _family(roster, 1)
    safeguarding.record_restriction(
        root_account=root_account,
        student=student,
        actor=Actor(staff_a),
        reason="Court order 12",
        observer_email="barred@family.test",
    )
    web = signed_in(student)
    with django_capture_on_commit_callbacks(execute=True):
        page = web.post("/pairing/invite/", {"email": "barred@family.test"}, follow=True)
    text = page.content.decode()
    assert "This address cannot be invited. Ask the school" in text
    assert "Court order" not in text
    assert not GuardianInvitation.objects.exists() and mail.outbox == []


# Language ---------------------------------------------------------------------------


def test_the_preview_reads_in_spanish_and_the_run_speaks_the_chosen_language(
    roster, root_account, staff_a, course
):
    _first, _ana = _family(roster, 1)
    english, _ben = _family(roster, 2)
    english.locale = "en"  # chose English on the pages: theirs wins
    english.save()
    roster.person("Nora Noemail", "parent")
    restricted, fay = _family(roster, 3)
    safeguarding.record_restriction(
        root_account=root_account,
        student=fay,
        actor=Actor(staff_a),
        reason="Court order 12",
        observer=restricted,
    )
    admin = Client(HTTP_HOST=HOST, HTTP_ACCEPT_LANGUAGE="es")
    admin.force_login(staff_a, backend=BACKEND)
    preview = admin.get(f"/admin/linking/guardianinvitation/bulk/?course={course.pk}")
    page = preview.content.decode()
    assert "no lo permiten las reglas de la escuela" in page and "Court order" not in page
    assert "not allowed by the school" not in page
    # The language of the e-mails: the site's default unless staff choose.
    assert re.search(r'<option value="en" selected>English</option>', page)

    refused = admin.post(
        "/admin/linking/guardianinvitation/bulk/",
        {"course": course.pk, "confirm": "1", "language": "fr"},
        follow=True,
    )
    assert "Elija uno de los idiomas del sitio." in refused.content.decode()
    assert not GuardianInvitation.objects.exists()

    admin.post(
        "/admin/linking/guardianinvitation/bulk/",
        {"course": course.pk, "confirm": "1", "language": "es"},
    )
    assert dict(GuardianInvitation.objects.values_list("email", "language")) == {
        "parent1@family.test": "es",
        "parent2@family.test": "en",
    }
    assert tasks.send_invitation_emails.call() == 2
    subjects = {m.to[0]: m.subject for m in mail.outbox}
    assert subjects == {
        "parent1@family.test": "Default School le invita a seguir a Student 001",
        "parent2@family.test": "Default School invites you to follow Student 002",
    }


def test_the_task_follows_a_language_saved_after_the_run(roster, root_account, course):
    parent, _student = _family(roster, 1)
    call_command("invite_guardians", "--all", "--domain", HOST, "--language", "en")
    assert GuardianInvitation.objects.get().language == "en"
    # Before the task sends it, the guardian (login id = the address) chooses Spanish.
    Login.objects.filter(user=parent).update(unique_id="parent1@family.test")
    parent.locale = "es"
    parent.save()
    assert tasks.send_invitation_emails.call() == 1
    assert mail.outbox[0].subject == "Default School le invita a seguir a Student 001"
    with pytest.raises(CommandError):
        call_command("invite_guardians", "--all", "--domain", HOST, "--language", "fr")


def test_a_bulk_refusal_reads_in_the_readers_language(root_account, staff_b):
    from django.utils import translation

    with pytest.raises(NotAuthorized) as refused:
        bulk_invitations.require_bulk_inviter(Actor(staff_b), root_account)
    with translation.override("es"):
        assert str(refused.value.message) == (
            "No tiene permiso para invitar a tutores en este centro."
        )
    with pytest.raises(bulk_invitations.NotFound) as unknown:
        bulk_invitations.scope_for(root_account=root_account, course_sis_id="NOPE")
    with translation.override("es"):
        assert str(unknown.value.message).startswith("No hay ningún curso con el id del SIS 'NOPE'")
