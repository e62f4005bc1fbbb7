"""Bodies Django or the JSON parser refuse: a 4xx with Canvas's error body, never 500 (finding 4).

Three bodies from the attack run, on every kind of endpoint that reads a
body (the API's POST, PUT and DELETE, the pages, the staff admin): over
Django's size limit (RequestDataTooBig: 413), more than 1,000 form fields
(TooManyFieldsSent: 400), JSON nested 50,000 deep (RecursionError in the
parser: 400). Nothing is written.
"""

import pytest
from django.test import Client

from linking.models import AuditEvent, ObservationLink, PairingCode
from linking.services.context import Actor
from linking.services.tokens import issue_access_token
from tests.security.conftest import CLIENT_IP, HOST_A

FORM = "application/x-www-form-urlencoded"
BODIES = {
    "too_large_form": ("a=" + "x" * (3 * 1024 * 1024), FORM, 413),
    "too_large_json": ('{"a": "' + "x" * (3 * 1024 * 1024) + '"}', "application/json", 413),
    "too_many_fields": ("&".join(f"f{i}=1" for i in range(1500)), FORM, 400),
    "nested_json": ("[" * 50_000 + "]" * 50_000, "application/json", 400),
}

# (who, method, path): the endpoints that read a body, as someone allowed to use them.
API = [
    ("parent", "post", "/api/v1/users/self/observees"),
    ("admin", "put", "/api/v1/users/{parent}/observees/{student}"),
    ("parent", "delete", "/api/v1/users/self/observees/{student}"),
]
PAGES = [
    (None, "post", "/login/"),
    (None, "post", "/signup/"),
    ("parent", "post", "/observing/add/"),
    ("parent", "post", "/observing/add/confirm/"),
    ("parent", "post", "/observing/{link}/remove/"),
    ("student", "post", "/pairing/codes/"),
    ("parent", "post", "/logout/"),
    (None, "post", "/admin/login/"),
    ("admin", "post", "/admin/linking/observationlink/"),
    ("admin", "post", "/admin/linking/observationlink/add/"),
    ("admin", "post", "/admin/linking/sisbatch/import/"),
]


def _state():
    return (
        list(ObservationLink.objects.order_by("pk").values_list("pk", "workflow_state")),
        PairingCode.objects.count(),
        AuditEvent.objects.count(),
    )


def _client(schools, who, api):
    a = schools["a"]
    # As a browser is: Django's CSRF check reads every form body first.
    client = Client(HTTP_HOST=HOST_A, REMOTE_ADDR=CLIENT_IP, enforce_csrf_checks=True)
    client.get("/login/")  # the CSRF cookie a browser holds
    if who is None:
        return client
    if api:
        token = issue_access_token(user=a[who], actor=Actor.system())[1]
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    else:
        client.force_login(a[who], backend="linking.auth_backends.LoginBackend")
    return client


# Pages read form bodies only (a JSON body is never parsed there); the API reads both.
CASES = [
    pytest.param(endpoint, name, id=f"{endpoint[1]} {endpoint[2]} {name}")
    for endpoint in API + PAGES
    for name, (_body, content_type, _status) in sorted(BODIES.items())
    if endpoint in API or content_type == FORM
]


@pytest.mark.parametrize("endpoint, body_name", CASES)
def test_refused_bodies_get_a_4xx_with_canvas_body(schools, endpoint, body_name):
    who, method, template = endpoint
    a = schools["a"]
    link = ObservationLink.objects.get(observer=a["parent"], student=a["student"])
    path = template.format(parent=a["parent"].pk, student=a["student"].pk, link=link.pk)
    client = _client(schools, who, api=path.startswith("/api/"))
    body, content_type, expected = BODIES[body_name]
    before = _state()

    response = getattr(client, method)(path, body, content_type=content_type)

    assert response.status_code == expected, response.content[:300]
    payload = response.json()
    assert isinstance(payload["errors"][0]["message"], str) and payload["errors"][0]["message"]
    assert _state() == before


@pytest.mark.parametrize("body_name", sorted(BODIES))
def test_endpoints_that_ignore_their_body_still_answer_normally(schools, body_name):
    """Issuing a pairing code reads no body: whatever is sent, the code is issued (no 5xx)."""
    client = _client(schools, "student", api=True)
    body, content_type, _expected = BODIES[body_name]
    before = PairingCode.objects.count()
    path = "/api/v1/users/self/observer_pairing_codes"
    response = client.post(path, body, content_type=content_type)
    assert response.status_code in (200, 400, 413), response.content[:300]
    assert PairingCode.objects.count() == before + (response.status_code == 200)
