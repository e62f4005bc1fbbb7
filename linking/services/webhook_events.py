"""The webhook event catalogue: every event type, what it means, and its payload's JSON Schema.

Published in the OpenAPI document's ``webhooks`` section (OpenAPI 3.1, see
``openapi_webhooks``), so receivers can generate types and validate what
they get. The catalogue is versioned: ``CATALOGUE_VERSION`` changes only
when a payload loses or changes a field (adding one does not), and a
change is announced in docs/notifications.md.
"""

from copy import deepcopy

from .webhooks import ID_HEADER, PING_EVENT, SIGNATURE_HEADER, TIMESTAMP_HEADER

CATALOGUE_VERSION = "1"

_ID = {"type": "integer", "minimum": 1}
_PERSON = {
    "type": ["object", "null"],
    "required": ["id", "name"],
    "properties": {"id": _ID, "name": {"type": "string"}},
    "additionalProperties": False,
}
_STUDENT = {
    "type": ["object", "null"],
    "description": (
        "The student; a protected student (docs/who-may-observe.md) is sent by id alone, "
        'with "protected": true and no name.'
    ),
    "required": ["id"],
    "properties": {"id": _ID, "name": {"type": "string"}, "protected": {"const": True}},
    "additionalProperties": False,
}
_ROOT_ACCOUNT = {
    "type": ["object", "null"],
    "description": "The school (Canvas root account) the event happened in.",
    "required": ["id", "name"],
    "properties": {"id": _ID, "name": {"type": "string"}},
    "additionalProperties": False,
}
_ACTOR = {
    "type": "object",
    "description": "Who made the change: a signed-in person (or none) and through what.",
    "required": ["user", "source"],
    "properties": {
        "user": _PERSON,
        "source": {"enum": ["api", "admin", "portal", "sis", "command", "system"]},
    },
    "additionalProperties": False,
}


def _link(states: list[str]) -> dict:
    return {
        "type": "object",
        "description": "The link as it was right after this event.",
        "required": ["id", "workflow_state", "source"],
        "properties": {
            "id": _ID,
            "workflow_state": {"enum": states},
            "source": {"type": "string", "description": "How the link was last made."},
            "kind": {
                "type": "string",
                "description": "Kind of observer: parent, guardian, relative, advisor, other, "
                "or empty when nobody said.",
            },
            "ends_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "When the link ends by itself, if it has an end date.",
            },
        },
        "additionalProperties": False,
    }


_INVITATION = {
    "type": "object",
    "description": (
        "The guardian invitation as it was right after this event. Its link's token is never sent."
    ),
    "required": ["id", "state"],
    "properties": {
        "id": _ID,
        "state": {"enum": ["pending", "accepted", "declined", "withdrawn", "expired"]},
        "email": {
            "type": "string",
            "format": "email",
            "description": "The address invited (the invitation is bound to it).",
        },
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": {
            "type": "string",
            "format": "date-time",
            "description": "When its link stops working (renewed by a resend).",
        },
    },
    "additionalProperties": False,
}


def _event(
    event_type: str, *, link: dict | None, pairing_code: bool, invitation: bool = False
) -> dict:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": event_type,
        "type": "object",
        "required": [
            "id",
            "type",
            "occurred_at",
            "root_account",
            "observer",
            "student",
            "link",
            "pairing_code",
            "actor",
        ],
        "properties": {
            "id": {**_ID, "description": "The audit event's id (stable across retries)."},
            "type": {"const": event_type},
            "occurred_at": {"type": "string", "format": "date-time"},
            "root_account": _ROOT_ACCOUNT,
            "observer": _PERSON,
            "student": _STUDENT,
            "link": link if link is not None else {"type": "null"},
            "pairing_code": (
                {
                    "type": "object",
                    "required": ["id"],
                    "properties": {"id": _ID},
                    "additionalProperties": False,
                }
                if pairing_code
                else {"type": "null"}
            ),
            "actor": _ACTOR,
        },
        "additionalProperties": False,
    }
    if invitation:
        schema["required"].append("invitation")
        schema["properties"]["invitation"] = _INVITATION
    return schema


def _invitation_event(event_type: str, *, link: dict | None = None) -> dict:
    """An invitation event: ``observer`` is the guardian when known (bulk, answers), else null."""
    return _event(event_type, link=link, pairing_code=False, invitation=True)


def _optional(schema: dict) -> dict:
    return {**schema, "type": ["object", "null"]}


CATALOGUE: dict[str, dict] = {
    "link.created": {
        "summary": "An observer was linked to a student",
        "schema": _event("link.created", link=_link(["active"]), pairing_code=False),
    },
    "link.restored": {
        "summary": "A removed link was made active again",
        "schema": _event("link.restored", link=_link(["active"]), pairing_code=False),
    },
    "link.deleted": {
        "summary": "A link was removed",
        "schema": _event("link.deleted", link=_link(["deleted"]), pairing_code=False),
    },
    "pairing_code.redeemed": {
        "summary": "An observer redeemed a student's pairing code (the link has its own event)",
        "schema": _event(
            "pairing_code.redeemed", link=_optional(_link(["active"])), pairing_code=True
        ),
    },
    "pairing_code.revoked": {
        "summary": "A pairing code was revoked before use",
        "schema": _event("pairing_code.revoked", link={"type": "null"}, pairing_code=True),
    },
    "invitation.sent": {
        "summary": "A guardian was invited by e-mail to observe a student",
        "schema": _invitation_event("invitation.sent"),
    },
    "invitation.resent": {
        "summary": "An invitation was e-mailed again with a new link and a new expiry",
        "schema": _invitation_event("invitation.resent"),
    },
    "invitation.accepted": {
        "summary": "The invited guardian accepted (the link has its own event)",
        "schema": _invitation_event(
            "invitation.accepted", link=_optional(_link(["active", "pending"]))
        ),
    },
    "invitation.declined": {
        "summary": "The invited guardian declined; no link was made",
        "schema": _invitation_event("invitation.declined"),
    },
    "invitation.withdrawn": {
        "summary": "Staff withdrew a pending invitation; its link stopped working",
        "schema": _invitation_event("invitation.withdrawn"),
    },
    "invitation.expired": {
        "summary": "A pending invitation passed its expiry unanswered",
        "schema": _invitation_event("invitation.expired"),
    },
    PING_EVENT: {
        "summary": "A test post sent from the admin (Send a test ping)",
        "schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": PING_EVENT,
            "type": "object",
            "required": ["id", "type", "occurred_at", "root_account", "endpoint"],
            "properties": {
                "id": {"type": "string", "pattern": "^ping_[0-9a-f]{32}$"},
                "type": {"const": PING_EVENT},
                "occurred_at": {"type": "string", "format": "date-time"},
                "root_account": _ROOT_ACCOUNT,
                "endpoint": {
                    "type": "object",
                    "required": ["id", "url"],
                    "properties": {"id": _ID, "url": {"type": "string", "format": "uri"}},
                    "additionalProperties": False,
                },
            },
            "additionalProperties": False,
        },
    },
}


def schema_for(event_type: str) -> dict:
    return deepcopy(CATALOGUE[event_type]["schema"])


_HEADERS = [
    (ID_HEADER, "Message id, the same on every retry of one delivery: deduplicate on it."),
    (TIMESTAMP_HEADER, "Unix seconds of this attempt; refuse posts older than five minutes."),
    (
        SIGNATURE_HEADER,
        "Space-separated `v1,<base64 HMAC-SHA256>` over `<id>.<timestamp>.<body>` with the "
        "endpoint's whsec_ secret; two signatures while a rotated secret overlaps.",
    ),
    ("webhook-event", "The event type (also the body's `type`)."),
]


def openapi_webhooks() -> dict:
    """The OpenAPI 3.1 ``webhooks`` object: one POST per event type."""
    parameters = [
        {
            "name": name,
            "in": "header",
            "required": True,
            "description": description,
            "schema": {"type": "string"},
        }
        for name, description in _HEADERS
    ]
    return {
        event_type: {
            "post": {
                "operationId": f"webhook_{event_type.replace('.', '_')}",
                "summary": entry["summary"],
                "tags": ["webhooks"],
                "x-event-version": CATALOGUE_VERSION,
                "parameters": deepcopy(parameters),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": schema_for(event_type)}},
                },
                "responses": {
                    "2XX": {"description": "Accepted; any 2xx status counts."},
                    "410": {"description": "Gone: the endpoint is turned off at once."},
                    "429": {
                        "description": "Too many: retried after Retry-After (seconds or a date)."
                    },
                    "503": {"description": "Unavailable: retried after Retry-After if given."},
                    "default": {
                        "description": "Anything else: retried with back-off for about 3 days."
                    },
                },
            }
        }
        for event_type, entry in CATALOGUE.items()
    }


def add_webhooks_to_schema(result, generator, request, public):
    """drf-spectacular post-processing hook: publish the catalogue in the document."""
    result["webhooks"] = openapi_webhooks()
    return result
