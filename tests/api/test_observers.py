"""GET /api/v1/users/:user_id/observers and .../observers/:observer_id (§7 items 1-7, 38-44)."""

from tests.api.conftest import EXTERNAL_HOST
from tests.api.helpers import assert_not_found, assert_unauthorized


def test_admin_lists_observers_of_student(
    api, allowed_admin, parent, student, default_account, link
):
    link(parent, student, default_account)
    response = api(allowed_admin).get(f"/api/v1/users/{student.pk}/observers")
    assert response.status_code == 200
    assert [row["id"] for row in response.json()] == [parent.pk]
    assert response.json()[0]["observation_link_root_account_ids"] == [default_account.pk]


def test_student_lists_own_observers(api, parent, student, default_account, link):
    link(parent, student, default_account)
    response = api(student).get("/api/v1/users/self/observers")
    assert response.status_code == 200
    assert [row["id"] for row in response.json()] == [parent.pk]


def test_multi_admin_lists_external_observers(
    api, multi_admin, external_parent, external_student, external_account, link
):
    link(external_parent, external_student, external_account)
    response = api(multi_admin, host=EXTERNAL_HOST).get(
        f"/api/v1/users/{external_student.pk}/observers"
    )
    assert response.status_code == 200
    assert [row["id"] for row in response.json()] == [external_parent.pk]


def test_unknown_student_is_404(api, allowed_admin):
    assert_not_found(api(allowed_admin).get("/api/v1/users/0/observers"))


def test_admin_of_other_school_is_refused(
    api, allowed_admin, external_parent, external_student, external_account, link
):
    link(external_parent, external_student, external_account)
    response = api(allowed_admin, host=EXTERNAL_HOST).get(
        f"/api/v1/users/{external_student.pk}/observers"
    )
    assert_unauthorized(response)


def test_admin_without_permission_is_refused(
    api, disallowed_admin, parent, student, default_account, link
):
    link(parent, student, default_account)
    assert_unauthorized(api(disallowed_admin).get(f"/api/v1/users/{student.pk}/observers"))


def test_outsider_parent_is_refused(api, make_user, default_account, parent, student, link):
    link(parent, student, default_account)
    outsider = make_user("Nosy Neighbour", default_account)
    assert_unauthorized(api(outsider).get(f"/api/v1/users/{student.pk}/observers"))


def test_link_root_account_ids_are_filtered_for_admins(
    api,
    allowed_admin,
    multi_admin,
    multi_parent,
    multi_student,
    default_account,
    external_account,
    link,
):
    link(multi_parent, multi_student, default_account)
    link(multi_parent, multi_student, external_account)
    url = f"/api/v1/users/{multi_student.pk}/observers"
    as_allowed = api(allowed_admin).get(url).json()
    assert as_allowed[0]["observation_link_root_account_ids"] == [default_account.pk]
    as_multi = api(multi_admin).get(url).json()
    assert set(as_multi[0]["observation_link_root_account_ids"]) == {
        default_account.pk,
        external_account.pk,
    }
    as_self = api(multi_student).get(url).json()
    assert set(as_self[0]["observation_link_root_account_ids"]) == {
        default_account.pk,
        external_account.pk,
    }


# --- show observer ---------------------------------------------------------------------------


def test_admin_shows_observer(api, allowed_admin, parent, student, default_account, link):
    link(parent, student, default_account)
    response = api(allowed_admin).get(f"/api/v1/users/{student.pk}/observers/{parent.pk}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == parent.pk
    assert body["name"] == "Parent Smith"
    assert body["observation_link_root_account_ids"] == [default_account.pk]
    assert "avatar_url" not in body
    assert "sis_user_id" not in body


def test_student_shows_own_observer(api, parent, student, default_account, link):
    link(parent, student, default_account)
    response = api(student).get(f"/api/v1/users/self/observers/{parent.pk}")
    assert response.status_code == 200
    assert response.json()["id"] == parent.pk


def test_multi_admin_shows_external_observer(
    api, multi_admin, external_parent, external_student, external_account, link
):
    link(external_parent, external_student, external_account)
    response = api(multi_admin, host=EXTERNAL_HOST).get(
        f"/api/v1/users/{external_student.pk}/observers/{external_parent.pk}"
    )
    assert response.status_code == 200
    assert response.json()["id"] == external_parent.pk


def test_show_observer_unknown_user_is_404(api, allowed_admin, parent):
    assert_not_found(api(allowed_admin).get(f"/api/v1/users/0/observers/{parent.pk}"))


def test_show_observer_without_link_is_404(
    api, allowed_admin, parent, student, student2, default_account, link
):
    link(parent, student, default_account)
    assert_not_found(api(allowed_admin).get(f"/api/v1/users/{student2.pk}/observers/{parent.pk}"))


def test_show_observer_admin_of_other_school_is_refused(
    api, allowed_admin, external_parent, external_student, external_account, link
):
    link(external_parent, external_student, external_account)
    response = api(allowed_admin, host=EXTERNAL_HOST).get(
        f"/api/v1/users/{external_student.pk}/observers/{external_parent.pk}"
    )
    assert_unauthorized(response)


def test_show_observer_disallowed_admin_is_refused(
    api, disallowed_admin, parent, student, default_account, link
):
    link(parent, student, default_account)
    assert_unauthorized(
        api(disallowed_admin).get(f"/api/v1/users/{student.pk}/observers/{parent.pk}")
    )
