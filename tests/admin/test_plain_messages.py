"""Staff read rules in plain words: no table constraint's name reaches a message."""

import pytest
from django.apps import apps
from django.db.models import BaseConstraint

from tests import factories
from tests.admin.conftest import SCHOOL_A, client_for

pytestmark = pytest.mark.django_db


def test_every_constraint_of_the_domain_has_a_message_in_words():
    for model in apps.get_app_config("linking").get_models():
        for constraint in model._meta.constraints:
            message = constraint.get_violation_error_message()
            default = BaseConstraint.default_violation_error_message % {"name": constraint.name}
            assert message != default, f"{model.__name__}.{constraint.name}"
            assert constraint.name not in message, constraint.name


def test_duplicate_login_id_in_the_person_form_reads_plainly(staff_a, root_account):
    from linking.models import Login

    factories.LoginFactory(root_account=root_account, unique_id="sam@school.test")
    person = factories.UserFactory(name="Other Person")
    login = factories.LoginFactory(root_account=root_account, user=person, unique_id="other@x.test")
    admin = client_for(staff_a, SCHOOL_A)
    page = admin.get(f"/admin/linking/user/{person.pk}/change/")
    from tests.admin.conftest import changeform_data

    data = changeform_data(page)
    prefix = next(k for k, v in data.items() if k.endswith("-unique_id") and v == "other@x.test")
    data[prefix] = "SAM@school.test"
    response = admin.post(f"/admin/linking/user/{person.pk}/change/", data)
    body = response.content.decode()
    assert response.status_code == 200
    assert "This login id is already used at this school." in body
    assert "login_unique_id_ci_per_root" not in body
    login.refresh_from_db()
    assert login.unique_id == "other@x.test"
    assert Login.objects.filter(unique_id__iexact="sam@school.test").count() == 1
