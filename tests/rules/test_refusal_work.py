"""A pairing code the rules refuse costs the same statements as a wrong code (security.md §15).

The time is measured by ``python -m bench.refusal_timing``; this pins down
its cause: the same SQL, statement for statement (values aside), so a later
change to the rules cannot make one answer slower than the other unnoticed.
"""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from linking.models import AuditAction, AuditEvent, AuditSource, ObservationLink
from linking.services import safeguarding
from linking.services.context import Actor
from linking.services.pairing import issue_pairing_code, revoke_pairing_code
from linking.services.tokens import issue_access_token
from tests.rules.conftest import HOST, REASON

pytestmark = pytest.mark.django_db

UNKNOWN = "ABCD-EFGH"


def _shape(sql: str) -> str:
    """A statement without its values: quoted strings, numbers and IN-lists made alike."""
    sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
    sql = re.sub(r"\"s\d+_x\d+\"", "SAVEPOINT_NAME", sql)
    sql = re.sub(r"\b\d+(\.\d+)?\b", "?", sql)
    sql = re.sub(r"\bNULL\b", "?", sql)
    return re.sub(r"\(\?(, \?)*\)", "(?)", sql)


def _statements(client, code: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            "/api/v1/users/self/observees", {"pairing_code": code}, HTTP_HOST=HOST
        )
    assert (response.status_code, response.json()["errors"][0]["message"]) == (
        422,
        "Invalid pairing code.",
    )
    return [_shape(query["sql"]) for query in queries.captured_queries]


@pytest.mark.parametrize("age_of_majority", [18, None])
def test_a_refused_code_runs_the_statements_of_a_wrong_one(w, age_of_majority):
    w.root.age_of_majority = age_of_majority
    w.root.save(update_fields=["age_of_majority"])
    staff = Actor(user=w.staff, source=AuditSource.ADMIN)
    live = issue_pairing_code(student=w.student, root_account=w.root, actor=staff)
    dead = issue_pairing_code(student=w.student, root_account=w.root, actor=staff)
    revoke_pairing_code(pairing_code=dead.pairing_code, actor=staff)
    safeguarding.record_restriction(
        root_account=w.root, student=w.student, observer=w.parent, reason=REASON, actor=staff
    )
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {issue_access_token(user=w.parent, actor=Actor.system())[1]}"
    )
    _statements(client, UNKNOWN)  # warm: a first request loads what later ones reuse

    wrong = _statements(client, UNKNOWN)
    revoked = _statements(client, dead.plaintext)
    refused = _statements(client, live.plaintext)

    assert revoked == wrong
    assert refused == wrong
    assert not ObservationLink.objects.filter(student=w.student).exists()
    # Each answer wrote its own audit event: three failed codes, one refusal (and the warm-up).
    assert AuditEvent.objects.filter(action=AuditAction.CODE_FAILED).count() == 3
    assert AuditEvent.objects.filter(action=AuditAction.LINK_REFUSED).count() == 1
