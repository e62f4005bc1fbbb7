"""Links and observer-enrollment mirroring: canvas-behaviour.md §5 and §7 items 81-98."""

import pytest

from linking.models import AuditAction, AuditEvent, Enrollment, ObservationLink, User
from linking.services import enrollments, links
from linking.services.errors import CannotObserveSelf, RequiredFieldsMissing
from tests import factories


def observer_enrollments(observer, **filters):
    return Enrollment.objects.filter(user=observer, type="observer", **filters)


def active_course_ids(observer):
    return sorted(
        observer_enrollments(observer, workflow_state="active").values_list("course_id", flat=True)
    )


@pytest.fixture
def two_schools(root_account, other_root_account):
    """Root accounts a1, a2 with one course each (Canvas spec fixtures for 95-98)."""
    c1 = factories.CourseFactory(account=root_account)
    c2 = factories.CourseFactory(account=other_root_account)
    return root_account, other_root_account, c1, c2


# 81
def test_link_requires_student_observer_and_root_account(parent, root_account, system_actor):
    with pytest.raises(RequiredFieldsMissing) as caught:
        links.link_observer(
            observer=parent, student=None, root_account=root_account, actor=system_actor
        )
    assert caught.value.message == "student, observer and root_account are required"
    assert not ObservationLink.objects.exists()


# 82
def test_link_refuses_observing_oneself(student, root_account, system_actor):
    with pytest.raises(CannotObserveSelf):
        links.link_observer(
            observer=student, student=student, root_account=root_account, actor=system_actor
        )
    assert not ObservationLink.objects.exists()


# 83
def test_link_unlink_link_restores_the_same_row(parent, student, root_account, system_actor):
    link, created = links.link_observer(
        observer=parent, student=student, root_account=root_account, actor=system_actor
    )
    assert created
    assert links.unlink_observer(link=link, actor=system_actor)
    link.refresh_from_db()
    assert link.workflow_state == "deleted" and link.deleted_at is not None
    again, changed = links.link_observer(
        observer=parent, student=student, root_account=root_account, actor=system_actor
    )
    assert changed and again.pk == link.pk
    again.refresh_from_db()
    assert again.workflow_state == "active" and again.deleted_at is None
    assert ObservationLink.objects.count() == 1
    assert list(
        AuditEvent.objects.filter(link=link).order_by("id").values_list("action", flat=True)
    ) == [AuditAction.LINK_CREATED, AuditAction.LINK_DELETED, AuditAction.LINK_RESTORED]


def test_linking_an_active_link_again_changes_nothing(parent, student, root_account, system_actor):
    link, _ = links.link_observer(
        observer=parent, student=student, root_account=root_account, actor=system_actor
    )
    again, changed = links.link_observer(
        observer=parent, student=student, root_account=root_account, actor=system_actor
    )
    assert not changed and again.pk == link.pk
    assert AuditEvent.objects.filter(action=AuditAction.LINK_CREATED).count() == 1
    assert not AuditEvent.objects.filter(action=AuditAction.LINK_RESTORED).exists()


def test_unlinking_twice_records_one_event(parent, student, root_account, system_actor):
    link, _ = links.link_observer(
        observer=parent, student=student, root_account=root_account, actor=system_actor
    )
    assert links.unlink_observer(link=link, actor=system_actor) is True
    assert links.unlink_observer(link=link, actor=system_actor) is False
    assert AuditEvent.objects.filter(action=AuditAction.LINK_DELETED).count() == 1
    assert ObservationLink.objects.filter(pk=link.pk, workflow_state="deleted").exists()


# 84
def test_relinking_restores_a_deleted_observer_enrollment(
    parent, student, root_account, course, system_actor
):
    links.link_observer(
        observer=parent, student=student, root_account=root_account, actor=system_actor
    )
    mirrored = observer_enrollments(parent).get()
    enrollments.set_enrollment_state(enrollment=mirrored, workflow_state="deleted")
    links.link_observer(
        observer=parent, student=student, root_account=root_account, actor=system_actor
    )
    mirrored.refresh_from_db()
    assert mirrored.workflow_state == "active"
    assert observer_enrollments(parent).count() == 1


# 85
def test_relinking_reactivates_an_inactive_observer_enrollment(
    parent, student, root_account, system_actor
):
    links.link_observer(
        observer=parent, student=student, root_account=root_account, actor=system_actor
    )
    mirrored = observer_enrollments(parent).get()
    enrollments.set_enrollment_state(enrollment=mirrored, workflow_state="inactive")
    links.link_observer(
        observer=parent, student=student, root_account=root_account, actor=system_actor
    )
    mirrored.refresh_from_db()
    assert mirrored.workflow_state == "active"


# 86
def test_link_without_prior_link_returns_the_students_active_link(
    parent, student, root_account, system_actor
):
    link, created = links.link_observer(
        observer=parent, student=student, root_account=root_account, actor=system_actor
    )
    assert created
    assert ObservationLink.objects.active().filter(student=student).first() == link
    assert link.observer == parent and link.root_account == root_account
    assert AuditEvent.objects.filter(
        action=AuditAction.LINK_CREATED, observer=parent, student=student
    ).exists()


# 87 (cross-listed sections moving an enrollment's course) is not modelled: no sections here.


# 88
def test_mirroring_copies_states_and_follows_observer_deletion_and_return(
    make_user, root_account, system_actor
):
    student = make_user("Child Smith", root_account)
    parent = make_user("Parent Smith", root_account)
    c1, c2, c3 = (factories.CourseFactory(account=root_account) for _ in range(3))
    enrollments.enroll_user(user=student, course=c1, type="student", workflow_state="invited")
    enrollments.enroll_user(user=student, course=c2, type="student", workflow_state="active")
    enrollments.enroll_user(user=student, course=c3, type="student", workflow_state="completed")
    links.link_observer(
        observer=parent, student=student, root_account=root_account, actor=system_actor
    )
    mirrored = observer_enrollments(parent).order_by("course_id")
    assert [(e.course_id, e.workflow_state) for e in mirrored] == [
        (c1.pk, "active"),
        (c2.pk, "active"),
    ]
    assert all(e.associated_user_id == student.pk for e in mirrored)

    links.delete_user(user=parent, actor=system_actor)
    parent.refresh_from_db()
    assert parent.workflow_state == User.State.DELETED
    assert set(observer_enrollments(parent).values_list("workflow_state", flat=True)) == {"deleted"}

    parent.workflow_state = User.State.REGISTERED
    parent.save()
    links.link_observer(
        observer=parent, student=student, root_account=root_account, actor=system_actor
    )
    assert active_course_ids(parent) == [c1.pk, c2.pk]
    assert observer_enrollments(parent).count() == 2


# 89
def test_linked_observers_exclude_deleted_links(make_user, root_account, student, system_actor):
    first = make_user("Parent One", root_account)
    second = make_user("Parent Two", root_account)
    for observer in (first, second):
        links.link_observer(
            observer=observer, student=student, root_account=root_account, actor=system_actor
        )
    linked = set(ObservationLink.objects.active().filter(student=student).values_list("observer"))
    assert linked == {(first.pk,), (second.pk,)}
    ObservationLink.objects.filter(student=student).update(workflow_state="deleted")
    assert not ObservationLink.objects.active().filter(student=student).exists()


# 90
def test_inactive_student_enrollment_gives_inactive_observer_enrollment_then_a_new_one(
    make_user, root_account, course, system_actor
):
    student = make_user("Child Smith", root_account)
    parent = make_user("Parent Smith", root_account)
    enrollment = enrollments.enroll_user(
        user=student, course=course, type="student", workflow_state="inactive"
    )
    links.link_observer(
        observer=parent, student=student, root_account=root_account, actor=system_actor
    )
    mirrored = observer_enrollments(parent).get()
    assert mirrored.workflow_state == "inactive"
    mirrored.delete()  # "destroy_permanently!" in the Canvas spec
    enrollments.set_enrollment_state(enrollment=enrollment, workflow_state="active")
    recreated = observer_enrollments(parent).get()
    assert recreated.pk != mirrored.pk
    assert recreated.workflow_state == "active" and recreated.course_id == course.pk


# 91
def test_no_observer_enrollment_after_the_link_is_removed(
    make_user, parent, student, root_account, system_actor
):
    link, _ = links.link_observer(
        observer=parent, student=student, root_account=root_account, actor=system_actor
    )
    links.unlink_observer(link=link, actor=system_actor)
    new_course = factories.CourseFactory(account=root_account)
    enrollments.enroll_user(user=student, course=new_course, type="student")
    assert not observer_enrollments(parent, course=new_course).exists()
    assert set(observer_enrollments(parent).values_list("workflow_state", flat=True)) == {"deleted"}


# 92
def test_observer_without_a_login_in_a_root_account_gets_no_enrollment_there(
    make_user, two_schools, system_actor
):
    a1, a2, c1, c2 = two_schools
    student = make_user("Child Smith", a1, a2)
    observer = make_user("Parent Smith", a2)
    enrollments.enroll_user(user=student, course=c1, type="student")
    enrollments.enroll_user(user=student, course=c2, type="student")
    for account in (a1, a2):
        links.link_observer(
            observer=observer, student=student, root_account=account, actor=system_actor
        )
    assert ObservationLink.objects.active().filter(observer=observer).count() == 2
    assert active_course_ids(observer) == [c2.pk]


# 93 (Canvas's second, custom-role student enrollment in the same course has no
# counterpart: one student enrollment per course here) — enrolling again must not
# duplicate, and a returning student enrollment recycles a deleted observer enrollment.
def test_enrolling_a_linked_student_again_does_not_duplicate(
    parent, student, root_account, course, system_actor
):
    links.link_observer(
        observer=parent, student=student, root_account=root_account, actor=system_actor
    )
    enrollments.enroll_user(user=student, course=course, type="student")
    assert Enrollment.objects.filter(user=student, course=course).count() == 1
    assert observer_enrollments(parent).count() == 1

    mirrored = observer_enrollments(parent).get()
    enrollments.set_enrollment_state(enrollment=mirrored, workflow_state="deleted")
    student_enrollment = Enrollment.objects.get(user=student, course=course)
    enrollments.set_enrollment_state(enrollment=student_enrollment, workflow_state="deleted")
    enrollments.enroll_user(user=student, course=course, type="student")
    mirrored.refresh_from_db()
    assert mirrored.workflow_state == "active"
    assert observer_enrollments(parent).count() == 1


def test_explicitly_deleted_observer_enrollment_is_not_resurrected_by_a_state_change(
    parent, student, root_account, course, system_actor
):
    links.link_observer(
        observer=parent, student=student, root_account=root_account, actor=system_actor
    )
    mirrored = observer_enrollments(parent).get()
    enrollments.set_enrollment_state(enrollment=mirrored, workflow_state="deleted")
    student_enrollment = Enrollment.objects.get(user=student, course=course)
    enrollments.set_enrollment_state(enrollment=student_enrollment, workflow_state="invited")
    mirrored.refresh_from_db()
    assert mirrored.workflow_state == "deleted"


# 94 (sharding and trusted accounts) does not apply: one database, no trust relations.


# 95
def test_link_on_one_root_account_enrolls_only_in_its_courses(make_user, two_schools, system_actor):
    a1, a2, c1, c2 = two_schools
    student = make_user("Child Smith", a1, a2)
    observer = make_user("Parent Smith", a1, a2)
    enrollments.enroll_user(user=student, course=c1, type="student")
    enrollments.enroll_user(user=student, course=c2, type="student")
    links.link_observer(observer=observer, student=student, root_account=a1, actor=system_actor)
    assert active_course_ids(observer) == [c1.pk]


# 96
def test_new_student_enrollment_reaches_only_observers_linked_on_its_root_account(
    make_user, two_schools, system_actor
):
    a1, a2, c1, _c2 = two_schools
    student = make_user("Child Smith", a1, a2)
    observer = make_user("Parent One", a1)
    observer2 = make_user("Parent Two", a2)
    links.link_observer(observer=observer, student=student, root_account=a1, actor=system_actor)
    links.link_observer(observer=observer2, student=student, root_account=a2, actor=system_actor)
    enrollments.enroll_user(user=student, course=c1, type="student")
    assert active_course_ids(observer) == [c1.pk]
    assert not observer_enrollments(observer2).exists()


# 97
def test_removing_one_root_accounts_link_keeps_the_other(make_user, two_schools, system_actor):
    a1, a2, c1, c2 = two_schools
    student = make_user("Child Smith", a1, a2)
    observer = make_user("Parent Smith", a1, a2)
    enrollments.enroll_user(user=student, course=c1, type="student")
    enrollments.enroll_user(user=student, course=c2, type="student")
    link1, _ = links.link_observer(
        observer=observer, student=student, root_account=a1, actor=system_actor
    )
    links.link_observer(observer=observer, student=student, root_account=a2, actor=system_actor)
    assert active_course_ids(observer) == sorted([c1.pk, c2.pk])
    links.unlink_observer(link=link1, actor=system_actor)
    assert active_course_ids(observer) == [c2.pk]
    assert observer_enrollments(observer, course=c1).get().workflow_state == "deleted"


# 98
def test_deleting_a_student_enrollment_deletes_only_its_mirror(
    make_user, two_schools, system_actor
):
    a1, a2, c1, c2 = two_schools
    student = make_user("Child Smith", a1, a2)
    observer = make_user("Parent Smith", a1, a2)
    for account in (a1, a2):
        links.link_observer(
            observer=observer, student=student, root_account=account, actor=system_actor
        )
    e1 = enrollments.enroll_user(user=student, course=c1, type="student")
    enrollments.enroll_user(user=student, course=c2, type="student")
    enrollments.set_enrollment_state(enrollment=e1, workflow_state="deleted")
    assert active_course_ids(observer) == [c2.pk]


def test_completed_student_enrollment_completes_the_mirror(
    parent, student, root_account, course, system_actor
):
    links.link_observer(
        observer=parent, student=student, root_account=root_account, actor=system_actor
    )
    student_enrollment = Enrollment.objects.get(user=student, course=course)
    enrollments.set_enrollment_state(enrollment=student_enrollment, workflow_state="completed")
    assert observer_enrollments(parent).get().workflow_state == "completed"


def test_delete_user_removes_links_as_student_too(parent, student, root_account, system_actor):
    link, _ = links.link_observer(
        observer=parent, student=student, root_account=root_account, actor=system_actor
    )
    links.delete_user(user=student, actor=system_actor)
    link.refresh_from_db()
    assert link.workflow_state == "deleted"
    assert observer_enrollments(parent).get().workflow_state == "deleted"
    assert set(
        Enrollment.objects.filter(user=student).values_list("workflow_state", flat=True)
    ) == {"deleted"}


def test_link_to_common_root_accounts_by_observer_uses_every_shared_school(
    make_user, root_account, other_root_account, act
):
    student = make_user("Child Smith", root_account, other_root_account)
    observer = make_user("Parent Smith", root_account, other_root_account)
    made = links.link_to_common_root_accounts(
        observer=observer, student=student, narrowing="all", actor=act(observer)
    )
    assert {link.root_account_id for link in made} == {root_account.pk, other_root_account.pk}
    made_again = links.link_to_common_root_accounts(
        observer=observer, student=student, narrowing=root_account, actor=act(observer)
    )
    assert [link.pk for link in made_again] == [
        ObservationLink.objects.get(root_account=root_account).pk
    ]
    assert ObservationLink.objects.count() == 2
