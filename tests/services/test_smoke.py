import pytest

from linking.models import Enrollment, ObservationLink, PairingCode
from linking.services import enrollments, links, pairing
from linking.services.context import Actor
from linking.services.errors import InvalidPairingCode
from tests import factories


@pytest.mark.django_db
def test_code_issue_and_redeem_links_and_enrolls(root_account, make_user, system_actor):
    student = make_user("Child Smith", root_account)
    parent = make_user("Parent Smith", root_account)
    course = factories.CourseFactory(account=root_account)
    enrollments.enroll_user(user=student, course=course, type="student")
    issued = pairing.issue_pairing_code(
        student=student, root_account=root_account, actor=Actor(user=student, source="api")
    )
    assert len(issued.plaintext) == 9
    got, made = pairing.redeem_pairing_code(
        code=issued.plaintext.lower().replace("-", " "),
        observer=parent,
        root_account=root_account,
        actor=Actor(user=parent, source="api", ip_address="10.0.0.1"),
    )
    assert got == student and len(made) == 1
    assert ObservationLink.objects.active().filter(observer=parent, student=student).count() == 1
    assert PairingCode.objects.get().workflow_state == "redeemed"
    obs = Enrollment.objects.get(user=parent, type="observer")
    assert obs.associated_user == student and obs.workflow_state == "active"
    with pytest.raises(InvalidPairingCode):
        pairing.redeem_pairing_code(
            code=issued.plaintext, observer=parent, root_account=root_account, actor=system_actor
        )
    links.unlink_observer(link=made[0], actor=system_actor)
    obs.refresh_from_db()
    assert obs.workflow_state == "deleted"
