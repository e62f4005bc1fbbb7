"""Resolving Canvas user references inside the current root account."""

import pytest

from linking.services.errors import NotFound
from linking.services.resolution import resolve_root_account_param, resolve_user
from tests import factories


@pytest.fixture
def sis_student(make_user, root_account):
    user = make_user("Child Smith")
    factories.LoginFactory(
        user=user,
        root_account=root_account,
        unique_id="Child.Smith@School.test",
        sis_user_id="S-100",
        integration_id="INT-100",
    )
    return user


def resolve(reference, root_account, caller=None, **kwargs):
    return resolve_user(reference, caller=caller, root_account=root_account, **kwargs)


def test_self_is_the_caller(parent, root_account):
    assert resolve("self", root_account, caller=parent) == parent
    assert resolve("  self ", root_account, caller=parent) == parent


def test_self_without_a_caller_is_not_found(root_account):
    with pytest.raises(NotFound):
        resolve("self", root_account)


def test_integer_id(parent, root_account):
    assert resolve(str(parent.pk), root_account) == parent


@pytest.mark.parametrize(
    "reference", ["0", "-1", "99999999", "9223372036854775808", "1" * 19, "1" * 40]
)
def test_unknown_or_huge_integers_are_not_found(db, root_account, reference):
    with pytest.raises(NotFound):
        resolve(reference, root_account)


def test_deleted_users_are_not_found_unless_asked(parent, root_account):
    parent.workflow_state = "deleted"
    parent.save()
    with pytest.raises(NotFound):
        resolve(str(parent.pk), root_account)
    with pytest.raises(NotFound):
        resolve("self", root_account, caller=parent)
    assert resolve(str(parent.pk), root_account, include_deleted=True) == parent


def test_sis_user_id(sis_student, root_account):
    assert resolve("sis_user_id:S-100", root_account) == sis_student


def test_sis_login_id_is_case_insensitive(sis_student, root_account):
    assert resolve("sis_login_id:child.smith@school.TEST", root_account) == sis_student


def test_sis_integration_id(sis_student, root_account):
    assert resolve("sis_integration_id:INT-100", root_account) == sis_student


def test_sis_forms_only_see_the_current_root_account(
    sis_student, make_user, root_account, other_root_account
):
    twin = make_user("Other School Child")
    factories.LoginFactory(
        user=twin, root_account=other_root_account, unique_id="x@y.test", sis_user_id="S-200"
    )
    with pytest.raises(NotFound):
        resolve("sis_user_id:S-100", other_root_account)
    with pytest.raises(NotFound):
        resolve("sis_user_id:S-200", root_account)
    assert resolve("sis_user_id:S-200", other_root_account) == twin


def test_same_sis_id_in_two_schools_resolves_per_school(
    sis_student, make_user, root_account, other_root_account
):
    twin = make_user("Twin")
    factories.LoginFactory(user=twin, root_account=other_root_account, sis_user_id="S-100")
    assert resolve("sis_user_id:S-100", root_account) == sis_student
    assert resolve("sis_user_id:S-100", other_root_account) == twin


def test_deleted_logins_do_not_resolve(sis_student, root_account):
    sis_student.logins.update(workflow_state="deleted")
    with pytest.raises(NotFound):
        resolve("sis_user_id:S-100", root_account)


@pytest.mark.parametrize(
    "reference",
    [
        "",
        "me",
        "sis_user_id:",
        "sis_user_id:S-999",
        "SIS_USER_ID:S-100",
        "sis_user_id",
        "uuid:abc",
        "lti_user_id:S-100",
        "hex:sis_user_id:532d",
        "hex:sis_user_id:zz",
        "hex:sis_user_id:532",
        "hex:sis_user_id:ff",
        "hex:lti_user_id:532d313030",
        "uuid:00000000-0000-0000-0000-000000000000",
        "1.5",
        "12abc",
    ],
)
def test_unknown_forms_are_not_found(sis_student, root_account, reference):
    with pytest.raises(NotFound):
        resolve(reference, root_account)


def test_hex_and_uuid_forms(sis_student, root_account, other_root_account, make_user):
    """Canvas's ``hex:sis_user_id:<hex>`` (value hex-encoded) and ``uuid:<uuid>``."""
    assert b"S-100".hex() == "532d313030"
    assert resolve("hex:sis_user_id:532d313030", root_account) == sis_student
    assert resolve("hex:sis_user_id:532D313030", root_account) == sis_student
    login = sis_student.logins.get(root_account=root_account)
    assert resolve(f"hex:sis_login_id:{login.unique_id.upper().encode().hex()}", root_account) == (
        sis_student
    )
    assert resolve(f"uuid:{sis_student.uuid.hex}", root_account) == sis_student
    assert resolve(f"uuid:{sis_student.uuid}", other_root_account) == sis_student
    with pytest.raises(NotFound):
        resolve("hex:sis_user_id:532d313030", other_root_account)


def test_root_account_param(root_account, other_root_account):
    assert resolve_root_account_param(None, domain_root_account=root_account) == root_account
    assert resolve_root_account_param("", domain_root_account=root_account) == root_account
    assert resolve_root_account_param("all", domain_root_account=root_account) == "all"
    assert (
        resolve_root_account_param(str(other_root_account.pk), domain_root_account=root_account)
        == other_root_account
    )


@pytest.mark.parametrize("value", ["0", "abc", "-3", "9" * 30])
def test_bad_root_account_param_is_not_found(root_account, value):
    with pytest.raises(NotFound):
        resolve_root_account_param(value, domain_root_account=root_account)


def test_sub_account_is_not_a_root_account_param(root_account):
    sub = factories.SubAccountFactory(parent=root_account)
    with pytest.raises(NotFound):
        resolve_root_account_param(str(sub.pk), domain_root_account=root_account)
