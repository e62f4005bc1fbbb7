"""Tenant isolation in the API: school A's people cannot read or change school B's (issue 7).

Every endpoint is called by a parent and by an account admin of school A on
school B's users, once through A's host and once through B's host. Each call
is refused (401 or 404) and leaves links, codes, enrollments, users and
logins exactly as they were. A control test makes the same calls as B's own
admin on B's host and gets 200, so the paths and fixtures are known to work.
"""

import pytest

from linking.models import (
    AuditAction,
    AuditEvent,
    Enrollment,
    EnrollmentType,
    Login,
    ObservationLink,
    PairingCode,
    User,
)
from linking.services import accounts as account_services
from linking.services.context import Actor
from linking.services.enrollments import enroll_user
from linking.services.pairing import issue_pairing_code
from tests.security.conftest import HOST_A, HOST_B

# (name, method, path template, body template): {parent}, {student}, {student2}
# are school B's users; {code} is a live pairing code of B's second student.
ENDPOINTS = [
    ("list_observees", "get", "/api/v1/users/{parent}/observees", None),
    ("add_observee", "post", "/api/v1/users/{parent}/observees", {"pairing_code": "{code}"}),
    ("show_observee", "get", "/api/v1/users/{parent}/observees/{student}", None),
    ("add_observee_by_id", "put", "/api/v1/users/{parent}/observees/{student2}", None),
    ("remove_observee", "delete", "/api/v1/users/{parent}/observees/{student}", None),
    ("list_observers", "get", "/api/v1/users/{student}/observers", None),
    ("show_observer", "get", "/api/v1/users/{student}/observers/{parent}", None),
    ("create_pairing_code", "post", "/api/v1/users/{student}/observer_pairing_codes", None),
    ("show_user_parent", "get", "/api/v1/users/{parent}", None),
    ("show_user_student", "get", "/api/v1/users/{student}", None),
    ("list_observees_by_sis", "get", "/api/v1/users/sis_login_id:{parent_login}/observees", None),
]
ENDPOINT_IDS = [endpoint[0] for endpoint in ENDPOINTS]


@pytest.fixture
def target(schools):
    """School B's users in the path, plus a second, unlinked student and a live code for them."""
    b = schools["b"]
    student2 = account_services.create_user_with_login(
        name="Second Student B", root_account=b["school"], unique_id="student2@b.test"
    )
    enroll_user(user=student2, course=b["school"].course, type=EnrollmentType.STUDENT)
    code = issue_pairing_code(student=student2, root_account=b["school"], actor=Actor.system())
    return {
        "parent": b["parent"].pk,
        "student": b["student"].pk,
        "student2": student2.pk,
        "parent_login": Login.objects.get(user=b["parent"]).unique_id,
        "code": code.plaintext,
    }


def _request(client, endpoint, target):
    _, method, path, body = endpoint
    url = path.format(**target)
    if body is not None:
        body = {key: value.format(**target) for key, value in body.items()}
    return getattr(client, method)(url, body, format="json")


def _snapshot():
    return {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in (ObservationLink, PairingCode, Enrollment, User, Login)
    }


def _changes_audit(before_ids):
    return list(
        AuditEvent.objects.exclude(pk__in=before_ids)
        .exclude(action=AuditAction.CODE_FAILED)
        .values_list("action", flat=True)
    )


@pytest.mark.parametrize("host", [HOST_A, HOST_B], ids=["through_A", "through_B"])
@pytest.mark.parametrize("role", ["parent", "admin"])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ENDPOINT_IDS)
def test_school_a_cannot_reach_school_b(schools, target, bearer, endpoint, role, host):
    client = bearer(schools["a"][role], host)
    before = _snapshot()
    audit_before = list(AuditEvent.objects.values_list("pk", flat=True))

    response = _request(client, endpoint, target)

    assert response.status_code in (401, 404), (response.status_code, response.content)
    message = response.json()["errors"][0]["message"]
    assert message in {
        "user not authorized to perform that action",
        "The specified resource does not exist.",
    }
    # Nothing about school B leaks into the refusal.
    assert "School B" not in response.content.decode()
    assert "Student B" not in response.content.decode()
    assert _snapshot() == before
    assert _changes_audit(audit_before) == []


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ENDPOINT_IDS)
def test_school_b_admin_on_b_host_succeeds(schools, target, bearer, endpoint):
    """Control: the same requests are valid ones for school B's own admin."""
    response = _request(bearer(schools["b"]["admin"], HOST_B), endpoint, target)
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("host", [HOST_A, HOST_B], ids=["through_A", "through_B"])
def test_a_cross_school_pair_cannot_be_linked_by_either_admin(schools, bearer, host):
    """A's admin cannot link A's parent to B's student (nor can B's admin, who has no say on A)."""
    before = _snapshot()
    a, b = schools["a"], schools["b"]
    for admin in (a["admin"], b["admin"]):
        response = bearer(admin, host).put(
            f"/api/v1/users/{a['parent'].pk}/observees/{b['student'].pk}", format="json"
        )
        assert response.status_code in (401, 404, 422), response.content
    assert _snapshot() == before


def test_a_code_of_school_a_is_not_redeemable_on_school_b_host(schools, bearer):
    a, b = schools["a"], schools["b"]
    issued = issue_pairing_code(
        student=a["student"], root_account=a["school"], actor=Actor.system()
    )
    # B's parent, on B's host, with A's code.
    response = bearer(b["parent"], HOST_B).post(
        "/api/v1/users/self/observees", {"pairing_code": issued.plaintext}, format="json"
    )
    assert response.status_code == 422
    assert response.json() == {"errors": [{"message": "Invalid pairing code."}]}
    row = PairingCode.objects.get(pk=issued.pairing_code.pk)
    assert row.workflow_state == PairingCode.State.ACTIVE and row.redeemed_by_id is None
    assert not ObservationLink.objects.filter(observer=b["parent"], student=a["student"]).exists()

    # A user of both schools on B's host: still no, the code belongs to A's host.
    both = account_services.create_user_with_login(
        name="Parent of both", root_account=b["school"], unique_id="both@b.test"
    )
    account_services.add_login(user=both, root_account=a["school"], unique_id="both@a.test")
    response = bearer(both, HOST_B).post(
        "/api/v1/users/self/observees", {"pairing_code": issued.plaintext}, format="json"
    )
    assert response.status_code == 422
    assert PairingCode.objects.get(pk=issued.pairing_code.pk).workflow_state == "active"

    # Control: on A's host the same code works for that user.
    response = bearer(both, HOST_A).post(
        "/api/v1/users/self/observees", {"pairing_code": issued.plaintext}, format="json"
    )
    assert response.status_code == 200, response.content
    assert PairingCode.objects.get(pk=issued.pairing_code.pk).workflow_state == "redeemed"
