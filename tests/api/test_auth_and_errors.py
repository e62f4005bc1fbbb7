"""Authentication, Canvas error bodies, and bad input on every parameter (never a 500)."""

import json

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from linking.models import AccessToken, ObservationLink
from tests.api.conftest import DEFAULT_HOST
from tests.api.helpers import assert_not_found, assert_unauthorized, linked_student_ids

UNAUTHENTICATED = {
    "status": "unauthenticated",
    "errors": [{"message": "user authorization required"}],
}
HUGE = "x" * 10_000
UNICODE = "Zoë 山田 🚀 ñ"


def endpoints(user_id="self", other="1"):
    return [
        ("get", f"/api/v1/users/{user_id}"),
        ("get", f"/api/v1/users/{user_id}/observees"),
        ("post", f"/api/v1/users/{user_id}/observees"),
        ("get", f"/api/v1/users/{user_id}/observees/{other}"),
        ("put", f"/api/v1/users/{user_id}/observees/{other}"),
        ("delete", f"/api/v1/users/{user_id}/observees/{other}"),
        ("get", f"/api/v1/users/{user_id}/observers"),
        ("get", f"/api/v1/users/{user_id}/observers/{other}"),
        ("post", f"/api/v1/users/{user_id}/observer_pairing_codes"),
    ]


@pytest.mark.parametrize(("method", "path"), endpoints())
def test_unauthenticated_everywhere(api, default_account, method, path):
    response = getattr(api(), method)(path)
    assert response.status_code == 401
    assert response.json() == UNAUTHENTICATED
    assert response["WWW-Authenticate"] == 'Bearer realm="canvas-lms"'


@pytest.mark.parametrize(
    "header", ["Bearer nonsense", "Bearer", "Bearer a b", "Basic dXNlcjpwYXNz", "Bearer ÿ"]
)
def test_bad_authorization_header_is_unauthenticated(default_account, header):
    client = APIClient(HTTP_HOST=DEFAULT_HOST, HTTP_AUTHORIZATION=header.encode().decode("latin-1"))
    response = client.get("/api/v1/users/self/observees")
    assert response.status_code == 401
    assert response.json() == UNAUTHENTICATED


def test_token_in_the_url_or_body_is_never_accepted(api, parent, token_for):
    token = token_for(parent)
    response = api().get(f"/api/v1/users/self/observees?access_token={token}")
    assert response.status_code == 401
    response = api().get("/api/v1/users/self/observees", {"access_token": token})
    assert response.status_code == 401


def test_revoked_and_expired_tokens_are_refused(api, parent, token_for):
    token = token_for(parent)
    client = APIClient(HTTP_HOST=DEFAULT_HOST, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/users/self/observees").status_code == 200
    AccessToken.objects.update(expires_at=timezone.now() - timezone.timedelta(seconds=1))
    assert client.get("/api/v1/users/self/observees").status_code == 401
    AccessToken.objects.update(expires_at=None, revoked_at=timezone.now())
    assert client.get("/api/v1/users/self/observees").status_code == 401


def test_deleted_users_token_is_refused(api, parent, token_for):
    token = token_for(parent)
    parent.workflow_state = "deleted"
    parent.save()
    client = APIClient(HTTP_HOST=DEFAULT_HOST, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/users/self/observees").status_code == 401


def test_browser_session_reads_and_needs_csrf_to_write(parent, student, default_account):
    client = APIClient(HTTP_HOST=DEFAULT_HOST, enforce_csrf_checks=True)
    client.force_login(parent)
    assert client.get("/api/v1/users/self/observees").status_code == 200
    body = {
        "observee[unique_id]": student.logins.get().unique_id,
        "observee[password]": "correct horse battery staple",
    }
    refused = client.post("/api/v1/users/self/observees", body)
    assert_unauthorized(refused)
    assert linked_student_ids(parent) == []
    page = client.get("/api/v1/users/self/observees", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    token = client.cookies["csrftoken"].value
    accepted = client.post("/api/v1/users/self/observees", body, HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 200, accepted.content
    assert linked_student_ids(parent) == [student.pk]


def test_browsable_api_renders(api, parent):
    response = api(parent).get("/api/v1/users/self/observees", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"<html" in response.content


def test_method_not_allowed_is_canvas_shaped(api, parent):
    response = api(parent).patch("/api/v1/users/self/observees")
    assert response.status_code == 405
    assert response.json()["errors"][0]["message"]


def test_unknown_api_path_is_canvas_404(api, parent):
    assert_not_found(api(parent).get("/api/v1/users/self/nonsense/deeper"))
    assert_not_found(api().post("/api/v2/anything"))


def test_malformed_json_is_400(api, parent):
    response = api(parent).post(
        "/api/v1/users/self/observees", '{"observee": {', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"]


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "42", "null"])
def test_json_that_is_not_an_object(api, parent, body):
    response = api(parent).post(
        "/api/v1/users/self/observees", body, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"]
    assert linked_student_ids(parent) == []


def test_unsupported_media_type(api, parent):
    response = api(parent).post(
        "/api/v1/users/self/observees", b"<xml/>", content_type="application/xml"
    )
    assert response.status_code == 415
    assert response.json()["errors"][0]["message"]


BAD_USER_REFERENCES = [
    "abc",
    "-1",
    "1.5",
    "0x10",
    "99999999999999999999",
    "9223372036854775808",
    "sis_foo_id:1",
    "sis_user_id:",
    "sis_user_id:nobody",
    "sis_login_id:" + UNICODE,
    "uuid:whatever",
    UNICODE,
    HUGE,
    "%00",
    "sis_user_id:%00",
    "%20",
]


@pytest.mark.parametrize("reference", BAD_USER_REFERENCES)
def test_bad_user_id_everywhere_is_404(api, allowed_admin, reference):
    client = api(allowed_admin)
    for method, path in endpoints(user_id=reference):
        response = getattr(client, method)(path)
        assert response.status_code == 404, (method, path[:80], response.content[:200])
        assert response.json() == {
            "errors": [{"message": "The specified resource does not exist."}]
        }


@pytest.mark.parametrize("reference", BAD_USER_REFERENCES)
def test_bad_observee_and_observer_ids_are_404(
    api, allowed_admin, parent, student, default_account, link, reference
):
    link(parent, student, default_account)
    client = api(allowed_admin)
    for method, path in endpoints(user_id=str(parent.pk), other=reference):
        if path.count("/") < 6:
            continue
        assert_not_found(getattr(client, method)(path))
    assert linked_student_ids(parent) == [student.pk]


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "0", "99999999999999999999", UNICODE, HUGE])
def test_bad_root_account_id_is_404(
    api, allowed_admin, parent, student, default_account, link, value
):
    client = api(allowed_admin)
    creds = {
        "observee[unique_id]": student.logins.get().unique_id,
        "observee[password]": "correct horse battery staple",
        "root_account_id": value,
    }
    assert_not_found(client.post(f"/api/v1/users/{parent.pk}/observees", creds))
    assert_not_found(
        client.put(f"/api/v1/users/{parent.pk}/observees/{student.pk}", {"root_account_id": value})
    )
    assert linked_student_ids(parent) == []
    link(parent, student, default_account)
    assert_not_found(
        client.delete(
            f"/api/v1/users/{parent.pk}/observees/{student.pk}", {"root_account_id": value}
        )
    )
    assert linked_student_ids(parent) == [student.pk]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"pairing_code": HUGE}, 422),
        ({"pairing_code": UNICODE}, 422),
        ({"pairing_code": "ABCD\x00EFGH"}, 400),
        ({"access_token": HUGE}, 422),
        ({"access_token": UNICODE}, 422),
        ({"observee[unique_id]": HUGE, "observee[password]": HUGE}, 422),
        ({"observee[unique_id]": UNICODE, "observee[password]": UNICODE}, 422),
        ({"observee[unique_id]": "a\x00b", "observee[password]": "x"}, 400),
        ({"observee[unique_id]": "x" * 10_001}, 400),
    ],
)
def test_bad_linking_values(api, parent, body, status):
    response = api(parent).post("/api/v1/users/self/observees", body)
    assert response.status_code == status, response.content[:300]
    assert response.json()["errors"][0]["message"]
    assert linked_student_ids(parent) == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"pairing_code": 12345678}, 422),
        ({"pairing_code": ["ABCD-EFGH"]}, 400),
        ({"pairing_code": True}, 400),
        ({"observee": "someone"}, 400),
        ({"observee": {"unique_id": {"nested": 1}}}, 400),
        ({"observee": [1, 2]}, 400),
        ({"root_account_id": {"id": 1}, "pairing_code": "ABCD-EFGH"}, 400),
        ({"access_token": None}, 400),
    ],
)
def test_bad_json_values(api, parent, body, status):
    response = api(parent).post(
        "/api/v1/users/self/observees", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == status, response.content[:300]
    assert response.json()["errors"][0]["message"]
    assert not ObservationLink.objects.exists()


def test_unknown_include_is_ignored(api, parent, student, default_account, link):
    link(parent, student, default_account)
    response = api(parent).get(
        "/api/v1/users/self/observees", {"include[]": ["uuid", "lti_id", UNICODE, HUGE]}
    )
    assert response.status_code == 200
    assert [row["id"] for row in response.json()] == [student.pk]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/users/self/",
        "/api/v1/users/self/observees/",
        "/api/v1/users/self/observers/",
        "/api/v1/users/self/enrollments/",
        "/api/v1/courses/",
    ],
)
def test_trailing_slash_is_the_same_resource(api, parent, path):
    """Canvas's routes take an optional trailing slash; the same answer, byte for byte."""
    client = api(parent)
    with_slash = client.get(path)
    without = client.get(path.rstrip("/"))
    assert with_slash.status_code == without.status_code == 200
    assert with_slash.content == without.content


def test_trailing_slash_on_unknown_paths_is_still_404(api, parent):
    assert api(parent).get("/api/v1/nothing/").status_code == 404
    assert api(parent).get("/api/v1/users/self/observees//").status_code == 404


def test_hex_and_uuid_user_ids_in_paths(api, parent, student, default_account, link):
    link(parent, student, default_account)
    parent.logins.filter(root_account=default_account).update(sis_user_id="P/1")
    hexed = b"P/1".hex()
    for reference in (f"hex:sis_user_id:{hexed}", f"uuid:{parent.uuid}", f"uuid:{parent.uuid.hex}"):
        response = api(parent).get(f"/api/v1/users/{reference}/observees")
        assert response.status_code == 200, reference
        assert [row["id"] for row in response.json()] == [student.pk]
