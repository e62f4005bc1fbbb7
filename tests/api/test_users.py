"""GET /api/v1/users/:user_id, which Canvas clients call before the observee methods."""

from tests.api.helpers import assert_not_found, assert_unauthorized


def test_self(api, parent):
    response = api(parent).get("/api/v1/users/self")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == parent.pk
    assert body["name"] == "Parent Smith"
    assert body["sortable_name"] == "Smith, Parent"
    assert body["created_at"].endswith("Z")


def test_linked_parent_and_student_see_each_other(api, parent, student, default_account, link):
    link(parent, student, default_account)
    assert api(parent).get(f"/api/v1/users/{student.pk}").json()["id"] == student.pk
    assert api(student).get(f"/api/v1/users/{parent.pk}").json()["id"] == parent.pk


def test_admin_sees_a_user_of_their_school(api, allowed_admin, student):
    assert api(allowed_admin).get(f"/api/v1/users/{student.pk}").status_code == 200


def test_outsider_is_refused(api, parent, student):
    assert_unauthorized(api(parent).get(f"/api/v1/users/{student.pk}"))


def test_admin_of_another_school_is_refused(api, allowed_admin, external_student):
    assert_unauthorized(api(allowed_admin).get(f"/api/v1/users/{external_student.pk}"))


def test_unknown_user_is_404(api, parent):
    assert_not_found(api(parent).get("/api/v1/users/0"))
