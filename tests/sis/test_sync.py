"""The nightly folder sync: choosing the bundle, skipping what was imported, guards, the command."""

import hashlib
import io
import os
import time
import zipfile

import pytest
from django.core.management import CommandError, call_command

from linking.models import Login, ObservationLink, SisBatch
from linking.services.sis.sync import (
    SyncOutcome,
    bundle_hash,
    newest_bundle,
    sync_folder,
)

USERS = (
    "user_id,login_id,first_name,last_name,email,status\n"
    "S1,student1,Sam,Student,sam@example.test,active\n"
    "P1,parent1,Pat,Parent,pat@example.test,active\n"
    "P2,parent2,Pia,Parent,pia@example.test,active\n"
)
LINKS = "observer_id,student_id,status\n"
ONE_LINK = {"users.csv": USERS, "user_observers.csv": LINKS + "P1,S1,active\n"}
TWO_LINKS = {
    "users.csv": USERS,
    "user_observers.csv": LINKS + "P1,S1,active\nP2,S1,active\n",
}
UNLINK_BOTH = {"user_observers.csv": LINKS + "P1,S1,deleted\nP2,S1,deleted\n"}

HOUR = 3600


@pytest.fixture
def drop(tmp_path):
    """The SIS's drop folder; drop.dir(name, files, age) and drop.zip(...) deliver a bundle.

    ``age`` is how many seconds ago the bundle was last modified (set with
    os.utime, on the bundle and every file in it).
    """
    folder = tmp_path / "drop"
    folder.mkdir()

    def age_path(path, age):
        stamp = time.time() - age
        os.utime(path, (stamp, stamp))

    def as_dir(name, files, age=HOUR):
        directory = folder / name
        directory.mkdir()
        for file_name, text in files.items():
            (directory / file_name).write_text(text, encoding="utf-8")
            age_path(directory / file_name, age)
        age_path(directory, age)
        return directory

    def as_zip(name, files, age=HOUR):
        path = folder / name
        with zipfile.ZipFile(path, "w") as archive:
            for file_name, text in files.items():
                archive.writestr(file_name, text)
        age_path(path, age)
        return path

    class Drop:
        path = folder
        dir = staticmethod(as_dir)
        zip = staticmethod(as_zip)
        age = staticmethod(age_path)

    return Drop


@pytest.fixture
def sync(root_account, sis_actor, drop):
    def run(**options):
        return sync_folder(folder=drop.path, root_account=root_account, actor=sis_actor, **options)

    return run


def active_pairs(root_account):
    return sorted(
        (link.observer.logins.get().sis_user_id, link.student.logins.get().sis_user_id)
        for link in ObservationLink.objects.active()
        .filter(root_account=root_account)
        .select_related("observer", "student")
    )


def run_command(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("sis_sync", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# Hashing and choosing the bundle ----------------------------------------------


def test_bundle_hash_of_a_zip_is_the_sha256_of_its_bytes(drop):
    path = drop.zip("night.zip", ONE_LINK)

    assert bundle_hash(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_bundle_hash_of_a_directory_follows_its_csv_names_and_bytes(drop):
    first = drop.dir("a", ONE_LINK)
    same = drop.dir("b", ONE_LINK)
    (same / "notes.txt").write_text("not read by the importer")
    changed = drop.dir("c", {**ONE_LINK, "users.csv": USERS.replace("Pat", "Patricia")})
    renamed = drop.dir(
        "d", {"people.csv": USERS, "user_observers.csv": ONE_LINK["user_observers.csv"]}
    )
    moved = drop.dir("e", {"users.csv": USERS + "P1,S1,active\n", "user_observers.csv": LINKS})

    assert bundle_hash(first) == bundle_hash(same)
    assert len({bundle_hash(path) for path in (first, changed, renamed, moved)}) == 4


def test_newest_bundle_is_the_latest_zip_or_directory(drop):
    drop.zip("monday.zip", ONE_LINK, age=3 * HOUR)
    tuesday = drop.dir("tuesday", {"manifest.csv": "propertyName,value\n"}, age=2 * HOUR)
    (drop.path / "loose.csv").write_text(USERS)  # a loose CSV file is not a bundle
    (drop.path / "empty").mkdir()  # nor is a directory without CSV files
    drop.age(drop.path / "loose.csv", 0.5 * HOUR)
    drop.age(drop.path / "empty", 0.5 * HOUR)

    assert newest_bundle(drop.path) == tuesday

    wednesday = drop.zip("wednesday.zip", ONE_LINK, age=HOUR)

    assert newest_bundle(drop.path) == wednesday


def test_newest_bundle_passes_over_bundles_still_arriving(drop):
    settled = drop.zip("monday.zip", ONE_LINK, age=2 * HOUR)
    drop.zip("tuesday.zip", TWO_LINKS, age=10)  # written 10 seconds ago
    drop.zip(".wednesday.zip", TWO_LINKS, age=HOUR)  # hidden: a temporary upload name
    drop.zip("thursday.zip.part", TWO_LINKS, age=HOUR)
    drop.zip("friday.tmp", TWO_LINKS, age=HOUR)
    # A directory whose own entry is old but one of its files is still growing.
    growing = drop.dir("saturday", TWO_LINKS, age=HOUR)
    drop.age(growing / "users.csv", 5)
    # A directory with an upload that broke off half-way: settled, newest, incomplete.
    partial = drop.dir("sunday", TWO_LINKS, age=HOUR / 2)
    (partial / "enrollments.csv.part").write_text("course_id")
    drop.age(partial / "enrollments.csv.part", HOUR / 2)
    drop.age(partial, HOUR / 2)

    assert newest_bundle(drop.path) == settled
    assert newest_bundle(drop.path, settle_seconds=8) == drop.path / "tuesday.zip"
    assert newest_bundle(drop.path, settle_seconds=2) == growing


def test_newest_bundle_of_an_empty_folder_is_none(drop):
    assert newest_bundle(drop.path) is None


# The sync service ---------------------------------------------------------------


def test_sync_imports_the_newest_bundle_and_records_its_hash(sync, drop, root_account):
    drop.zip("monday.zip", ONE_LINK, age=2 * HOUR)
    tuesday = drop.zip("tuesday.zip", TWO_LINKS, age=HOUR)

    result = sync()

    assert result.outcome == SyncOutcome.IMPORTED
    assert result.bundle == tuesday
    batch = SisBatch.objects.get()
    assert result.batch_id == result.report.batch_id == batch.pk
    assert batch.workflow_state == SisBatch.State.IMPORTED
    assert batch.content_hash == bundle_hash(tuesday) == result.content_hash
    assert batch.source_name == f"folder sync: {tuesday}"
    assert active_pairs(root_account) == [("P1", "S1"), ("P2", "S1")]
    assert Login.objects.filter(root_account=root_account, sis_user_id="S1").exists()


def test_same_content_again_is_skipped_and_records_nothing(sync, drop, root_account):
    drop.zip("monday.zip", ONE_LINK, age=2 * HOUR)
    first = sync()
    # The SIS delivers the same export again under tomorrow's name.
    tuesday = drop.path / "tuesday.zip"
    tuesday.write_bytes((drop.path / "monday.zip").read_bytes())
    drop.age(tuesday, HOUR)
    link = ObservationLink.objects.get()
    before = (link.sis_batch_id, link.updated_at)

    result = sync()

    assert result.outcome == SyncOutcome.SKIPPED
    assert result.bundle == tuesday
    assert result.batch_id == first.batch_id
    assert result.report is None
    assert list(SisBatch.objects.values_list("pk", flat=True)) == [first.batch_id]
    link.refresh_from_db()
    assert (link.sis_batch_id, link.updated_at) == before
    assert active_pairs(root_account) == [("P1", "S1")]


def test_changed_content_is_imported(sync, drop, root_account):
    drop.dir("monday", ONE_LINK, age=2 * HOUR)
    first = sync()
    tuesday = drop.dir("tuesday", TWO_LINKS, age=HOUR)

    result = sync()

    assert result.outcome == SyncOutcome.IMPORTED
    assert result.batch_id != first.batch_id
    assert SisBatch.objects.get(pk=result.batch_id).content_hash == bundle_hash(tuesday)
    assert SisBatch.objects.count() == 2
    assert active_pairs(root_account) == [("P1", "S1"), ("P2", "S1")]


def test_a_bundle_that_comes_back_after_another_is_imported_again(
    sync, drop, root_account, settings
):
    # Monday links P1 and P2; Tuesday drops P2 (under the guard's limit);
    # Wednesday the SIS sends Monday's file again: P2 must come back.
    settings.SIS_MASS_DELETE_SHARE = 1.0
    drop.dir("monday", TWO_LINKS, age=3 * HOUR)
    monday = sync()
    drop.dir("tuesday", {"user_observers.csv": LINKS + "P2,S1,deleted\n"}, age=2 * HOUR)
    sync()
    assert active_pairs(root_account) == [("P1", "S1")]
    drop.dir("wednesday", TWO_LINKS, age=HOUR)

    result = sync()

    assert result.outcome == SyncOutcome.IMPORTED
    assert result.content_hash == SisBatch.objects.get(pk=monday.batch_id).content_hash
    assert active_pairs(root_account) == [("P1", "S1"), ("P2", "S1")]
    assert SisBatch.objects.count() == 3


def test_a_bundle_with_row_errors_counts_as_imported(sync, drop, root_account):
    drop.zip("monday.zip", {**ONE_LINK, "user_observers.csv": LINKS + "P1,GHOST,active\n"})
    first = sync()

    again = sync()

    assert first.report.failed
    assert SisBatch.objects.get().workflow_state == SisBatch.State.IMPORTED_WITH_ERRORS
    assert again.outcome == SyncOutcome.SKIPPED
    assert again.batch_id == first.batch_id
    assert SisBatch.objects.count() == 1


def test_guard_refusal_then_retry_with_allow_mass_delete(sync, drop, root_account):
    drop.zip("monday.zip", TWO_LINKS, age=2 * HOUR)
    sync()
    tuesday = drop.zip("tuesday.zip", UNLINK_BOTH, age=HOUR)

    refused = sync()

    assert refused.outcome == SyncOutcome.REFUSED
    assert refused.bundle == tuesday
    assert refused.refusal.would_delete == 2
    aborted = SisBatch.objects.get(pk=refused.batch_id)
    assert aborted.workflow_state == SisBatch.State.ABORTED
    assert aborted.content_hash == bundle_hash(tuesday)
    assert active_pairs(root_account) == [("P1", "S1"), ("P2", "S1")]

    # The aborted batch does not count as imported: the guard stops it again...
    assert sync().outcome == SyncOutcome.REFUSED
    # ...until the deletion is allowed.
    result = sync(allow_mass_delete=True)

    assert result.outcome == SyncOutcome.IMPORTED
    assert SisBatch.objects.get(pk=result.batch_id).workflow_state == SisBatch.State.IMPORTED
    assert active_pairs(root_account) == []
    assert sync().outcome == SyncOutcome.SKIPPED


def test_dry_run_writes_nothing_and_does_not_mark_the_hash(sync, drop, root_account):
    tuesday = drop.zip("tuesday.zip", TWO_LINKS, age=HOUR)

    result = sync(dry_run=True)

    assert result.outcome == SyncOutcome.IMPORTED
    assert result.report.dry_run
    assert result.batch_id is None
    assert result.report.totals()["created"] == 5  # three users, two links
    assert not SisBatch.objects.exists()
    assert not ObservationLink.objects.exists()
    assert not Login.objects.filter(root_account=root_account).exists()

    # The real run that follows is not skipped.
    real = sync()

    assert real.outcome == SyncOutcome.IMPORTED
    assert SisBatch.objects.get().content_hash == bundle_hash(tuesday)
    # And a dry run of what was imported is skipped like the real run would be.
    assert sync(dry_run=True).outcome == SyncOutcome.SKIPPED


def test_sync_of_an_empty_folder_finds_no_bundle(sync, drop):
    drop.zip("arriving.zip", ONE_LINK, age=1)

    result = sync()

    assert result.outcome == SyncOutcome.NO_BUNDLE
    assert result.bundle is None
    assert not SisBatch.objects.exists()


def test_import_of_another_root_account_does_not_count(
    sync, drop, root_account, other_root_account, sis_actor
):
    drop.zip("monday.zip", ONE_LINK)
    sync_folder(folder=drop.path, root_account=other_root_account, actor=sis_actor)

    result = sync()

    assert result.outcome == SyncOutcome.IMPORTED
    assert active_pairs(root_account) == [("P1", "S1")]
    assert SisBatch.objects.filter(content_hash=result.content_hash).count() == 2


# The command ------------------------------------------------------------------------


def test_command_imports_prints_the_summary_then_skips(drop, root_account):
    bundle = drop.zip("monday.zip", ONE_LINK)

    out, err = run_command(str(drop.path), "--domain", "default.test")

    batch = SisBatch.objects.get()
    lines = out.splitlines()
    assert lines[0] == f"imported {bundle} as batch #{batch.pk} (imported)"
    # sis_import's summary table follows.
    assert lines[1] == f"SIS batch #{batch.pk} (imported)"
    assert lines[2].split()[:3] == ["file", "kind", "rows"]
    assert lines[-1].split()[:-1] == ["total", "4", "4", "0", "0", "0", "0", "0", "0"]
    assert err == ""
    assert active_pairs(root_account) == [("P1", "S1")]

    out, _ = run_command(str(drop.path), "--domain", "default.test")

    assert out == f"skipped {bundle}: already imported as batch #{batch.pk}\n"
    assert SisBatch.objects.count() == 1


def test_command_with_no_bundle_exits_zero(drop, root_account):
    drop.zip("arriving.zip", ONE_LINK, age=30)

    out, _ = run_command(str(drop.path), "--domain", "default.test")

    assert out == f"no bundle in {drop.path}\n"
    assert not SisBatch.objects.exists()

    out, _ = run_command(str(drop.path), "--domain", "default.test", "--settle-seconds", "10")

    assert out.startswith(f"imported {drop.path / 'arriving.zip'} as batch #")


def test_command_exits_1_when_rows_fail(drop, root_account):
    bundle = drop.zip("monday.zip", {**ONE_LINK, "user_observers.csv": LINKS + "P1,GHOST,active\n"})
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError) as failed:
        call_command("sis_sync", str(drop.path), "--domain", "default.test", stdout=out, stderr=err)

    assert failed.value.returncode == 1
    assert str(failed.value) == f"1 row(s) or file(s) failed in {bundle}."
    batch = SisBatch.objects.get()
    assert out.getvalue().startswith(
        f"imported {bundle} as batch #{batch.pk} (imported_with_messages)"
    )
    assert "A student referenced a non-existent user GHOST" in err.getvalue()
    assert batch.content_hash == bundle_hash(bundle)
    assert Login.objects.filter(root_account=root_account, sis_user_id="P1").exists()
    assert not ObservationLink.objects.exists()


def test_command_exits_2_when_the_guard_stops_it_and_retries_with_override(drop, root_account):
    drop.zip("monday.zip", TWO_LINKS, age=2 * HOUR)
    run_command(str(drop.path), "--domain", "default.test")
    tuesday = drop.zip("tuesday.zip", UNLINK_BOTH, age=HOUR)

    with pytest.raises(CommandError) as refused:
        run_command(str(drop.path), "--domain", "default.test")

    aborted = SisBatch.objects.get(workflow_state=SisBatch.State.ABORTED)
    message = str(refused.value)
    assert refused.value.returncode == 2
    assert message.startswith(
        f"refused {tuesday}: the mass-delete guard stopped it (batch #{aborted.pk} aborted)."
    )
    assert "would delete 2 of 2 active observer links" in message
    assert "--allow-mass-delete" in message
    assert "\n" not in message
    assert active_pairs(root_account) == [("P1", "S1"), ("P2", "S1")]

    out, _ = run_command(str(drop.path), "--domain", "default.test", "--allow-mass-delete")

    assert out.startswith(f"imported {tuesday} as batch #")
    assert active_pairs(root_account) == []
    assert SisBatch.objects.filter(workflow_state=SisBatch.State.IMPORTED).count() == 2


def test_command_max_delete_share_lets_the_deletion_through(drop, root_account):
    drop.zip("monday.zip", TWO_LINKS, age=2 * HOUR)
    run_command(str(drop.path), "--domain", "default.test")
    drop.zip("tuesday.zip", {"user_observers.csv": LINKS + "P2,S1,deleted\n"}, age=HOUR)

    with pytest.raises(CommandError):
        run_command(str(drop.path), "--domain", "default.test", "--max-delete-share", "0.4")
    run_command(str(drop.path), "--domain", "default.test", "--max-delete-share", "0.5")

    assert active_pairs(root_account) == [("P1", "S1")]


def test_command_dry_run_writes_nothing(drop, root_account):
    bundle = drop.zip("monday.zip", ONE_LINK)

    out, _ = run_command(str(drop.path), "--domain", "default.test", "--dry-run")

    assert out.splitlines()[0] == f"dry run of {bundle}: nothing was written"
    assert "Dry run: nothing was written" in out
    assert not SisBatch.objects.exists()
    assert not Login.objects.filter(root_account=root_account).exists()


def test_command_rejects_bad_input(drop, root_account, tmp_path):
    with pytest.raises(CommandError, match="No root account"):
        run_command(str(drop.path), "--domain", "nowhere.test")
    with pytest.raises(CommandError, match="no such folder"):
        run_command(str(tmp_path / "missing"), "--domain", "default.test")
    with pytest.raises(CommandError, match="between 0 and 1"):
        run_command(str(drop.path), "--domain", "default.test", "--max-delete-share", "2")
    with pytest.raises(CommandError, match="must not be negative"):
        run_command(str(drop.path), "--domain", "default.test", "--settle-seconds", "-1")
    assert not SisBatch.objects.exists()
