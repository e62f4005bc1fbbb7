"""POST /api/v1/users/:user_id/observees (§7 items 19-30) and our deliberate differences."""

import json

import pytest

from linking.models import AuditEvent, LinkSource, ObservationLink, PairingCode
from linking.services.context import Actor
from linking.services.pairing import issue_pairing_code
from tests.api.conftest import EXTERNAL_HOST
from tests.api.helpers import (
    assert_not_found,
    assert_unauthorized,
    error_message,
    link_root_ids,
    linked_student_ids,
)
from tests.factories import TEST_PASSWORD


def credentials(user, password=TEST_PASSWORD):
    return {"observee[unique_id]": user.logins.first().unique_id, "observee[password]": password}


def code_for(student, root_account):
    return issue_pairing_code(
        student=student, root_account=root_account, actor=Actor.system()
    ).plaintext


def test_admin_links_with_credentials(api, allowed_admin, parent, student, default_account):
    response = api(allowed_admin, HTTP_USER_AGENT="pytest-agent").post(
        f"/api/v1/users/{parent.pk}/observees", credentials(student)
    )
    assert response.status_code == 200, response.content
    assert response.json()["id"] == student.pk
    assert response.json()["observation_link_root_account_ids"] == [default_account.pk]
    assert linked_student_ids(parent) == [student.pk]
    link = ObservationLink.objects.get(observer=parent, student=student)
    assert link.source == LinkSource.CREDENTIALS
    event = AuditEvent.objects.get(link=link)
    assert event.actor_id == allowed_admin.pk
    assert event.source == "api"
    assert event.ip_address == "203.0.113.7"
    assert event.user_agent == "pytest-agent"


def test_parent_links_with_credentials(api, parent, student):
    response = api(parent).post("/api/v1/users/self/observees", credentials(student))
    assert response.status_code == 200
    assert response.json()["id"] == student.pk
    assert linked_student_ids(parent) == [student.pk]


def test_credentials_as_json_and_multipart(api, parent, student, student2):
    body = {"observee": {"unique_id": student.logins.first().unique_id, "password": TEST_PASSWORD}}
    response = api(parent).post(
        "/api/v1/users/self/observees", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 200, response.content
    response = api(parent).post(
        "/api/v1/users/self/observees", credentials(student2), format="multipart"
    )
    assert response.status_code == 200, response.content
    assert linked_student_ids(parent) == sorted([student.pk, student2.pk])


def test_credentials_in_query_string(api, parent, student):
    response = api(parent).post(
        "/api/v1/users/self/observees?"
        + "&".join(f"{k}={v}" for k, v in credentials(student).items())
    )
    assert response.status_code == 200, response.content
    assert linked_student_ids(parent) == [student.pk]


def test_multi_admin_links_external_student(api, multi_admin, external_parent, external_student):
    response = api(multi_admin, host=EXTERNAL_HOST).post(
        f"/api/v1/users/{external_parent.pk}/observees", credentials(external_student)
    )
    assert response.status_code == 200
    assert response.json()["id"] == external_student.pk
    assert linked_student_ids(external_parent) == [external_student.pk]


def test_wrong_password_is_401_invalid_credentials(api, allowed_admin, parent, student):
    response = api(allowed_admin).post(
        f"/api/v1/users/{parent.pk}/observees",
        credentials(student, TEST_PASSWORD + "bad credentials"),
    )
    assert response.status_code == 401
    assert response.json() == {"errors": [{"message": "Invalid credentials provided."}]}
    assert linked_student_ids(parent) == []


def test_unknown_login_is_422(api, parent):
    response = api(parent).post(
        "/api/v1/users/self/observees",
        {"observee[unique_id]": "nobody@example.test", "observee[password]": "x"},
    )
    assert response.status_code == 422
    assert response.json() == {"errors": [{"message": "Unknown observee."}]}


def test_no_common_root_account_is_422(
    api, allowed_admin, parent, external_student, external_account
):
    # Canvas item 23: external student's credentials on External's host, for a Default parent.
    response = api(allowed_admin, host=EXTERNAL_HOST).post(
        f"/api/v1/users/{parent.pk}/observees?root_account_id=all", credentials(external_student)
    )
    # allowed_admin is no admin on External but parent's only school is Default
    assert response.status_code == 422, response.content
    assert error_message(response) == "Unknown observee."
    assert linked_student_ids(parent) == []


def test_unknown_observer_is_404(api, allowed_admin, student):
    assert_not_found(api(allowed_admin).post("/api/v1/users/0/observees", credentials(student)))


def test_admin_of_other_school_is_refused(api, allowed_admin, external_parent, external_student):
    response = api(allowed_admin, host=EXTERNAL_HOST).post(
        f"/api/v1/users/{external_parent.pk}/observees", credentials(external_student)
    )
    assert_unauthorized(response)
    assert linked_student_ids(external_parent) == []


def test_disallowed_admin_is_refused(api, disallowed_admin, parent, student):
    response = api(disallowed_admin).post(
        f"/api/v1/users/{parent.pk}/observees", credentials(student)
    )
    assert_unauthorized(response)
    assert linked_student_ids(parent) == []


def test_student_cannot_link_themselves_to_a_parent(api, parent, student):
    response = api(student).post(f"/api/v1/users/{parent.pk}/observees", credentials(student))
    assert_unauthorized(response)
    assert linked_student_ids(student) == []
    assert linked_student_ids(parent) == []


def test_parent_links_with_pairing_code(api, parent, enrolled_student, default_account):
    code = code_for(enrolled_student, default_account)
    response = api(parent).post(f"/api/v1/users/{parent.pk}/observees", {"pairing_code": code})
    assert response.status_code == 200, response.content
    assert response.json()["id"] == enrolled_student.pk
    assert linked_student_ids(parent) == [enrolled_student.pk]
    assert PairingCode.objects.get().workflow_state == "redeemed"
    # the observer enrollment was mirrored
    assert parent.enrollments.filter(type="observer", associated_user=enrolled_student).exists()


def test_pairing_code_is_tolerant_of_case_and_dashes(
    api, parent, enrolled_student, default_account
):
    code = code_for(enrolled_student, default_account).replace("-", "").lower()
    response = api(parent).post("/api/v1/users/self/observees", {"pairing_code": code})
    assert response.status_code == 200
    assert linked_student_ids(parent) == [enrolled_student.pk]


def test_invalid_pairing_code_is_422(api, parent):
    response = api(parent).post("/api/v1/users/self/observees", {"pairing_code": "ABCD-EFGH"})
    assert response.status_code == 422
    assert response.json() == {"errors": [{"message": "Invalid pairing code."}]}
    assert linked_student_ids(parent) == []


def test_used_pairing_code_is_422(api, parent, make_user, default_account, enrolled_student):
    code = code_for(enrolled_student, default_account)
    assert (
        api(parent).post("/api/v1/users/self/observees", {"pairing_code": code}).status_code == 200
    )
    other = make_user("Other Parent", default_account)
    response = api(other).post("/api/v1/users/self/observees", {"pairing_code": code})
    assert response.status_code == 422
    assert linked_student_ids(other) == []


def test_refused_pairing_code_is_not_burnt(
    api, external_parent, parent, enrolled_student, default_account
):
    """Difference from Canvas: a refused redemption leaves the code usable."""
    code = code_for(enrolled_student, default_account)
    response = api(external_parent).post("/api/v1/users/self/observees", {"pairing_code": code})
    assert response.status_code == 422
    assert error_message(response) == "Unknown observee."
    assert PairingCode.objects.get().workflow_state == "active"
    assert linked_student_ids(external_parent) == []
    # the rightful parent can still use it
    assert (
        api(parent).post("/api/v1/users/self/observees", {"pairing_code": code}).status_code == 200
    )


def test_own_pairing_code_is_422_unknown_observee(api, enrolled_student, default_account):
    """Difference from Canvas (200, nothing linked): a self-link is refused, in Canvas's words.

    Canvas answers a self-link by credentials "Unknown observee." (422); the
    same words serve every way of linking yourself.
    """
    code = code_for(enrolled_student, default_account)
    response = api(enrolled_student).post("/api/v1/users/self/observees", {"pairing_code": code})
    assert response.status_code == 422
    assert response.json() == {"errors": [{"message": "Unknown observee."}]}
    assert PairingCode.objects.get().workflow_state == "active"


def test_admin_links_with_students_access_token(api, allowed_admin, parent, student, token_for):
    response = api(allowed_admin).post(
        f"/api/v1/users/{parent.pk}/observees", {"access_token": token_for(student)}
    )
    assert response.status_code == 200, response.content
    assert response.json()["id"] == student.pk
    assert linked_student_ids(parent) == [student.pk]
    assert ObservationLink.objects.get().source == LinkSource.ACCESS_TOKEN


def test_access_token_takes_precedence(api, parent, student, student2, token_for):
    response = api(parent).post(
        "/api/v1/users/self/observees",
        {"access_token": token_for(student), "pairing_code": "ABCD-EFGH", **credentials(student2)},
    )
    assert response.status_code == 200
    assert linked_student_ids(parent) == [student.pk]


def test_invalid_access_token_is_422(api, allowed_admin, parent):
    response = api(allowed_admin).post(
        f"/api/v1/users/{parent.pk}/observees", {"access_token": "Not A Valid Token"}
    )
    assert response.status_code == 422
    assert response.json() == {"errors": [{"message": "Unknown observee."}]}
    assert linked_student_ids(parent) == []


def test_access_token_without_common_school_is_422(api, parent, external_student, token_for):
    """Difference from Canvas (200, nothing linked): no common school is "Unknown observee."."""
    response = api(parent).post(
        "/api/v1/users/self/observees", {"access_token": token_for(external_student)}
    )
    assert response.status_code == 422
    assert error_message(response) == "Unknown observee."
    assert linked_student_ids(parent) == []


def test_own_access_token_is_422(api, parent, token_for):
    response = api(parent).post("/api/v1/users/self/observees", {"access_token": token_for(parent)})
    assert response.status_code == 422
    assert error_message(response) == "Unknown observee."
    assert linked_student_ids(parent) == []


def test_own_credentials_are_422_unknown_observee(api, parent, default_account):
    """Canvas: linking yourself with your own login and password is "Unknown observee."."""
    login = parent.logins.get(root_account=default_account)
    response = api(parent).post(
        "/api/v1/users/self/observees",
        {"observee[unique_id]": login.unique_id, "observee[password]": TEST_PASSWORD},
    )
    assert response.status_code == 422
    assert response.json() == {"errors": [{"message": "Unknown observee."}]}
    assert linked_student_ids(parent) == []


def test_the_student_token_does_not_authenticate(api, parent, student, token_for):
    """``access_token`` in the body is the student's token to link, never the caller's."""
    response = api().post(
        f"/api/v1/users/{parent.pk}/observees", {"access_token": token_for(student)}
    )
    assert response.status_code == 401
    assert response.json()["status"] == "unauthenticated"
    assert linked_student_ids(parent) == []


@pytest.mark.parametrize("body", [{}, {"observee[password]": "x"}, {"observee[unique_id]": ""}])
def test_nothing_to_link_is_400(api, parent, body):
    """Difference from Canvas (500): a clear 400."""
    response = api(parent).post("/api/v1/users/self/observees", body)
    assert response.status_code == 400
    assert "pairing_code" in error_message(response)
    assert linked_student_ids(parent) == []


def test_existing_link_is_idempotent(api, parent, student, default_account, link):
    link(parent, student, default_account)
    response = api(parent).post("/api/v1/users/self/observees", credentials(student))
    assert response.status_code == 200
    assert ObservationLink.objects.filter(observer=parent).count() == 1


def test_root_account_all_links_on_every_common_school(
    api, multi_parent, multi_student, default_account, external_account
):
    response = api(multi_parent).post(
        "/api/v1/users/self/observees", {"root_account_id": "all", **credentials(multi_student)}
    )
    assert response.status_code == 200
    assert set(response.json()["observation_link_root_account_ids"]) == {
        default_account.pk,
        external_account.pk,
    }
    assert link_root_ids(multi_parent, multi_student) == {default_account.pk, external_account.pk}


def test_default_links_on_the_domain_school_only(api, multi_parent, multi_student, default_account):
    response = api(multi_parent).post("/api/v1/users/self/observees", credentials(multi_student))
    assert response.json()["observation_link_root_account_ids"] == [default_account.pk]
    assert link_root_ids(multi_parent, multi_student) == {default_account.pk}


def test_unknown_root_account_is_404(api, parent, student):
    response = api(parent).post(
        "/api/v1/users/self/observees", {"root_account_id": "999999", **credentials(student)}
    )
    assert_not_found(response)
    assert linked_student_ids(parent) == []


def test_repeated_failures_are_rate_limited(api, parent, student, settings):
    settings.OBSERVERS_RATE_LIMIT_FAILURES = 3
    client = api(parent)
    for _ in range(3):
        response = client.post("/api/v1/users/self/observees", {"pairing_code": "ABCD-EFGH"})
        assert response.status_code == 422
    response = client.post("/api/v1/users/self/observees", credentials(student))
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert error_message(response)
    assert linked_student_ids(parent) == []


def test_credential_linking_switched_off_is_401(api, parent, student, default_account):
    default_account.credential_linking_allowed = False
    default_account.save()
    assert_unauthorized(api(parent).post("/api/v1/users/self/observees", credentials(student)))
    assert linked_student_ids(parent) == []


def test_pairing_code_failures_are_rate_limited_per_address(
    api, make_user, default_account, enrolled_student, settings
):
    """Failures count per client address too, so switching accounts does not reset them."""
    settings.OBSERVERS_RATE_LIMIT_ADDRESS_FAILURES = 2
    code = code_for(enrolled_student, default_account)
    for name in ("First Guesser", "Second Guesser"):
        guesser = make_user(name, default_account)
        response = api(guesser).post("/api/v1/users/self/observees", {"pairing_code": "ZZZZ-ZZZZ"})
        assert response.status_code == 422
    late = make_user("Third Guesser", default_account)
    response = api(late).post("/api/v1/users/self/observees", {"pairing_code": code})
    assert response.status_code == 429
    assert response["Retry-After"].isdigit()
    assert PairingCode.objects.get().workflow_state == "active"
    assert linked_student_ids(late) == []
