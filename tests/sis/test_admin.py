"""The SIS admin pages: upload -> dry-run preview -> confirm -> batch report, and the export."""

import io
import re
import zipfile

import pytest
from django.test import Client
from django.urls import reverse

from linking.models import AuditEvent, ObservationLink, SisBatch
from tests import factories

HOST = "default.test"
USERS = "user_id,login_id,full_name,status\nS1,s1,Sam S,active\nP1,p1,Pat P,active\n"
OBSERVERS = "observer_id,student_id,status\nP1,S1,active\nP1,NOPE,active\n"


@pytest.fixture
def superuser(db):
    return factories.UserFactory(is_staff=True, is_superuser=True)


def zip_of(**files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    buffer.seek(0)
    buffer.name = "upload.zip"
    return buffer


def preview(client, root_account, upload, **extra):
    return client.post(
        reverse("admin:linking_sisbatch_import"),
        {"root_account": root_account.pk, "file": upload, **extra},
        HTTP_HOST=HOST,
    )


@pytest.mark.parametrize("who", ["superuser", "staff_a"])
def test_upload_preview_confirm_report(client, request, root_account, who):
    client.force_login(request.getfixturevalue(who))

    response = preview(client, root_account, zip_of(**{"b.csv": OBSERVERS, "a.csv": USERS}))

    assert response.status_code == 200
    body = response.content.decode()
    assert "Preview" in body
    assert "upload.zip/a.csv" in body and "users" in body
    assert "A student referenced a non-existent user NOPE" in body
    # The preview wrote nothing.
    assert not ObservationLink.objects.exists()
    assert not SisBatch.objects.exists()
    token = response.context["confirm_form"].initial["token"]

    confirmed = client.post(
        reverse("admin:linking_sisbatch_confirm"), {"token": token}, HTTP_HOST=HOST
    )

    batch = SisBatch.objects.get()
    assert confirmed.status_code == 302
    assert confirmed["Location"] == reverse("admin:linking_sisbatch_change", args=[batch.pk])
    assert batch.workflow_state == SisBatch.State.IMPORTED_WITH_ERRORS
    assert batch.created_by == request.getfixturevalue(who)
    link = ObservationLink.objects.active().get()
    assert link.sis_batch == batch
    assert AuditEvent.objects.get(link=link).actor == request.getfixturevalue(who)

    report = client.get(confirmed["Location"], HTTP_HOST=HOST)
    assert report.status_code == 200
    page = report.content.decode()
    assert "A student referenced a non-existent user NOPE" in page
    assert "user_observers" in page
    assert '<table class="sis-report">' in page  # rendered, not escaped

    # The token works once.
    again = client.post(reverse("admin:linking_sisbatch_confirm"), {"token": token}, HTTP_HOST=HOST)
    assert again.status_code == 302
    assert SisBatch.objects.count() == 1


def test_single_csv_upload_and_bad_file_type(client, superuser, root_account):
    client.force_login(superuser)
    upload = io.BytesIO(USERS.encode())
    upload.name = "users.csv"

    response = preview(client, root_account, upload)

    assert response.status_code == 200
    assert response.context["report"].totals()["created"] == 2

    wrong = io.BytesIO(b"hello")
    wrong.name = "notes.txt"
    refused = preview(client, root_account, wrong)
    assert refused.status_code == 200
    assert "Upload a .csv file or a .zip of CSV files." in refused.content.decode()


def test_unreadable_upload_is_shown_not_a_500(client, superuser, root_account):
    client.force_login(superuser)
    upload = io.BytesIO("observer_id,student_id,status\nZoë,S1,active\n".encode("latin-1"))
    upload.name = "latin.csv"

    response = preview(client, root_account, upload)

    assert response.status_code == 200
    assert "not UTF-8 encoded text" in response.content.decode()


def test_mass_delete_needs_the_tick(client, superuser, root_account, make_user):
    client.force_login(superuser)
    for n in range(3):
        factories.ObservationLinkFactory(
            observer=make_user(f"O{n}", root_account, sis_user_id=f"O{n}"),
            student=make_user(f"S{n}", root_account, sis_user_id=f"S{n}"),
            root_account=root_account,
        )
    rows = "observer_id,student_id,status\nO0,S0,deleted\n"

    def upload():
        file = io.BytesIO(rows.encode())
        file.name = "del.csv"
        return file

    response = preview(client, root_account, upload())
    assert "confirm_form" in response.context
    assert "allow mass delete" in response.content.decode()
    assert "Confirm and import" not in response.content.decode()

    allowed = preview(client, root_account, upload(), allow_mass_delete="on")
    token = allowed.context["confirm_form"].initial["token"]
    client.post(reverse("admin:linking_sisbatch_confirm"), {"token": token}, HTTP_HOST=HOST)
    assert ObservationLink.objects.active().count() == 2


def test_export_download(client, staff_a, root_account, make_user):
    client.force_login(staff_a)
    observer = make_user("Pat", root_account, sis_user_id="P1")
    student = make_user("Sam", root_account, sis_user_id="S1")
    factories.ObservationLinkFactory(observer=observer, student=student, root_account=root_account)

    response = client.get(
        reverse("admin:linking_sisbatch_export", args=[root_account.pk]), HTTP_HOST=HOST
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == ["user_observers.csv", "users.csv"]
    assert archive.read("user_observers.csv").decode() == (
        "observer_id,student_id,status,end_date\nP1,S1,active,\n"
    )


def test_outsider_is_refused(client, staff_b, root_account, make_user):
    batch = SisBatch.objects.create(root_account=root_account, workflow_state="imported")
    client.force_login(staff_b)
    upload = io.BytesIO(USERS.encode())
    upload.name = "users.csv"

    # Another school's admin, on this school's host, gets nothing.
    responses = [
        client.get(reverse("admin:linking_sisbatch_import"), HTTP_HOST=HOST),
        preview(client, root_account, upload),
        client.get(
            reverse("admin:linking_sisbatch_export", args=[root_account.pk]), HTTP_HOST=HOST
        ),
        client.get(reverse("admin:linking_sisbatch_change", args=[batch.pk]), HTTP_HOST=HOST),
    ]

    assert all(r.status_code in (302, 403, 404) for r in responses), [
        r.status_code for r in responses
    ]
    assert SisBatch.objects.count() == 1
    assert not ObservationLink.objects.exists()


def test_staff_of_one_school_cannot_import_into_another(
    client, staff_a, root_account, other_root_account
):
    client.force_login(staff_a)
    upload = io.BytesIO(USERS.encode())
    upload.name = "users.csv"

    response = preview(client, other_root_account, upload)

    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not SisBatch.objects.exists()


def oneroster_zip():
    from pathlib import Path

    folder = Path(__file__).parent / "oneroster" / "v11_bulk"
    return zip_of(**{path.name: path.read_text() for path in sorted(folder.iterdir())})


def test_oneroster_bundle_preview_lists_changes_with_a_csv_then_imports(
    client, staff_a, staff_b, root_account
):
    client.force_login(staff_a)

    response = preview(client, root_account, oneroster_zip())

    assert response.status_code == 200
    page = response.content.decode()
    assert "What will change" in page
    assert "Maria Lopez observes Ava Lopez (parent)" in page
    assert "users.csv (agentSourcedIds)" in page
    assert not ObservationLink.objects.exists()
    download = client.get(response.context["changes_url"], HTTP_HOST=HOST)
    assert download.status_code == 200
    assert download["Content-Type"].startswith("text/csv")
    rows = b"".join(download.streaming_content).decode().splitlines()
    assert rows[0] == "kind,action,sis_id,description"
    assert "links,created,g-maria -> s-ben,Maria Lopez observes Ben Lopez (parent)" in rows
    assert len(rows) == 25
    # Another school's staff cannot read the preview of this upload.
    other = Client()
    other.force_login(staff_b)
    outsider = other.get(response.context["changes_url"], HTTP_HOST=HOST)
    assert outsider.status_code in (302, 404)
    assert not outsider.get("Content-Type", "").startswith("text/csv")

    token = response.context["confirm_form"].initial["token"]
    confirmed = client.post(
        reverse("admin:linking_sisbatch_confirm"), {"token": token}, HTTP_HOST=HOST
    )

    batch = SisBatch.objects.get()
    assert confirmed.status_code == 302
    assert (batch.format, batch.workflow_state) == ("oneroster", "imported")
    assert ObservationLink.objects.active().filter(sis_batch=batch).count() == 4
    # The upload and its preview are gone once imported.
    assert client.get(response.context["changes_url"], HTTP_HOST=HOST).status_code == 404


def test_batch_report_after_an_allowed_mass_delete_does_not_warn_again(
    client, superuser, root_account, make_user
):
    client.force_login(superuser)
    for n in range(3):
        factories.ObservationLinkFactory(
            observer=make_user(f"O{n}", root_account, sis_user_id=f"O{n}"),
            student=make_user(f"S{n}", root_account, sis_user_id=f"S{n}"),
            root_account=root_account,
        )
    file = io.BytesIO(b"observer_id,student_id,status\nO0,S0,deleted\n")
    file.name = "del.csv"
    allowed = preview(client, root_account, file, allow_mass_delete="on")
    token = allowed.context["confirm_form"].initial["token"]

    confirmed = client.post(
        reverse("admin:linking_sisbatch_confirm"), {"token": token}, HTTP_HOST=HOST
    )
    report = client.get(confirmed["Location"], HTTP_HOST=HOST)

    body = report.content.decode()
    assert ObservationLink.objects.active().count() == 2
    assert "it runs only with" not in body
    assert "This import deleted 1 of 3 active links" in body
    batch = SisBatch.objects.get()
    assert batch.workflow_state == SisBatch.State.IMPORTED


def test_batch_pages_show_states_in_words(client, staff_a, root_account):
    client.force_login(staff_a)
    batch = SisBatch.objects.create(
        root_account=root_account, workflow_state=SisBatch.State.IMPORTED_WITH_ERRORS
    )
    listing = client.get(reverse("admin:linking_sisbatch_changelist"), HTTP_HOST=HOST)
    page = client.get(reverse("admin:linking_sisbatch_change", args=[batch.pk]), HTTP_HOST=HOST)
    for response in (listing, page):
        # What a person reads: the text, not the addresses of filter links.
        text = re.sub(r"<[^>]+>", " ", response.content.decode())
        assert response.status_code == 200
        assert "imported with errors" in text
        assert "imported_with_messages" not in text
    assert str(batch) == f"SIS batch #{batch.pk} (imported with errors)"
