"""SIS uploads: a zip bomb is refused before extraction; unconfirmed uploads expire.

The attack run uploaded a 146 KB zip holding one 150 MB line, which raised
a worker from 88 MB to 232 MB, and found that uploads previewed but never
confirmed stayed on disk forever.
"""

import io
import os
import resource
import time
import zipfile

import pytest
from django.test import Client
from django.urls import reverse

from linking.admin import sis_uploads
from linking.models import SisBatch, User
from linking.services.context import Actor
from linking.services.sis import import_sis
from linking.services.sis.reader import SisFileError
from tests.security.conftest import HOST_A

USERS = "user_id,login_id,full_name,status\nS1,s1,Sam S,active\n"
HEADER = b"user_id,login_id,full_name,status\n"


def _bomb(path, megabytes=150):
    """A zip of one users.csv whose second line is ``megabytes`` MB long, written in chunks."""
    chunk = b"a" * (1024 * 1024)
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("users.csv", "w", force_zip64=True) as member,
    ):
        member.write(HEADER + b"S1,")
        for _ in range(megabytes):
            member.write(chunk)
        member.write(b",Sam,active\n")
    return path


def _staff(schools):
    client = Client(HTTP_HOST=HOST_A)
    client.force_login(schools["a"]["admin"], backend="linking.auth_backends.LoginBackend")
    return client


def _preview(client, school, upload):
    return client.post(
        reverse("admin:linking_sisbatch_import"), {"root_account": school.pk, "file": upload}
    )


def _uploads_on_disk():
    return sorted(sis_uploads.upload_root().glob(f"{sis_uploads.PREFIX}*"))


@pytest.fixture(autouse=True)
def _empty_upload_root():
    for directory in _uploads_on_disk():
        sis_uploads.discard(directory / "x")
    yield


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_zip_bomb_is_refused_in_the_preview_before_extraction(schools, tmp_path):
    bomb = _bomb(tmp_path / "bomb.zip")
    size_kb = bomb.stat().st_size / 1024
    assert size_kb < 200  # like the attack's 146 KB
    users_before = User.objects.count()
    client = _staff(schools)
    peak_before = _peak_rss_mb()

    with bomb.open("rb") as upload:
        response = _preview(client, schools["a"]["school"], upload)

    grown = _peak_rss_mb() - peak_before
    assert response.status_code == 200
    page = response.content.decode()
    assert "expands" in page and "times" in page and "at most 100 times is read" in page
    assert grown < 50, f"peak memory grew by {grown:.0f} MB"
    assert User.objects.count() == users_before
    assert not SisBatch.objects.exists()
    assert _uploads_on_disk() == []  # the refused upload is not kept


def test_the_command_path_refuses_it_too(schools, tmp_path):
    with pytest.raises(SisFileError, match="expands"):
        import_sis(
            paths=[_bomb(tmp_path / "bomb.zip", megabytes=4)],
            root_account=schools["a"]["school"],
            actor=Actor.system(),
        )
    assert not SisBatch.objects.exists()


def test_too_many_members_or_too_many_bytes_are_refused(schools, tmp_path, settings):
    school = schools["a"]["school"]
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as archive:
        for n in range(101):
            archive.writestr(f"users{n}.csv", USERS)
    with pytest.raises(SisFileError, match="holds 101 files; at most 100"):
        import_sis(paths=[many], root_account=school, actor=Actor.system())

    settings.SIS_ARCHIVE_MAX_BYTES = 40
    small = tmp_path / "small.zip"
    with zipfile.ZipFile(small, "w") as archive:
        archive.writestr("users.csv", USERS)
    with pytest.raises(SisFileError, match="at most 40 bytes"):
        import_sis(paths=[small], root_account=school, actor=Actor.system())
    assert not SisBatch.objects.exists()
    settings.SIS_ARCHIVE_MAX_BYTES = 1000
    report = import_sis(paths=[small], root_account=school, actor=Actor.system())
    assert not report.failed and report.totals()["created"] == 1


def test_an_upload_never_confirmed_expires(schools, settings):
    settings.SIS_UPLOAD_EXPIRY_SECONDS = 3600
    client = _staff(schools)
    school = schools["a"]["school"]
    upload = io.BytesIO(USERS.encode())
    upload.name = "users.csv"
    token = _preview(client, school, upload).context["confirm_form"].initial["token"]
    [kept] = _uploads_on_disk()

    # Two hours later: the confirmation is refused and the files are gone.
    two_hours_ago = time.time() - 7200
    os.utime(kept, (two_hours_ago, two_hours_ago))
    confirmed = client.post(reverse("admin:linking_sisbatch_confirm"), {"token": token})
    assert confirmed.status_code == 302
    assert _uploads_on_disk() == []
    assert not SisBatch.objects.exists()
    assert not User.objects.filter(logins__sis_user_id="S1").exists()

    # One left behind by a preview nobody came back to is swept by the next upload.
    again = io.BytesIO(USERS.encode())
    again.name = "users.csv"
    _preview(client, school, again)
    [abandoned] = _uploads_on_disk()
    os.utime(abandoned, (two_hours_ago, two_hours_ago))
    third = io.BytesIO(USERS.encode())
    third.name = "users.csv"
    _preview(client, school, third)
    assert len(_uploads_on_disk()) == 1 and abandoned not in _uploads_on_disk()
