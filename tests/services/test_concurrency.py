"""Concurrent redemptions of one pairing code: exactly one link, exactly one success."""

import threading

from django.db import connections

from linking.models import AuditAction, AuditEvent, ObservationLink, PairingCode
from linking.services import enrollments, pairing
from linking.services.context import Actor
from linking.services.errors import InvalidPairingCode
from tests import factories

THREADS = 10


def test_many_threads_redeeming_one_code_make_exactly_one_link(postgresql_only, make_user):
    root_account = factories.RootAccountFactory(domain="race.test")
    student = make_user("Child Smith", root_account)
    enrollments.enroll_user(
        user=student, course=factories.CourseFactory(account=root_account), type="student"
    )
    issued = pairing.issue_pairing_code(
        student=student, root_account=root_account, actor=Actor.system()
    )
    parents = [make_user(f"Parent {i}", root_account) for i in range(THREADS)]

    barrier = threading.Barrier(THREADS)
    successes, refusals, unexpected = [], [], []

    def attempt(parent):
        try:
            barrier.wait(timeout=10)
            pairing.redeem_pairing_code(
                code=issued.plaintext,
                observer=parent,
                root_account=root_account,
                actor=Actor(user=parent, source="api", ip_address=f"10.0.0.{parent.pk % 250}"),
            )
            successes.append(parent.pk)
        except InvalidPairingCode:
            refusals.append(parent.pk)
        except Exception as error:  # reported by the assertion below
            unexpected.append(repr(error))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=attempt, args=(p,)) for p in parents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert unexpected == []
    assert len(successes) == 1 and len(refusals) == THREADS - 1
    links = ObservationLink.objects.filter(student=student)
    assert links.count() == 1 and links.get().observer_id == successes[0]
    code = PairingCode.objects.get(pk=issued.pairing_code.pk)
    assert code.workflow_state == "redeemed" and code.redeemed_by_id == successes[0]
    assert AuditEvent.objects.filter(action=AuditAction.CODE_REDEEMED).count() == 1


def test_concurrent_planners_plan_each_event_once(postgresql_only, make_user):
    from linking.models import EmailNotification
    from linking.services import notifications
    from linking.services.links import link_observer

    root_account = factories.RootAccountFactory(domain="planners.test")
    student = make_user("Child Planned", root_account)
    student.email = "child@example.test"
    student.save(update_fields=["email"])
    for n in range(40):
        link_observer(
            observer=make_user(f"Parent {n}", root_account),
            student=student,
            root_account=root_account,
            actor=Actor.system(),
        )
    barrier = threading.Barrier(4)
    planned, unexpected = [], []

    def plan():
        try:
            barrier.wait(timeout=10)
            while count := notifications.plan_pending(batch=3):
                planned.append(count)
        except Exception as error:  # reported by the assertion below
            unexpected.append(repr(error))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=plan) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert unexpected == []
    assert sum(planned) == 40
    assert not AuditEvent.objects.filter(notifications_pending=True).exists()
    to_student = EmailNotification.objects.filter(
        recipient=student, kind=EmailNotification.Kind.NEW_OBSERVER_TO_STUDENT
    )
    assert to_student.count() == 40
    assert to_student.values("event_id").distinct().count() == 40
