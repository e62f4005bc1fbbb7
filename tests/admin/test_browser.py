"""Staff in a real browser: sign in, issue a course's pairing codes, download the CSV.

With SAVE_SCREENSHOTS=1 the key admin pages are also saved to
docs/screenshots/admin-*.png for the README's tour.
"""

import csv

import pytest

from linking.models import EnrollmentType, PairingCode
from linking.services.accounts import make_account_admin
from linking.services.context import Actor
from linking.services.enrollments import enroll_user
from linking.services.links import link_observer
from linking.services.pairing import hash_code, normalize_code
from tests import factories
from tests.screenshots import save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def shoot(page, name: str) -> None:
    save_screenshot(page, f"admin-{name}")


def test_staff_issue_course_codes_and_download_csv(live_server, browser_page, tmp_path):
    school = factories.RootAccountFactory(name="Riverside High", domain="localhost")
    course = factories.CourseFactory(account=school, name="Biology 101", course_code="BIO101")
    staff = factories.UserFactory(name="Alice Admin")
    factories.LoginFactory(user=staff, root_account=school, unique_id="alice")
    make_account_admin(user=staff, account=school)
    students = []
    for name, sis_id in [("Ada Lovelace", "S-1"), ("Alan Turing", "S-2")]:
        student = factories.UserFactory(name=name)
        factories.LoginFactory(user=student, root_account=school, sis_user_id=sis_id)
        enroll_user(user=student, course=course, type=EnrollmentType.STUDENT)
        students.append(student)
    parent = factories.UserFactory(name="Pat Lovelace", email="pat@example.test")
    factories.LoginFactory(user=parent, root_account=school)
    link, _ = link_observer(
        observer=parent, student=students[0], root_account=school, actor=Actor.system()
    )

    page = browser_page
    page.goto(f"{live_server.url}/admin/")
    page.get_by_label("Login ID").fill("alice")
    page.get_by_label("Password").fill(factories.TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    # The home opens on the tasks: find a person, codes and letters, SIS, attention.
    page.get_by_role("heading", name="Find a student or parent").wait_for()
    assert page.get_by_role("heading", name="Needs attention").is_visible()
    assert page.get_by_text("Nothing needs attention").is_visible()
    shoot(page, "index")
    page.get_by_placeholder("Name, e-mail, login id or SIS id").fill("S-2")
    page.get_by_role("button", name="Find").click()
    page.get_by_role("link", name="Alan Turing").wait_for()
    assert page.get_by_role("link", name="Ada Lovelace").count() == 0
    page.goto(f"{live_server.url}/admin/")
    page.get_by_role("link", name="Issue codes or letters for a course").click()
    page.get_by_label("Every student of a course").wait_for()

    page.goto(f"{live_server.url}/admin/linking/observationlink/")
    page.get_by_text("Pat Lovelace").first.wait_for()
    shoot(page, "links")
    page.goto(f"{live_server.url}/admin/linking/observationlink/{link.pk}/change/")
    shoot(page, "link-audit")

    page.goto(f"{live_server.url}/admin/linking/pairingcode/")
    page.get_by_role("link", name="Issue codes").click()
    page.get_by_label("Every student of a course").select_option(label="Biology 101")
    shoot(page, "issue-codes")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Issue and download CSV").click()
    download = download_info.value
    assert download.suggested_filename == "BIO101_Pairing_Codes.csv"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    with saved.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["Last Name", "First Name", "SIS ID", "Pairing Code", "Expires At"]
    assert sorted((row[0], row[2]) for row in rows[1:]) == [("Lovelace", "S-1"), ("Turing", "S-2")]
    stored = set(PairingCode.objects.values_list("code_hash", flat=True))
    assert len(stored) == 2
    assert {hash_code(normalize_code(row[3].strip('="'))) for row in rows[1:]} == stored

    # The same page again, this time for printed letters.
    page.get_by_label("Every student of a course").select_option(label="Biology 101")
    page.get_by_role("button", name="Issue and print letters").click()
    page.get_by_text("Observer pairing code for Ada Lovelace").wait_for()
    assert page.locator(".pairing-qr svg").count() == 2
    shoot(page, "letters")
    assert PairingCode.objects.count() == 4

    page.goto(f"{live_server.url}/admin/linking/pairingcode/")
    shoot(page, "pairing-codes")
    page.goto(f"{live_server.url}/admin/linking/auditevent/")
    shoot(page, "audit")
