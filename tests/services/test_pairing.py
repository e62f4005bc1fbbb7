"""Pairing codes: issue, normalise, hash, expire, cap, revoke, redeem, rate-limit."""

import io
import re
from datetime import timedelta

import pytest
from django.core.management import call_command

from linking.models import AuditAction, AuditEvent, Enrollment, ObservationLink, PairingCode
from linking.services import pairing
from linking.services.errors import (
    CannotObserveSelf,
    FeatureDisabled,
    InvalidPairingCode,
    NoCommonRootAccount,
    NotAuthorized,
    RateLimited,
)
from tests import factories

CODE_SHAPE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")


@pytest.fixture
def issue(root_account, act):
    def make(student, by=None):
        return pairing.issue_pairing_code(
            student=student, root_account=root_account, actor=act(by or student)
        )

    return make


def redeem(code, observer, root_account, actor):
    return pairing.redeem_pairing_code(
        code=code, observer=observer, root_account=root_account, actor=actor
    )


def state_of(issued):
    issued.pairing_code.refresh_from_db()
    return issued.pairing_code.workflow_state


# 77, 78
def test_issue_returns_an_active_hashed_code_valid_for_the_schools_lifetime(
    student, root_account, issue, frozen_now
):
    issued = issue(student)
    code = issued.pairing_code
    assert CODE_SHAPE.match(issued.plaintext)
    assert code.pk is not None and code.workflow_state == "active"
    assert code.student == student and code.root_account == root_account
    assert code.expires_at == frozen_now.now + timedelta(hours=24 * 7)
    assert re.fullmatch(r"[0-9a-f]{64}", code.code_hash)
    assert code.code_hash == pairing.hash_code(issued.plaintext.replace("-", ""))
    assert AuditEvent.objects.filter(
        action=AuditAction.CODE_ISSUED, pairing_code=code, student=student
    ).exists()


def test_lifetime_follows_the_root_account_setting(student, root_account, issue, frozen_now):
    root_account.pairing_code_lifetime_hours = 2
    root_account.save()
    assert issue(student).expires_at == frozen_now.now + timedelta(hours=2)


# 79
def test_issuing_twice_gives_two_different_codes(student, issue):
    first, second = issue(student), issue(student)
    assert first.pairing_code.pk != second.pairing_code.pk
    assert first.plaintext != second.plaintext
    assert PairingCode.objects.redeemable().filter(student=student).count() == 2


# 80
def test_expired_code_is_not_listed_and_cannot_be_redeemed(
    student, parent, root_account, issue, act, frozen_now
):
    issued = issue(student)
    frozen_now.advance(hours=24 * 7, seconds=1)
    assert not PairingCode.objects.redeemable().filter(student=student).exists()
    assert PairingCode.objects.expired().filter(student=student).count() == 1
    with pytest.raises(InvalidPairingCode):
        redeem(issued.plaintext, parent, root_account, act(parent))
    assert not ObservationLink.objects.exists()


def test_plaintext_is_never_stored(student, parent, root_account, issue, act):
    issued = issue(student)
    with pytest.raises(InvalidPairingCode):
        redeem(issued.plaintext[:-1] + "?", parent, root_account, act(parent))
    redeem(issued.plaintext, parent, root_account, act(parent))
    dump = io.StringIO()
    call_command("dumpdata", "linking", stdout=dump)
    canonical = issued.plaintext.replace("-", "")
    assert canonical not in dump.getvalue()
    assert issued.plaintext not in dump.getvalue()


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("abcd-efgh", "ABCDEFGH"),
        ("ABCD EFGH", "ABCDEFGH"),
        (" abcd\tefgh ", "ABCDEFGH"),
        ("oOiI-lLab", "001111AB"),
        ("ABCDEFG", None),  # too short
        ("ABCDEFGHJ", None),  # too long
        ("ABCD-EFGU", None),  # U is not Crockford
        ("", None),
        (None, None),
        ("A" * 100, None),
    ],
)
def test_normalize_code(typed, expected):
    assert pairing.normalize_code(typed) == expected


def test_redemption_tolerates_case_separators_and_lookalikes(
    student, parent, root_account, issue, act
):
    issued = issue(student)
    typed = issued.plaintext.lower().replace("0", "o").replace("1", "l").replace("-", " - ")
    got, made = redeem(typed, parent, root_account, act(parent))
    assert got == student
    assert [(link.observer, link.student, link.source) for link in made] == [
        (parent, student, "pairing_code")
    ]
    assert state_of(issued) == "redeemed"
    assert issued.pairing_code.redeemed_by == parent
    assert Enrollment.objects.get(user=parent, type="observer").associated_user == student
    assert AuditEvent.objects.filter(
        action=AuditAction.CODE_REDEEMED, pairing_code=issued.pairing_code, observer=parent
    ).exists()


def test_a_code_works_only_once(student, parent, make_user, root_account, issue, act):
    issued = issue(student)
    redeem(issued.plaintext, parent, root_account, act(parent))
    second_parent = make_user("Second Parent", root_account)
    with pytest.raises(InvalidPairingCode):
        redeem(issued.plaintext, second_parent, root_account, act(second_parent))
    assert not ObservationLink.objects.filter(observer=second_parent).exists()


def test_codes_are_scoped_to_the_root_account(
    make_user, student, root_account, other_root_account, issue, act
):
    issued = issue(student)
    observer = make_user("Both Schools Parent", root_account, other_root_account)
    with pytest.raises(InvalidPairingCode):
        redeem(issued.plaintext, observer, other_root_account, act(observer))
    assert state_of(issued) == "active"


def test_admin_with_permission_redeems_for_a_parent(
    student, parent, admin, root_account, issue, act
):
    issued = issue(student)
    _, made = redeem(issued.plaintext, parent, root_account, act(admin))
    assert made[0].observer == parent and made[0].created_by == admin
    assert state_of(issued) == "redeemed"


def test_issue_refused_when_codes_are_off(student, root_account, issue):
    root_account.pairing_codes_enabled = False
    root_account.save()
    with pytest.raises(FeatureDisabled):
        issue(student)
    assert not PairingCode.objects.exists()


def test_issue_refused_for_a_user_without_student_enrollment(parent, issue):
    with pytest.raises(NotAuthorized):
        issue(parent)
    assert not PairingCode.objects.exists()


def test_issue_refused_for_an_unrelated_user(student, parent, issue):
    with pytest.raises(NotAuthorized):
        issue(student, by=parent)
    assert not PairingCode.objects.exists()


# --- the cap of five --------------------------------------------------------


def test_sixth_code_revokes_the_oldest(student, issue, frozen_now):
    issued = []
    for _ in range(5):
        issued.append(issue(student))
        frozen_now.advance(minutes=1)
    assert PairingCode.objects.redeemable().filter(student=student).count() == 5
    sixth = issue(student)
    live = set(
        PairingCode.objects.redeemable().filter(student=student).values_list("pk", flat=True)
    )
    assert live == {c.pairing_code.pk for c in issued[1:]} | {sixth.pairing_code.pk}
    assert state_of(issued[0]) == "revoked"
    assert AuditEvent.objects.get(
        action=AuditAction.CODE_REVOKED, pairing_code=issued[0].pairing_code
    ).detail == {"reason": "cap"}


def test_expired_codes_do_not_count_towards_the_cap(student, issue, frozen_now):
    old = [issue(student) for _ in range(5)]
    frozen_now.advance(days=8)
    issue(student)
    assert all(state_of(c) == "active" for c in old)  # expired, not revoked
    assert PairingCode.objects.redeemable().filter(student=student).count() == 1


# --- revocation -------------------------------------------------------------


def test_student_revokes_their_code(student, parent, root_account, issue, act):
    issued = issue(student)
    assert pairing.revoke_pairing_code(pairing_code=issued.pairing_code, actor=act(student))
    assert state_of(issued) == "revoked"
    assert issued.pairing_code.revoked_by == student
    with pytest.raises(InvalidPairingCode):
        redeem(issued.plaintext, parent, root_account, act(parent))
    assert not pairing.revoke_pairing_code(pairing_code=issued.pairing_code, actor=act(student))
    assert AuditEvent.objects.filter(action=AuditAction.CODE_REVOKED).count() == 1


def test_staff_revoke_a_code(student, admin, issue, act):
    issued = issue(student)
    assert pairing.revoke_pairing_code(pairing_code=issued.pairing_code, actor=act(admin))
    assert state_of(issued) == "revoked" and issued.pairing_code.revoked_by == admin


def test_others_may_not_revoke(student, parent, make_user, root_account, issue, act):
    issued = issue(student)
    teacher = make_user("Teacher", root_account)
    course = Enrollment.objects.get(user=student).course
    factories.EnrollmentFactory(user=teacher, course=course, type="teacher")
    for outsider in (parent, teacher):
        with pytest.raises(NotAuthorized):
            pairing.revoke_pairing_code(pairing_code=issued.pairing_code, actor=act(outsider))
    assert state_of(issued) == "active"
    assert not AuditEvent.objects.filter(action=AuditAction.CODE_REVOKED).exists()


# --- refused redemptions never burn the code --------------------------------


def assert_failed_attempt_recorded(reason, code_plaintext):
    event = AuditEvent.objects.filter(action=AuditAction.CODE_FAILED).latest("id")
    assert event.detail["reason"] == reason
    canonical = code_plaintext.replace("-", "")
    assert canonical not in str(event.detail) and code_plaintext not in str(event.detail)
    return event


def test_wrong_code_is_refused_and_recorded(student, parent, root_account, issue, act):
    issued = issue(student)
    wrong = "0000-0000" if issued.plaintext != "0000-0000" else "1111-1111"
    with pytest.raises(InvalidPairingCode):
        redeem(wrong, parent, root_account, act(parent, ip="198.51.100.7"))
    event = assert_failed_attempt_recorded("no_match", wrong)
    assert event.actor == parent and str(event.ip_address) == "198.51.100.7"
    assert event.pairing_code is None
    assert state_of(issued) == "active"


def test_malformed_code_is_refused_and_recorded(parent, root_account, act):
    with pytest.raises(InvalidPairingCode):
        redeem("not a code!", parent, root_account, act(parent))
    assert_failed_attempt_recorded("malformed", "not a code!")


def test_self_link_does_not_consume(student, parent, root_account, issue, act):
    issued = issue(student)
    with pytest.raises(CannotObserveSelf):
        redeem(issued.plaintext, student, root_account, act(student))
    assert state_of(issued) == "active"
    event = assert_failed_attempt_recorded("self_link", issued.plaintext)
    assert event.pairing_code == issued.pairing_code
    redeem(issued.plaintext, parent, root_account, act(parent))
    assert state_of(issued) == "redeemed"


def test_no_common_root_account_does_not_consume(
    student, parent, make_user, root_account, other_root_account, issue, act
):
    issued = issue(student)
    stranger = make_user("External Parent", other_root_account)
    with pytest.raises(NoCommonRootAccount):
        redeem(issued.plaintext, stranger, root_account, act(stranger))
    assert state_of(issued) == "active"
    assert not ObservationLink.objects.exists()
    assert_failed_attempt_recorded("no_common_root_account", issued.plaintext)
    redeem(issued.plaintext, parent, root_account, act(parent))
    assert state_of(issued) == "redeemed"


def test_admin_without_permission_does_not_consume(
    student, parent, make_user, root_account, issue, act
):
    issued = issue(student)
    weak_admin = make_user("Disallowed Admin", root_account)
    role = factories.RoleFactory(root_account=root_account, manage_user_observers=False)
    factories.AccountAdminFactory(user=weak_admin, account=root_account, role=role)
    with pytest.raises(NotAuthorized):
        redeem(issued.plaintext, parent, root_account, act(weak_admin))
    assert state_of(issued) == "active"
    assert not ObservationLink.objects.exists()
    assert_failed_attempt_recorded("unauthorized", issued.plaintext)


# --- rate limiting ----------------------------------------------------------


@pytest.fixture
def limit_of_three(settings):
    settings.OBSERVERS_RATE_LIMIT_FAILURES = 3
    settings.OBSERVERS_RATE_LIMIT_ADDRESS_FAILURES = 3
    settings.OBSERVERS_RATE_LIMIT_WINDOW = 600


def fail_times(n, observer, root_account, actor):
    for _ in range(n):
        with pytest.raises(InvalidPairingCode):
            redeem("ZZZZ-ZZZZ", observer, root_account, actor)


def test_rate_limited_per_user_across_addresses(
    limit_of_three, student, parent, root_account, issue, act
):
    issued = issue(student)
    for ip in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        fail_times(1, parent, root_account, act(parent, ip=ip))
    with pytest.raises(RateLimited) as caught:
        redeem(issued.plaintext, parent, root_account, act(parent, ip="203.0.113.4"))
    assert 1 <= caught.value.retry_after <= 601
    assert state_of(issued) == "active"  # a limited attempt is not even looked at
    assert AuditEvent.objects.filter(action=AuditAction.CODE_FAILED).count() == 3


def test_rate_limited_per_address_across_users(
    limit_of_three, student, make_user, root_account, issue, act
):
    issued = issue(student)
    guessers = [make_user(f"Guesser {i}", root_account) for i in range(3)]
    for guesser in guessers:
        fail_times(1, guesser, root_account, act(guesser, ip="203.0.113.9"))
    fresh = make_user("Fresh Parent", root_account)
    with pytest.raises(RateLimited):
        redeem(issued.plaintext, fresh, root_account, act(fresh, ip="203.0.113.9"))
    # The same user from another address is not limited.
    redeem(issued.plaintext, fresh, root_account, act(fresh, ip="203.0.113.10"))
    assert state_of(issued) == "redeemed"


def test_below_the_limit_a_correct_code_still_works(
    limit_of_three, student, parent, root_account, issue, act
):
    issued = issue(student)
    fail_times(2, parent, root_account, act(parent))
    redeem(issued.plaintext, parent, root_account, act(parent))
    assert ObservationLink.objects.active().filter(observer=parent).count() == 1
