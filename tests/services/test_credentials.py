"""Identifying a student by login and password (Canvas's legacy linking path)."""

import pytest

from linking.models import AuditAction, AuditEvent, ObservationLink
from linking.services import links, pairing
from linking.services.credentials import find_student_by_credentials
from linking.services.errors import (
    FeatureDisabled,
    InvalidCredentials,
    InvalidPairingCode,
    RateLimited,
    UnknownObservee,
)
from tests import factories
from tests.factories import TEST_PASSWORD


def check(unique_id, password, root_account, actor):
    return find_student_by_credentials(
        unique_id=unique_id, password=password, root_account=root_account, actor=actor
    )


def test_correct_credentials_find_the_student(student, parent, root_account, act):
    login = student.logins.get()
    assert check(login.unique_id.upper(), TEST_PASSWORD, root_account, act(parent)) == student
    assert not AuditEvent.objects.filter(action=AuditAction.CREDENTIALS_FAILED).exists()


def test_wrong_password_is_refused_and_recorded(student, parent, root_account, act):
    login = student.logins.get()
    with pytest.raises(InvalidCredentials):
        check(login.unique_id, TEST_PASSWORD + "bad credentials", root_account, act(parent))
    event = AuditEvent.objects.get(action=AuditAction.CREDENTIALS_FAILED)
    assert event.detail == {"reason": "wrong_password"} and event.actor == parent
    assert TEST_PASSWORD not in str(event.detail)


def test_unknown_login_and_other_schools_logins_are_unknown(
    make_user, parent, root_account, other_root_account, act
):
    external = make_user("External Child", other_root_account)
    with pytest.raises(UnknownObservee):
        check(external.logins.get().unique_id, TEST_PASSWORD, root_account, act(parent))
    with pytest.raises(UnknownObservee):
        check("nobody@example.test", TEST_PASSWORD, root_account, act(parent))
    assert AuditEvent.objects.filter(action=AuditAction.CREDENTIALS_FAILED).count() == 2


def test_login_without_password_never_matches(make_user, parent, root_account, act):
    student = make_user("No Password")
    login = factories.LoginFactory(user=student, root_account=root_account)
    login.password = ""  # as add_login stores "no password"
    login.save()
    with pytest.raises(InvalidCredentials):
        check(login.unique_id, "", root_account, act(parent))


def test_empty_password_never_matches(make_user, parent, root_account, act):
    student = make_user("Empty Password")
    login = factories.LoginFactory(user=student, root_account=root_account, password="")
    assert login.check_password("")  # the hash of "" would match...
    with pytest.raises(InvalidCredentials):  # ...but the service refuses it
        check(login.unique_id, "", root_account, act(parent))


def test_switched_off_per_school(student, parent, root_account, act):
    root_account.credential_linking_allowed = False
    root_account.save()
    with pytest.raises(FeatureDisabled):
        check(student.logins.get().unique_id, TEST_PASSWORD, root_account, act(parent))


def test_credential_failures_share_the_limit_with_pairing_codes(
    settings, student, parent, root_account, act
):
    settings.OBSERVERS_RATE_LIMIT_FAILURES = 2
    login = student.logins.get()
    with pytest.raises(InvalidCredentials):
        check(login.unique_id, "wrong", root_account, act(parent))
    with pytest.raises(InvalidPairingCode):
        pairing.redeem_pairing_code(
            code="ZZZZ-ZZZZ", observer=parent, root_account=root_account, actor=act(parent)
        )
    with pytest.raises(RateLimited):
        check(login.unique_id, TEST_PASSWORD, root_account, act(parent))


def test_restore_link_brings_back_a_removed_link(parent, student, root_account, system_actor):
    link, _ = links.link_observer(
        observer=parent, student=student, root_account=root_account, actor=system_actor
    )
    links.unlink_observer(link=link, actor=system_actor)
    restored, changed = links.restore_link(link=link, actor=system_actor)
    assert changed and restored.pk == link.pk
    assert ObservationLink.objects.get(pk=link.pk).workflow_state == "active"
    assert ObservationLink.objects.get(pk=link.pk).source == "admin"
