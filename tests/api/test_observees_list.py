"""GET /api/v1/users/:user_id/observees (§7 items 8-18) and Canvas pagination (§4)."""

import re

import pytest

from linking.models import ObservationLink
from linking.services import accounts as account_services
from tests import factories
from tests.api.conftest import EXTERNAL_HOST
from tests.api.helpers import assert_not_found, assert_unauthorized


def ids(response):
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()]


def test_admin_lists_observees(api, allowed_admin, parent, student, default_account, link):
    link(parent, student, default_account)
    response = api(allowed_admin).get(f"/api/v1/users/{parent.pk}/observees")
    assert ids(response) == [student.pk]
    row = response.json()[0]
    assert set(row) == {
        "id",
        "name",
        "created_at",
        "sortable_name",
        "short_name",
        "observation_link_root_account_ids",
        # allowed_admin holds read_sis and view_user_logins on Default
        "sis_user_id",
        "integration_id",
        "login_id",
    }
    assert row["name"] == "Child Smith"
    assert row["sortable_name"] == "Smith, Child"
    assert row["short_name"] == "Child Smith"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["created_at"])
    assert row["login_id"] == student.logins.get().unique_id


def test_parent_lists_own_observees_without_sis_fields(api, parent, student, default_account, link):
    link(parent, student, default_account)
    response = api(parent).get(f"/api/v1/users/{parent.pk}/observees")
    assert ids(response) == [student.pk]
    assert "sis_user_id" not in response.json()[0]
    assert "login_id" not in response.json()[0]


def test_pronouns_only_when_set(api, parent, student, student2, default_account, link):
    student.pronouns = "she/her"
    student.save()
    link(parent, student, default_account)
    link(parent, student2, default_account)
    rows = {row["id"]: row for row in api(parent).get("/api/v1/users/self/observees").json()}
    assert rows[student.pk]["pronouns"] == "she/her"
    assert "pronouns" not in rows[student2.pk]


def test_multi_admin_lists_external_observees(
    api, multi_admin, external_parent, external_student, external_account, link
):
    link(external_parent, external_student, external_account)
    response = api(multi_admin, host=EXTERNAL_HOST).get(
        f"/api/v1/users/{external_parent.pk}/observees"
    )
    assert ids(response) == [external_student.pk]


def test_pagination_orders_by_sortable_name(
    api, allowed_admin, parent, student, student2, default_account, link
):
    link(parent, student, default_account)
    link(parent, student2, default_account)
    client = api(allowed_admin)
    url = f"/api/v1/users/{parent.pk}/observees"
    assert ids(client.get(url, {"per_page": 1, "page": 1})) == [student2.pk]  # "Smith, Another"
    assert ids(client.get(url, {"per_page": 1, "page": 2})) == [student.pk]  # "Smith, Child"


def test_deleted_links_are_not_listed(
    api, allowed_admin, parent, student, student2, default_account, link
):
    link(parent, student, default_account)
    gone = link(parent, student2, default_account)
    ObservationLink.objects.filter(pk=gone.pk).update(workflow_state="deleted")
    assert ids(api(allowed_admin).get(f"/api/v1/users/{parent.pk}/observees")) == [student.pk]


def test_unknown_observer_is_404(api, allowed_admin):
    assert_not_found(api(allowed_admin).get("/api/v1/users/0/observees"))


def test_deleted_observer_is_404(api, allowed_admin, parent):
    parent.workflow_state = "deleted"
    parent.save()
    assert_not_found(api(allowed_admin).get(f"/api/v1/users/{parent.pk}/observees"))


def test_admin_of_other_school_is_refused(
    api, allowed_admin, external_parent, external_student, external_account, link
):
    link(external_parent, external_student, external_account)
    response = api(allowed_admin, host=EXTERNAL_HOST).get(
        f"/api/v1/users/{external_parent.pk}/observees"
    )
    assert_unauthorized(response)


def test_disallowed_admin_is_refused(api, disallowed_admin, parent, student, default_account, link):
    link(parent, student, default_account)
    assert_unauthorized(api(disallowed_admin).get(f"/api/v1/users/{parent.pk}/observees"))


def test_outsider_is_refused(api, student2, parent, student, default_account, link):
    link(parent, student, default_account)
    assert_unauthorized(api(student2).get(f"/api/v1/users/{parent.pk}/observees"))


def test_sub_account_admin_is_refused(
    api, sub_account_admin, parent, student, default_account, link
):
    # manage_user_observers only counts on the root account itself.
    link(parent, student, default_account)
    assert_unauthorized(api(sub_account_admin).get(f"/api/v1/users/{parent.pk}/observees"))


def test_avatar_follows_the_students_school(
    api, parent, student, default_account, external_account, link
):
    default_account.avatars_enabled = True
    default_account.save()
    student.avatar_url = "/relative/canvas/path"
    student.save()
    link(parent, student, default_account)
    response = api(parent).get(f"/api/v1/users/{parent.pk}/observees", {"include[]": "avatar_url"})
    assert ids(response) == [student.pk]
    assert [row["avatar_url"] for row in response.json()] == [
        "http://default.test/relative/canvas/path"
    ]
    without = api(parent).get(f"/api/v1/users/{parent.pk}/observees").json()
    assert "avatar_url" not in without[0]


def test_avatar_shown_even_when_the_parents_school_has_none(
    api, make_user, external_account, default_account, student, link
):
    default_account.avatars_enabled = True
    default_account.save()
    external_account.avatars_enabled = False
    external_account.save()
    student.avatar_url = "/relative/canvas/path"
    student.save()
    parent = make_user("Roaming Parent", default_account, external_account)
    link(parent, student, default_account)
    response = api(parent, host=EXTERNAL_HOST).get(
        "/api/v1/users/self/observees", {"include": "avatar_url"}
    )
    assert response.json()[0]["avatar_url"] == "http://external.test/relative/canvas/path"


def test_no_avatar_when_the_students_school_has_avatars_off(
    api, parent, student, default_account, link
):
    student.avatar_url = "/relative/canvas/path"
    student.save()
    link(parent, student, default_account)
    rows = api(parent).get("/api/v1/users/self/observees", {"include[]": "avatar_url"}).json()
    assert "avatar_url" not in rows[0]


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
    url = f"/api/v1/users/{multi_parent.pk}/observees"
    assert api(allowed_admin).get(url).json()[0]["observation_link_root_account_ids"] == [
        default_account.pk
    ]
    assert set(api(multi_admin).get(url).json()[0]["observation_link_root_account_ids"]) == {
        default_account.pk,
        external_account.pk,
    }


def test_sis_fields_need_read_sis(api, make_user, default_account, parent, student, link):
    login = student.logins.get()
    login.sis_user_id = "S-1"
    login.integration_id = "I-1"
    login.save()
    link(parent, student, default_account)
    manager = make_user("Observer Manager", default_account)
    role = factories.RoleFactory(root_account=default_account, manage_user_observers=True)
    account_services.make_account_admin(user=manager, account=default_account, role=role)
    row = api(manager).get(f"/api/v1/users/{parent.pk}/observees").json()[0]
    assert "sis_user_id" not in row
    assert "login_id" not in row
    role.read_sis = True
    role.save()
    row = api(manager).get(f"/api/v1/users/{parent.pk}/observees").json()[0]
    assert (row["sis_user_id"], row["integration_id"]) == ("S-1", "I-1")
    assert "login_id" not in row


# --- pagination --------------------------------------------------------------------------------


@pytest.fixture
def many_observees(make_user, default_account, parent, link):
    students = [make_user(f"Kid{n:02d} Zed", default_account) for n in range(25)]
    for kid in students:
        link(parent, kid, default_account)
    return students


def links_of(response) -> dict[str, str]:
    result = {}
    for part in response["Link"].split(","):
        url, rel = re.fullmatch(r'<([^>]+)>; rel="(\w+)"', part).groups()
        result[rel] = url
    return result


def test_link_header_in_canvas_order(api, parent, many_observees):
    response = api(parent).get(
        f"/api/v1/users/{parent.pk}/observees",
        {"per_page": 10, "page": 2, "include[]": "avatar_url"},
    )
    assert len(response.json()) == 10
    base = f"http://default.test/api/v1/users/{parent.pk}/observees?include%5B%5D=avatar_url&"
    assert response["Link"] == ",".join(
        [
            f'<{base}page=2&per_page=10>; rel="current"',
            f'<{base}page=3&per_page=10>; rel="next"',
            f'<{base}page=1&per_page=10>; rel="prev"',
            f'<{base}page=1&per_page=10>; rel="first"',
            f'<{base}page=3&per_page=10>; rel="last"',
        ]
    )


def test_link_header_keeps_the_user_id_as_given_and_sorts_params(api, parent, many_observees):
    response = api(parent).get("/api/v1/users/self/observees?zeta=1&alpha=b%20c&per_page=10&page=3")
    assert len(response.json()) == 5
    rels = links_of(response)
    assert list(rels) == ["current", "prev", "first", "last"]
    assert rels["current"] == (
        "http://default.test/api/v1/users/self/observees?alpha=b%20c&zeta=1&page=3&per_page=10"
    )


def test_walking_all_pages_returns_every_observee_once(api, parent, many_observees):
    client = api(parent)
    url = "/api/v1/users/self/observees?per_page=10"
    seen = []
    while url:
        response = client.get(url.replace("http://default.test", ""))
        seen += ids(response)
        url = links_of(response).get("next")
    assert sorted(seen) == sorted(kid.pk for kid in many_observees)
    assert len(seen) == 25


@pytest.mark.parametrize(
    ("per_page", "expected"),
    [("", 10), ("0", 1), ("-5", 1), ("abc", 1), ("7xyz", 7), ("1000000000000000000000000", 100)],
)
def test_per_page_is_clamped(api, parent, many_observees, per_page, expected):
    response = api(parent).get("/api/v1/users/self/observees", {"per_page": per_page})
    assert len(ids(response)) == min(expected, 25)
    assert f"per_page={expected}>" in response["Link"]


@pytest.mark.parametrize("page", ["0", "-1", "abc", "1.5", "99999999999999999999999"])
def test_bad_page_is_404(api, parent, student, default_account, link, page):
    link(parent, student, default_account)
    assert_not_found(api(parent).get("/api/v1/users/self/observees", {"page": page}))


def test_page_past_the_end_is_empty(api, parent, student, default_account, link):
    link(parent, student, default_account)
    response = api(parent).get("/api/v1/users/self/observees", {"page": 5})
    assert response.status_code == 200
    assert response.json() == []
    assert list(links_of(response)) == ["current", "prev", "first", "last"]
    assert "page=1&" in links_of(response)["last"]


def test_empty_list_has_first_and_last_on_page_one(api, parent):
    response = api(parent).get("/api/v1/users/self/observees")
    assert response.json() == []
    rels = links_of(response)
    assert list(rels) == ["current", "first", "last"]
    assert all("page=1&per_page=10" in url for url in rels.values())
