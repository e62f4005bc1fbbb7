"""The bulk path's database side: array literals and the enrollment's composite key (#12)."""

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


@pytest.mark.django_db(transaction=True)
def test_an_enrollment_belongs_to_its_courses_root_account(root_account, other_root_account):
    """PostgreSQL: one composite key checks the course, the account and that they go together."""
    if connection.vendor != "postgresql":
        pytest.skip("the composite foreign key is PostgreSQL's (migration 0016)")
    course = factories.CourseFactory(account=root_account)
    student = factories.UserFactory(name="Sam")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'linking_enrollment'::regclass AND contype = 'f'"
        )
        keys = sorted(row[0] for row in cursor.fetchall())
    assert (
        "FOREIGN KEY (course_id, root_account_id) REFERENCES linking_course(id, root_account_id)"
        " DEFERRABLE INITIALLY DEFERRED"
    ) in keys
    assert not any(key.startswith("FOREIGN KEY (course_id)") for key in keys)
    assert not any(key.startswith("FOREIGN KEY (root_account_id)") for key in keys)

    with pytest.raises(IntegrityError), transaction.atomic():
        Enrollment.objects.create(
            user=student, course=course, root_account=other_root_account, type="student"
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        Enrollment.objects.create(
            user=student, course_id=course.pk + 1000, root_account=root_account, type="student"
        )
    assert not Enrollment.objects.exists()

    made = Enrollment.objects.create(
        user=student, course=course, root_account=root_account, type="student"
    )
    assert Enrollment.objects.get().pk == made.pk


@pytest.mark.django_db
def test_the_composite_keys_check_holds_its_plan_without_statistics(root_account):
    """The check PostgreSQL runs per enrollment finds the course by a unique index, not by school.

    With no statistics on the courses (a small school's first import never
    analyses them), the generic plan of the key's check once walked the root
    account's index: every course of the school for each enrollment written.
    """
    if connection.vendor != "postgresql":
        pytest.skip("the composite foreign key is PostgreSQL's (migration 0016)")
    for _ in range(30):
        factories.CourseFactory(account=root_account)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(
            "PREPARE course_key_check (bigint, bigint) AS SELECT 1 FROM ONLY linking_course x"
            " WHERE id = $1 AND root_account_id = $2 FOR KEY SHARE OF x"
        )
        try:
            cursor.execute("EXPLAIN EXECUTE course_key_check (1, 1)")
            plan = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE course_key_check")
    assert "Index Cond: ((root_account_id = $2) AND (id = $1))" in plan or (
        "linking_course_pkey" in plan
    ), plan


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
