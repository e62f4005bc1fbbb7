"""The webhook event catalogue: a JSON Schema per event, published in the OpenAPI document."""

import json

import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker

from linking.models import WebhookDelivery, WebhookEndpoint
from linking.models.notifications import WEBHOOK_EVENTS
from linking.services import notifications, webhooks
from linking.services.links import restore_link, unlink_observer
from linking.services.pairing import issue_pairing_code, redeem_pairing_code, revoke_pairing_code
from linking.services.webhook_events import CATALOGUE, CATALOGUE_VERSION, schema_for
from tests import factories


def validate(event_type: str, payload: dict) -> None:
    Draft202012Validator(schema_for(event_type), format_checker=FormatChecker()).validate(payload)


def test_the_catalogue_covers_every_event_and_ping():
    assert set(CATALOGUE) == {*WEBHOOK_EVENTS, "ping"}
    for entry in CATALOGUE.values():
        Draft202012Validator.check_schema(entry["schema"])


def test_the_openapi_document_publishes_the_catalogue(client, root_account):
    response = client.get("/api/schema/", HTTP_HOST="default.test")

    schema = yaml.safe_load(response.content)
    assert schema["openapi"] == "3.1.0"
    assert set(schema["webhooks"]) == set(CATALOGUE)
    created = schema["webhooks"]["link.created"]["post"]
    assert created["x-event-version"] == CATALOGUE_VERSION
    assert created["requestBody"]["content"]["application/json"]["schema"] == schema_for(
        "link.created"
    )
    assert {p["name"] for p in created["parameters"]} == {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "webhook-event",
    }


@pytest.fixture
def endpoint(root_account):
    return WebhookEndpoint.objects.create(
        root_account=root_account,
        url="https://hooks.example.test/",
        events=[str(event) for event in WEBHOOK_EVENTS],
    )


def _invitation_events(student, observer, root_account, staff):
    """One event of each invitation type, through the invitation services."""
    from datetime import timedelta

    from django.utils import timezone

    from linking.services import invitations
    from linking.services.context import Actor

    def invite():
        return invitations.invite_guardian(
            student=student,
            email=observer.email,
            root_account=root_account,
            actor=Actor(user=staff),
            base_url="http://default.test/",
        ).invitation

    accepted = invite()  # invitation.sent
    invite()  # the same address again: invitation.resent
    invitations.accept_invitation(invitation=accepted, user=observer, actor=Actor(user=observer))
    invitations.decline_invitation(invitation=invite(), user=observer, actor=Actor(user=observer))
    invitations.withdraw_invitation(invitation=invite(), actor=Actor(user=staff))
    invite()
    invitations.record_expiries(now=timezone.now() + timedelta(days=30))


def test_every_payload_the_service_writes_matches_its_schema(
    endpoint, link, student, observer, root_account, system_actor, staff_a
):
    course = factories.CourseFactory(account=root_account)
    factories.EnrollmentFactory(user=student, course=course)
    made = link(observer, student, root_account)
    unlink_observer(link=made, actor=system_actor)
    restore_link(link=made, actor=system_actor)
    issued = issue_pairing_code(student=student, root_account=root_account, actor=system_actor)
    unlink_observer(link=made, actor=system_actor)
    redeem_pairing_code(
        code=issued.plaintext, observer=observer, root_account=root_account, actor=system_actor
    )
    spare = issue_pairing_code(student=student, root_account=root_account, actor=system_actor)
    revoke_pairing_code(pairing_code=spare.pairing_code, actor=system_actor)
    _invitation_events(student, observer, root_account, staff_a)
    webhooks.queue_ping(endpoint=endpoint)
    notifications.plan_all_pending()

    seen = set()
    for delivery in WebhookDelivery.objects.all():
        validate(delivery.event_type, json.loads(delivery.body))
        seen.add(delivery.event_type)
    assert seen == set(CATALOGUE)


def test_a_payload_off_its_schema_is_caught():
    with pytest.raises(Exception, match="is not one of"):
        validate(
            "link.deleted",
            {
                "id": 1,
                "type": "link.deleted",
                "occurred_at": "2026-01-01T00:00:00+00:00",
                "root_account": None,
                "observer": None,
                "student": None,
                "link": {"id": 1, "workflow_state": "active", "source": "api"},
                "pairing_code": None,
                "actor": {"user": None, "source": "system"},
            },
        )
