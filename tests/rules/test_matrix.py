"""The matrix of issue 16: each rule of who may observe against each way of making a link.

Paths: the API by a student's credentials, by a student's access token, by a
pairing code and by id (staff); the parent pages (pairing code, sign-up);
the staff admin; Canvas's user_observers.csv; OneRoster. Rules: none (the
control), a restriction, a protected student, an adult student, a student
who ended this person's link before. Each cell drives the real interface
and checks what the person is told, the link in the database and the audit
event. Invitations do not exist yet: the ``invitation`` column links as
their service will (``link_observer`` with source ``invitation``).
"""

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.test import Client
from rest_framework.test import APIClient

from linking.models import (
    AuditAction,
    AuditEvent,
    AuditSource,
    Enrollment,
    EnrollmentType,
    LinkSource,
    ObservationLink,
    User,
)
from linking.services import rules, safeguarding
from linking.services.context import Actor
from linking.services.errors import LinkingError
from linking.services.links import link_observer
from linking.services.pairing import issue_pairing_code
from linking.services.sis import import_sis
from linking.services.tokens import issue_access_token
from tests import factories
from tests.rules.conftest import HOST, REASON, years_ago

pytestmark = pytest.mark.django_db

INVALID_CODE = "That code is not valid. Check it with your student, or ask them for a new one."
BUNDLES = Path(__file__).resolve().parent.parent / "sis" / "oneroster"
SIGNUP_EMAIL = "newparent@example.test"
PASSWORD = "a-Long-enough-secret-9"


def _api(user) -> APIClient:
    client = APIClient(HTTP_HOST=HOST, REMOTE_ADDR="203.0.113.7")
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {issue_access_token(user=user, actor=Actor.system())[1]}"
    )
    return client


def _web(user=None) -> Client:
    client = Client(HTTP_HOST=HOST, REMOTE_ADDR="10.1.1.1")
    if user is not None:
        client.force_login(user, backend="linking.auth_backends.LoginBackend")
    return client


def _staff_code(w):
    """A code issued by the system (not by the student: no consent)."""
    return issue_pairing_code(student=w.student, root_account=w.root, actor=Actor.system())


def _api_message(response) -> str:
    return f"{response.status_code} {response.json()['errors'][0]['message']}"


# Paths -------------------------------------------------------------------------
# Each: prepare(w, tmp) -> (observer or None, student, e-mail of the observer),
# attempt(w, ctx) -> what the person was told, staff (whether staff act),
# generic: the answer the path gives anyone for a wrong input.


class ApiCredentials:
    name, staff, generic = "api_credentials", False, "401 Invalid credentials provided."

    def prepare(self, w, tmp):
        return w.parent, w.student, w.parent.email

    def attempt(self, w, ctx):
        response = _api(w.parent).post(
            "/api/v1/users/self/observees",
            {
                "observee[unique_id]": w.student.logins.get().unique_id,
                "observee[password]": factories.TEST_PASSWORD,
            },
        )
        return _api_message(response) if response.status_code != 200 else "200"


class ApiToken:
    name, staff, generic = "api_token", False, "422 Unknown observee."

    def prepare(self, w, tmp):
        w.student_token = issue_access_token(user=w.student, actor=Actor.system())[1]
        return w.parent, w.student, w.parent.email

    def attempt(self, w, ctx):
        response = _api(w.parent).post(
            "/api/v1/users/self/observees", {"access_token": w.student_token}
        )
        return _api_message(response) if response.status_code != 200 else "200"


class ApiCode:
    name, staff, generic = "api_code", False, "422 Invalid pairing code."

    def prepare(self, w, tmp):
        w.code = _staff_code(w).plaintext
        return w.parent, w.student, w.parent.email

    def attempt(self, w, ctx):
        response = _api(w.parent).post("/api/v1/users/self/observees", {"pairing_code": w.code})
        return _api_message(response) if response.status_code != 200 else "200"


class ApiById:
    name, staff, generic = "api_id", True, None

    def prepare(self, w, tmp):
        return w.parent, w.student, w.parent.email

    def attempt(self, w, ctx):
        response = _api(w.staff).put(f"/api/v1/users/{w.parent.pk}/observees/{w.student.pk}")
        return _api_message(response) if response.status_code != 200 else "200"


class PageCode:
    name, staff, generic = "page_code", False, INVALID_CODE

    def prepare(self, w, tmp):
        w.code = _staff_code(w).plaintext
        return w.parent, w.student, w.parent.email

    def attempt(self, w, ctx):
        web = _web(w.parent)
        response = web.post("/observing/add/", {"code": w.code})
        if response.status_code != 302:
            return response.content.decode()
        response = web.post("/observing/add/confirm/", {}, follow=True)
        return response.content.decode()


class SignUp:
    name, staff, generic = "signup", False, INVALID_CODE

    def prepare(self, w, tmp):
        w.code = _staff_code(w).plaintext
        return None, w.student, SIGNUP_EMAIL

    def attempt(self, w, ctx):
        web = _web()
        response = web.post(
            "/signup/",
            {
                "name": "Nia Newparent",
                "email": SIGNUP_EMAIL,
                "password1": PASSWORD,
                "password2": PASSWORD,
                "codes": w.code,
            },
        )
        if response.status_code == 302 and response["Location"] == "/signup/confirm/":
            # Sign-up's "is this your student?" step (issue 15): yes.
            response = web.post("/signup/confirm/", {"confirm": "1"})
        return "302" if response.status_code == 302 else response.content.decode()


class Admin:
    name, staff, generic = "admin", True, None

    def prepare(self, w, tmp):
        return w.parent, w.student, w.parent.email

    def attempt(self, w, ctx):
        client = Client(HTTP_HOST=HOST)
        client.force_login(w.staff)
        response = client.post(
            "/admin/linking/observationlink/add/",
            {
                "observer": w.parent.pk,
                "student": w.student.pk,
                "root_account": w.root.pk,
                "kind": "parent",
            },
        )
        if response.status_code == 302:
            return "302"
        return str(response.context["adminform"].form.non_field_errors())


class CanvasSis:
    name, staff, generic = "canvas_sis", True, None

    def prepare(self, w, tmp):
        w.csv = tmp / "user_observers.csv"
        w.csv.write_text("observer_id,student_id,status\nP-1,S-1,active\n")
        return w.parent, w.student, w.parent.email

    def attempt(self, w, ctx):
        report = import_sis(
            paths=[w.csv], root_account=w.root, actor=Actor(user=None, source=AuditSource.SIS)
        )
        return str(report.errors) + str(report.warnings)


class OneRoster:
    """Maria Lopez (parent) and Ava (student) of the reference bundle: people first, then links."""

    name, staff, generic = "oneroster", True, None

    def prepare(self, w, tmp):
        first = tmp / "first"
        shutil.copytree(BUNDLES / "v11_bulk", first)
        users = (first / "users.csv").read_text()
        users = users.replace(",g-maria,03,", ",,03,").replace('"s-ava,s-ben"', "s-ben")
        (first / "users.csv").write_text(users)
        actor = Actor(user=None, source=AuditSource.SIS)
        # The bundle owns the school's SIS people: the fixture's P-1 and S-1 go.
        report = import_sis(paths=[first], root_account=w.root, actor=actor, allow_mass_delete=True)
        assert not report.failed, report.errors
        maria = User.objects.get(logins__sis_user_id="g-maria")
        ava = User.objects.get(logins__sis_user_id="s-ava")
        assert not ObservationLink.objects.filter(observer=maria, student=ava).exists()
        w.parent, w.student = maria, ava
        return maria, ava, maria.email

    def attempt(self, w, ctx):
        report = import_sis(
            paths=[BUNDLES / "v11_bulk"],
            root_account=w.root,
            allow_mass_delete=True,
            actor=Actor(user=None, source=AuditSource.SIS),
        )
        return str(report.errors) + str(report.warnings)


class Invitation:
    """Invitations do not exist yet: their service will link as the invited observer with
    source ``invitation`` (link_observer judges the rules), so this is what it will meet."""

    name, staff, generic = "invitation", False, "This invitation is not valid or has expired."

    def prepare(self, w, tmp):
        return w.parent, w.student, w.parent.email

    def attempt(self, w, ctx):
        try:
            link_observer(
                observer=w.parent,
                student=w.student,
                root_account=w.root,
                actor=Actor(user=w.parent, source=AuditSource.PORTAL),
                source=LinkSource.INVITATION,
            )
        except LinkingError as error:
            return error.message
        return "linked"


PATHS = [
    ApiCredentials(),
    ApiToken(),
    ApiCode(),
    ApiById(),
    PageCode(),
    SignUp(),
    Admin(),
    CanvasSis(),
    OneRoster(),
    Invitation(),
]


# Rules ----------------------------------------------------------------------------


def no_rule(w, observer, student, email):
    return ""


def restriction(w, observer, student, email):
    safeguarding.record_restriction(
        root_account=w.root,
        student=student,
        observer=observer,
        observer_email=email,
        reason=REASON,
        document_reference="Family court file 17",
        actor=Actor(user=w.staff, source=AuditSource.ADMIN),
    )
    return rules.RESTRICTION


def protected(w, observer, student, email):
    safeguarding.protect_student(
        student=student, root_account=w.root, actor=Actor(user=w.staff, source=AuditSource.ADMIN)
    )
    return rules.PROTECTED_STUDENT


def adult(w, observer, student, email):
    w.root.age_of_majority = 18
    w.root.save()
    student.birth_date = years_ago(18, days=1)
    student.save()
    return rules.ADULT_STUDENT


def ended_by_student(w, observer, student, email):
    w.root.students_may_end_links = True
    w.root.save()
    link, _ = link_observer(
        observer=observer, student=student, root_account=w.root, actor=Actor.system()
    )
    safeguarding.end_link_as_student(
        link_id=link.pk, student=student, root_account=w.root, actor=Actor(user=student)
    )
    return rules.ENDED_BY_STUDENT


RULES = {
    "none": no_rule,
    "restriction": restriction,
    "protected": protected,
    "adult": adult,
    "ended_by_student": ended_by_student,
}

STAFF_PATHS = {"api_id", "admin", "canvas_sis", "oneroster"}


def expected(rule: str, path) -> str:
    if rule == "none":
        return "active"
    if rule == "restriction":
        return "refused"
    if rule == "protected":
        return "active" if path.name in STAFF_PATHS else "refused"
    if rule == "ended_by_student" and path.name in ("canvas_sis", "oneroster"):
        # A nightly file must not ask the student again every night.
        return "stays ended"
    return "pending"


CELLS = [
    pytest.param(rule, path, id=f"{rule}-{path.name}")
    for rule in RULES
    for path in PATHS
    # A person signing up has no link a student could have ended.
    if not (rule == "ended_by_student" and path.name == "signup")
]


def _observer_after(observer, email):
    if observer is not None:
        return observer
    return User.objects.filter(email=email).first()


@pytest.mark.parametrize(("rule", "path"), CELLS)
def test_rule_on_path(rule, path, w, tmp_path):
    observer, student, email = path.prepare(w, tmp_path)
    rule_name = RULES[rule](w, observer, student, email)
    last_event = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    told = path.attempt(w, SimpleNamespace())

    observer = _observer_after(observer, email)
    link = (
        ObservationLink.objects.filter(observer=observer, student=student, root_account=w.root)
        .exclude(workflow_state=ObservationLink.State.DELETED)
        .first()
        if observer is not None
        else None
    )
    enrollments = Enrollment.objects.filter(
        user=observer, associated_user=student, type=EnrollmentType.OBSERVER
    ).exclude(workflow_state="deleted")
    outcome = expected(rule, path)
    if outcome == "refused":
        assert link is None
        assert not enrollments.exists()
        # Nothing told names the restriction's reason or document.
        assert "Secret reason" not in told and "court" not in told.lower()
        if path.staff:
            assert "restriction" in told.lower(), told
        else:
            # The answer of a wrong code, token or password: nothing to tell apart.
            assert path.generic in told, told
            assert "restriction" not in told.lower() and "protected" not in told.lower()
        refusals = list(AuditEvent.objects.filter(id__gt=last_event).order_by("id"))
        actions = {event.action for event in refusals}
        if rule == "protected" and path.name in ("api_code", "page_code", "signup"):
            # A protected student's codes were revoked: the code is unknown.
            assert AuditAction.CODE_FAILED in actions
        else:
            refused = [e for e in refusals if e.action == AuditAction.LINK_REFUSED]
            assert refused, actions
            assert refused[0].detail["rule"] == rule_name
            assert "reason" not in refused[0].detail
            assert refused[0].student == student
    elif outcome == "stays ended":
        assert link is None and not enrollments.exists()
        ended = ObservationLink.objects.get(observer=observer, student=student)
        assert ended.end_reason == "student"
        assert "the student ended this link" in told
        assert not AuditEvent.objects.filter(id__gt=last_event, link=ended).exists()
    elif outcome == "pending":
        assert link is not None and link.workflow_state == ObservationLink.State.PENDING, told
        assert not enrollments.exists()
        event = AuditEvent.objects.filter(link=link).order_by("-id").first()
        assert event.action == AuditAction.LINK_PENDING
        assert event.detail["awaiting"] == rule_name
    else:
        assert link is not None and link.workflow_state == ObservationLink.State.ACTIVE, told
        assert enrollments.exists()
