"""Every endpoint runs a fixed number of SQL queries, whether the user has 1 link or 30."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from linking.models import EnrollmentType
from linking.services import accounts as account_services
from linking.services.enrollments import enroll_user
from tests.api.conftest import DEFAULT_HOST

LINK_COUNTS = [1, 30]


@pytest.fixture
def family(make_user, default_account, parent, link):
    """family(n) -> n students linked to ``parent`` (each with a course enrollment)."""

    def make(n):
        course = account_services.create_course(account=default_account, name="Shared")
        kids = []
        for i in range(n):
            kid = make_user(f"Kid{i:02d} Doe", default_account)
            kid.avatar_url = "/a.png"
            kid.save()
            enroll_user(user=kid, course=course, type=EnrollmentType.STUDENT)
            link(parent, kid, default_account)
            kids.append(kid)
        default_account.avatars_enabled = True
        default_account.save()
        return kids

    return make


def warm(client, path="/api/v1/users/self"):
    # The first request of a token records its last use; later ones inside a minute do not.
    assert client.get(path).status_code in (200, 401, 404)


# Exact counts for the read endpoints (middleware tenant + token + the endpoint's own).
@pytest.mark.parametrize("n", LINK_COUNTS)
def test_list_observees_as_parent(api, parent, family, django_assert_num_queries, n):
    family(n)
    client = api(parent)
    warm(client)
    # tenant, token, the page (with its total, link root accounts and avatars)
    with django_assert_num_queries(3):
        response = client.get(
            "/api/v1/users/self/observees", {"per_page": 100, "include[]": "avatar_url"}
        )
    assert len(response.json()) == n
    assert all("avatar_url" in row for row in response.json())


@pytest.mark.parametrize("n", LINK_COUNTS)
def test_list_observees_as_admin(api, allowed_admin, parent, family, django_assert_num_queries, n):
    family(n)
    client = api(allowed_admin)
    warm(client)
    # + resolve the user, their schools, the admin's permission, SIS visibility, logins
    with django_assert_num_queries(8):
        response = client.get(f"/api/v1/users/{parent.pk}/observees", {"per_page": 100})
    assert len(response.json()) == n
    assert all("login_id" in row for row in response.json())


@pytest.mark.parametrize("n", LINK_COUNTS)
def test_list_observers(api, parent, family, django_assert_num_queries, n):
    kids = family(n)
    client = api(kids[0])
    warm(client)
    with django_assert_num_queries(3):
        response = client.get("/api/v1/users/self/observers")
    assert [row["id"] for row in response.json()] == [parent.pk]


@pytest.mark.parametrize("n", LINK_COUNTS)
def test_show_observee(api, parent, family, django_assert_num_queries, n):
    kids = family(n)
    client = api(parent)
    warm(client)
    with django_assert_num_queries(4):
        response = client.get(f"/api/v1/users/self/observees/{kids[-1].pk}")
    assert response.json()["id"] == kids[-1].pk


@pytest.mark.parametrize("n", LINK_COUNTS)
def test_show_observer(api, parent, family, django_assert_num_queries, n):
    kids = family(n)
    client = api(kids[0])
    warm(client)
    with django_assert_num_queries(4):
        response = client.get(f"/api/v1/users/self/observers/{parent.pk}")
    assert response.json()["id"] == parent.pk


@pytest.mark.parametrize("n", LINK_COUNTS)
def test_show_user(api, parent, family, django_assert_num_queries, n):
    kids = family(n)
    client = api(parent)
    warm(client)
    with django_assert_num_queries(4):
        response = client.get(f"/api/v1/users/{kids[-1].pk}")
    assert response.json()["id"] == kids[-1].pk


# Write endpoints go through services that other modules own: assert the count does not
# depend on how many links the observer already has, rather than pinning the number.
def count_queries(call) -> int:
    with CaptureQueriesContext(connection) as context:
        response = call()
    assert response.status_code == 200, response.content
    return len(context.captured_queries)


def write_counts(api, make_user, default_account, family, link, make_call) -> list[int]:
    counts = []
    for n in LINK_COUNTS:
        parent = make_user(f"Writer {n}", default_account)
        kids = family(0)
        for i in range(n):
            kid = make_user(f"W{n}Kid{i:02d} Doe", default_account)
            link(parent, kid, default_account)
            kids.append(kid)
        target = make_user(f"Target {n}", default_account)
        course = account_services.create_course(account=default_account, name=f"T{n}")
        enroll_user(user=target, course=course, type=EnrollmentType.STUDENT)
        client = api(parent)
        warm(client)
        counts.append(count_queries(lambda c=client, p=parent, t=target: make_call(c, p, t)))
    return counts


def test_create_by_credentials_is_fixed(api, make_user, default_account, family, link):
    def call(client, parent, target):
        return client.post(
            "/api/v1/users/self/observees",
            {
                "observee[unique_id]": target.logins.get().unique_id,
                "observee[password]": "correct horse battery staple",
            },
        )

    first, second = write_counts(api, make_user, default_account, family, link, call)
    assert first == second


def test_create_by_pairing_code_is_fixed(api, make_user, default_account, family, link):
    def call(client, parent, target):
        code = api(target).post("/api/v1/users/self/observer_pairing_codes").json()["code"]
        return client.post("/api/v1/users/self/observees", {"pairing_code": code})

    first, second = write_counts(api, make_user, default_account, family, link, call)
    assert first == second


def test_pairing_code_issue_is_fixed(api, make_user, default_account, family, link):
    def call(client, parent, target):
        return api(target).post("/api/v1/users/self/observer_pairing_codes")

    first, second = write_counts(api, make_user, default_account, family, link, call)
    assert first == second


def test_put_and_delete_are_fixed(api, make_user, default_account, family, link, allowed_admin):
    admin = api(allowed_admin)
    warm(admin)

    def put(client, parent, target):
        return admin.put(f"/api/v1/users/{parent.pk}/observees/{target.pk}")

    first, second = write_counts(api, make_user, default_account, family, link, put)
    assert first == second

    def delete(client, parent, target):
        link(parent, target, default_account)
        return client.delete(f"/api/v1/users/self/observees/{target.pk}")

    first, second = write_counts(api, make_user, default_account, family, link, delete)
    assert first == second


def test_host_header_used(api, parent):
    assert api(parent).get("/api/v1/users/self").wsgi_request.get_host() == DEFAULT_HOST


@pytest.mark.parametrize("n", LINK_COUNTS)
def test_observer_enrollments_as_parent(api, parent, family, django_assert_num_queries, n):
    family(n)
    client = api(parent)
    warm(client)
    # tenant, token, the page (enrollments with their courses, users and root accounts)
    with django_assert_num_queries(3):
        response = client.get("/api/v1/users/self/enrollments", {"per_page": 100})
    assert len(response.json()) == n
    # observed_users: one more for the students and their enrollments
    with django_assert_num_queries(4):
        response = client.get(
            "/api/v1/users/self/enrollments", {"per_page": 100, "include[]": "observed_users"}
        )
    assert all(row["observed_user"]["enrollments"] for row in response.json())


@pytest.mark.parametrize("n", LINK_COUNTS)
def test_courses_as_parent(api, parent, family, django_assert_num_queries, n):
    family(n)
    client = api(parent)
    warm(client)
    # tenant, token, the user's enrollments with their courses and terms, the observed
    # students' enrollments
    with django_assert_num_queries(4):
        response = client.get("/api/v1/courses", {"include[]": "observed_users"})
    assert len(response.json()) == 1
    assert len(response.json()[0]["enrollments"]) == 2 * n
