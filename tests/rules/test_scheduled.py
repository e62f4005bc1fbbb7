"""The scheduled rules with a controlled clock: end dates passing, students coming of age."""

import datetime as dt
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from linking.models import (
    AuditAction,
    AuditEvent,
    ComingOfAge,
    EmailNotification,
    Enrollment,
    EnrollmentType,
    LinkEnd,
    ObservationLink,
)
from linking.services import notifications, safeguarding
from linking.services.context import Actor
from linking.services.links import link_observer
from tests.admin.conftest import changeform_data

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.UTC)


def _enrolled(observer, student) -> bool:
    return (
        Enrollment.objects.filter(
            user=observer, associated_user=student, type=EnrollmentType.OBSERVER
        )
        .exclude(workflow_state="deleted")
        .exists()
    )


def test_a_link_ends_by_itself_after_its_end_date(w):
    link, _ = link_observer(
        observer=w.parent,
        student=w.student,
        root_account=w.root,
        actor=Actor.system(),
        kind="advisor",
        ends_at=NOW,
    )
    assert _enrolled(w.parent, w.student)

    assert safeguarding.end_links_past_their_end(now=NOW - dt.timedelta(seconds=1)) == 0
    link.refresh_from_db()
    assert link.workflow_state == "active"

    assert safeguarding.end_links_past_their_end(now=NOW) == 1
    assert safeguarding.end_links_past_their_end(now=NOW + dt.timedelta(days=1)) == 0  # once
    link.refresh_from_db()
    assert (link.workflow_state, link.end_reason, link.deleted_at) == (
        "deleted",
        LinkEnd.END_DATE,
        NOW,
    )
    assert not _enrolled(w.parent, w.student)
    event = AuditEvent.objects.get(link=link, action=AuditAction.LINK_DELETED)
    assert event.detail == {"reason": "end_date"} and event.actor is None
    notifications.plan_all_pending()
    assert EmailNotification.objects.filter(
        recipient=w.parent, kind=EmailNotification.Kind.LINK_REMOVED_TO_OBSERVER
    ).exists()


@pytest.mark.parametrize(
    ("policy", "state", "enrolled"),
    [("keep", "active", True), ("ask", "pending", False), ("end", "deleted", False)],
)
def test_coming_of_age_applies_the_schools_policy_once(w, policy, state, enrolled):
    # Created the day before: the student was a minor then, so the link is active.
    w.root.coming_of_age_policy = policy
    w.root.save()
    w.student.birth_date = dt.date(2009, 3, 1)
    w.student.save()
    link, _ = link_observer(
        observer=w.parent, student=w.student, root_account=w.root, actor=Actor.system()
    )
    # Made while the student was a minor (pending only if this runs after NOW).
    ObservationLink.objects.filter(pk=link.pk).update(workflow_state="active")
    day_before = NOW - dt.timedelta(days=1)
    assert safeguarding.apply_coming_of_age_everywhere(now=day_before) == 0
    assert not ComingOfAge.objects.exists()

    safeguarding.apply_coming_of_age_everywhere(now=NOW)
    assert safeguarding.apply_coming_of_age_everywhere(now=NOW + dt.timedelta(days=2)) == 0

    link.refresh_from_db()
    assert link.workflow_state == state
    assert ComingOfAge.objects.get(student=w.student).policy == policy
    came = AuditEvent.objects.get(action=AuditAction.STUDENT_CAME_OF_AGE)
    assert came.detail == {"policy": policy} and came.student == w.student
    if state == "active":
        assert _enrolled(w.parent, w.student)
    else:
        assert not _enrolled(w.parent, w.student)
    notifications.plan_all_pending()
    mailed = set(EmailNotification.objects.values_list("recipient_id", "kind"))
    if policy == "ask":
        assert (w.student.pk, EmailNotification.Kind.APPROVAL_TO_STUDENT) in mailed
    if policy == "end":
        assert (w.parent.pk, EmailNotification.Kind.LINK_REMOVED_TO_OBSERVER) in mailed


def test_no_age_rule_means_no_coming_of_age(w):
    w.root.age_of_majority = None
    w.root.coming_of_age_policy = "end"
    w.root.save()
    w.student.birth_date = dt.date(1990, 1, 1)
    w.student.save()
    link_observer(observer=w.parent, student=w.student, root_account=w.root, actor=Actor.system())
    assert safeguarding.apply_coming_of_age_everywhere(now=NOW) == 0
    assert ObservationLink.objects.active().count() == 1


def test_the_command_runs_both_as_of_a_given_moment(w):
    link, _ = link_observer(
        observer=w.parent,
        student=w.student,
        root_account=w.root,
        actor=Actor.system(),
        ends_at=NOW,
    )
    out = StringIO()
    call_command("apply_link_rules", "--now", "2027-02-01T00:00Z", stdout=out)
    assert "ended 0 link(s)" in out.getvalue()
    link.refresh_from_db()
    assert link.workflow_state == "active"
    call_command("apply_link_rules", "--now", "2027-03-02T00:00Z", stdout=out)
    link.refresh_from_db()
    assert link.workflow_state == "deleted"
    assert AuditEvent.objects.get(action=AuditAction.LINK_DELETED).source == "command"
    with pytest.raises(CommandError):
        call_command("apply_link_rules", "--now", "soon")


def test_the_command_runs_as_of_now_by_default(w, frozen_now):
    link, _ = link_observer(
        observer=w.parent,
        student=w.student,
        root_account=w.root,
        actor=Actor.system(),
        ends_at=timezone.now() + dt.timedelta(hours=1),
    )
    call_command("apply_link_rules", stdout=StringIO())
    link.refresh_from_db()
    assert link.workflow_state == "active"
    frozen_now.advance(hours=1)
    call_command("apply_link_rules", stdout=StringIO())
    link.refresh_from_db()
    assert link.workflow_state == "deleted"


# Kind and end date in the admin ---------------------------------------------------


def test_admin_sets_kind_and_end_date_on_add_and_change(w, admin_a):
    response = admin_a.post(
        "/admin/linking/observationlink/add/",
        {
            "observer": w.parent.pk,
            "student": w.student.pk,
            "root_account": w.root.pk,
            "kind": "advisor",
            "ends_at_0": "2027-06-30",
            "ends_at_1": "18:00:00",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    link = ObservationLink.objects.get()
    assert link.kind == "advisor" and link.ends_at is not None
    url = f"/admin/linking/observationlink/{link.pk}/change/"
    data = changeform_data(admin_a.get(url))
    data.update({"kind": "relative", "ends_at_0": "", "ends_at_1": ""})
    response = admin_a.post(url, data)
    assert response.status_code == 302
    link.refresh_from_db()
    assert (link.kind, link.ends_at) == ("relative", None)
    changed = AuditEvent.objects.get(action=AuditAction.LINK_CHANGED)
    assert changed.detail == {"kind": "relative", "ends_at": None}
    assert changed.actor == w.staff


def test_the_worker_runs_the_link_rules_every_hour(w):
    """The task queue's scheduler has the job, and the task ends a link past its end date."""
    from linking import tasks
    from linking.services import scheduling

    scheduling.autodiscover()
    entry = {e.name: e for e in scheduling.registered()}[tasks.apply_link_rules.module_path]
    assert entry.every == dt.timedelta(hours=1)

    past = timezone.now() - dt.timedelta(minutes=1)
    link, _ = link_observer(
        observer=w.parent,
        student=w.student,
        root_account=w.root,
        actor=Actor.system(),
        kind="advisor",
        ends_at=past,
    )
    assert tasks.apply_link_rules.call() == {"ended_by_date": 1, "changed_by_coming_of_age": 0}
    link.refresh_from_db()
    assert (link.workflow_state, link.end_reason) == ("deleted", LinkEnd.END_DATE)
    assert not _enrolled(w.parent, w.student)
    assert AuditEvent.objects.filter(link=link, action=AuditAction.LINK_DELETED).count() == 1
