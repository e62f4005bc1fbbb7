"""user_observers.csv: Canvas's rules (canvas-behaviour.md §6.2, §7 items 107-108)."""

from linking.models import (
    AuditAction,
    AuditEvent,
    Enrollment,
    EnrollmentState,
    EnrollmentType,
    LinkSource,
    ObservationLink,
    SisBatch,
)
from linking.services.enrollments import enroll_user
from linking.services.links import link_observer, unlink_observer
from tests import factories

HEADER = "observer_id,student_id,status\n"


def active_links(root_account):
    return ObservationLink.objects.active().filter(root_account=root_account)


def test_item_107_errors_in_canvas_order(run_import, sis_dir, sis_users, root_account):
    path = sis_dir(
        "user_observers.csv",
        HEADER
        + "no_observer,U001,active\n"
        + "U001,U001,active\n"
        + "U001,no_student,active\n"
        + ",U001,active\n"
        + "U001,,active\n"
        + "U001,U002,dead\n"
        + "U001,U002,deleted\n",
    )
    before = active_links(root_account).count()

    report = run_import(path)

    assert [error["message"] for error in report.errors] == [
        "An observer referenced a non-existent user no_observer",
        "Can't observe yourself user U001",
        "A student referenced a non-existent user no_student",
        "No observer_id given for a user observer",
        "No user_id given for a user observer",
        'Improper status "dead" for a user_observer',
        "Can't delete a non-existent observer for observer: U001, student: U002",
    ]
    assert [error["line"] for error in report.errors] == [2, 3, 4, 5, 6, 7, 8]
    assert {error["file"] for error in report.errors} == {"user_observers.csv"}
    assert active_links(root_account).count() == before
    batch = SisBatch.objects.get(pk=report.batch_id)
    assert batch.workflow_state == SisBatch.State.IMPORTED_WITH_ERRORS
    assert batch.errors == report.errors


def test_item_108_uppercase_status_links_then_delete_restores_count(
    run_import, sis_dir, sis_users, root_account
):
    before = active_links(root_account).count()

    report = run_import(sis_dir("a.csv", HEADER + "U001,U002,ACTIVE\n"))

    assert not report.failed
    assert active_links(root_account).count() == before + 1
    link = active_links(root_account).get()
    assert (link.observer, link.student) == (sis_users["U001"], sis_users["U002"])
    assert link.source == LinkSource.SIS
    assert link.sis_batch_id == report.batch_id

    # One of one or two links is over the 10% mass-delete share.
    second = run_import(sis_dir("b.csv", HEADER + "U001,U002,deleted\n"), allow_mass_delete=True)

    assert not second.failed
    assert active_links(root_account).count() == before
    link.refresh_from_db()
    assert link.workflow_state == ObservationLink.State.DELETED
    assert link.sis_batch_id == second.batch_id


def test_same_sis_user_for_both_sides_is_self_observation(
    run_import, sis_dir, make_user, root_account
):
    # Two logins (different SIS ids) of one person: Canvas's check 8.
    user = make_user("Twin", root_account, sis_user_id="A1")
    factories.LoginFactory(user=user, root_account=root_account, sis_user_id="A2")

    report = run_import(sis_dir("u.csv", HEADER + "A1,A2,active\n"))

    assert [e["message"] for e in report.errors] == ["Can't observe yourself user A2"]
    assert not ObservationLink.objects.exists()


def test_inactive_login_is_a_non_existent_user(run_import, sis_dir, sis_users, root_account):
    sis_users["U002"].logins.update(workflow_state="suspended")

    report = run_import(sis_dir("u.csv", HEADER + "U001,U002,active\n"))

    assert [e["message"] for e in report.errors] == [
        "A student referenced a non-existent user U002"
    ]


def test_sis_ids_of_another_school_are_not_found(
    run_import, sis_dir, make_user, root_account, other_root_account
):
    make_user("Elsewhere", other_root_account, sis_user_id="X1")
    make_user("Here", root_account, sis_user_id="X2")

    report = run_import(sis_dir("u.csv", HEADER + "X1,X2,active\n"))

    assert report.errors[0]["message"] == "An observer referenced a non-existent user X1"
    assert not ObservationLink.objects.exists()


def _student_in_courses(student, root_account, count=2, state=EnrollmentState.ACTIVE):
    courses = [factories.CourseFactory(account=root_account) for _ in range(count)]
    for course in courses:
        enroll_user(user=student, course=course, type=EnrollmentType.STUDENT, workflow_state=state)
    return courses


def test_observer_enrollments_follow_the_link(run_import, sis_dir, sis_users, root_account):
    student, observer = sis_users["U002"], sis_users["U001"]
    courses = _student_in_courses(student, root_account, count=3)
    enroll_user(
        user=student,
        course=factories.CourseFactory(account=root_account),
        type=EnrollmentType.STUDENT,
        workflow_state=EnrollmentState.INVITED,
    )

    run_import(sis_dir("a.csv", HEADER + "U001,U002,active\n"))

    mirrored = Enrollment.objects.filter(
        user=observer, associated_user=student, type=EnrollmentType.OBSERVER
    )
    assert mirrored.count() == 4
    assert set(mirrored.values_list("workflow_state", flat=True)) == {EnrollmentState.ACTIVE}
    assert {c.pk for c in courses} <= set(mirrored.values_list("course_id", flat=True))

    run_import(sis_dir("d.csv", HEADER + "U001,U002,deleted\n"), allow_mass_delete=True)

    assert set(mirrored.values_list("workflow_state", flat=True)) == {EnrollmentState.DELETED}


def test_bulk_path_matches_link_observer(
    run_import, sis_dir, make_user, root_account, system_actor
):
    """The SIS bulk path leaves the same enrollments as services.links.link_observer."""

    def setup(prefix):
        student = make_user(f"{prefix} student", root_account, sis_user_id=f"{prefix}S")
        observer = make_user(f"{prefix} observer", root_account, sis_user_id=f"{prefix}O")
        _student_in_courses(student, root_account, count=2)
        _student_in_courses(student, root_account, count=1, state=EnrollmentState.INACTIVE)
        _student_in_courses(student, root_account, count=1, state=EnrollmentState.COMPLETED)
        return observer, student

    def shape(observer, student):
        return sorted(
            (e.workflow_state, e.course.enrollments.get(user=student).workflow_state)
            for e in Enrollment.objects.filter(user=observer, associated_user=student)
        )

    bulk_observer, bulk_student = setup("B")
    service_observer, service_student = setup("V")

    run_import(sis_dir("a.csv", HEADER + "BO,BS,active\n"))
    link_observer(
        observer=service_observer,
        student=service_student,
        root_account=root_account,
        actor=system_actor,
    )

    assert shape(bulk_observer, bulk_student) == shape(service_observer, service_student)
    assert len(shape(bulk_observer, bulk_student)) == 3


def test_restoring_a_link_brings_its_observer_enrollments_back(
    run_import, sis_dir, sis_users, root_account, system_actor
):
    observer, student = sis_users["U001"], sis_users["U002"]
    _student_in_courses(student, root_account, count=2)
    link, _ = link_observer(
        observer=observer, student=student, root_account=root_account, actor=system_actor
    )
    unlink_observer(link=link, actor=system_actor)

    report = run_import(sis_dir("a.csv", HEADER + "U001,U002,active\n"))

    link.refresh_from_db()
    assert link.workflow_state == ObservationLink.State.ACTIVE
    assert report.files[0].counts["restored"] == 1
    states = Enrollment.objects.filter(user=observer, associated_user=student).values_list(
        "workflow_state", flat=True
    )
    assert sorted(states) == [EnrollmentState.ACTIVE, EnrollmentState.ACTIVE]
    restored = AuditEvent.objects.filter(action=AuditAction.LINK_RESTORED, link=link).get()
    assert restored.source == "sis"


def test_audit_trail_one_event_per_change(run_import, sis_dir, sis_users, root_account):
    run_import(sis_dir("a.csv", HEADER + "U001,U002,active\nU003,U002,active\nU001,U002,active\n"))
    run_import(sis_dir("b.csv", HEADER + "U001,U002,deleted\n"), allow_mass_delete=True)

    events = AuditEvent.objects.filter(root_account=root_account).order_by("id")
    assert [(e.action, e.observer.name, e.source) for e in events] == [
        (AuditAction.LINK_CREATED, "User U001", "sis"),
        (AuditAction.LINK_CREATED, "User U003", "sis"),
        (AuditAction.LINK_DELETED, "User U001", "sis"),
    ]
    assert all(e.link_id for e in events)


def test_reimport_changes_nothing(run_import, sis_dir, sis_users, root_account):
    _student_in_courses(sis_users["U002"], root_account, count=2)
    path = sis_dir("a.csv", HEADER + "U001,U002,active\nU003,U002,active\nU004,U001,active\n")
    run_import(path)
    snapshot = (
        list(ObservationLink.objects.values_list("id", "workflow_state", "deleted_at")),
        list(Enrollment.objects.values_list("id", "workflow_state", "updated_at")),
        AuditEvent.objects.count(),
    )

    second = run_import(path)

    assert second.files[0].counts["unchanged"] == 3
    assert second.files[0].counts["created"] == 0
    assert snapshot == (
        list(ObservationLink.objects.values_list("id", "workflow_state", "deleted_at")),
        list(Enrollment.objects.values_list("id", "workflow_state", "updated_at")),
        AuditEvent.objects.count(),
    )
    # The links the second batch touched now point to it (Canvas).
    assert set(ObservationLink.objects.values_list("sis_batch_id", flat=True)) == {second.batch_id}


def test_create_and_delete_in_one_file(run_import, sis_dir, sis_users, root_account):
    report = run_import(sis_dir("a.csv", HEADER + "U001,U002,active\nU001,U002,deleted\n"))

    assert not report.failed
    link = ObservationLink.objects.get()
    assert link.workflow_state == ObservationLink.State.DELETED
    assert list(
        AuditEvent.objects.filter(link=link).order_by("id").values_list("action", flat=True)
    ) == [AuditAction.LINK_CREATED, AuditAction.LINK_DELETED]


def test_query_count_does_not_grow_with_rows(run_import, sis_dir, make_user, root_account):
    """Batch queries per chunk, not per row: 5 and 60 rows cost about the same queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def links_file(name, count):
        rows = []
        for n in range(count):
            student = make_user(f"{name} S{n}", root_account, sis_user_id=f"{name}S{n}")
            make_user(f"{name} O{n}", root_account, sis_user_id=f"{name}O{n}")
            _student_in_courses(student, root_account, count=2)
            rows.append(f"{name}O{n},{name}S{n},active\n")
        return sis_dir(f"{name}.csv", HEADER + "".join(rows))

    small, large = links_file("small", 5), links_file("large", 60)

    with CaptureQueriesContext(connection) as small_queries:
        run_import(small)
    with CaptureQueriesContext(connection) as large_queries:
        run_import(large)

    # Equal, give or take a split multi-row INSERT (SQLite caps the parameters per statement).
    assert len(small_queries) <= len(large_queries) <= len(small_queries) + 2
    assert ObservationLink.objects.active().count() == 65
    assert Enrollment.objects.filter(type=EnrollmentType.OBSERVER).count() == 130
