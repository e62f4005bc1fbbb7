"""Every changelist runs the same number of queries for 1 row and for 8: no query per row."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from linking.models import EnrollmentType, SisBatch, WebhookEndpoint
from linking.services.accounts import create_course, create_sub_account, make_account_admin
from linking.services.context import Actor
from linking.services.enrollments import enroll_user
from linking.services.links import link_observer
from linking.services.pairing import issue_pairing_code
from linking.services.tokens import issue_access_token
from tests import factories

pytestmark = pytest.mark.django_db


def _add_rows(root_account, make_user, n):
    """n more rows in every model whose changelist shows foreign keys."""
    for i in range(n):
        sub = create_sub_account(parent=root_account, name=f"Dept {i} {root_account.pk}")
        course = create_course(account=sub, name=f"Course {i}")
        factories.CourseRoleOverrideFactory(account=sub)
        helper = make_user(f"Helper {i}", root_account)
        make_account_admin(user=helper, account=sub)
        child = make_user(f"Child {i}", root_account)
        enroll_user(user=child, course=course, type=EnrollmentType.STUDENT)
        link_observer(
            observer=make_user(f"Parent {i}", root_account),
            student=child,
            root_account=root_account,
            actor=Actor.system("admin"),
        )
        issue_pairing_code(student=child, root_account=root_account, actor=Actor(user=helper))
        issue_access_token(user=child, actor=Actor(user=helper))
        SisBatch.objects.create(root_account=root_account, created_by=helper)


CHANGELISTS = [
    "account",
    "accountadmin",
    "accesstoken",
    "auditevent",
    "course",
    "courseroleoverride",
    "emailnotification",
    "observationlink",
    "pairingcode",
    "role",
    "sisbatch",
    "user",
    "webhookdelivery",
]


@pytest.mark.parametrize("model_name", CHANGELISTS)
def test_changelist_query_count_does_not_grow_with_rows(
    admin_a, root_account, make_user, model_name, settings
):
    settings.OBSERVERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    WebhookEndpoint.objects.get_or_create(
        root_account=root_account,
        url="http://127.0.0.1:9/hook",
        defaults={"events": ["link.created"]},
    )
    url = f"/admin/linking/{model_name}/"

    def count():
        admin_a.get(url)  # warm the session and caches
        with CaptureQueriesContext(connection) as queries:
            response = admin_a.get(url)
        assert response.status_code == 200
        return len(queries)

    _add_rows(root_account, make_user, 1)
    few = count()
    _add_rows(root_account, make_user, 7)
    many = count()
    assert many == few, f"{model_name}: {few} queries with few rows, {many} with more"
