"""Access tokens (plaintext shown once) and the read-only, exportable audit trail."""

import csv
import io
import re

import pytest

from linking.models import AccessToken, AuditAction, AuditEvent, AuditSource
from linking.services.context import Actor
from linking.services.links import link_observer
from linking.services.tokens import authenticate_access_token, issue_access_token
from tests.admin.conftest import run_action

pytestmark = pytest.mark.django_db

TOKENS = "/admin/linking/accesstoken/"
AUDIT = "/admin/linking/auditevent/"


def test_issue_token_shows_the_plaintext_once(admin_a, make_user, root_account, staff_a):
    person = make_user("Ann Inside", root_account)
    response = admin_a.post(f"{TOKENS}add/", {"user": person.pk, "purpose": "SIS sync"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    plaintext = re.search(r'id="issued-token"[^>]*>([^<]+)<', response.content.decode()).group(1)
    token = AccessToken.objects.get(user=person)
    assert authenticate_access_token(plaintext) == token
    assert token.created_by == staff_a
    assert token.purpose == "SIS sync"
    listing = admin_a.get(TOKENS).content.decode()
    detail = admin_a.get(f"{TOKENS}{token.pk}/change/").content.decode()
    for page in (listing, detail):
        assert plaintext not in page
        assert token.token_hash not in page
    assert f"…{plaintext[-4:]}" in listing
    event = AuditEvent.objects.get(action=AuditAction.TOKEN_ISSUED)
    assert event.source == AuditSource.ADMIN


def test_issue_token_for_another_schools_user_is_refused(admin_b, make_user, root_account):
    person = make_user("Ann Inside", root_account)
    response = admin_b.post(f"{TOKENS}add/", {"user": person.pk})
    assert response.status_code == 200
    assert "user" in response.context["form"].errors
    assert not AccessToken.objects.exists()


def test_issue_token_form_rejects_bad_expiry(admin_a, make_user, root_account):
    person = make_user("Ann Inside", root_account)
    response = admin_a.post(f"{TOKENS}add/", {"user": person.pk, "expires_at": "next tuesday"})
    assert response.status_code == 200
    assert "expires_at" in response.context["form"].errors
    assert not AccessToken.objects.exists()


def test_revoke_token_action(admin_a, make_user, root_account):
    person = make_user("Ann Inside", root_account)
    token, plaintext = issue_access_token(user=person, actor=Actor.system())
    response = run_action(admin_a, TOKENS, "revoke_tokens", [token])
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert authenticate_access_token(plaintext) is None


def test_other_school_cannot_see_or_revoke_a_token(admin_b, make_user, root_account):
    person = make_user("Ann Inside", root_account)
    token, _ = issue_access_token(user=person, actor=Actor.system())
    assert admin_b.get(TOKENS).context["cl"].result_count == 0
    assert admin_b.get(f"{TOKENS}{token.pk}/change/").status_code == 404
    run_action(admin_b, TOKENS, "revoke_tokens", [token])
    token.refresh_from_db()
    assert token.revoked_at is None


@pytest.fixture
def link_event(root_account, make_user, enrolled_student):
    student = enrolled_student("Sam Student")
    parent = make_user("Pat Parent", root_account)
    link, _ = link_observer(
        observer=parent, student=student, root_account=root_account, actor=Actor.system()
    )
    return AuditEvent.objects.get(link=link)


def test_audit_list_and_detail_are_read_only(admin_a, link_event):
    response = admin_a.get(AUDIT)
    assert list(response.context["cl"].result_list) == [link_event]
    assert admin_a.get(f"{AUDIT}add/").status_code == 403
    detail = admin_a.get(f"{AUDIT}{link_event.pk}/change/")
    assert detail.status_code == 200
    assert detail.context["has_change_permission"] is False
    admin_a.post(f"{AUDIT}{link_event.pk}/change/", {"action": "link.deleted"})
    link_event.refresh_from_db()
    assert link_event.action == AuditAction.LINK_CREATED


def test_audit_events_cannot_be_deleted(super_client, link_event):
    assert super_client.post(f"{AUDIT}{link_event.pk}/delete/", {"post": "yes"}).status_code == 403
    run_action(super_client, AUDIT, "delete_selected", [link_event], post="yes")
    assert AuditEvent.objects.filter(pk=link_event.pk).exists()


def test_audit_export_csv(admin_a, link_event):
    response = run_action(admin_a, AUDIT, "export_csv", [link_event])
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0][:4] == ["id", "created_at", "action", "source"]
    assert len(rows) == 2
    assert rows[1][0] == str(link_event.pk)
    assert rows[1][2] == AuditAction.LINK_CREATED
    assert "Pat Parent" in rows[1]


def test_other_school_cannot_read_or_export_the_audit(admin_b, link_event):
    assert admin_b.get(AUDIT).context["cl"].result_count == 0
    assert admin_b.get(f"{AUDIT}{link_event.pk}/change/").status_code == 404
    response = run_action(admin_b, AUDIT, "export_csv", [link_event])
    body = b"".join(response.streaming_content).decode()
    # The selection is filtered through school B's queryset: only the header remains.
    assert len(list(csv.reader(io.StringIO(body)))) == 1
    assert "Pat Parent" not in body
