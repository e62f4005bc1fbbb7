"""Pairing codes in the staff admin: list without plaintext, revoke, issue letters and CSV."""

import csv
import io
import re

import pytest

from linking.models import AuditAction, AuditEvent, AuditSource, PairingCode
from linking.services.context import Actor
from linking.services.pairing import hash_code, issue_pairing_code, normalize_code
from linking.timezones import local_iso
from tests import factories
from tests.admin.conftest import run_action

pytestmark = pytest.mark.django_db

LIST = "/admin/linking/pairingcode/"
ISSUE = "/admin/linking/pairingcode/issue/"


@pytest.fixture
def class_of_three(enrolled_student):
    return [
        enrolled_student("Ada Lovelace", sis_user_id="S-1"),
        enrolled_student("Alan Turing", sis_user_id="S-2"),
        enrolled_student("Grace Hopper"),
    ]


def shown_codes(response) -> list[str]:
    page = response.content.decode()
    return re.findall(r'data-testid="pairing-code">([^<]+)<', page)


def test_issue_page_renders_with_course_preselected(admin_a, course_a):
    response = admin_a.get(ISSUE, {"course": course_a.pk})
    assert response.status_code == 200
    assert response.context["form"]["course"].value() == str(course_a.pk)


def test_issue_for_a_course_shows_each_code_once_and_stores_hashes(
    admin_a, course_a, class_of_three, staff_a, frozen_now
):
    response = admin_a.post(ISSUE, {"course": course_a.pk, "output": "letters"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    codes = shown_codes(response)
    assert len(codes) == 3 == len(set(codes))
    rows = PairingCode.objects.filter(student__in=class_of_three)
    assert rows.count() == 3
    assert {row.code_hash for row in rows} == {hash_code(normalize_code(c)) for c in codes}
    assert all(row.issued_by == staff_a for row in rows)
    page = response.content.decode()
    for student in class_of_three:
        assert student.name in page
    assert page.count('class="pairing-qr"><svg') == 3
    for code in codes:
        assert f"http://default.test/pair?code={code}" in page
    assert "@media print" in page
    events = AuditEvent.objects.filter(action=AuditAction.CODE_ISSUED)
    assert events.count() == 3
    assert set(events.values_list("source", flat=True)) == {AuditSource.ADMIN}


def test_issue_for_a_course_as_csv(admin_a, course_a, class_of_three, frozen_now):
    response = admin_a.post(ISSUE, {"course": course_a.pk, "output": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="BIO101_Pairing_Codes.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["Last Name", "First Name", "SIS ID", "Pairing Code", "Expires At"]
    body = {(row[0], row[1], row[2]) for row in rows[1:]}
    assert body == {("Lovelace", "Ada", "S-1"), ("Turing", "Alan", "S-2"), ("Hopper", "Grace", "")}
    hashes = set(PairingCode.objects.values_list("code_hash", flat=True))
    for row in rows[1:]:
        plaintext = re.fullmatch(r'="([0-9A-Z]{4}-[0-9A-Z]{4})"', row[3]).group(1)
        assert hash_code(normalize_code(plaintext)) in hashes
        assert row[4] == local_iso(PairingCode.objects.first().expires_at, None)
    assert len(hashes) == 3


def test_issue_for_one_student(admin_a, class_of_three):
    student = class_of_three[0]
    response = admin_a.post(ISSUE, {"student": student.pk, "output": "letters"})
    assert len(shown_codes(response)) == 1
    assert PairingCode.objects.get().student == student


def test_issue_needs_exactly_one_target(admin_a, course_a, class_of_three):
    both = admin_a.post(ISSUE, {"student": class_of_three[0].pk, "course": course_a.pk})
    neither = admin_a.post(ISSUE, {"output": "csv"})
    for response in (both, neither):
        assert response.status_code == 200
        assert response.context["form"].non_field_errors()
    assert not PairingCode.objects.exists()


def test_issue_for_a_course_without_students_is_a_form_error(admin_a, course_a):
    response = admin_a.post(ISSUE, {"course": course_a.pk, "output": "csv"})
    assert response.status_code == 200
    assert "no active students" in str(response.context["form"].non_field_errors())


def test_issue_when_pairing_codes_are_off_is_refused(
    admin_a, course_a, class_of_three, root_account
):
    root_account.pairing_codes_enabled = False
    root_account.save()
    response = admin_a.post(ISSUE, {"course": course_a.pk, "output": "letters"})
    assert "turned off" in str(response.context["form"].non_field_errors())
    assert not PairingCode.objects.exists()


def test_other_school_cannot_issue_for_this_schools_course(admin_b, course_a, class_of_three):
    response = admin_b.post(ISSUE, {"course": course_a.pk, "output": "csv"})
    assert response.status_code == 200
    assert "course" in response.context["form"].errors
    response = admin_b.post(ISSUE, {"student": class_of_three[0].pk, "output": "csv"})
    assert "student" in response.context["form"].errors
    assert not PairingCode.objects.exists()


def test_list_shows_states_but_never_a_code(admin_a, class_of_three, root_account, frozen_now):
    issued = issue_pairing_code(
        student=class_of_three[0], root_account=root_account, actor=Actor.system()
    )
    frozen_now.advance(days=8)  # past the 7-day lifetime
    fresh = issue_pairing_code(
        student=class_of_three[1], root_account=root_account, actor=Actor.system()
    )
    response = admin_a.get(LIST)
    assert response.status_code == 200
    page = response.content.decode()
    assert issued.plaintext not in page
    assert fresh.plaintext not in page
    assert "expired" in page
    assert admin_a.get(LIST, {"state": "expired"}).context["cl"].result_count == 1
    assert admin_a.get(LIST, {"state": "active"}).context["cl"].result_count == 1
    detail = admin_a.get(f"{LIST}{issued.pairing_code.pk}/change/")
    assert detail.status_code == 200
    assert issued.pairing_code.code_hash not in detail.content.decode()


def test_revoke_action(admin_a, class_of_three, root_account, staff_a):
    code = issue_pairing_code(
        student=class_of_three[0], root_account=root_account, actor=Actor.system()
    ).pairing_code
    response = run_action(admin_a, LIST, "revoke_codes", [code])
    assert response.status_code == 302
    code.refresh_from_db()
    assert code.workflow_state == PairingCode.State.REVOKED
    assert code.revoked_by == staff_a
    assert AuditEvent.objects.get(action=AuditAction.CODE_REVOKED).source == AuditSource.ADMIN


def test_other_school_cannot_see_or_revoke_codes(admin_b, class_of_three, root_account):
    code = issue_pairing_code(
        student=class_of_three[0], root_account=root_account, actor=Actor.system()
    ).pairing_code
    assert admin_b.get(LIST).context["cl"].result_count == 0
    assert admin_b.get(f"{LIST}{code.pk}/change/").status_code == 404
    run_action(admin_b, LIST, "revoke_codes", [code])
    code.refresh_from_db()
    assert code.workflow_state == PairingCode.State.ACTIVE


def test_codes_cannot_be_added_or_deleted_by_hand(
    admin_a, super_client, class_of_three, root_account
):
    code = issue_pairing_code(
        student=class_of_three[0], root_account=root_account, actor=Actor.system()
    ).pairing_code
    assert admin_a.get(f"{LIST}add/").status_code == 403
    assert super_client.post(f"{LIST}{code.pk}/delete/", {"post": "yes"}).status_code == 403
    assert PairingCode.objects.filter(pk=code.pk).exists()


def test_non_staff_cannot_reach_the_issue_page(course_a, class_of_three):
    from tests.admin.conftest import client_for

    response = client_for(class_of_three[0], "default.test").post(
        ISSUE, {"course": course_a.pk, "output": "csv"}
    )
    assert response.status_code == 302
    assert not PairingCode.objects.exists()
    assert factories  # factories import used by other modules' fixtures


def test_search_codes_by_student_sis_id(admin_a, class_of_three, root_account):
    issue_pairing_code(student=class_of_three[1], root_account=root_account, actor=Actor.system())
    found = admin_a.get(LIST, {"q": "S-2"}).context["cl"].result_list
    assert [code.student for code in found] == [class_of_three[1]]
