"""The benchmark data generator builds a consistent tenant (bulk writes, so check the result)."""

import json

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count

from linking.models import (
    AccessToken,
    Account,
    Enrollment,
    EnrollmentType,
    Login,
    ObservationLink,
    PairingCode,
    User,
)
from linking.services.context import Actor
from linking.services.enrollments import MIRRORED_STATES
from linking.services.pairing import (
    find_redeemable_code,
    hash_code,
    normalize_code,
    redeem_pairing_code,
)
from linking.services.tokens import authenticate_access_token


@pytest.fixture
def generated(db, tmp_path):
    output = tmp_path / "data.json"
    call_command(
        "generate_load_data",
        users=400,
        links=200,
        codes=400,
        courses=6,
        domain="gen.test",
        output=str(output),
    )
    return json.loads(output.read_text())


def test_counts_personas_and_tokens(generated):
    root = Account.objects.get(domain="gen.test")
    assert User.objects.count() == 400
    assert Login.objects.filter(root_account=root).count() == 400
    assert not User.objects.filter(avatar_url="").exists()
    assert ObservationLink.objects.filter(root_account=root).count() == 200
    assert ObservationLink.objects.filter(workflow_state="deleted").exists()
    users = generated["users"]
    assert set(
        ObservationLink.objects.active()
        .filter(observer_id=users["parent2"])
        .values_list("student_id", flat=True)
    ) == set(users["children"])
    assert ObservationLink.objects.active().filter(observer_id=users["observer100"]).count() == 100
    # Ordinary parents observe one to four children.
    per_parent = (
        ObservationLink.objects.exclude(observer_id__in=[users["parent2"], users["observer100"]])
        .values("observer_id")
        .annotate(n=Count("id"))
    )
    assert {row["n"] for row in per_parent} <= {1, 2, 3, 4}
    # Every token plaintext in the file authenticates as its persona.
    for key, plaintext in generated["tokens"].items():
        token = authenticate_access_token(plaintext)
        assert token is not None, key
    assert AccessToken.objects.count() == len(generated["tokens"])
    assert authenticate_access_token(generated["tokens"]["admin"]).user_id == users["admin"]


def test_observer_enrollments_mirror_links(generated):
    for link in ObservationLink.objects.all():
        mirrorable = Enrollment.objects.filter(
            user_id=link.student_id,
            type=EnrollmentType.STUDENT,
            workflow_state__in=MIRRORED_STATES,
        ).count()
        observer_enrollments = Enrollment.objects.filter(
            user_id=link.observer_id, associated_user_id=link.student_id, type="observer"
        )
        assert observer_enrollments.count() == mirrorable
        expected = {"deleted"} if link.workflow_state == "deleted" else {"active", "inactive"}
        states = set(observer_enrollments.values_list("workflow_state", flat=True))
        assert states <= expected


def test_codes_expire_and_redeem_once(generated):
    root = Account.objects.get(domain="gen.test")
    assert PairingCode.objects.count() == 400
    assert PairingCode.objects.expired().count() == 80
    assert len(generated["redeem"]) == 320
    # No redeemer gets two codes of one student: every redemption makes a new link.
    student_of = dict(PairingCode.objects.values_list("code_hash", "student_id"))
    pairs = [
        (index, student_of[hash_code(normalize_code(code))]) for index, code in generated["redeem"]
    ]
    assert len(set(pairs)) == len(pairs)
    redeemer_index, code = generated["redeem"][0]
    redeemer = User.objects.get(pk=generated["users"]["redeemers"][redeemer_index])
    actor = Actor(user=redeemer)
    found = find_redeemable_code(code=code, root_account=root, actor=actor)
    redeem_pairing_code(code=code, observer=redeemer, root_account=root, actor=actor)
    assert (
        ObservationLink.objects.active()
        .filter(observer=redeemer, student_id=found.student_id)
        .exists()
    )
    assert PairingCode.objects.get(pk=found.pk).workflow_state == "redeemed"
    # The services' own mirroring agrees with the generated enrollments.
    assert (
        Enrollment.objects.filter(
            user=redeemer, associated_user_id=found.student_id, workflow_state="active"
        ).count()
        == Enrollment.objects.filter(
            user_id=found.student_id, type="student", workflow_state__in=MIRRORED_STATES
        ).count()
    )


def test_refuses_a_domain_already_served(generated, tmp_path):
    with pytest.raises(CommandError):
        call_command(
            "generate_load_data",
            users=400,
            links=200,
            domain="gen.test",
            output=str(tmp_path / "again.json"),
        )
    assert User.objects.count() == 400
