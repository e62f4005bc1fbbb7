"""The parent and student pages in a real Chromium (Playwright), with screenshots for the README."""

import pytest

from linking.models import ObservationLink
from linking.services import enrollments, links, pairing
from linking.services.context import Actor
from tests import factories
from tests.screenshots import save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = factories.TEST_PASSWORD


def _shot(page, name: str) -> None:
    save_screenshot(page, f"portal-{name}")


@pytest.fixture
def school(db):
    # live_server answers on "localhost": make that host this school's.
    return factories.RootAccountFactory(name="Riverside High", domain="localhost")


def _person(school, name, login_id, course=None):
    user = factories.UserFactory(name=name)
    factories.LoginFactory(user=user, root_account=school, unique_id=login_id)
    if course is not None:
        enrollments.enroll_user(user=user, course=course, type="student")
    return user


def _sign_in(page, base, login_id):
    page.goto(f"{base}/login/")
    page.get_by_label("Login id").fill(login_id)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_student_creates_code_and_parent_signs_up_with_it(browser_page, live_server, school):
    page, base = browser_page, live_server.url
    course = factories.CourseFactory(account=school, name="Biology 101")
    _person(school, "Sam Rivera", "sam@riverside.test", course)

    page.goto(f"{base}/login/")
    _shot(page, "login")
    _sign_in(page, base, "sam@riverside.test")
    page.wait_for_url(f"{base}/pairing/")
    page.get_by_role("button", name="Create a pairing code").click()
    page.wait_for_url(f"{base}/pairing/codes/new/")
    code = page.locator(".code-text").inner_text().strip()
    assert pairing.normalize_code(code) is not None
    assert page.locator(".qr svg").count() == 1
    _shot(page, "new-code")
    page.get_by_role("link", name="Back to the Pairing page").click()
    _shot(page, "pairing")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{base}/login/")

    # The parent opens the QR code's address: the sign-up form, pre-filled.
    page.goto(f"{base}/pair?code={code.replace('-', '')}")
    assert page.get_by_label("Pairing codes").input_value() == code.replace("-", "")
    page.get_by_label("Your full name").fill("Pat Rivera")
    page.get_by_label("E-mail address").fill("pat@family.test")
    page.get_by_label("Password", exact=True).fill("a-Long-enough-secret-9")
    page.get_by_label("Password again").fill("a-Long-enough-secret-9")
    _shot(page, "signup")
    page.get_by_role("button", name="Create account").click()
    # "Is this your student?" before anything is created.
    page.wait_for_url(f"{base}/signup/confirm/")
    assert page.locator(".big-name").inner_text() == "Sam Rivera"
    page.get_by_role("button", name="Yes, create my account").click()
    page.wait_for_url(f"{base}/observing/")
    assert page.get_by_role("heading", name="Sam Rivera").is_visible()
    assert page.get_by_text("Biology 101").is_visible()
    _shot(page, "observing-after-signup")
    assert ObservationLink.objects.active().filter(observer__name="Pat Rivera").count() == 1


def test_parent_adds_a_second_student_and_removes_one(browser_page, live_server, school):
    page, base = browser_page, live_server.url
    course = factories.CourseFactory(account=school, name="Algebra I")
    other_course = factories.CourseFactory(account=school, name="World History")
    first = _person(school, "Ada Lane", "ada@riverside.test", course)
    second = _person(school, "Ben Lane", "ben@riverside.test", other_course)
    parent = _person(school, "Lee Lane", "lee@family.test")
    links.link_observer(observer=parent, student=first, root_account=school, actor=Actor.system())
    issued = pairing.issue_pairing_code(
        student=second, root_account=school, actor=Actor(user=second)
    )

    _sign_in(page, base, "lee@family.test")
    page.wait_for_url(f"{base}/observing/")
    page.get_by_label("Pairing code").fill(issued.plaintext.lower())
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{base}/observing/add/confirm/")
    assert page.locator(".big-name").inner_text() == "Ben Lane"
    assert issued.plaintext.lower() not in page.url.lower()
    _shot(page, "confirm")
    page.get_by_role("button", name="Yes, observe Ben Lane").click()
    page.wait_for_url(f"{base}/observing/")
    assert page.get_by_role("heading", name="Ben Lane").is_visible()
    assert page.get_by_text("World History").is_visible()
    _shot(page, "observing")

    page.get_by_role("link", name="Remove Ada Lane").click()
    _shot(page, "remove")
    page.get_by_role("button", name="Remove").click()
    page.wait_for_url(f"{base}/observing/")
    assert page.get_by_role("heading", name="Ada Lane").count() == 0
    assert page.get_by_role("heading", name="Ben Lane").is_visible()
    assert set(
        ObservationLink.objects.active().filter(observer=parent).values_list("student", flat=True)
    ) == {second.pk}

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    _shot(page, "observing-phone")


def test_adult_student_approves_one_request_and_ends_a_link(browser_page, live_server, school):
    """Who may observe (issue 16): the student's voice on the Pairing page, in Chromium."""
    import datetime as dt

    from linking.services import rules

    page, base = browser_page, live_server.url
    course = factories.CourseFactory(account=school, name="Biology 101")
    student = _person(school, "Sam Rivera", "sam@riverside.test", course)
    student.birth_date = dt.date.today().replace(year=dt.date.today().year - 19)
    student.save()
    guardian = _person(school, "Gail Rivera", "gail@riverside.test")
    coach = _person(school, "Chris Coach", "coach@riverside.test")
    kept, _ = links.link_observer(
        observer=guardian,
        student=student,
        root_account=school,
        actor=Actor.system(),
        kind="guardian",
    )
    assert kept.workflow_state == "pending"
    links.activate_pending_link(link=kept, actor=Actor.system())
    asked, _ = links.link_observer(
        observer=coach, student=student, root_account=school, actor=Actor.system(), kind="advisor"
    )

    _sign_in(page, base, "sam@riverside.test")
    page.wait_for_url(f"{base}/pairing/")
    assert page.get_by_role("heading", name="Waiting for your approval").is_visible()
    _shot(page, "who-observes-me")
    page.get_by_role("button", name="Approve Chris Coach").click()
    page.wait_for_url(f"{base}/pairing/")
    assert ObservationLink.objects.get(pk=asked.pk).workflow_state == "active"
    page.get_by_role("link", name="End Gail Rivera's link").click()
    page.get_by_role("button", name="End the link").click()
    page.wait_for_url(f"{base}/pairing/")
    ended = ObservationLink.objects.get(pk=kept.pk)
    assert (ended.workflow_state, ended.end_reason) == ("deleted", "student")
    assert rules.is_adult(student, school)
