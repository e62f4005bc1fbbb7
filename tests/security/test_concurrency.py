"""Concurrency on PostgreSQL (issue 7): links added and removed at once, SIS import vs API,
and failure counters that never lose a count.

Each test runs real threads, each with its own database connection, against
PostgreSQL; SQLite serialises every writer, so there they are skipped with
the reason printed.
"""

import itertools
import threading
from collections import Counter

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from linking.models import (
    AuditAction,
    AuditEvent,
    Enrollment,
    EnrollmentState,
    EnrollmentType,
    ObservationLink,
    RateLimitCounter,
)
from linking.services import accounts as account_services
from linking.services import ratelimit
from linking.services.context import Actor
from linking.services.enrollments import enroll_user
from linking.services.errors import RateLimited
from linking.services.links import link_observer, unlink_observer
from linking.services.sis import import_sis
from linking.services.tokens import issue_access_token

THREADS = 8
ROUNDS = 6
HOST = "race.test"
ADDED = {AuditAction.LINK_CREATED, AuditAction.LINK_RESTORED}


@pytest.fixture
def school(postgresql_only):
    """A school with two courses, an admin with a token, and helpers to make people."""
    school = account_services.create_root_account(name="Race School", domain=HOST)
    school.race_courses = [
        account_services.create_course(account=school, name=f"Course {n}") for n in (1, 2)
    ]
    admin = account_services.create_user_with_login(
        name="Race Admin", root_account=school, unique_id="admin@race.test"
    )
    account_services.make_account_admin(user=admin, account=school)
    school.admin_token = issue_access_token(user=admin, actor=Actor.system())[1]
    return school


def _person(school, name, sis_id, *, student=False):
    user = account_services.create_user_with_login(
        name=name, root_account=school, unique_id=f"{sis_id.lower()}@race.test", sis_user_id=sis_id
    )
    if student:
        for course in school.race_courses:
            enroll_user(user=user, course=course, type=EnrollmentType.STUDENT)
    return user


def _run_threads(work, count):
    """Run ``work(index)`` in ``count`` threads started together; return unexpected errors."""
    barrier = threading.Barrier(count)
    unexpected = []

    def run(index):
        try:
            barrier.wait(timeout=10)
            work(index)
        except Exception as error:  # reported by the caller's assertion
            unexpected.append(repr(error))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    return unexpected


def assert_link_consistent(observer, student, school):
    """One row for the triple; observer enrollments match its state; audit events alternate."""
    links = ObservationLink.objects.filter(observer=observer, student=student, root_account=school)
    assert links.count() == 1
    link = links.get()
    observer_enrollments = Enrollment.objects.filter(
        user=observer, associated_user=student, type=EnrollmentType.OBSERVER
    )
    per_course = Counter(observer_enrollments.values_list("course_id", flat=True))
    assert all(n == 1 for n in per_course.values()), f"duplicate enrollments {per_course}"
    live_courses = set(
        observer_enrollments.exclude(workflow_state=EnrollmentState.DELETED).values_list(
            "course_id", flat=True
        )
    )
    if link.workflow_state == ObservationLink.State.ACTIVE:
        student_courses = set(
            Enrollment.objects.mirrorable()
            .filter(user=student, type=EnrollmentType.STUDENT)
            .values_list("course_id", flat=True)
        )
        assert live_courses == student_courses and student_courses
        assert link.deleted_at is None
    else:
        assert live_courses == set()
        assert link.deleted_at is not None
    actions = list(
        AuditEvent.objects.filter(link=link)
        .filter(action__in=[*ADDED, AuditAction.LINK_DELETED])
        .order_by("id")
        .values_list("action", flat=True)
    )
    # created, then deleted / restored strictly alternating, ending in the link's state.
    assert actions[0] == AuditAction.LINK_CREATED
    assert actions.count(AuditAction.LINK_CREATED) == 1
    for before, after in itertools.pairwise(actions):
        assert (before in ADDED) != (after in ADDED), actions
    assert (actions[-1] in ADDED) == (link.workflow_state == ObservationLink.State.ACTIVE)
    return link, actions


def test_services_adding_and_removing_one_link_at_once_stay_consistent(school):
    observer = _person(school, "Parent", "P1")
    student = _person(school, "Child", "S1", student=True)
    actor = Actor.system()

    def work(index):
        for round_ in range(ROUNDS):
            if (index + round_) % 2 == 0:
                link_observer(observer=observer, student=student, root_account=school, actor=actor)
            else:
                link = ObservationLink.objects.filter(observer=observer, student=student).first()
                if link is not None:
                    unlink_observer(link=link, actor=actor)

    assert _run_threads(work, THREADS) == []
    link, actions = assert_link_consistent(observer, student, school)
    assert len(actions) > 1  # the threads really raced on the same row

    # Whatever the race left, one more call of each service still works and stays consistent.
    link_observer(observer=observer, student=student, root_account=school, actor=actor)
    assert_link_consistent(observer, student, school)
    assert unlink_observer(link=link, actor=actor) is True
    assert_link_consistent(observer, student, school)


def _api(school):
    client = APIClient(HTTP_HOST=HOST, REMOTE_ADDR="198.51.100.30")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {school.admin_token}")
    return client


def test_api_puts_and_deletes_of_one_link_at_once_stay_consistent(school):
    observer = _person(school, "Parent", "P1")
    student = _person(school, "Child", "S1", student=True)
    path = f"/api/v1/users/{observer.pk}/observees/{student.pk}"
    statuses = Counter()
    lock = threading.Lock()

    def work(index):
        client = _api(school)
        for round_ in range(ROUNDS):
            response = client.put(path) if (index + round_) % 2 == 0 else client.delete(path)
            with lock:
                statuses[(response.wsgi_request.method, response.status_code)] += 1

    assert _run_threads(work, THREADS) == []
    # PUT always links; DELETE answers 200 or, when the link is already gone, 400/404.
    assert statuses[("PUT", 200)] == THREADS * ROUNDS // 2
    assert set(statuses) <= {("PUT", 200), ("DELETE", 200), ("DELETE", 400), ("DELETE", 404)}
    _link, actions = assert_link_consistent(observer, student, school)
    # A DELETE racing another DELETE that won answers 200 without a second event.
    assert 1 <= actions.count(AuditAction.LINK_DELETED) <= statuses[("DELETE", 200)]
    assert len(actions) - actions.count(AuditAction.LINK_DELETED) <= statuses[("PUT", 200)]


def test_sis_import_while_the_api_changes_the_same_links(school, tmp_path):
    """Every change lands once: no duplicate row, enrollments follow, the last writer wins."""
    pairs = [
        (
            _person(school, f"Parent {n}", f"P{n}"),
            _person(school, f"Child {n}", f"S{n}", student=True),
        )
        for n in range(12)
    ]
    actor = Actor.system()
    # Half the links exist (some active, some removed), half do not exist yet.
    for n, (observer, student) in enumerate(pairs[:6]):
        link, _ = link_observer(
            observer=observer, student=student, root_account=school, actor=actor
        )
        if n % 2:
            unlink_observer(link=link, actor=actor)
    csv = tmp_path / "user_observers.csv"
    rows = ["observer_id,student_id,status"]
    # The file activates every pair (creating or restoring), then removes the even ones.
    rows += [f"P{n},S{n},active" for n in range(12)]
    rows += [f"P{n},S{n},deleted" for n in range(0, 12, 2)]
    csv.write_text("\n".join(rows) + "\n", encoding="utf-8")

    api_results = []
    lock = threading.Lock()

    def work(index):
        if index == 0:
            report = import_sis(
                paths=[csv], root_account=school, actor=actor, allow_mass_delete=True
            )
            with lock:
                api_results.append(("sis", report.state))
            return
        client = _api(school)
        for n, (observer, student) in enumerate(pairs):
            if n % 3 != index % 3:
                continue
            path = f"/api/v1/users/{observer.pk}/observees/{student.pk}"
            response = client.put(path) if index % 2 else client.delete(path)
            with lock:
                api_results.append((response.wsgi_request.method, response.status_code))

    assert _run_threads(work, 7) == []
    assert ("sis", "imported") in api_results or ("sis", "imported_with_messages") in api_results
    assert all(status < 500 for method, status in api_results if method != "sis")
    for observer, student in pairs:
        assert_link_consistent(observer, student, school)
    # No duplicate: one row per (observer, student, school), twelve in all.
    assert ObservationLink.objects.filter(root_account=school).count() == 12


@pytest.mark.parametrize("limit", [1000, 5])
def test_concurrent_tries_reserve_exactly_the_limit_on_the_database_store(
    postgresql_only, settings, limit
):
    """16 threads reserving at the same instant: min(16, limit) get a try, no lost update."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "observers_cache",
        }
    }
    settings.OBSERVERS_RATE_LIMIT_ADDRESS_FAILURES = limit
    threads = 16
    granted, refused = [], []

    def work(index):
        try:
            granted.append(ratelimit.reserve(ratelimit.budgets_for(ip_address="203.0.113.7")))
        except RateLimited:
            refused.append(index)

    assert _run_threads(work, threads) == []
    assert len(granted) == min(threads, limit) and len(refused) == threads - len(granted)
    counter = RateLimitCounter.objects.get(key=ratelimit.address_budget("203.0.113.7").key)
    assert counter.count == len(granted)
    settings.OBSERVERS_RATE_LIMIT_ADDRESS_FAILURES = len(granted)
    with pytest.raises(RateLimited):
        ratelimit.reserve(ratelimit.budgets_for(ip_address="203.0.113.7"))


def test_sis_import_survives_the_api_creating_one_of_its_new_links_meanwhile(school, tmp_path):
    """The API links a pair after the importer looked for it and before it inserts it.

    The importer's insert then hits the unique constraint; the chunk is
    applied again, finds the API's link, and the file still succeeds with one
    row per pair and observer enrollments that match.
    """
    parent = _person(school, "Pat Parent", "P1")
    student = _person(school, "Sam Student", "S1", student=True)
    other_parent = _person(school, "Olga Other", "P2")
    other_student = _person(school, "Otto Other", "S2", student=True)
    path = tmp_path / "user_observers.csv"
    path.write_text("observer_id,student_id,status\nP1,S1,active\nP2,S2,active\n")
    raced = threading.Event()

    def link_from_another_request():
        try:
            link_observer(
                observer=parent, student=student, root_account=school, actor=Actor.system()
            )
        finally:
            connections.close_all()

    def before_link_insert(execute, sql, params, many, context):
        # Django's execution hook: run the competing request, committed on its
        # own connection, at the exact moment the importer inserts links.
        if not raced.is_set() and sql.startswith('INSERT INTO "linking_observationlink"'):
            raced.set()
            racer = threading.Thread(target=link_from_another_request)
            racer.start()
            racer.join(timeout=30)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(before_link_insert):
        report = import_sis(paths=[path], root_account=school, actor=Actor.system("sis"))

    assert raced.is_set()
    assert report.error_count == 0, report.errors
    file = report.files[0]
    assert (file.rows, file.counts["created"], file.counts["unchanged"]) == (2, 1, 1)
    for observer, observee in ((parent, student), (other_parent, other_student)):
        links = ObservationLink.objects.filter(observer=observer, student=observee)
        assert [link.workflow_state for link in links] == ["active"]
        mirrored = Enrollment.objects.filter(
            user=observer, associated_user=observee, type=EnrollmentType.OBSERVER
        )
        assert sorted(e.workflow_state for e in mirrored) == ["active", "active"]
    created = AuditEvent.objects.filter(action=AuditAction.LINK_CREATED)
    assert sorted(e.observer_id for e in created) == sorted([parent.pk, other_parent.pk])
