"""Acceptance: the unmodified ``canvasapi`` client library against a live server.

canvasapi has no method for ``GET users/:id/observers/:observer_id``; that
one call goes through its own low-level Requester, as a client would.
"""

import pytest
from canvasapi import Canvas
from canvasapi.exceptions import InvalidAccessToken, ResourceDoesNotExist, UnprocessableEntity
from canvasapi.paginated_list import PaginatedList
from canvasapi.requester import Requester
from canvasapi.user import User

from linking.models import EnrollmentType, ObservationLink, PairingCode
from linking.services import accounts as account_services
from linking.services.context import Actor
from linking.services.enrollments import enroll_user
from linking.services.links import link_observer
from linking.services.tokens import issue_access_token
from tests.factories import TEST_PASSWORD

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:Canvas may respond unexpectedly:UserWarning"),
]


def token(user) -> str:
    return issue_access_token(user=user, actor=Actor.system())[1]


@pytest.fixture
def school(db):
    # live_server answers on "localhost": that host names this school.
    return account_services.create_root_account(name="Live School", domain="localhost")


def person(school, name, *, password=TEST_PASSWORD):
    slug = name.lower().replace(" ", ".")
    return account_services.create_user_with_login(
        name=name, root_account=school, unique_id=f"{slug}@example.test", password=password
    )


def active_student_ids(observer) -> set[int]:
    return set(
        ObservationLink.objects.active()
        .filter(observer=observer)
        .values_list("student_id", flat=True)
    )


def test_canvasapi_observee_workflow(live_server, school):
    parent = person(school, "Pat Parent")
    by_credentials = person(school, "Cred Kid")
    by_token = person(school, "Token Kid")
    by_code = person(school, "Code Kid")
    by_id = person(school, "Put Kid")
    admin = person(school, "Ada Admin")
    account_services.make_account_admin(user=admin, account=school)
    course = account_services.create_course(account=school, name="Live course")
    enroll_user(user=by_code, course=course, type=EnrollmentType.STUDENT)

    canvas = Canvas(live_server.url, token(parent))
    me = canvas.get_user("self")
    assert me.id == parent.pk
    assert me.name == "Pat Parent"

    added = me.add_observee_with_credentials(
        observee={"unique_id": "cred.kid@example.test", "password": TEST_PASSWORD}
    )
    assert added.id == by_credentials.pk
    assert added.observation_link_root_account_ids == [school.pk]

    added = me.add_observee_with_credentials(access_token=token(by_token))
    assert added.id == by_token.pk

    kid = Canvas(live_server.url, token(by_code)).get_user("self")
    pairing_code = kid.create_pairing_code()
    assert pairing_code.user_id == by_code.pk
    assert pairing_code.workflow_state == "active"
    added = me.add_observee_with_credentials(pairing_code=pairing_code.code)
    assert added.id == by_code.pk
    assert PairingCode.objects.get().workflow_state == "redeemed"

    admin_view = Canvas(live_server.url, token(admin)).get_user(parent.pk)
    added = admin_view.add_observee(by_id.pk)
    assert added.id == by_id.pk

    assert active_student_ids(parent) == {by_credentials.pk, by_token.pk, by_code.pk, by_id.pk}
    listed = [user.id for user in me.get_observees()]
    assert sorted(listed) == sorted(active_student_ids(parent))

    shown = me.show_observee(by_token.pk)
    assert (shown.id, shown.name) == (by_token.pk, "Token Kid")

    removed = me.remove_observee(by_credentials.pk)
    assert removed.id == by_credentials.pk
    assert removed.observation_link_root_account_ids == []
    assert by_credentials.pk not in active_student_ids(parent)
    with pytest.raises(ResourceDoesNotExist):
        me.show_observee(by_credentials.pk)

    student_view = Canvas(live_server.url, token(by_token)).get_user("self")
    assert [user.id for user in student_view.get_observers()] == [parent.pk]
    # No canvasapi method for "show observer": its own requester makes the call.
    response = Requester(live_server.url, token(by_token)).request(
        "GET", f"users/{by_token.pk}/observers/{parent.pk}"
    )
    assert response.json()["id"] == parent.pk

    with pytest.raises(UnprocessableEntity):
        me.add_observee_with_credentials(pairing_code="ZZZZ-ZZZZ")
    with pytest.raises(InvalidAccessToken):
        Canvas(live_server.url, "not-a-token").get_user("self")


def test_canvasapi_follows_link_pagination(live_server, school, monkeypatch):
    requested = []
    original = Requester.request

    def spy(self, method, endpoint=None, *args, **kwargs):
        requested.append(kwargs.get("_url") or endpoint)
        return original(self, method, endpoint, *args, **kwargs)

    monkeypatch.setattr(Requester, "request", spy)
    parent = person(school, "Busy Parent")
    kids = [person(school, f"Kid{n:02d} Many") for n in range(25)]
    for kid in kids:
        link_observer(observer=parent, student=kid, root_account=school, actor=Actor.system())
    canvas = Canvas(live_server.url, token(parent))
    me = canvas.get_user("self")
    # User.get_observees() always asks for per_page=100 (canvasapi's PaginatedList default),
    # so the library's own PaginatedList is used directly to walk pages of 10.
    observees = PaginatedList(User, me._requester, "GET", f"users/{me.id}/observees", per_page=10)
    listed = [user.id for user in observees]
    assert listed == [kid.pk for kid in kids]  # sortable_name order, "Many, Kid00" first
    assert len(listed) == 25
    # three pages: the first request, then the two "next" URLs from the Link header
    assert len(requested) == 4  # get_user("self") + 3 pages
    assert requested[-1].endswith("page=3&per_page=10")
    assert [user.id for user in me.get_observees()] == listed  # one page of up to 100
