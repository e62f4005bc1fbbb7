"""Letters, CSV files and the admin's pages in the school's time zone; letters name the school."""

import csv
import datetime as dt
import io
import re
from zoneinfo import ZoneInfo

import pytest

from linking.models import AuditEvent, PairingCode
from tests.admin.conftest import run_action

pytestmark = pytest.mark.django_db

ISSUE = "/admin/linking/pairingcode/issue/"
AUDIT = "/admin/linking/auditevent/"
OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


@pytest.fixture(autouse=True)
def _chicago(root_account):
    root_account.time_zone = "America/Chicago"
    root_account.save()


def _chicago_iso(moment: dt.datetime) -> str:
    return moment.astimezone(ZoneInfo("America/Chicago")).isoformat(timespec="seconds")


def test_letters_name_the_school_and_give_the_expiry_in_its_time(
    admin_a, course_a, enrolled_student
):
    enrolled_student("Ada Lovelace", "S-1")
    response = admin_a.post(ISSUE, {"course": course_a.pk, "output": "letters"})
    page = response.content.decode()
    assert '<p class="pairing-school">Default School</p>' in page
    expires = PairingCode.objects.get().expires_at.astimezone(ZoneInfo("America/Chicago"))
    assert f"({expires:%Z})" in page and "(UTC)" not in page
    # As the letter writes it (Django's DATETIME_FORMAT: "7 a.m." on the hour, "7:05 a.m." else).
    from django.utils import formats

    assert formats.date_format(expires, "DATETIME_FORMAT") in page


def test_the_codes_csv_gives_the_expiry_in_iso_8601_with_the_schools_offset(
    admin_a, course_a, enrolled_student
):
    enrolled_student("Ada Lovelace", "S-1")
    response = admin_a.post(ISSUE, {"course": course_a.pk, "output": "csv"})
    (row,) = list(csv.reader(io.StringIO(response.content.decode())))[1:]
    assert OFFSET.match(row[4]) and row[4][-6:] in {"-06:00", "-05:00"}
    assert row[4] == _chicago_iso(PairingCode.objects.get().expires_at)


def test_the_audit_export_gives_times_with_the_schools_offset(
    admin_a, root_account, make_user, enrolled_student
):
    from linking.services.context import Actor
    from linking.services.links import link_observer

    link, _ = link_observer(
        observer=make_user("Pat Parent", root_account),
        student=enrolled_student("Sam Student"),
        root_account=root_account,
        actor=Actor.system(),
    )
    link_event = AuditEvent.objects.get(link=link)
    response = run_action(admin_a, AUDIT, "export_csv", [link_event])
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[1][1] == _chicago_iso(AuditEvent.objects.get(pk=link_event.pk).created_at)
    assert rows[1][1][-6:] in {"-06:00", "-05:00"}
