import pytest
from django.test import Client

from linking.models import Login
from tests import factories
from tests.portal.conftest import HOST, OTHER_HOST

pytestmark = pytest.mark.django_db


def _login_id(user, root_account):
    return Login.objects.get(user=user, root_account=root_account).unique_id


def test_login_page_has_labelled_fields_and_csrf(web):
    response = web.get("/login/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<label for="id_username">Login id</label>' in html
    assert '<label for="id_password">' in html
    assert "csrfmiddlewaretoken" in html


def test_parent_signs_in_with_own_login_and_lands_on_observing(web, parent, root_account):
    response = web.post(
        "/login/",
        {"username": _login_id(parent, root_account).upper(), "password": factories.TEST_PASSWORD},
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert web.get("/").url == "/observing/"
    assert Login.objects.get(user=parent).last_login_at is not None


def test_wrong_password_is_refused_with_a_form_error(web, parent, root_account):
    response = web.post("/login/", {"username": _login_id(parent, root_account), "password": "x"})
    assert response.status_code == 200
    assert "That login id and password do not match" in response.content.decode()
    assert "_auth_user_id" not in web.session


def test_login_of_another_school_cannot_sign_in_here(root_account, other_root_account, make_user):
    outsider = make_user("Olga Other", other_root_account)
    login_id = _login_id(outsider, other_root_account)
    here = Client(HTTP_HOST=HOST)
    response = here.post("/login/", {"username": login_id, "password": factories.TEST_PASSWORD})
    assert response.status_code == 200
    assert "_auth_user_id" not in here.session
    there = Client(HTTP_HOST=OTHER_HOST)
    response = there.post("/login/", {"username": login_id, "password": factories.TEST_PASSWORD})
    assert response.status_code == 302
    assert there.session["_auth_user_id"] == str(outsider.pk)


def test_sign_out_needs_post_and_ends_the_session(signed_in, parent):
    web = signed_in(parent)
    assert web.get("/logout/").status_code == 405
    response = web.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert "_auth_user_id" not in web.session


def test_home_sends_each_person_to_their_page(signed_in, web, student, parent, root_account):
    assert web.get("/").url.startswith("/login/")
    assert signed_in(student).get("/").url == "/pairing/"
    assert signed_in(parent).get("/").url == "/observing/"
    staff = factories.AccountAdminFactory(account=root_account).user
    factories.LoginFactory(user=staff, root_account=root_account)
    response = signed_in(staff).get("/")
    assert response.status_code == 200
    assert 'href="/admin/"' in response.content.decode()


@pytest.mark.parametrize(
    "url", ["/observing/", "/observing/add/", "/observing/add/confirm/", "/pairing/"]
)
def test_anonymous_visitors_are_sent_to_sign_in(web, url):
    response = web.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={url}"


def test_session_of_another_school_is_not_trusted_here(root_account, other_root_account, make_user):
    from tests.portal.conftest import BACKEND

    outsider = make_user("Olga Other", other_root_account)
    there = Client(HTTP_HOST=OTHER_HOST)
    there.force_login(outsider, backend=BACKEND)
    assert there.get("/").url == "/observing/"
    # The same session cookie presented to this school's host.
    here = Client(HTTP_HOST=HOST)
    here.cookies = there.cookies
    response = here.get("/observing/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/observing/"
    assert "_auth_user_id" not in here.session
