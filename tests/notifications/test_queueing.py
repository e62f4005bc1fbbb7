"""Which events queue which e-mails, for whom, and when.

A change marks its audit event pending in its own transaction;
``plan_all_pending`` (what the sender runs first) turns pending events into
queued messages.
"""

import pytest
from django.db import transaction

from linking.models import (
    AuditEvent,
    EmailNotification,
    LinkSource,
    NotificationSettings,
    WebhookDelivery,
    WebhookEndpoint,
)
from linking.services import notifications
from linking.services.links import unlink_observer
from linking.services.pairing import issue_pairing_code, redeem_pairing_code
from tests import factories

Kind = EmailNotification.Kind


@pytest.fixture
def link(link_unplanned):
    """These tests check the planning itself, so linking leaves it to them."""
    return link_unplanned


def plan():
    return notifications.plan_all_pending()


def queued():
    plan()
    return sorted(
        (message.kind, message.recipient.name, message.to_email)
        for message in EmailNotification.objects.select_related("recipient")
    )


def test_new_observer_queues_one_email_to_the_student_and_each_existing_observer(
    link, student, observer, make_user, root_account
):
    earlier = make_user("Earl Earlier", root_account, email="earl@example.test")
    link(earlier, student, root_account)
    plan()
    EmailNotification.objects.all().delete()

    new_link = link(observer, student, root_account, source=LinkSource.PAIRING_CODE)
    assert EmailNotification.objects.count() == 0  # nothing is planned during the change

    assert queued() == [
        (Kind.NEW_OBSERVER_TO_OBSERVERS, "Earl Earlier", "earl@example.test"),
        (Kind.NEW_OBSERVER_TO_STUDENT, "Sam Student", "sam@example.test"),
    ]
    to_student = EmailNotification.objects.get(recipient=student)
    assert to_student.event.link == new_link
    assert to_student.status == "pending"
    # Queued unrendered; the sender renders it from the event.
    assert to_student.subject == to_student.body_text == ""
    notifications.render_email(to_student)
    assert "Olive Observer" in to_student.subject
    assert "pairing code" in to_student.body_text
    assert "/notifications/report/" in to_student.body_text
    assert "http://default.test:8000/notifications/report/" in to_student.body_html


def test_link_made_by_staff_also_tells_the_observer(link, student, observer, root_account):
    link(observer, student, root_account, source=LinkSource.ADMIN)

    assert queued() == [
        (Kind.NEW_OBSERVER_TO_STUDENT, "Sam Student", "sam@example.test"),
        (Kind.STAFF_LINK_TO_OBSERVER, "Olive Observer", "olive@example.test"),
    ]
    to_observer = notifications.render_email(EmailNotification.objects.get(recipient=observer))
    assert "staff admin" in to_observer.body_text
    assert to_observer.body_html.count("report") == 0  # no "this wasn't me" for the observer


def test_linking_an_already_active_link_again_queues_nothing(link, student, observer, root_account):
    link(observer, student, root_account)
    plan()
    before = EmailNotification.objects.count()

    link(observer, student, root_account)

    assert plan() == 0
    assert EmailNotification.objects.count() == before == 1


def test_removal_tells_the_observer_and_restore_tells_the_student_again(
    link, student, observer, root_account, system_actor
):
    existing = link(observer, student, root_account)
    plan()
    EmailNotification.objects.all().delete()

    unlink_observer(link=existing, actor=system_actor)
    assert queued() == [(Kind.LINK_REMOVED_TO_OBSERVER, "Olive Observer", "olive@example.test")]

    EmailNotification.objects.all().delete()
    link(observer, student, root_account)
    assert queued() == [(Kind.NEW_OBSERVER_TO_STUDENT, "Sam Student", "sam@example.test")]


def test_a_rolled_back_change_queues_nothing(link, student, observer, root_account):
    endpoint = WebhookEndpoint.objects.create(
        root_account=root_account, url="http://127.0.0.1:9/", events=["link.created"]
    )

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        link(observer, student, root_account)
        # marked pending inside the transaction
        assert AuditEvent.objects.filter(notifications_pending=True).count() == 1
        raise Boom

    assert plan() == 0
    assert EmailNotification.objects.count() == 0
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 0
    assert not student.observer_links.exists()


def test_people_without_an_email_address_are_skipped(link, make_user, observer, root_account):
    student = make_user("No Mail", root_account, email="")

    link(observer, student, root_account, source=LinkSource.SIS)

    assert queued() == [(Kind.STAFF_LINK_TO_OBSERVER, "Olive Observer", "olive@example.test")]


def test_events_nobody_is_told_about_queue_nothing(student, root_account, system_actor):
    factories.EnrollmentFactory(user=student, course=factories.CourseFactory(account=root_account))

    issue_pairing_code(student=student, root_account=root_account, actor=system_actor)

    assert not AuditEvent.objects.filter(notifications_pending=True).exists()
    assert plan() == 0
    assert EmailNotification.objects.count() == 0


@pytest.mark.parametrize(
    ("setting", "source", "kind_turned_off"),
    [
        ("notify_student_of_new_observer", LinkSource.ADMIN, Kind.NEW_OBSERVER_TO_STUDENT),
        ("notify_observers_of_new_observer", LinkSource.ADMIN, Kind.NEW_OBSERVER_TO_OBSERVERS),
        ("notify_observer_of_staff_link", LinkSource.ADMIN, Kind.STAFF_LINK_TO_OBSERVER),
        ("notify_observer_of_removed_link", LinkSource.ADMIN, Kind.LINK_REMOVED_TO_OBSERVER),
    ],
)
def test_each_email_can_be_turned_off_per_root_account(
    setting,
    source,
    kind_turned_off,
    link,
    student,
    observer,
    make_user,
    root_account,
    other_root_account,
    system_actor,
):
    earlier = make_user("Earl Earlier", root_account, email="earl@example.test")
    link(earlier, student, root_account)
    plan()
    EmailNotification.objects.all().delete()
    NotificationSettings.objects.create(root_account=root_account, **{setting: False})

    made = link(observer, student, root_account, source=source)
    unlink_observer(link=made, actor=system_actor)
    plan()

    kinds = set(EmailNotification.objects.values_list("kind", flat=True))
    # The approval e-mail is about pending links (tests/rules), not made here.
    assert kinds == set(Kind) - {kind_turned_off, Kind.APPROVAL_TO_STUDENT}

    # The setting belongs to one root account; the other one still sends.
    EmailNotification.objects.all().delete()
    for person in (student, observer):
        factories.LoginFactory(user=person, root_account=other_root_account)
    link(observer, student, other_root_account, source=source)
    plan()
    assert set(EmailNotification.objects.values_list("kind", flat=True)) == {
        Kind.NEW_OBSERVER_TO_STUDENT,
        Kind.STAFF_LINK_TO_OBSERVER,
    }


def test_suppressed_block_queues_no_email_but_still_queues_webhooks(
    link, student, observer, root_account
):
    endpoint = WebhookEndpoint.objects.create(
        root_account=root_account, url="http://127.0.0.1:9/", events=["link.created"]
    )

    with notifications.suppressed():
        link(observer, student, root_account, source=LinkSource.SIS)
    plan()  # later, outside the block: the event remembers it
    assert EmailNotification.objects.count() == 0
    assert WebhookDelivery.objects.filter(endpoint=endpoint, event_type="link.created").count() == 1

    # Suppression ends with the block.
    other = factories.UserFactory(name="After Block", email="after@example.test")
    link(other, student, root_account)
    plan()
    assert EmailNotification.objects.filter(recipient=student).count() == 1


def test_email_is_rendered_in_the_recipients_language(link, make_user, observer, root_account):
    student = make_user("Sofía", root_account, email="sofia@example.test", locale="es")

    link(observer, student, root_account)
    plan()

    message = EmailNotification.objects.get(recipient=student)
    assert message.language == "es"


def test_redeeming_a_pairing_code_queues_one_message_per_recipient_and_event(
    link, make_user, student, observer, root_account, system_actor
):
    course = factories.CourseFactory(account=root_account)
    factories.EnrollmentFactory(user=student, course=course)
    earlier = make_user("Earl Earlier", root_account, email="earl@example.test")
    link(earlier, student, root_account)
    plan()
    EmailNotification.objects.all().delete()
    WebhookEndpoint.objects.create(
        root_account=root_account,
        url="https://hooks.example.test/",
        events=["link.created", "pairing_code.redeemed"],
    )
    issued = issue_pairing_code(student=student, root_account=root_account, actor=system_actor)

    redeem_pairing_code(
        code=issued.plaintext, observer=observer, root_account=root_account, actor=system_actor
    )

    assert queued() == [
        (Kind.NEW_OBSERVER_TO_OBSERVERS, "Earl Earlier", "earl@example.test"),
        (Kind.NEW_OBSERVER_TO_STUDENT, "Sam Student", "sam@example.test"),
    ]
    assert "How the link was made: pairing code" in (
        notifications.render_email(EmailNotification.objects.get(recipient=student)).body_text
    )
    assert sorted(WebhookDelivery.objects.values_list("event_type", flat=True)) == [
        "link.created",
        "pairing_code.redeemed",
    ]


def test_a_rolled_back_redemption_queues_nothing_and_keeps_the_code(
    student, observer, root_account, system_actor
):
    course = factories.CourseFactory(account=root_account)
    factories.EnrollmentFactory(user=student, course=course)
    WebhookEndpoint.objects.create(
        root_account=root_account,
        url="https://hooks.example.test/",
        events=["link.created", "pairing_code.redeemed"],
    )
    issued = issue_pairing_code(student=student, root_account=root_account, actor=system_actor)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        redeem_pairing_code(
            code=issued.plaintext, observer=observer, root_account=root_account, actor=system_actor
        )
        raise Boom

    assert plan() == 0
    assert EmailNotification.objects.count() == 0
    assert WebhookDelivery.objects.count() == 0
    issued.pairing_code.refresh_from_db()
    assert issued.pairing_code.redeemed_at is None


def test_planning_takes_the_oldest_pending_events_first_and_each_once(
    link, make_user, student, root_account, system_actor
):
    parents = [make_user(f"Parent {n}", root_account, email=f"p{n}@example.test") for n in range(3)]
    for parent in parents:
        link(parent, student, root_account)
    pending = list(
        AuditEvent.objects.filter(notifications_pending=True).order_by("id").values_list("id")
    )
    assert len(pending) == 3
    assert EmailNotification.objects.count() == 0

    assert notifications.plan_pending(batch=2) == 2
    still = AuditEvent.objects.filter(notifications_pending=True).values_list("id")
    assert list(still) == pending[2:]
    assert notifications.plan_pending(batch=2) == 1
    assert notifications.plan_pending(batch=2) == 0

    # Each link told the student once; later parents also told the earlier ones.
    assert EmailNotification.objects.filter(kind=Kind.NEW_OBSERVER_TO_STUDENT).count() == 3
    assert not AuditEvent.objects.filter(notifications_pending=True).exists()


def test_a_redemption_writes_no_message_until_the_planner_runs(
    student, observer, root_account, system_actor
):
    factories.EnrollmentFactory(user=student, course=factories.CourseFactory(account=root_account))
    WebhookEndpoint.objects.create(
        root_account=root_account, url="https://hooks.example.test/", events=["link.created"]
    )
    issued = issue_pairing_code(student=student, root_account=root_account, actor=system_actor)

    redeem_pairing_code(
        code=issued.plaintext, observer=observer, root_account=root_account, actor=system_actor
    )

    assert EmailNotification.objects.count() == WebhookDelivery.objects.count() == 0
    assert set(
        AuditEvent.objects.filter(notifications_pending=True).values_list("action", flat=True)
    ) == {"link.created", "pairing_code.redeemed"}
    assert plan() == 2
    assert EmailNotification.objects.filter(recipient=student).count() == 1
    assert WebhookDelivery.objects.filter(event_type="link.created").count() == 1
