"""OneRoster carries protected students in an extension column of users.csv."""

import shutil
from pathlib import Path

import pytest

from linking.models import (
    AuditAction,
    AuditEvent,
    AuditSource,
    PairingCode,
    ProtectedStudent,
    User,
)
from linking.services import safeguarding
from linking.services.context import Actor
from linking.services.pairing import issue_pairing_code
from linking.services.sis import import_sis
from tests import factories

pytestmark = pytest.mark.django_db

BUNDLES = Path(__file__).resolve().parent.parent / "sis" / "oneroster"
SIS = Actor(user=None, source=AuditSource.SIS)


def _bundle(tmp_path, flags: dict[str, str], name="b"):
    """The reference 1.1 bundle with the extension column, ``flags`` by sourcedId."""
    target = tmp_path / name
    shutil.copytree(BUNDLES / "v11_bulk", target)
    lines = (target / "users.csv").read_text().splitlines()
    out = [lines[0] + ",metadata.observers.protected"]
    for line in lines[1:]:
        out.append(line + "," + flags.get(line.split(",", 1)[0], ""))
    (target / "users.csv").write_text("\n".join(out) + "\n")
    return target


def _protected(root_account):
    return set(
        ProtectedStudent.objects.filter(root_account=root_account).values_list(
            "student__logins__sis_user_id", flat=True
        )
    )


def test_the_column_protects_and_lifts_only_what_the_sis_set(root_account, tmp_path, staff_a):
    report = import_sis(
        paths=[_bundle(tmp_path, {"s-ava": "true"}, "one")], root_account=root_account, actor=SIS
    )
    assert not report.failed, report.errors
    assert _protected(root_account) == {"s-ava"}
    ava = User.objects.get(logins__sis_user_id="s-ava")
    assert ProtectedStudent.objects.get(student=ava).by_sis
    event = AuditEvent.objects.get(action=AuditAction.STUDENT_PROTECTED)
    assert (event.student, event.source) == (ava, "sis")
    # Staff protect Ben by hand; the next file says false for both.
    ben = User.objects.get(logins__sis_user_id="s-ben")
    safeguarding.protect_student(student=ben, root_account=root_account, actor=Actor(user=staff_a))
    report = import_sis(
        paths=[_bundle(tmp_path, {"s-ava": "false", "s-ben": "false"}, "two")],
        root_account=root_account,
        actor=SIS,
    )
    assert not report.failed, report.errors
    assert _protected(root_account) == {"s-ben"}
    # Empty leaves it as it is.
    import_sis(paths=[_bundle(tmp_path, {}, "three")], root_account=root_account, actor=SIS)
    assert _protected(root_account) == {"s-ben"}


def test_a_protected_flag_revokes_codes(root_account, tmp_path):
    import_sis(paths=[BUNDLES / "v11_bulk"], root_account=root_account, actor=SIS)
    ava = User.objects.get(logins__sis_user_id="s-ava")
    code = issue_pairing_code(student=ava, root_account=root_account, actor=Actor.system())
    import_sis(paths=[_bundle(tmp_path, {"s-ava": "TRUE"})], root_account=root_account, actor=SIS)
    code.pairing_code.refresh_from_db()
    assert code.pairing_code.workflow_state == PairingCode.State.REVOKED


def test_a_bad_value_is_a_row_error(root_account, tmp_path):
    report = import_sis(
        paths=[_bundle(tmp_path, {"s-ava": "maybe"})], root_account=root_account, actor=SIS
    )
    messages = [error["message"] for error in report.errors]
    assert any("metadata.observers.protected 'maybe' must be true or false" in m for m in messages)
    assert not ProtectedStudent.objects.exists()


# Canvas's users.csv carries the same flag in an extension column, ``protected``.

CANVAS_HEADER = "user_id,login_id,first_name,last_name,email,status,protected\n"


def _canvas_users(tmp_path, name: str, flags: dict[str, str]):
    directory = tmp_path / name
    directory.mkdir()
    rows = "".join(
        f"{sis},{sis}@example.test,First,{sis},{sis}@example.test,active,{flag}\n"
        for sis, flag in flags.items()
    )
    (directory / "users.csv").write_text(CANVAS_HEADER + rows)
    return directory


def test_canvas_users_csv_protects_and_lifts_only_what_the_sis_set(root_account, tmp_path, staff_a):
    report = import_sis(
        paths=[_canvas_users(tmp_path, "one", {"c-ann": "true", "c-bob": "", "c-cy": ""})],
        root_account=root_account,
        actor=SIS,
    )
    assert not report.failed, report.errors
    assert report.files[0].counts["protected"] == 1
    assert _protected(root_account) == {"c-ann"}
    ann = User.objects.get(logins__sis_user_id="c-ann")
    assert ProtectedStudent.objects.get(student=ann).by_sis
    assert AuditEvent.objects.get(action=AuditAction.STUDENT_PROTECTED).student == ann

    bob = User.objects.get(logins__sis_user_id="c-bob")
    cy = User.objects.get(logins__sis_user_id="c-cy")
    course = factories.CourseFactory(account=root_account)
    for student in (bob, cy):
        factories.EnrollmentFactory(user=student, course=course, type="student")
    code = issue_pairing_code(student=bob, root_account=root_account, actor=Actor.system())
    safeguarding.protect_student(student=bob, root_account=root_account, actor=Actor(user=staff_a))
    cy_code = issue_pairing_code(student=cy, root_account=root_account, actor=Actor.system())

    # false lifts Ann's (the SIS set it) but not Bob's (staff did); TRUE protects Cy.
    report = import_sis(
        paths=[
            _canvas_users(tmp_path, "two", {"c-ann": "false", "c-bob": "false", "c-cy": "TRUE"})
        ],
        root_account=root_account,
        actor=SIS,
    )
    assert not report.failed, report.errors
    assert (report.files[0].counts["protected"], report.files[0].counts["no longer protected"]) == (
        1,
        1,
    )
    assert _protected(root_account) == {"c-bob", "c-cy"}
    cy_code.pairing_code.refresh_from_db()
    assert cy_code.pairing_code.workflow_state == PairingCode.State.REVOKED
    code.pairing_code.refresh_from_db()
    assert code.pairing_code.workflow_state == PairingCode.State.REVOKED  # revoked by staff's

    # No column, or an empty cell: nothing changes.
    plain = tmp_path / "three"
    plain.mkdir()
    (plain / "users.csv").write_text(
        "user_id,login_id,first_name,last_name,status\nc-cy,c-cy@example.test,First,c-cy,active\n"
    )
    report = import_sis(paths=[plain], root_account=root_account, actor=SIS)
    assert not report.failed, report.errors
    assert _protected(root_account) == {"c-bob", "c-cy"}


def test_canvas_users_csv_bad_protected_value_is_a_row_error(root_account, tmp_path):
    report = import_sis(
        paths=[_canvas_users(tmp_path, "bad", {"c-ann": "yes", "c-bob": "true"})],
        root_account=root_account,
        actor=SIS,
    )
    messages = [(error["line"], error["message"]) for error in report.errors]
    assert (2, "protected 'yes' must be true or false") in messages
    # The bad row is not applied; the good one is.
    assert not User.objects.filter(logins__sis_user_id="c-ann").exists()
    assert _protected(root_account) == {"c-bob"}
