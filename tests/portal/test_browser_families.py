"""Parents getting back in, confirming their address and choosing their language, in Chromium.

Each new page is checked with axe-core in English and in Spanish, on a
desktop window and a 390 px phone, and the journeys are made with the
keyboard where a parent would type.
"""

import re

import pytest
from django.core import mail

from linking.models import Login, User
from linking.services import pairing
from linking.services.context import Actor
from tests import factories
from tests.accessibility import assert_accessible
from tests.screenshots import save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "plum-Orchard-lantern-42"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(autouse=True)
def _locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def school(db):
    return factories.RootAccountFactory(
        name="Riverside High", domain="localhost", time_zone="America/Chicago"
    )


def _person(school, name, login_id, **fields):
    user = factories.UserFactory(name=name, **fields)
    factories.LoginFactory(user=user, root_account=school, unique_id=login_id)
    return user


def _local(url: str) -> str:
    """The e-mailed link's path (the e-mail names the live server's host and port)."""
    return re.sub(r"^https?://[^/]+", "", url)


def test_parent_resets_a_forgotten_password_with_the_keyboard(browser_page, live_server, school):
    page, base = browser_page, live_server.url
    pat = _person(school, "Pat Rivera", "pat@family.test", email="pat@family.test")

    page.goto(f"{base}/login/")
    page.get_by_role("link", name="Forgot your password?").click()
    page.wait_for_url(f"{base}/password_reset/")
    assert_accessible(page)
    save_screenshot(page, "portal-password-reset")
    # The address field has the focus: type, then Enter.
    page.keyboard.type("pat@family.test")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/password_reset/done/")
    assert page.get_by_role("heading", name="Check your e-mail").is_visible()
    assert_accessible(page)

    (message,) = mail.outbox
    link = re.findall(r"https?://\S+/reset/\S+/", message.body)[0]
    page.goto(base + _local(link))
    page.wait_for_url(re.compile(r".*/reset/.+/set-password/$"))
    assert_accessible(page)
    save_screenshot(page, "portal-password-new")
    page.get_by_label("New password", exact=True).fill("Pat Rivera")
    page.get_by_label("New password again").fill("Pat Rivera")
    page.get_by_role("button", name="Save the new password").click()
    # Refused (too like the name): the focus moves to the error summary.
    assert page.get_by_text("too similar to the name").is_visible()
    assert page.evaluate("document.activeElement.getAttribute('role')") == "alert"
    assert_accessible(page)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_label("New password again").press("Enter")
    page.wait_for_url(f"{base}/reset/done/")
    assert_accessible(page)
    assert Login.objects.get(user=pat).check_password(NEW_PASSWORD)

    page.get_by_role("link", name="Sign in").last.click()
    page.get_by_label("Login id").fill("pat@family.test")
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/observing/")


def test_new_parent_confirms_their_address_on_a_phone(browser_page, live_server, school):
    page, base = browser_page, live_server.url
    page.set_viewport_size(PHONE)
    course = factories.CourseFactory(account=school, name="Biology 101")
    sam = _person(school, "Sam Rivera", "sam@riverside.test")
    from linking.services import enrollments

    enrollments.enroll_user(user=sam, course=course, type="student")
    code = pairing.issue_pairing_code(student=sam, root_account=school, actor=Actor(user=sam))

    page.goto(f"{base}/signup/?code={code.plaintext}")
    page.get_by_label("Your full name").fill("Pat Rivera")
    page.get_by_label("E-mail address").fill("pat@family.test")
    page.get_by_label("Password", exact=True).fill("a-Long-enough-secret-9")
    page.get_by_label("Password again").fill("a-Long-enough-secret-9")
    page.get_by_role("button", name="Create account").click()
    # "Is this your student?" before anything is created.
    page.wait_for_url(f"{base}/signup/confirm/")
    assert page.locator(".big-name").inner_text() == "Sam Rivera"
    assert_accessible(page)
    save_screenshot(page, "portal-confirm-signup-phone")
    page.get_by_role("button", name="Yes, create my account").click()
    page.wait_for_url(f"{base}/observing/")
    assert page.get_by_role("heading", name="Confirm your e-mail address").is_visible()
    assert_accessible(page)
    save_screenshot(page, "portal-verify-reminder-phone")

    (message,) = mail.outbox
    link = re.findall(r"https?://\S+/verify-email/\S+/", message.body)[0]
    page.goto(base + _local(link))
    assert_accessible(page)
    save_screenshot(page, "portal-verify-phone")
    page.get_by_role("button", name="Confirm my address").click()
    page.wait_for_url(f"{base}/observing/")
    assert page.get_by_text("your e-mail address is confirmed").is_visible()
    assert page.get_by_role("heading", name="Confirm your e-mail address").count() == 0
    assert User.objects.get(name="Pat Rivera").email_unverified_since is None


def test_language_switch_is_remembered_and_every_new_page_passes_axe_in_spanish(
    browser_page, live_server, school
):
    page, base = browser_page, live_server.url
    pat = _person(school, "Pat Rivera", "pat@family.test", email="pat@family.test")

    page.goto(f"{base}/login/")
    page.get_by_role("button", name="Español").click()
    page.wait_for_selector("html[lang=es]")
    assert page.url == f"{base}/login/"
    assert page.get_by_role("heading", name="Iniciar sesión").is_visible()
    assert_accessible(page)
    save_screenshot(page, "portal-login-es")

    page.get_by_role("link", name="¿Ha olvidado su contraseña?").click()
    assert page.get_by_role("heading", name="Restablecer su contraseña").is_visible()
    assert_accessible(page)
    page.set_viewport_size(PHONE)
    assert_accessible(page)
    page.set_viewport_size({"width": 1200, "height": 900})
    page.get_by_label("Correo electrónico").fill("pat@family.test")
    page.get_by_role("button", name="Enviar el enlace").click()
    assert page.get_by_role("heading", name="Revise su correo electrónico").is_visible()
    assert_accessible(page)
    link = re.findall(r"https?://\S+/reset/\S+/", mail.outbox[0].body)[0]
    page.goto(base + _local(link))
    assert page.get_by_role("heading", name="Elija una contraseña nueva").is_visible()
    assert_accessible(page)
    page.goto(f"{base}/reset/MQ/nope/")
    assert page.get_by_role("heading", name="Este enlace no funciona").is_visible()
    assert_accessible(page)
    page.goto(f"{base}/verify-email/MQ/nope/")
    assert_accessible(page)

    # Signing in keeps the browser's Spanish; switching while signed in becomes the parent's own.
    page.goto(f"{base}/login/")
    page.get_by_label("Identificador de inicio de sesión").fill("pat@family.test")
    page.get_by_label("Contraseña", exact=True).fill(factories.TEST_PASSWORD)
    page.get_by_role("button", name="Iniciar sesión").click()
    page.wait_for_url(f"{base}/observing/")
    page.wait_for_selector("html[lang=es]")
    assert_accessible(page)
    page.get_by_role("button", name="English").click()
    page.wait_for_selector("html[lang=en]")
    assert page.url == f"{base}/observing/"
    pat.refresh_from_db()
    assert pat.locale == "en"
    page.get_by_role("button", name="Español").click()
    page.wait_for_selector("html[lang=es]")
    pat.refresh_from_db()
    assert pat.locale == "es"
    save_screenshot(page, "portal-observing-es")


def test_guardian_accepts_an_invitation_on_a_phone(browser_page, live_server, school):
    from linking.models import GuardianInvitation, ObservationLink
    from linking.services import enrollments, invitations
    from linking.services.accounts import make_account_admin

    page, base = browser_page, live_server.url
    page.set_viewport_size(PHONE)
    course = factories.CourseFactory(account=school, name="Biology 101")
    sam = _person(school, "Sam Rivera", "sam@riverside.test")
    enrollments.enroll_user(user=sam, course=course, type="student")
    staff = _person(school, "Ada Admin", "ada@riverside.test")
    make_account_admin(user=staff, account=school)
    invitations.invite_guardian(
        student=sam,
        email="gina@family.test",
        root_account=school,
        actor=Actor(user=staff),
        base_url=base,
    )
    (message,) = mail.outbox
    link = re.findall(r"https?://\S+/invitations/\S+/", message.body)[0]

    page.goto(base + _local(link))
    assert page.locator(".big-name").inner_text() == "Sam Rivera"
    assert_accessible(page)
    save_screenshot(page, "portal-invitation-phone")
    page.get_by_role("button", name="Español").click()
    page.wait_for_selector("html[lang=es]")
    assert_accessible(page)
    page.get_by_role("link", name="Crear una cuenta").click()
    assert_accessible(page)
    page.get_by_role("button", name="English").click()
    page.wait_for_selector("html[lang=en]")
    assert_accessible(page)
    page.get_by_label("Your full name").fill("Gina Rivera")
    page.get_by_label("Password", exact=True).fill("a-Long-enough-secret-9")
    page.get_by_label("Password again").fill("a-Long-enough-secret-9")
    save_screenshot(page, "portal-invitation-signup-phone")
    page.get_by_role("button", name="Create my account and observe Sam Rivera").click()
    page.wait_for_url(f"{base}/observing/")
    assert page.get_by_role("heading", name="Sam Rivera").is_visible()
    assert GuardianInvitation.objects.get().state == "accepted"
    assert ObservationLink.objects.active().filter(observer__name="Gina Rivera").count() == 1


def test_student_invites_by_email_from_the_pairing_page(browser_page, live_server, school):
    from linking.models import GuardianInvitation
    from linking.services import enrollments

    page, base = browser_page, live_server.url
    school.students_may_invite = True
    school.save()
    course = factories.CourseFactory(account=school, name="Biology 101")
    sam = _person(school, "Sam Rivera", "sam@riverside.test")
    enrollments.enroll_user(user=sam, course=course, type="student")
    page.goto(f"{base}/login/")
    page.get_by_label("Login id").fill("sam@riverside.test")
    page.get_by_label("Password").fill(factories.TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/pairing/")
    assert_accessible(page)
    page.get_by_label("Their e-mail address").fill("mum@family.test")
    page.get_by_role("button", name="Send the invitation").click()
    assert page.get_by_text("An invitation was sent to mum@family.test.").is_visible()
    assert_accessible(page)
    save_screenshot(page, "portal-student-invites")
    page.get_by_role("button", name="Español").click()
    page.wait_for_selector("html[lang=es]")
    assert_accessible(page)
    assert GuardianInvitation.objects.get().invited_by == sam


def test_staff_invite_every_guardian_of_a_course_after_a_preview(browser_page, live_server, school):
    from linking import tasks
    from linking.models import GuardianInvitation
    from linking.services import enrollments
    from linking.services.accounts import make_account_admin

    page, base = browser_page, live_server.url
    course = factories.CourseFactory(account=school, name="Biology 101")
    for number, name in enumerate(["Sam Rivera", "Lea Rivera"], start=1):
        student = _person(school, name, f"s{number}@riverside.test")
        Login.objects.filter(user=student).update(
            sis_user_id=f"S{number}", sis_role="student", sis_agent_ids=f"G{number}"
        )
        enrollments.enroll_user(user=student, course=course, type="student")
        guardian = _person(
            school, f"Gina {number}", f"g{number}@sis.test", email=f"gina{number}@family.test"
        )
        Login.objects.filter(user=guardian).update(sis_user_id=f"G{number}", sis_role="guardian")
    staff = _person(school, "Ada Admin", "ada")
    make_account_admin(user=staff, account=school)

    page.goto(f"{base}/admin/")
    page.get_by_label("Login ID").fill("ada")
    page.get_by_label("Password").fill(factories.TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{base}/admin/linking/course/")
    page.locator(f"input[name=_selected_action][value='{course.pk}']").check()
    page.locator("select[name=action]").select_option("invite_guardians")
    page.get_by_role("button", name="Go").click()
    page.wait_for_url(re.compile(r".*/guardianinvitation/bulk/\?course=\d+$"))
    assert page.get_by_text("2 guardians will be invited").is_visible()
    assert page.get_by_role("cell", name="gina1@family.test").is_visible()
    assert_accessible(page)
    save_screenshot(page, "admin-bulk-invitations")
    page.context.add_cookies([{"name": "django_language", "value": "es", "url": base}])
    page.reload()
    page.wait_for_selector("html[lang=es]")
    assert page.get_by_text("Se invitará a 2 tutores").is_visible()
    assert_accessible(page)
    page.get_by_role("button", name="Enviar las invitaciones").click()
    page.wait_for_url(f"{base}/admin/linking/guardianinvitation/")
    assert GuardianInvitation.objects.filter(mail_due_at__isnull=False).count() == 2

    assert tasks.send_invitation_emails.call() == 2
    assert sorted(m.to[0] for m in mail.outbox) == ["gina1@family.test", "gina2@family.test"]
