"""The other file types, ordering, safety, malformed input and the export round trip."""

import io
import zipfile

import pytest

from linking.models import (
    Account,
    AccountAdmin,
    AuditEvent,
    Course,
    Enrollment,
    EnrollmentState,
    EnrollmentType,
    Login,
    ObservationLink,
    SisBatch,
    User,
)
from linking.services.sis import MassDeleteRefused, SisFileError, export_to_directory
from tests import factories

ACCOUNTS = "account_id,parent_account_id,name,status\nA1,,Science,active\nA2,A1,Biology,active\n"
USERS = (
    "user_id,integration_id,login_id,password,first_name,last_name,full_name,"
    "sortable_name,short_name,email,status\n"
    "S1,I1,student1,,Sam,Student,,,,sam@example.test,active\n"
    "S2,,student2,,Sue,Student,,,,,active\n"
    "P1,,parent1,secret123,Pat,Parent,,,,pat@example.test,active\n"
    "T1,,teacher1,,Tia,Teacher,,,,,active\n"
)
COURSES = (
    "course_id,short_name,long_name,account_id,status\n"
    "C1,BIO1,Biology 1,A2,active\nC2,BIO2,Biology 2,,active\n"
)
ENROLLMENTS = (
    "course_id,user_id,role,associated_user_id,status\n"
    "C1,S1,student,,active\nC2,S1,Student,,active\nC1,S2,student,,active\n"
    "C1,T1,teacher,,active\n"
)
ADMINS = "user_id,account_id,role,status\nT1,A1,AccountAdmin,active\n"
OBSERVERS = "observer_id,student_id,status\nP1,S1,active\n"


def write_all(sis_dir, files=None):
    files = files or {
        "user_observers.csv": OBSERVERS,
        "admins.csv": ADMINS,
        "enrollments.csv": ENROLLMENTS,
        "courses.csv": COURSES,
        "users.csv": USERS,
        "accounts.csv": ACCOUNTS,
    }
    for name, text in files.items():
        sis_dir(name, text)
    return sis_dir.directory


def login(sis_id, root_account):
    return Login.objects.get(root_account=root_account, sis_user_id=sis_id)


def test_full_directory_in_dependency_order(run_import, sis_dir, root_account):
    report = run_import(write_all(sis_dir))

    assert not report.failed, report.errors
    assert [f.kind for f in report.files] == [
        "accounts",
        "users",
        "courses",
        "enrollments",
        "admins",
        "user_observers",
    ]
    biology = Account.objects.get(sis_account_id="A2")
    assert biology.parent.sis_account_id == "A1"
    assert biology.root_account == root_account
    sam = login("S1", root_account)
    assert (sam.unique_id, sam.integration_id, sam.user.name) == ("student1", "I1", "Sam Student")
    assert sam.user.sortable_name == "Student, Sam"
    parent = login("P1", root_account)
    assert parent.check_password("secret123")
    course = Course.objects.get(sis_course_id="C1")
    assert (course.name, course.course_code, course.account) == ("Biology 1", "BIO1", biology)
    assert Course.objects.get(sis_course_id="C2").account == root_account
    assert Enrollment.objects.filter(type=EnrollmentType.STUDENT, user=sam.user).count() == 2
    admin = AccountAdmin.objects.get(user=login("T1", root_account).user)
    assert admin.account.sis_account_id == "A1"
    link = ObservationLink.objects.active().get()
    assert (link.observer, link.student) == (parent.user, sam.user)
    # The observer follows the student into both courses.
    assert (
        Enrollment.objects.filter(
            user=parent.user, associated_user=sam.user, workflow_state=EnrollmentState.ACTIVE
        ).count()
        == 2
    )
    batch = SisBatch.objects.get(pk=report.batch_id)
    assert batch.workflow_state == SisBatch.State.IMPORTED
    assert batch.counts["totals"]["created"] == 2 + 4 + 2 + 4 + 1 + 1
    assert batch.finished_at is not None


def test_whole_import_is_idempotent(run_import, sis_dir, root_account):
    directory = write_all(sis_dir)
    run_import(directory)

    def snapshot():
        return [
            list(model.objects.order_by("pk").values())
            for model in (Account, Login, Course, Enrollment, AccountAdmin, ObservationLink)
        ] + [list(User.objects.order_by("pk").values_list("name", "email", "sortable_name"))]

    before, events = snapshot(), AuditEvent.objects.count()
    report = run_import(directory)

    after = snapshot()
    # Only the links' pointer to the latest batch moves (Canvas).
    for row in before[-2] + after[-2]:
        row.pop("sis_batch_id")
        row.pop("updated_at")
    assert after == before
    assert AuditEvent.objects.count() == events
    assert report.totals()["created"] == 0
    assert report.totals()["updated"] == 0


def test_zip_with_files_in_any_order(run_import, sis_dir, tmp_path, root_account):
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("1.csv", OBSERVERS)
        zf.writestr("2.csv", ENROLLMENTS)
        zf.writestr("3.csv", USERS)
        zf.writestr("4.csv", COURSES)
        zf.writestr("5.csv", ACCOUNTS)

    report = run_import(archive)

    assert not report.failed, report.errors
    assert [f.name for f in report.files] == [
        "upload.zip/5.csv",
        "upload.zip/3.csv",
        "upload.zip/4.csv",
        "upload.zip/2.csv",
        "upload.zip/1.csv",
    ]
    assert ObservationLink.objects.active().count() == 1


def test_row_errors_for_other_files_name_file_and_line(run_import, sis_dir, root_account):
    run_import(write_all(sis_dir))
    bad = {
        "a.csv": "account_id,parent_account_id,name,status\n,,X,active\nB1,NOPE,X,active\n",
        "u.csv": "user_id,login_id,status\nS9,student1,active\n,x,active\nS8,y,gone\n",
        "c.csv": "course_id,short_name,long_name,account_id,status\nC9,a,b,ZZ,active\n",
        "e.csv": "course_id,user_id,role,status\nC1,S1,principal,active\nC1,NOBODY,student,active\n"
        "C404,S1,student,active\n",
        "m.csv": "user_id,account_id,role,status\nT1,,NoSuchRole,active\n",
    }
    for name, text in bad.items():
        sis_dir(name, text)

    report = run_import(*(sis_dir.directory / name for name in bad))

    assert [(e["file"], e["line"], e["message"]) for e in report.errors] == [
        ("a.csv", 2, "No account_id given for an account"),
        ("a.csv", 3, "Parent account didn't exist for B1"),
        (
            "u.csv",
            2,
            "An existing login with the SIS ID S1 has already claimed S9's requested login id "
            "student1, skipping",
        ),
        ("u.csv", 3, "No user_id given for a user"),
        ("u.csv", 4, 'Improper status "gone" for user S8'),
        ("c.csv", 2, 'Account not found "ZZ" for course C9'),
        ("e.csv", 2, 'Improper role "principal" for an enrollment'),
        (
            "e.csv",
            3,
            "User not found for enrollment (User ID: NOBODY, Course ID: C1, Role: student)",
        ),
        (
            "e.csv",
            4,
            "Neither course nor section existed for user enrollment (Course ID: C404, User ID: S1)",
        ),
        ("m.csv", 2, "Invalid role 'NoSuchRole' for admin T1"),
    ]
    assert not Account.objects.filter(sis_account_id="B1").exists()
    assert not Login.objects.filter(sis_user_id="S9").exists()


def test_student_enrollment_changes_carry_observers(run_import, sis_dir, root_account):
    run_import(write_all(sis_dir))
    parent, sam = login("P1", root_account).user, login("S1", root_account).user
    sis_dir("e2.csv", "course_id,user_id,role,status\nC1,S1,student,DELETED\n")

    report = run_import(sis_dir.directory / "e2.csv")

    assert report.files[0].counts["deleted"] == 1
    mirrored = Enrollment.objects.get(user=parent, associated_user=sam, course__sis_course_id="C1")
    assert mirrored.workflow_state == EnrollmentState.DELETED


def test_users_csv_deleted_status_deletes_the_login(run_import, sis_dir, root_account):
    run_import(write_all(sis_dir))
    sis_dir("u2.csv", "user_id,login_id,status\nS2,student2,Deleted\n")

    report = run_import(sis_dir.directory / "u2.csv")

    assert report.files[0].counts["deleted"] == 1
    assert login("S2", root_account).workflow_state == Login.State.DELETED


def test_dry_run_writes_nothing_and_reports_what_would_change(run_import, sis_dir, root_account):
    directory = write_all(sis_dir)
    tables = (Account, User, Login, Course, Enrollment, AccountAdmin, ObservationLink)
    before = [model.objects.count() for model in tables] + [
        AuditEvent.objects.count(),
        SisBatch.objects.count(),
    ]

    report = run_import(directory, dry_run=True)

    assert report.dry_run and report.batch_id is None
    assert report.state == SisBatch.State.DRY_RUN
    assert report.totals()["created"] == 14
    after = [model.objects.count() for model in tables] + [
        AuditEvent.objects.count(),
        SisBatch.objects.count(),
    ]
    assert after == before

    real = run_import(directory)
    assert real.totals() == report.totals()


def _linked_pairs(make_user, root_account, count):
    rows = []
    for n in range(count):
        observer = make_user(f"O{n}", root_account, sis_user_id=f"O{n}")
        student = make_user(f"S{n}", root_account, sis_user_id=f"S{n}")
        factories.ObservationLinkFactory(
            observer=observer, student=student, root_account=root_account
        )
        rows.append(f"O{n},S{n}")
    return rows


def test_mass_delete_guard_stops_before_writing(run_import, sis_dir, make_user, root_account):
    pairs = _linked_pairs(make_user, root_account, 10)
    path = sis_dir(
        "del.csv",
        "observer_id,student_id,status\n" + "".join(f"{pair},deleted\n" for pair in pairs[:2]),
    )

    with pytest.raises(MassDeleteRefused) as refused:
        run_import(path)

    assert refused.value.would_delete == 2 and refused.value.active == 10
    assert ObservationLink.objects.active().count() == 10
    assert not AuditEvent.objects.exists()
    batch = SisBatch.objects.get(pk=refused.value.batch_id)
    assert batch.workflow_state == SisBatch.State.ABORTED

    preview = run_import(path, dry_run=True)
    assert preview.mass_delete["over_limit"] is True
    assert ObservationLink.objects.active().count() == 10

    # A higher configured share, or the explicit override, lets it through.
    assert not run_import(path, max_delete_share=0.25).failed
    assert ObservationLink.objects.active().count() == 8


def test_mass_delete_share_comes_from_settings(
    run_import, sis_dir, make_user, root_account, settings
):
    pairs = _linked_pairs(make_user, root_account, 10)
    path = sis_dir("del.csv", f"observer_id,student_id,status\n{pairs[0]},deleted\n")
    settings.SIS_MASS_DELETE_SHARE = 0.05

    with pytest.raises(MassDeleteRefused):
        run_import(path)

    report = run_import(path, allow_mass_delete=True)
    assert report.files[0].counts["deleted"] == 1
    assert ObservationLink.objects.active().count() == 9


def test_a_guarded_share_at_the_limit_passes(run_import, sis_dir, make_user, root_account):
    pairs = _linked_pairs(make_user, root_account, 10)
    path = sis_dir("del.csv", f"observer_id,student_id,status\n{pairs[0]},deleted\n")

    report = run_import(path)

    assert not report.failed
    assert ObservationLink.objects.active().count() == 9


# Malformed input -------------------------------------------------------------


def test_wrong_header_is_a_file_error(run_import, sis_dir, sis_users):
    report = run_import(sis_dir("x.csv", "name,age\nBob,3\n"))

    assert report.failed
    assert report.files[0].error.startswith("x.csv: unrecognised header")
    assert report.errors[0]["line"] is None


def test_empty_file_is_a_file_error(run_import, sis_dir, sis_users):
    report = run_import(sis_dir("empty.csv", ""))

    assert report.errors[0]["message"] == "empty.csv: the file is empty (no header row)"


def test_non_utf8_file_is_a_file_error_and_nothing_of_it_applies(
    run_import, sis_dir, sis_users, root_account
):
    good_rows = "".join(f"U001,U00{n},active\n" for n in (2, 3))
    # Enough good rows for a first chunk to be applied before the bad bytes.
    content = (
        "observer_id,student_id,status\n" + good_rows * 600
    ).encode() + "Zoë,U002,active\n".encode("latin-1")

    report = run_import(sis_dir("latin1.csv", content))

    assert report.files[0].error.startswith("latin1.csv: not UTF-8 encoded text")
    assert report.error_count == 1
    assert report.files[0].counts == {}
    assert not ObservationLink.objects.exists()
    assert not AuditEvent.objects.exists()


def test_latin1_header_is_a_file_error(run_import, sis_dir):
    report = run_import(sis_dir("h.csv", "observer_id,student_id,statüs\n".encode("latin-1")))

    assert "not UTF-8 encoded text" in report.errors[0]["message"]


def test_a_50_mb_line_is_a_row_error_and_the_rest_imports(
    run_import, sis_dir, sis_users, root_account
):
    huge = "x" * (50 * 1024 * 1024)
    path = sis_dir(
        "big.csv", f"observer_id,student_id,status\nU001,{huge},active\nU003,U004,active\n"
    )

    report = run_import(path)

    assert [(e["line"], e["message"]) for e in report.errors] == [
        (2, "Malformed CSV row: field larger than field limit (131072)")
    ]
    assert ObservationLink.objects.active().count() == 1


def test_missing_path_is_refused(run_import, tmp_path):
    with pytest.raises(SisFileError):
        run_import(tmp_path / "nope.csv")


def test_utf8_bom_and_odd_header_case_are_accepted(run_import, sis_dir, sis_users):
    path = sis_dir("bom.csv", "\ufeffObserver_ID, Student_ID ,STATUS\nU001,U002,active\n")

    report = run_import(path)

    assert not report.failed
    assert ObservationLink.objects.active().count() == 1


# Export ----------------------------------------------------------------------


def test_export_then_import_round_trips(
    run_import, sis_dir, tmp_path, root_account, other_root_account, make_user
):
    run_import(write_all(sis_dir))
    # A link with a side lacking an SIS id cannot be exported.
    nobody = make_user("No SIS", root_account)
    factories.ObservationLinkFactory(
        observer=nobody, student=login("S2", root_account).user, root_account=root_account
    )
    out = tmp_path / "export"

    counts = export_to_directory(root_account=root_account, directory=out)

    assert (counts.users, counts.user_observers, counts.skipped_links) == (4, 1, 1)
    assert (
        out / "user_observers.csv"
    ).read_text() == "observer_id,student_id,status,end_date\nP1,S1,active,\n"

    # Re-importing into the same school changes nothing...
    again = run_import(out)
    assert not again.failed
    assert again.totals()["created"] == again.totals()["updated"] == 0
    # ... and into an empty school reproduces the people and the links.
    fresh = run_import(out, account=other_root_account)
    assert not fresh.failed
    for sis_id in ("S1", "S2", "P1", "T1"):
        original, copy = login(sis_id, root_account), login(sis_id, other_root_account)
        assert (copy.unique_id, copy.integration_id) == (
            original.unique_id,
            original.integration_id,
        )
        assert (copy.user.name, copy.user.sortable_name, copy.user.email) == (
            original.user.name,
            original.user.sortable_name,
            original.user.email,
        )
    copied = ObservationLink.objects.active().get(root_account=other_root_account)
    assert (copied.observer.name, copied.student.name) == ("Pat Parent", "Sam Student")


def test_export_writes_headers_for_an_empty_school(tmp_path, root_account):
    counts = export_to_directory(root_account=root_account, directory=tmp_path)

    assert counts.users == 0
    assert (tmp_path / "users.csv").read_text().startswith("user_id,integration_id,login_id")
    lines = io.StringIO((tmp_path / "user_observers.csv").read_text()).readlines()
    assert lines == ["observer_id,student_id,status,end_date\n"]
