"""The bulk path's database side: array literals and the checks of enrollments' references (#12)."""

import threading
import time
from datetime import UTC, date, datetime

import pytest
from django.db import IntegrityError, connection, transaction

from linking.models import Enrollment, Login, User
from linking.models.lookups import any_of, pg_array
from linking.services.sis.bulkdb import insert_returning_ids
from tests import factories

AWKWARD = ['a"b', "c\\d", "e,f", "{g}", " h ", "NULL", "", "ñ", "'q'", None]


@pytest.mark.parametrize(
    ("values", "literal"),
    [
        ([3, 1, 2], "{3,1,2}"),
        ([], "{}"),
        (["x", None], '{"x",NULL}'),
        (['a"b', "c\\d"], '{"a\\"b","c\\\\d"}'),
        ([True, False, None], "{t,f,NULL}"),
        ([date(2026, 1, 2)], "{2026-01-02}"),
        (
            [datetime(2026, 12, 2, 13, 0, 5, 7, tzinfo=UTC)],
            '{"2026-12-02T13:00:05.000007+00:00"}',
        ),
    ],
)
def test_pg_array_writes_the_literal(values, literal):
    assert pg_array(values) == literal


@pytest.mark.parametrize(
    "values",
    [[datetime(2026, 1, 1)], [1.5], [{"a": 1}], [1, object()]],
    ids=["naive date-time", "float", "dict", "object"],
)
def test_pg_array_leaves_other_values_to_the_driver(values):
    assert pg_array(values) is values


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "values"),
    [
        ("bigint", [5, 10**15, -1]),
        ("text", AWKWARD),
        ("boolean", [True, False, None]),
        ("date", [date(2026, 2, 28), None]),
        ("timestamptz", [datetime(2026, 12, 2, 13, 0, 5, 7, tzinfo=UTC), None]),
    ],
)
def test_pg_array_reaches_postgresql_as_the_same_values(kind, values):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's array literal")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT %s::{kind}[]", [pg_array(values)])
        assert cursor.fetchone()[0] == values


@pytest.mark.django_db
def test_any_of_finds_awkward_strings_and_ids(root_account):
    """Quotes, backslashes, commas and braces in SIS ids match exactly, on both databases."""
    users = {}
    for index, sis in enumerate(s for s in AWKWARD if s):
        user = factories.UserFactory(name=f"U{index}")
        factories.LoginFactory(user=user, root_account=root_account, sis_user_id=sis)
        users[sis] = user.pk
    wanted = ['a"b', "c\\d", "{g}", "'q'", "missing"]
    found = dict(
        Login.objects.filter(any_of("sis_user_id", wanted)).values_list("sis_user_id", "user_id")
    )
    assert found == {sis: users[sis] for sis in wanted if sis in users}
    ids = [users["e,f"], users["ñ"]]
    assert set(User.objects.filter(any_of("id", ids)).values_list("id", flat=True)) == set(ids)


@pytest.mark.django_db
def test_insert_returning_ids_writes_every_kind_of_column(root_account):
    """Ints, texts, None, booleans and date-times go as literals and come back as written."""
    course = factories.CourseFactory(account=root_account)
    people = [factories.UserFactory(name=f"P{n}") for n in range(3)]
    start = datetime(2026, 9, 1, 8, 30, tzinfo=UTC)
    rows = [
        Enrollment(
            user=person,
            course=course,
            root_account=root_account,
            type="student",
            workflow_state=state,
            start_at=start if n else None,
            sis_managed=bool(n % 2),
        )
        for n, (person, state) in enumerate(zip(people, ["active", "invited", "active"]))
    ]
    insert_returning_ids(Enrollment, rows)
    stored = {
        e.pk: (e.user_id, e.workflow_state, e.start_at, e.sis_managed)
        for e in Enrollment.objects.filter(course=course)
    }
    assert stored == {
        row.pk: (row.user_id, row.workflow_state, row.start_at, row.sis_managed) for row in rows
    }


def _needs_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL checks enrollments' references by triggers (migration 0019)")


def _enrollment_keys_and_triggers():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'linking_enrollment'::regclass AND contype = 'f'"
        )
        keys = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            "SELECT tgrelid::regclass::text, tgname FROM pg_trigger"
            " WHERE tgname LIKE 'linking_%%enrollment%%' ORDER BY 1, 2"
        )
        return keys, cursor.fetchall()


@pytest.mark.django_db(transaction=True)
def test_new_enrollments_name_users_and_a_course_of_their_root_account(
    root_account, other_root_account
):
    """PostgreSQL: one set-wise check per statement refuses every broken reference."""
    _needs_postgresql()
    keys, triggers = _enrollment_keys_and_triggers()
    assert keys == []
    assert triggers == [
        ("linking_course", "linking_course_enrollments_deleted"),
        ("linking_course", "linking_course_enrollments_rekeyed"),
        ("linking_enrollment", "linking_enrollment_references_changed"),
        ("linking_enrollment", "linking_enrollment_references_inserted"),
        ("linking_user", "linking_user_enrollments_deleted"),
        ("linking_user", "linking_user_enrollments_rekeyed"),
    ]
    course = factories.CourseFactory(account=root_account)
    student, parent = factories.UserFactory(name="Sam"), factories.UserFactory(name="Pat")
    missing = User.objects.order_by("-pk").first().pk + 1000

    def plain(**fields):
        return Enrollment(
            **{"user": student, "course": course, "root_account": root_account, "type": "student"}
            | fields
        )

    broken = {
        "user": plain(user_id=missing),
        "observed user": plain(user=parent, type="observer", associated_user_id=missing),
        "course": plain(course_id=course.pk + 1000),
        "course of another school": plain(root_account=other_root_account),
    }
    for what, enrollment in broken.items():
        with (
            pytest.raises(IntegrityError, match="violates its references") as caught,
            transaction.atomic(),
        ):
            enrollment.save()
        assert caught.value.__cause__.sqlstate == "23503", what
    # One bad row among good ones: the statement writes none of them.
    good = [plain(user=parent, type="observer", associated_user=student), plain()]
    with pytest.raises(IntegrityError), transaction.atomic():
        Enrollment.objects.bulk_create([*good, plain(user_id=missing, type="teacher")])
    assert not Enrollment.objects.exists()

    # A statement of more than 64 rows is checked by the same queries, planned for its size.
    many = [plain(user=factories.UserFactory()) for _ in range(100)]
    with pytest.raises(IntegrityError, match=rf"=\({missing}, null,"), transaction.atomic():
        Enrollment.objects.bulk_create([*many, plain(user_id=missing, type="ta")])
    assert not Enrollment.objects.exists()
    assert len(Enrollment.objects.bulk_create(many)) == Enrollment.objects.count() == 100
    Enrollment.objects.all().delete()

    made = Enrollment.objects.bulk_create(good)
    assert set(Enrollment.objects.values_list("pk", flat=True)) == {e.pk for e in made}
    # Changing a reference is checked too; other updates are not slowed by it.
    with pytest.raises(IntegrityError), transaction.atomic():
        Enrollment.objects.filter(pk=made[1].pk).update(user_id=missing)
    with pytest.raises(IntegrityError), transaction.atomic():
        Enrollment.objects.filter(pk=made[1].pk).update(root_account=other_root_account)
    Enrollment.objects.filter(pk=made[1].pk).update(workflow_state="completed")
    assert Enrollment.objects.get(pk=made[1].pk).user_id == student.pk
    assert Enrollment.objects.get(pk=made[1].pk).workflow_state == "completed"


@pytest.mark.django_db(transaction=True)
def test_a_user_or_course_an_enrollment_names_stays_until_the_enrollment_goes(
    root_account, other_root_account
):
    """PostgreSQL: deleting (or re-keying) what an enrollment names fails at commit."""
    _needs_postgresql()
    course = factories.CourseFactory(account=root_account)
    student, parent = factories.UserFactory(name="Sam"), factories.UserFactory(name="Pat")
    factories.EnrollmentFactory(user=student, course=course)
    watching = factories.EnrollmentFactory(
        user=parent, course=course, type="observer", associated_user=student
    )
    # Named only as the student an observer enrollment observes.
    observed_only = factories.UserFactory(name="Kim")
    factories.EnrollmentFactory(
        user=parent, course=course, type="observer", associated_user=observed_only
    )
    statements = [
        ("DELETE FROM linking_user WHERE id = %s", [student.pk]),  # the student
        ("DELETE FROM linking_user WHERE id = %s", [parent.pk]),  # the observer
        ("DELETE FROM linking_user WHERE id = %s", [observed_only.pk]),
        ("UPDATE linking_user SET id = id + 1000 WHERE id = %s", [student.pk]),
        ("DELETE FROM linking_course WHERE id = %s", [course.pk]),
        (
            "UPDATE linking_course SET root_account_id = %s WHERE id = %s",
            [other_root_account.pk, course.pk],
        ),
    ]
    for sql, params in statements:
        with (
            pytest.raises(IntegrityError, match="references from table") as caught,
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, params)  # deferred: the commit fails
        assert caught.value.__cause__.sqlstate == "23503", sql
    assert User.objects.filter(pk__in=[student.pk, parent.pk, observed_only.pk]).count() == 3
    assert Enrollment.objects.filter(course=course).count() == 3
    Enrollment.objects.filter(associated_user=observed_only).delete()

    # The observer first and then their enrollment, in one transaction: checked at commit.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM linking_user WHERE id = %s", [parent.pk])
        cursor.execute("DELETE FROM linking_enrollment WHERE id = %s", [watching.pk])
    assert not User.objects.filter(pk=parent.pk).exists()
    # And the ORM's own cascade.
    course.delete()
    assert not Enrollment.objects.exists()
    student.delete()
    assert not User.objects.filter(pk=student.pk).exists()


def _other_connection():
    import psycopg

    settings = connection.settings_dict
    return psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"] or None,
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        password=settings["PASSWORD"] or None,
    )


def _waits_for_a_lock(conn, seconds=10) -> bool:
    """Whether ``conn``'s backend waits for a lock (polled from Django's connection)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                [conn.info.backend_pid],
            )
            row = cursor.fetchone()
        if row and row[0] == "Lock":
            return True
        time.sleep(0.02)
    return False


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first", ["enrolment", "deletion"])
def test_an_enrollment_and_the_deletion_of_its_user_cannot_both_commit(root_account, first):
    """PostgreSQL: the check locks what it found, as a foreign key does.

    Whichever transaction comes first, the other waits for it and then fails:
    never an enrollment left naming a deleted user.
    """
    _needs_postgresql()
    course = factories.CourseFactory(account=root_account)
    student = factories.UserFactory(name="Sam")
    enrol = (
        "INSERT INTO linking_enrollment (user_id, course_id, root_account_id, type,"
        " workflow_state, sis_managed, created_at, updated_at)"
        " VALUES (%s, %s, %s, 'student', 'active', false, now(), now())"
    )
    delete = "DELETE FROM linking_user WHERE id = %s"
    steps = {
        "enrolment": (enrol, [student.pk, course.pk, root_account.pk]),
        "deletion": (delete, [student.pk]),
    }
    second = "deletion" if first == "enrolment" else "enrolment"
    with _other_connection() as one, _other_connection() as two:
        one.execute(*steps[first])
        outcome = {}

        def run_second():
            try:
                two.execute(*steps[second])
                two.commit()
                outcome["committed"] = True
            except Exception as error:  # asserted below
                two.rollback()
                outcome["error"] = error

        side = threading.Thread(target=run_second, daemon=True)
        side.start()
        assert _waits_for_a_lock(two), "the second transaction did not wait for the first"
        one.commit()
        side.join(10)
        assert not side.is_alive()
    assert "committed" not in outcome
    assert outcome["error"].sqlstate == "23503"
    if first == "enrolment":
        assert User.objects.filter(pk=student.pk).exists()
        assert Enrollment.objects.filter(user=student).count() == 1
    else:
        assert not User.objects.filter(pk=student.pk).exists()
        assert not Enrollment.objects.exists()


@pytest.mark.django_db
def test_an_imports_new_courses_are_analysed(sis_dir, run_import, monkeypatch):
    """PostgreSQL: a courses file's new courses get statistics before the enrollments come.

    Without them the enrollments file's course lookup took the courses for a
    handful and tested every course of the school against each chunk's keys
    (16 of the file's 39 seconds for a 5,000-course district).
    """
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's statistics")
    from linking.services.sis import bulkdb

    monkeypatch.setattr(bulkdb, "ANALYZE_AFTER", 20)
    rows = "".join(f"C{n},Course {n},Course {n},,,active\n" for n in range(40))
    path = sis_dir(
        "courses.csv", "course_id,short_name,long_name,account_id,term_id,status\n" + rows
    )
    report = run_import(path)
    assert report.files[0].counts["created"] == 40
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'linking_course'")
        assert cursor.fetchone()[0] >= 40


def test_any_of_sends_texts_as_text_and_ids_as_bigint():
    """The array's type is the one the column compares in, so no plan coerces it per row."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's arrays")
    sql, params = (
        Login.objects.filter(any_of("sis_user_id", ["a", "b"]), any_of("user_id", [1, 2]))
        .values_list("id")
        .query.sql_with_params()
    )
    assert '"sis_user_id" = ANY(%s::text[])' in sql
    assert '"user_id" = ANY(%s::bigint[])' in sql
    assert '{"a","b"}' in params and "{1,2}" in params
