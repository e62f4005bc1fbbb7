"""The staff home: tasks grouped, and what needs attention, for this school only."""

import html
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from linking.models import (
    DeliveryStatus,
    EmailNotification,
    SisBatch,
    UnrecognisedLinkReport,
    WebhookDelivery,
    WebhookEndpoint,
)
from tests.admin.conftest import SCHOOL_A, client_for

pytestmark = pytest.mark.django_db


def text(response) -> str:
    plain = re.sub(r"<[^>]+>", " ", response.content.decode())
    return re.sub(r"\s+", " ", html.unescape(plain))


def _failed_email(school, person):
    return EmailNotification.objects.create(
        root_account=school,
        recipient=person,
        kind=EmailNotification.Kind.NEW_OBSERVER_TO_STUDENT,
        to_email="x@example.test",
        subject="s",
        body_text="b",
        status=DeliveryStatus.FAILED,
    )


def test_home_opens_on_the_tasks_staff_come_for(staff_a, root_account):
    response = client_for(staff_a, SCHOOL_A).get("/admin/")
    assert response.status_code == 200
    body = text(response)
    for heading in [
        "What would you like to do?",
        "Find a student or parent",
        "Pairing codes and letters",
        "Import from the SIS",
        "Needs attention",
        "School settings",
    ]:
        assert heading in body, heading
    page = response.content.decode()
    assert 'action="/admin/linking/user/"' in page and 'name="q"' in page
    assert 'href="/admin/linking/pairingcode/issue/"' in page
    assert 'href="/admin/linking/sisbatch/import/"' in page
    assert f'href="/admin/linking/account/{root_account.pk}/change/"' in page
    assert "Nothing needs attention" in body
    # The flat list of every section is still there, folded away.
    assert "All sections" in body and "Observation links" in body


def test_find_a_person_from_the_home_searches_this_school(staff_a, root_account, make_user):
    make_user("Samira Jones", root_account)
    admin = client_for(staff_a, SCHOOL_A)
    response = admin.get("/admin/linking/user/", {"q": "Samira"})
    assert response.status_code == 200
    assert "Samira Jones" in response.content.decode()


def test_needs_attention_counts_and_links_to_exactly_those_rows(
    staff_a, root_account, other_root_account, make_user
):
    person = make_user("Pat Parent", root_account)
    _failed_email(root_account, person)
    _failed_email(root_account, person)
    _failed_email(other_root_account, make_user("Other", other_root_account))
    endpoint = WebhookEndpoint.objects.create(root_account=root_account, url="https://h.test/x")
    WebhookDelivery.objects.create(
        endpoint=endpoint, event_type="link.created", body="{}", status=DeliveryStatus.FAILED
    )
    SisBatch.objects.create(root_account=root_account, workflow_state=SisBatch.State.FAILED)
    old = SisBatch.objects.create(root_account=root_account, workflow_state=SisBatch.State.FAILED)
    SisBatch.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    SisBatch.objects.create(root_account=other_root_account, workflow_state="failed")
    UnrecognisedLinkReport.objects.create(root_account=root_account, student=person)

    admin = client_for(staff_a, SCHOOL_A)
    body = text(admin.get("/admin/"))

    assert "2 E-mails that could not be delivered" in body
    assert "1 Webhook posts that failed" in body
    assert "1 SIS imports with errors (last 30 days)" in body
    assert "1 “This wasn't me” reports from families, not reviewed yet" in body
    assert "Nothing needs attention" not in body

    page = admin.get("/admin/").content.decode()
    emails_url = re.search(r'href="(/admin/linking/emailnotification/\?[^"]+)"', page).group(1)
    listing = admin.get(emails_url.replace("&amp;", "&"))
    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 2
    sis_url = re.search(r'href="(/admin/linking/sisbatch/\?[^"]+)"', page).group(1)
    listing = admin.get(sis_url.replace("&amp;", "&"))
    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 1


def test_sis_task_is_hidden_from_staff_without_sis_rights(root_account, make_user):
    from linking.services.accounts import make_account_admin
    from tests import factories

    clerk = make_user("Carl Clerk", root_account)
    role = factories.RoleFactory(root_account=root_account, name="Office", read_sis=False)
    make_account_admin(user=clerk, account=root_account, role=role)
    response = client_for(clerk, SCHOOL_A).get("/admin/")
    assert response.status_code == 200
    body = text(response)
    assert "Find a student or parent" in body
    assert "Import from the SIS" not in body


def test_home_offers_invitations_and_counts_links_awaiting_approval(
    staff_a, root_account, other_root_account, make_user
):
    from linking.models import ObservationLink

    student, parent = make_user("Ada Adult", root_account), make_user("Pat", root_account)
    ObservationLink.objects.create(
        observer=parent, student=student, root_account=root_account, workflow_state="pending"
    )
    elsewhere = make_user("Other", other_root_account)
    ObservationLink.objects.create(
        observer=make_user("Olly", other_root_account),
        student=elsewhere,
        root_account=other_root_account,
        workflow_state="pending",
    )
    admin = client_for(staff_a, SCHOOL_A)
    page = admin.get("/admin/").content.decode()
    body = text(admin.get("/admin/"))
    assert "1 Links waiting for an adult student's approval" in body
    assert 'href="/admin/linking/guardianinvitation/add/"' in page
    assert admin.get("/admin/linking/guardianinvitation/add/").status_code == 200
    url = re.search(r'href="(/admin/linking/observationlink/\?[^"]+)"', page).group(1)
    listing = admin.get(url.replace("&amp;", "&"))
    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 1
    assert ObservationLink.objects.filter(workflow_state="pending").count() == 2
