"""End dates from the SIS: Canvas's end_date column, OneRoster's metadata.observers.ends_on."""

import datetime as dt
import shutil
import zoneinfo
from pathlib import Path

import pytest

from linking.models import (
    AuditAction,
    AuditEvent,
    AuditSource,
    Enrollment,
    EnrollmentState,
    EnrollmentType,
    LinkEnd,
    LinkSource,
    ObservationLink,
    User,
)
from linking.services.context import Actor
from linking.services.enrollments import enroll_user
from linking.services.links import link_observer
from linking.services.sis import (
    export_oneroster_directory,
    export_to_directory,
    import_sis,
)
from tests import factories

pytestmark = pytest.mark.django_db

HEADER = "observer_id,student_id,status,end_date\n"
CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
BUNDLES = Path(__file__).resolve().parent.parent / "sis" / "oneroster"
SIS = Actor(user=None, source=AuditSource.SIS)
ENDS_ON = "metadata.observers.ends_on"


@pytest.fixture
def run_import(school):
    def run(*paths, account=None, **options):
        return import_sis(paths=list(paths), root_account=account or school, actor=SIS, **options)

    return run


@pytest.fixture
def sis_dir(tmp_path):
    def write(name: str, content: str) -> Path:
        path = tmp_path / f"sis-{write.count}" / name
        write.count += 1
        path.parent.mkdir()
        path.write_text(content, encoding="utf-8")
        return path

    write.count = 0
    return write


@pytest.fixture
def school(root_account):
    root_account.time_zone = "America/Chicago"
    root_account.save(update_fields=["time_zone"])
    return root_account


@pytest.fixture
def people(make_user, school):
    """U001 (a parent) and U002, U003 (students, enrolled in a course)."""
    course = factories.CourseFactory(account=school)
    found = {}
    for sis_id in ("U001", "U002", "U003"):
        found[sis_id] = make_user(f"User {sis_id}", school, sis_user_id=sis_id)
    for sis_id in ("U002", "U003"):
        enroll_user(user=found[sis_id], course=course, type=EnrollmentType.STUDENT)
    return found


def _link(observer, student, school):
    return ObservationLink.objects.get(observer=observer, student=student, root_account=school)


def _observer_enrollments(observer, student):
    return Enrollment.objects.filter(
        user=observer, associated_user=student, type=EnrollmentType.OBSERVER
    )


# Canvas: user_observers.csv -------------------------------------------------------------


def test_end_date_sets_changes_and_clears_sis_links(run_import, sis_dir, people, school):
    parent, ava = people["U001"], people["U002"]

    report = run_import(sis_dir("user_observers.csv", HEADER + "U001,U002,active,2099-06-15\n"))

    assert not report.failed, report.errors
    link = _link(parent, ava, school)
    # A date alone: the start of that day in the school's time zone.
    assert link.ends_at == dt.datetime(2099, 6, 15, tzinfo=CHICAGO)
    assert link.workflow_state == "active" and _observer_enrollments(parent, ava).count() == 1

    report = run_import(
        sis_dir("user_observers.csv", HEADER + "U001,U002,active,2099-07-01T17:30:00Z\n")
    )
    assert report.files[0].counts["updated"] == 1
    link.refresh_from_db()
    assert link.ends_at == dt.datetime(2099, 7, 1, 17, 30, tzinfo=dt.UTC)

    # A file without the column leaves the end date alone.
    report = run_import(
        sis_dir("user_observers.csv", "observer_id,student_id,status\nU001,U002,active\n")
    )
    assert report.files[0].counts["unchanged"] == 1
    link.refresh_from_db()
    assert link.ends_at == dt.datetime(2099, 7, 1, 17, 30, tzinfo=dt.UTC)

    # Empty clears it.
    report = run_import(sis_dir("user_observers.csv", HEADER + "U001,U002,active,\n"))
    assert report.files[0].counts["updated"] == 1
    link.refresh_from_db()
    assert link.ends_at is None and link.workflow_state == "active"


def test_a_bad_end_date_is_a_row_error_naming_the_column(run_import, sis_dir, people, school):
    report = run_import(
        sis_dir(
            "user_observers.csv",
            HEADER + "U001,U002,active,2099-13-01\nU001,U003,active,next june\n",
        )
    )

    assert [(error["line"], error["message"]) for error in report.errors] == [
        (
            2,
            "end_date '2099-13-01' is not a date (YYYY-MM-DD) or a date and time "
            "(ISO 8601, e.g. 2027-06-15T17:00:00-05:00)",
        ),
        (
            3,
            "end_date 'next june' is not a date (YYYY-MM-DD) or a date and time "
            "(ISO 8601, e.g. 2027-06-15T17:00:00-05:00)",
        ),
    ]
    assert not ObservationLink.objects.filter(root_account=school).exists()


def test_a_past_end_date_ends_an_sis_link_and_makes_no_new_one(run_import, sis_dir, people, school):
    parent, ava, ben = people["U001"], people["U002"], people["U003"]
    run_import(sis_dir("user_observers.csv", HEADER + "U001,U002,active,\n"))
    assert _observer_enrollments(parent, ava).get().workflow_state == EnrollmentState.ACTIVE

    report = run_import(
        sis_dir(
            "user_observers.csv",
            HEADER + "U001,U002,active,2001-09-01\nU001,U003,active,2001-09-01\n",
        )
    )

    assert not report.failed, report.errors
    assert [(w["line"], w["message"]) for w in report.warnings] == [
        (2, "U001 -> U002: the end date 2001-09-01 has passed; the link ends"),
        (3, "U001 -> U003: the end date 2001-09-01 has passed; the link is not made"),
    ]
    counts = report.files[0].counts
    assert (counts["deleted"], counts["not made: end date passed"]) == (1, 1)
    link = _link(parent, ava, school)
    assert (link.workflow_state, link.end_reason) == ("deleted", LinkEnd.END_DATE)
    assert link.ends_at == dt.datetime(2001, 9, 1, tzinfo=CHICAGO)
    assert _observer_enrollments(parent, ava).get().workflow_state == EnrollmentState.DELETED
    event = AuditEvent.objects.filter(action=AuditAction.LINK_DELETED, link=link).get()
    assert event.detail["reason"] == LinkEnd.END_DATE and event.source == AuditSource.SIS
    assert not ObservationLink.objects.filter(student=ben).exists()

    # The same file again changes nothing more.
    again = run_import(sis_dir("user_observers.csv", HEADER + "U001,U002,active,2001-09-01\n"))
    assert again.files[0].counts["deleted"] == 0
    assert AuditEvent.objects.filter(action=AuditAction.LINK_DELETED).count() == 1


def test_the_sis_never_touches_a_hand_made_links_end_date(
    run_import, sis_dir, people, school, staff_a
):
    parent, ava = people["U001"], people["U002"]
    ends = dt.datetime(2098, 1, 1, tzinfo=dt.UTC)
    link, _ = link_observer(
        observer=parent,
        student=ava,
        root_account=school,
        actor=Actor(user=staff_a, source=AuditSource.ADMIN),
        source=LinkSource.ADMIN,
        ends_at=ends,
    )

    for value in ("2099-01-01", "", "2001-01-01"):
        report = run_import(sis_dir("user_observers.csv", HEADER + f"U001,U002,active,{value}\n"))
        assert not report.failed and not report.warnings, (report.errors, report.warnings)
        link.refresh_from_db()
        assert (link.ends_at, link.workflow_state, link.source) == (ends, "active", "admin")


def test_the_preview_lists_end_date_changes(run_import, sis_dir, people, school):
    run_import(sis_dir("user_observers.csv", HEADER + "U001,U002,active,2099-06-15\n"))

    report = run_import(
        sis_dir(
            "user_observers.csv",
            HEADER + "U001,U002,active,2099-08-31\nU001,U003,active,2099-06-15T08:00:00-05:00\n",
        ),
        dry_run=True,
    )

    assert [(c["action"], c["description"]) for c in report.changes.first["links"]] == [
        ("updated", "User U001 observes User U002, end date 2099-06-15 -> 2099-08-31"),
        ("created", "User U001 observes User U003, until 2099-06-15T08:00:00-05:00"),
    ]
    # Nothing was written.
    assert _link(people["U001"], people["U002"], school).ends_at == dt.datetime(
        2099, 6, 15, tzinfo=CHICAGO
    )
    assert not ObservationLink.objects.filter(student=people["U003"]).exists()


def test_canvas_export_writes_end_dates_and_reimports_to_the_same_state(
    run_import, tmp_path, people, school, make_user
):
    parent, ava, ben = people["U001"], people["U002"], people["U003"]
    for student, ends in (
        (ava, dt.datetime(2099, 6, 15, tzinfo=CHICAGO)),
        (ben, dt.datetime(2099, 6, 15, 13, 45, tzinfo=dt.UTC)),
    ):
        link_observer(
            observer=parent,
            student=student,
            root_account=school,
            actor=SIS,
            source=LinkSource.SIS,
            ends_at=ends,
        )
    out = tmp_path / "export"

    export_to_directory(root_account=school, directory=out)

    assert (out / "user_observers.csv").read_text() == (
        HEADER + "U001,U002,active,2099-06-15\nU001,U003,active,2099-06-15T08:45:00-05:00\n"
    )
    # Into an empty school in the same time zone: the same links with the same end dates.
    other = factories.RootAccountFactory(domain="copy.test", time_zone="America/Chicago")
    for sis_id in ("U001", "U002", "U003"):
        make_user(f"Copy {sis_id}", other, sis_user_id=sis_id)
    report = run_import(out, account=other)
    assert not report.failed, report.errors
    copied = {
        (link.student.logins.get().sis_user_id, link.ends_at)
        for link in ObservationLink.objects.active().filter(root_account=other)
    }
    assert copied == {
        ("U002", dt.datetime(2099, 6, 15, tzinfo=CHICAGO)),
        ("U003", dt.datetime(2099, 6, 15, 13, 45, tzinfo=dt.UTC)),
    }
    # Into the same school: nothing changes.
    again = run_import(out)
    assert again.files[-1].counts["unchanged"] == 2 and again.files[-1].counts["updated"] == 0


# OneRoster: metadata.observers.ends_on on the agent's row -------------------------------


def _bundle(tmp_path, ends: dict[str, str] | None, name="b", source="v11_bulk"):
    """The reference bundle, with the ends_on column (``ends`` by sourcedId) unless None."""
    target = tmp_path / name
    shutil.copytree(BUNDLES / source, target)
    if ends is not None:
        lines = (target / "users.csv").read_text().splitlines()
        out = [lines[0] + "," + ENDS_ON]
        for line in lines[1:]:
            out.append(line + "," + ends.get(line.split(",", 1)[0], ""))
        (target / "users.csv").write_text("\n".join(out) + "\n")
    return target


def _ends(school):
    return {
        (link.observer.logins.get().sis_user_id, link.student.logins.get().sis_user_id): (
            link.workflow_state,
            link.ends_at,
        )
        for link in ObservationLink.objects.filter(root_account=school).select_related(
            "observer", "student"
        )
    }


def test_oneroster_ends_on_applies_to_the_agents_sis_links(tmp_path, school):
    report = import_sis(
        paths=[_bundle(tmp_path, {"g-maria": "2099-06-15"}, "one")], root_account=school, actor=SIS
    )
    assert not report.failed, report.errors
    june = dt.datetime(2099, 6, 15, tzinfo=CHICAGO)
    assert _ends(school) == {
        ("g-maria", "s-ava"): ("active", june),
        ("g-maria", "s-ben"): ("active", june),
        ("g-david", "s-cara"): ("active", None),
        ("g-hoa", "s-cara"): ("active", None),
    }

    # Without the column: left alone. With it, empty: cleared.
    import_sis(paths=[_bundle(tmp_path, None, "two")], root_account=school, actor=SIS)
    assert _ends(school)[("g-maria", "s-ava")] == ("active", june)
    report = import_sis(paths=[_bundle(tmp_path, {}, "three")], root_account=school, actor=SIS)
    assert report.files[-1].counts["updated"] == 2
    assert {ends for _, ends in _ends(school).values()} == {None}


def test_oneroster_bad_and_past_ends_on(tmp_path, school):
    report = import_sis(
        paths=[_bundle(tmp_path, {"g-maria": "2001-01-01", "g-david": "soon"}, "one")],
        root_account=school,
        actor=SIS,
    )

    assert [(e["sourced_id"], e["message"]) for e in report.errors] == [
        (
            "g-david",
            "metadata.observers.ends_on 'soon' is not a date (YYYY-MM-DD) or a date "
            "and time (ISO 8601, e.g. 2027-06-15T17:00:00-05:00)",
        ),
    ]
    assert {w["message"] for w in report.warnings if "end date" in w["message"]} == {
        "g-maria -> s-ava: the end date 2001-01-01 has passed; the link is not made",
        "g-maria -> s-ben: the end date 2001-01-01 has passed; the link is not made",
    }
    assert set(_ends(school)) == {("g-hoa", "s-cara")}


def test_oneroster_export_writes_ends_on_and_reimports_to_the_same_state(tmp_path, school):
    import_sis(
        paths=[_bundle(tmp_path, {"g-david": "2099-06-15T17:30:00Z"}, "one")],
        root_account=school,
        actor=SIS,
    )
    out = tmp_path / "export"

    counts = export_oneroster_directory(root_account=school, directory=out)

    rows = (out / "users.csv").read_text().splitlines()
    assert rows[0].endswith(",agentSourcedIds,grades,password," + ENDS_ON)
    david = next(row for row in rows if row.startswith("g-david,"))
    assert david.endswith(",2099-06-15T12:30:00-05:00")
    assert counts.mixed_end_dates == 0
    before = _ends(school)
    again = import_sis(paths=[out], root_account=school, actor=SIS)
    assert not again.failed, again.errors
    assert _ends(school) == before
    other = factories.RootAccountFactory(domain="copy.test", time_zone="America/Chicago")
    import_sis(paths=[out], root_account=other, actor=SIS)
    assert _ends(other) == before


def test_oneroster_export_of_differing_end_dates_writes_the_latest(tmp_path, school):
    import_sis(paths=[_bundle(tmp_path, {}, "one")], root_account=school, actor=SIS)
    maria = User.objects.get(logins__sis_user_id="g-maria")
    ObservationLink.objects.filter(observer=maria, student__logins__sis_user_id="s-ava").update(
        ends_at=dt.datetime(2099, 1, 1, tzinfo=CHICAGO)
    )
    ObservationLink.objects.filter(observer=maria, student__logins__sis_user_id="s-ben").update(
        ends_at=dt.datetime(2099, 3, 1, tzinfo=CHICAGO)
    )

    counts = export_oneroster_directory(root_account=school, directory=tmp_path / "export")

    assert counts.mixed_end_dates == 1
    rows = (tmp_path / "export" / "users.csv").read_text().splitlines()
    assert next(row for row in rows if row.startswith("g-maria,")).endswith(",2099-03-01")


def test_a_oneroster_delta_sets_the_end_dates_of_the_observers_it_sends(tmp_path, school):
    import_sis(
        paths=[_bundle(tmp_path, {"g-maria": "2099-06-15"}, "base")], root_account=school, actor=SIS
    )
    delta = _bundle(tmp_path, {"g-david": "2099-09-01"}, "delta", source="v11_delta")
    users = delta / "users.csv"
    # g-david names his student himself, so the delta recomputes his link.
    users.write_text(
        users.read_text().replace(
            ",david.okafor@mail.example,,,,,", ",david.okafor@mail.example,,,s-cara,,"
        )
    )

    report = import_sis(paths=[delta], root_account=school, actor=SIS)

    assert not report.failed, report.errors
    june = dt.datetime(2099, 6, 15, tzinfo=CHICAGO)
    assert _ends(school) == {
        # Not in the delta: left as they were.
        ("g-maria", "s-ava"): ("active", june),
        ("g-maria", "s-ben"): ("active", june),
        ("g-hoa", "s-cara"): ("active", None),
        # In the delta, with a date.
        ("g-david", "s-cara"): ("active", dt.datetime(2099, 9, 1, tzinfo=CHICAGO)),
    }
