"""Who may enter the staff admin, and the tenant each of them sees."""

import pytest
from django.test import Client

from linking.models import AccountAdmin
from tests import factories
from tests.admin.conftest import SCHOOL_A, SCHOOL_B, client_for

pytestmark = pytest.mark.django_db


def login_id(user, root_account):
    return user.logins.get(root_account=root_account).unique_id


def test_staff_signs_in_with_a_login_of_the_current_school(staff_a, root_account):
    client = Client(HTTP_HOST=SCHOOL_A)
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": login_id(staff_a, root_account).upper(), "password": factories.TEST_PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert client.session["_auth_user_id"] == str(staff_a.pk)


def test_login_form_labels_the_login_id(root_account):
    response = Client(HTTP_HOST=SCHOOL_A).get("/admin/login/")
    assert response.status_code == 200
    assert "Login ID" in response.content.decode()


def test_staff_login_is_refused_on_another_schools_host(staff_a, root_account, other_root_account):
    client = Client(HTTP_HOST=SCHOOL_B)
    response = client.post(
        "/admin/login/",
        {"username": login_id(staff_a, root_account), "password": factories.TEST_PASSWORD},
    )
    assert response.status_code == 200  # the form again, with an error
    assert "_auth_user_id" not in client.session


def test_anonymous_visitor_is_sent_to_sign_in(root_account):
    response = Client(HTTP_HOST=SCHOOL_A).get("/admin/linking/observationlink/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_non_staff_user_cannot_enter(root_account, make_user):
    parent = make_user("Pat Parent", root_account)
    client = Client(HTTP_HOST=SCHOOL_A)
    response = client.post(
        "/admin/login/",
        {"username": login_id(parent, root_account), "password": factories.TEST_PASSWORD},
    )
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    forced = client_for(parent, SCHOOL_A)
    assert forced.get("/admin/linking/user/").status_code == 302


def test_student_cannot_enter(enrolled_student):
    student = enrolled_student("Sam Student")
    response = client_for(student, SCHOOL_A).get("/admin/linking/pairingcode/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_staff_flag_without_a_membership_in_this_school_is_refused(staff_b, root_account):
    # Bob is staff of school B; on school A's host he holds no membership.
    factories.LoginFactory(user=staff_b, root_account=root_account)
    response = client_for(staff_b, SCHOOL_A).get("/admin/")
    assert response.status_code == 302


def test_deleted_membership_loses_entry(staff_a):
    AccountAdmin.objects.filter(user=staff_a).update(workflow_state=AccountAdmin.State.DELETED)
    assert client_for(staff_a, SCHOOL_A).get("/admin/").status_code == 302


def test_superuser_sees_every_school(super_client, root_account, other_root_account):
    factories.ObservationLinkFactory(root_account=root_account)
    factories.ObservationLinkFactory(root_account=other_root_account)
    response = super_client.get("/admin/linking/observationlink/")
    assert response.status_code == 200
    assert response.context["cl"].result_count == 2
