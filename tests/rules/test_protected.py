"""Protected students: no codes, linked by staff only, named in no e-mail or webhook payload."""

import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from linking.models import (
    AuditAction,
    AuditEvent,
    AuditSource,
    EmailNotification,
    ObservationLink,
    PairingCode,
    ProtectedStudent,
    WebhookDelivery,
    WebhookEndpoint,
)
from linking.services import notifications, safeguarding, webhooks
from linking.services.context import Actor
from linking.services.errors import NotAuthorized
from linking.services.links import link_observer
from linking.services.pairing import issue_pairing_code
from linking.services.tokens import issue_access_token
from tests.rules.conftest import HOST

pytestmark = pytest.mark.django_db


def _protect(w):
    return safeguarding.protect_student(
        student=w.student, root_account=w.root, actor=Actor(user=w.staff, source="admin")
    )


def test_protecting_revokes_codes_and_no_new_code_is_issued(w):
    code = issue_pairing_code(student=w.student, root_account=w.root, actor=Actor.system())
    protection, created = _protect(w)
    assert created and protection.recorded_by == w.staff
    assert not _protect(w)[1]  # once
    code.pairing_code.refresh_from_db()
    assert code.pairing_code.workflow_state == PairingCode.State.REVOKED
    revoked = AuditEvent.objects.get(action=AuditAction.CODE_REVOKED)
    assert revoked.detail == {"reason": "protected"}
    assert AuditEvent.objects.filter(action=AuditAction.STUDENT_PROTECTED).count() == 1
    for actor in (Actor.system(), Actor(user=w.student), Actor(user=w.staff)):
        with pytest.raises(NotAuthorized):
            issue_pairing_code(student=w.student, root_account=w.root, actor=actor)
    refused = AuditEvent.objects.filter(action=AuditAction.LINK_REFUSED)
    assert refused.count() == 3
    assert {tuple(sorted(event.detail.items())) for event in refused} == {
        (("rule", "protected_student"), ("source", "pairing_code_issue"))
    }
    # The API's call answers Canvas's 401; the student's page offers no code.
    api = APIClient(HTTP_HOST=HOST)
    api.credentials(
        HTTP_AUTHORIZATION=f"Bearer {issue_access_token(user=w.student, actor=Actor.system())[1]}"
    )
    response = api.post("/api/v1/users/self/observer_pairing_codes")
    assert response.status_code == 401
    web = Client(HTTP_HOST=HOST)
    web.force_login(w.student, backend="linking.auth_backends.LoginBackend")
    page = web.get("/pairing/").content.decode()
    assert "staff link parents and guardians for you" in page
    assert "Create a pairing code" not in page
    assert PairingCode.objects.redeemable().count() == 0


def test_staff_links_a_protected_student_and_nobody_is_mailed(w, settings):
    settings.OBSERVERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    endpoint = WebhookEndpoint.objects.create(
        root_account=w.root, url="https://hooks.example.test/in", events=webhooks.WEBHOOK_EVENTS
    )
    _protect(w)
    link, _ = link_observer(
        observer=w.parent,
        student=w.student,
        root_account=w.root,
        actor=Actor(user=w.staff, source=AuditSource.ADMIN),
        source="admin",
    )
    assert link.workflow_state == "active"
    notifications.plan_all_pending()
    assert not EmailNotification.objects.exists()
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    body = json.loads(delivery.body)
    assert body["student"] == {"id": w.student.pk, "protected": True}
    assert "Sam Student" not in delivery.body


def test_an_unprotected_student_is_named_again(w, settings):
    protection, _ = _protect(w)
    safeguarding.unprotect_student(protection=protection, actor=Actor.system())
    assert not ProtectedStudent.objects.exists()
    assert AuditEvent.objects.filter(action=AuditAction.STUDENT_UNPROTECTED).count() == 1
    link_observer(observer=w.parent, student=w.student, root_account=w.root, actor=Actor.system())
    notifications.plan_all_pending()
    assert EmailNotification.objects.filter(recipient=w.student).exists()
    issue_pairing_code(student=w.student, root_account=w.root, actor=Actor(user=w.student))


def test_admin_protects_and_unprotects(w, admin_a):
    response = admin_a.post(
        "/admin/linking/protectedstudent/add/",
        {"root_account": w.root.pk, "student": w.student.pk, "note": "Safeguarding"},
    )
    assert response.status_code == 302, response.content
    protection = ProtectedStudent.objects.get()
    assert (protection.student, protection.recorded_by) == (w.student, w.staff)
    response = admin_a.post(
        f"/admin/linking/protectedstudent/{protection.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert not ProtectedStudent.objects.exists()
    assert AuditEvent.objects.filter(action=AuditAction.STUDENT_UNPROTECTED).exists()
    assert not ObservationLink.objects.exists()
