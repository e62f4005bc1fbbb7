"""Guardian invitations as webhook events: each change posted, signed, in order, without a token."""

import datetime as dt
import re

import pytest
from django.core import mail
from jsonschema import Draft202012Validator, FormatChecker
from standardwebhooks.webhooks import Webhook

from linking import tasks
from linking.models import DeliveryStatus, GuardianInvitation, Login, WebhookDelivery
from linking.models import WebhookEndpoint as Endpoint
from linking.services import bulk_invitations, invitations, notifications, safeguarding
from linking.services.context import Actor
from linking.services.webhook_events import schema_for
from tests import factories

pytestmark = pytest.mark.django_db

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
INVITATION_EVENTS = [
    "invitation.sent",
    "invitation.resent",
    "invitation.accepted",
    "invitation.declined",
    "invitation.withdrawn",
    "invitation.expired",
]


@pytest.fixture(autouse=True)
def _locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def endpoint(receiver, root_account):
    return Endpoint.objects.create(
        root_account=root_account, url=receiver.url, secret=SECRET, events=INVITATION_EVENTS
    )


@pytest.fixture
def enrolled(student, root_account):
    course = factories.CourseFactory(account=root_account, name="Biology")
    factories.EnrollmentFactory(user=student, course=course)
    return course


def _invite(student, root_account, staff, email):
    return invitations.invite_guardian(
        student=student,
        email=email,
        root_account=root_account,
        actor=Actor(user=staff, source="admin"),
        base_url="http://default.test/",
    )


def _deliver():
    notifications.plan_all_pending()
    notifications.deliver_due_webhooks()


def test_every_change_of_an_invitation_is_posted_in_order_without_its_token(
    endpoint,
    receiver,
    student,
    observer,
    root_account,
    staff_a,
    enrolled,
    frozen_now,
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        first = _invite(student, root_account, staff_a, observer.email)
        again = _invite(student, root_account, staff_a, observer.email)  # resent
    invitations.accept_invitation(
        invitation=again.invitation, user=observer, actor=Actor(user=observer, source="portal")
    )
    declined = _invite(student, root_account, staff_a, observer.email).invitation
    invitations.decline_invitation(
        invitation=declined, user=observer, actor=Actor(user=observer, source="portal")
    )
    withdrawn = _invite(student, root_account, staff_a, "other@family.test").invitation
    invitations.withdraw_invitation(invitation=withdrawn, actor=Actor(user=staff_a))
    lapsing = _invite(student, root_account, staff_a, "late@family.test").invitation
    frozen_now.advance(days=16)
    assert tasks.expire_invitations.call() == 1
    frozen_now.advance(days=-16)  # posts are signed now, as a receiver checks them

    _deliver()

    arrived = receiver.bodies()
    # One invitation's events arrive in their order (its order key); others may interleave.
    for number in {b["invitation"]["id"] for b in arrived}:
        ids = [b["id"] for b in arrived if b["invitation"]["id"] == number]
        assert ids == sorted(ids)
    bodies = sorted(arrived, key=lambda b: b["id"])
    summary = [
        (b["type"], b["invitation"]["id"], b["invitation"]["state"], b["observer"]) for b in bodies
    ]
    observed = {"id": observer.pk, "name": observer.name}
    assert summary == [
        ("invitation.sent", first.invitation.pk, "pending", None),
        ("invitation.resent", first.invitation.pk, "pending", None),
        ("invitation.accepted", first.invitation.pk, "accepted", observed),
        ("invitation.sent", declined.pk, "pending", None),
        ("invitation.declined", declined.pk, "declined", observed),
        ("invitation.sent", withdrawn.pk, "pending", None),
        ("invitation.withdrawn", withdrawn.pk, "withdrawn", None),
        ("invitation.sent", lapsing.pk, "pending", None),
        ("invitation.expired", lapsing.pk, "expired", None),
    ]
    accepted = bodies[2]
    assert accepted["link"]["workflow_state"] == "active" and accepted["link"]["source"] == (
        "invitation"
    )
    assert bodies[-1]["actor"] == {"user": None, "source": "system"}
    assert bodies[0]["student"] == {"id": student.pk, "name": "Sam Student"}
    assert bodies[0]["invitation"]["email"] == observer.email
    tokens = [re.search(r"/invitations/([\w-]+)/", m.body).group(1) for m in mail.outbox]
    hashes = set(GuardianInvitation.objects.values_list("token_hash", flat=True))
    for request, body in zip(receiver.requests, arrived, strict=True):
        Draft202012Validator(schema_for(body["type"]), format_checker=FormatChecker()).validate(
            body
        )
        Webhook(SECRET).verify(request["body"], request["headers"])
        assert not any(token in request["body"] for token in tokens)
        assert not any(digest in request["body"] for digest in hashes)
        assert "token" not in request["body"]
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}
    keys = set(WebhookDelivery.objects.values_list("order_key", flat=True))
    assert f"invitation:{first.invitation.pk}" in keys


def test_a_protected_student_is_sent_by_id_alone(
    endpoint, receiver, student, root_account, staff_a, enrolled
):
    invitation = _invite(student, root_account, staff_a, "gina@family.test").invitation
    safeguarding.protect_student(student=student, root_account=root_account, actor=Actor(staff_a))
    invitations.withdraw_invitation(invitation=invitation, actor=Actor(user=staff_a))

    _deliver()

    withdrawn = [b for b in receiver.bodies() if b["type"] == "invitation.withdrawn"]
    assert [b["student"] for b in withdrawn] == [{"id": student.pk, "protected": True}]
    assert all("Sam Student" not in r["body"] for r in receiver.requests)


def test_bulk_invitations_post_one_sent_event_each_naming_the_guardian(
    endpoint, receiver, student, root_account, staff_a, enrolled
):
    Login.objects.filter(user=student).update(sis_user_id="S1", sis_role="student")
    guardian = factories.UserFactory(name="Gina Guardian", email="gina@family.test")
    factories.LoginFactory(
        user=guardian,
        root_account=root_account,
        sis_user_id="G1",
        sis_role="guardian",
        sis_agent_ids="S1",
    )
    scope = bulk_invitations.Scope(root_account=root_account, course=enrolled)
    (made,) = bulk_invitations.invite_guardians(scope=scope, actor=Actor(staff_a)).invited
    tasks.send_invitation_emails.call()

    _deliver()

    (body,) = receiver.bodies()
    assert body["type"] == "invitation.sent"
    assert body["observer"] == {"id": guardian.pk, "name": "Gina Guardian"}
    assert body["invitation"]["id"] == made.pk and body["invitation"]["state"] == "pending"
    token = re.search(r"/invitations/([\w-]+)/", mail.outbox[0].body).group(1)
    assert token not in receiver.requests[0]["body"]


def test_an_endpoint_gets_only_the_invitation_events_it_subscribed_to(
    receiver, student, root_account, staff_a, enrolled
):
    Endpoint.objects.create(
        root_account=root_account, url=receiver.url, secret=SECRET, events=["invitation.withdrawn"]
    )
    invitation = _invite(student, root_account, staff_a, "gina@family.test").invitation
    invitations.withdraw_invitation(invitation=invitation, actor=Actor(user=staff_a))
    _deliver()
    assert [b["type"] for b in receiver.bodies()] == ["invitation.withdrawn"]
    assert dt.datetime.fromisoformat(receiver.bodies()[0]["occurred_at"])
