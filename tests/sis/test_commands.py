"""sis_import and sis_export management commands."""

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from linking.models import ObservationLink, SisBatch

HEADER = "observer_id,student_id,status\n"


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_import_prints_a_summary_and_succeeds(sis_dir, sis_users, root_account):
    path = sis_dir("links.csv", HEADER + "U001,U002,active\nU003,U002,Active\n")

    out, err = run("sis_import", str(path), "--domain", "default.test")

    batch = SisBatch.objects.get()
    assert f"SIS batch #{batch.pk} (imported)" in out
    lines = out.splitlines()
    header = lines[1].split()
    assert header == [
        "file",
        "kind",
        "rows",
        "created",
        "restored",
        "updated",
        "deleted",
        "unchanged",
        "errors",
        "warnings",
        "seconds",
    ]
    assert lines[3].split()[:-1] == [
        "links.csv",
        "user_observers",
        "2",
        "2",
        "0",
        "0",
        "0",
        "0",
        "0",
        "0",
    ]
    assert lines[-1].split()[:-1] == ["total", "2", "2", "0", "0", "0", "0", "0", "0"]
    float(lines[-1].split()[-1])  # seconds the whole import took
    assert err == ""
    assert ObservationLink.objects.active().count() == 2
    # No progress bar when stdout is not a terminal.
    assert "\r" not in out


def test_import_exits_non_zero_when_a_row_fails(sis_dir, sis_users, root_account):
    path = sis_dir("links.csv", HEADER + "U001,U002,active\nU001,GHOST,active\n")
    err = io.StringIO()

    with pytest.raises(CommandError) as failed:
        call_command(
            "sis_import", str(path), "--domain", "default.test", stdout=io.StringIO(), stderr=err
        )

    assert failed.value.returncode == 1
    assert "1 row(s) or file(s) failed" in str(failed.value)
    assert "links.csv:3: A student referenced a non-existent user GHOST" in err.getvalue()
    assert ObservationLink.objects.active().count() == 1


def test_dry_run_option_writes_nothing(sis_dir, sis_users, root_account):
    path = sis_dir("links.csv", HEADER + "U001,U002,active\n")

    out, _ = run("sis_import", str(path), "--domain", "default.test", "--dry-run")

    assert "Dry run: nothing was written" in out
    assert not ObservationLink.objects.exists()
    assert not SisBatch.objects.exists()


def test_mass_delete_refusal_and_override(sis_dir, sis_users, root_account):
    run(
        "sis_import",
        str(sis_dir("a.csv", HEADER + "U001,U002,active\n")),
        "--domain",
        "default.test",
    )
    path = sis_dir("d.csv", HEADER + "U001,U002,deleted\n")

    with pytest.raises(CommandError) as refused:
        call_command("sis_import", str(path), "--domain", "default.test", stdout=io.StringIO())

    assert "--allow-mass-delete" in str(refused.value)
    assert ObservationLink.objects.active().count() == 1

    run("sis_import", str(path), "--domain", "default.test", "--allow-mass-delete")
    assert ObservationLink.objects.active().count() == 0


def test_unknown_domain_and_missing_file(tmp_path, root_account):
    with pytest.raises(CommandError, match="No root account"):
        run("sis_import", str(tmp_path), "--domain", "nowhere.test")
    with pytest.raises(CommandError, match="no such file"):
        run("sis_import", str(tmp_path / "missing.csv"), "--domain", "default.test")


def test_run_by_records_who_ran_it(sis_dir, sis_users, root_account):
    login = sis_users["U004"].logins.get()
    path = sis_dir("links.csv", HEADER + "U001,U002,active\n")

    run("sis_import", str(path), "--domain", "default.test", "--run-by", login.unique_id.upper())

    assert SisBatch.objects.get().created_by == sis_users["U004"]


def test_export_command_round_trips(sis_dir, sis_users, root_account, tmp_path):
    run(
        "sis_import",
        str(sis_dir("a.csv", HEADER + "U001,U002,active\n")),
        "--domain",
        "default.test",
    )
    target = tmp_path / "out"

    out, _ = run("sis_export", "--domain", "default.test", "--output", str(target))

    assert "users.csv: 4 rows; user_observers.csv: 1 rows" in out
    assert (target / "user_observers.csv").read_text() == (
        "observer_id,student_id,status,end_date\nU001,U002,active,\n"
    )
    out, _ = run("sis_import", str(target), "--domain", "default.test")
    assert ObservationLink.objects.active().count() == 1
    with pytest.raises(CommandError):
        run("sis_export", "--domain", "nowhere.test")


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_shown_on_a_terminal(sis_dir, sis_users, root_account):
    path = sis_dir("links.csv", HEADER + "U001,U002,active\n")
    out = Terminal()

    call_command("sis_import", str(path), "--domain", "default.test", stdout=out)

    assert "\rlinks.csv: 1 rows" in out.getvalue()


ONEROSTER = Path(__file__).parent / "oneroster"


def test_oneroster_bundle_dry_run_lists_changes_then_imports(root_account, tmp_path):
    changes = tmp_path / "changes.csv"

    out, err = run(
        "sis_import",
        str(ONEROSTER / "v12_bulk"),
        "--domain",
        "default.test",
        "--dry-run",
        "--changes-csv",
        str(changes),
    )

    assert "Dry run: nothing was written" in out
    assert "users.csv (agentSourcedIds)  user_observers" in out
    assert "links (4):" in out
    assert "created   g-maria -> s-ben  Maria Lopez observes Benjamin Lopez (parent)" in out
    assert f"Every change: {changes}" in out
    assert changes.read_text().count("\nlinks,created,") == 4
    assert err == ""
    assert not ObservationLink.objects.exists()

    out, err = run("sis_import", str(ONEROSTER / "v12_bulk"), "--domain", "default.test")

    batch = SisBatch.objects.get()
    assert (batch.format, batch.workflow_state) == ("oneroster", "imported")
    assert ObservationLink.objects.active().count() == 4


def test_oneroster_guard_exits_2_with_one_clear_line(root_account, tmp_path):
    run("sis_import", str(ONEROSTER / "v11_bulk"), "--domain", "default.test")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for path in (ONEROSTER / "v11_bulk").iterdir():
        text = path.read_text()
        if path.name == "users.csv":
            text = "\n".join(text.splitlines()[:2]) + "\n"
        (bundle / path.name).write_text(text)

    with pytest.raises(CommandError) as refused:
        run("sis_import", str(bundle), "--domain", "default.test")

    assert refused.value.returncode == 2
    assert str(refused.value).startswith("Mass-delete guard: this import would delete 7 of 8")
    assert "--allow-mass-delete" in str(refused.value)
    assert SisBatch.objects.order_by("-pk").first().workflow_state == SisBatch.State.ABORTED
    assert ObservationLink.objects.active().count() == 4
