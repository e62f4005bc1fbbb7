"""A restriction recorded at the very moment a link is written: neither misses the other.

Each test holds one side's transaction open at the worst point (a link
judged but not yet written; a restriction recorded but its links not yet
ended) and runs the other side meanwhile in a second thread. Before the
student's row was locked by both (services.locks), each of these left a
live link next to a restriction in force.
"""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection, connections

from linking.models import (
    AuditAction,
    AuditEvent,
    AuditSource,
    LinkSource,
    ObservationLink,
    ObservationRestriction,
)
from linking.services import rules, safeguarding
from linking.services.context import Actor
from linking.services.errors import LinkRefused
from linking.services.links import link_observer
from linking.services.sis import import_sis
from tests.rules.conftest import REASON

WAIT = 10  # seconds any step may take before the test gives up


class Side(threading.Thread):
    """One side of the race in its own thread (and database connection)."""

    def __init__(self, name, work):
        super().__init__(name=name, daemon=True)
        self.work, self.result, self.error = work, None, None
        self.finished = threading.Event()

    def run(self):
        try:
            self.result = self.work()
        except Exception as error:  # asserted by the test
            self.error = error
        finally:
            self.finished.set()
            connections.close_all()


PAUSES: list["PauseAfter"] = []


class PauseAfter:
    """Wraps ``module.name``: in the thread called ``thread``, pause after it returns."""

    def __init__(self, monkeypatch, module, name, thread):
        self.reached, self.go = threading.Event(), threading.Event()
        PAUSES.append(self)
        original = getattr(module, name)

        def paused(*args, **kwargs):
            result = original(*args, **kwargs)
            if threading.current_thread().name == thread and not self.reached.is_set():
                self.reached.set()
                assert self.go.wait(WAIT), "the test never let this side go on"
            return result

        monkeypatch.setattr(module, name, paused)


def blocked_or_finished(side: Side) -> str:
    """Wait until ``side`` waits for a row lock held by the other, or has finished."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if side.finished.is_set():
            return "finished"
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return "blocked"
        time.sleep(0.02)
    raise AssertionError(f"{side.name} neither finished nor waited for a lock")


def _restrict(w):
    return safeguarding.record_restriction(
        root_account=w.root,
        student=w.student,
        observer=w.parent,
        reason=REASON,
        actor=Actor(user=w.staff, source=AuditSource.ADMIN),
    )


def _staff_link_side(w) -> Side:
    """The side that links the parent to the student, as staff in the admin."""
    return Side(
        "link",
        lambda: link_observer(
            observer=w.parent,
            student=w.student,
            root_account=w.root,
            actor=Actor(user=w.staff, source=AuditSource.ADMIN),
            source=LinkSource.ADMIN,
        ),
    )


def test_a_restriction_recorded_while_a_link_is_written_ends_it(postgresql_only, w, monkeypatch):
    # The link is judged (nothing forbids it yet) and its writer pauses there.
    pause = PauseAfter(monkeypatch, rules, "judge", thread="link")
    link_side = _staff_link_side(w)
    link_side.start()
    assert pause.reached.wait(WAIT)

    restriction_side = Side("restriction", lambda: _restrict(w))
    restriction_side.start()
    meanwhile = blocked_or_finished(restriction_side)
    pause.go.set()
    link_side.join(WAIT)
    restriction_side.join(WAIT)

    assert (link_side.error, restriction_side.error) == (None, None)
    # The restriction saw the link and ended it ...
    link = ObservationLink.objects.get(observer=w.parent, student=w.student)
    assert (link.workflow_state, link.end_reason) == ("deleted", "restriction")
    assert restriction_side.result[1] == 1
    # ... because it waited for the link's transaction to commit.
    assert meanwhile == "blocked"
    assert not w.parent.enrollments.exclude(workflow_state="deleted").exists()
    assert list(
        AuditEvent.objects.filter(link=link).order_by("id").values_list("action", flat=True)
    ) == [AuditAction.LINK_CREATED, AuditAction.LINK_DELETED]


def test_a_link_written_while_a_restriction_is_recorded_is_refused(postgresql_only, w, monkeypatch):
    # The restriction is written and has looked for links to end (none); it pauses there.
    pause = PauseAfter(monkeypatch, safeguarding, "_restricted_links", thread="restriction")
    restriction_side = Side("restriction", lambda: _restrict(w))
    restriction_side.start()
    assert pause.reached.wait(WAIT)

    link_side = _staff_link_side(w)
    link_side.start()
    meanwhile = blocked_or_finished(link_side)
    pause.go.set()
    restriction_side.join(WAIT)
    link_side.join(WAIT)

    assert restriction_side.error is None
    # The link was judged with the restriction in force: refused, and audited ...
    assert not ObservationLink.objects.filter(observer=w.parent, student=w.student).exists()
    assert isinstance(link_side.error, LinkRefused)
    restriction = ObservationRestriction.objects.get()
    refusal = AuditEvent.objects.get(action=AuditAction.LINK_REFUSED)
    assert refusal.detail == {
        "rule": rules.RESTRICTION,
        "source": LinkSource.ADMIN,
        "restriction": restriction.pk,
    }
    assert (refusal.observer, refusal.student) == (w.parent, w.student)
    # ... because it waited for the restriction to commit.
    assert meanwhile == "blocked"


def test_a_restriction_recorded_during_an_sis_import_ends_the_imported_link(
    postgresql_only, w, monkeypatch, tmp_path
):
    path = tmp_path / "user_observers.csv"
    path.write_text("observer_id,student_id,status\nP-1,S-1,active\n")
    # The import's chunk has locked its students and judged them; it pauses there.
    pause = PauseAfter(monkeypatch, rules, "judge", thread="sis")
    sis_side = Side(
        "sis",
        lambda: import_sis(
            paths=[path], root_account=w.root, actor=Actor(user=None, source=AuditSource.SIS)
        ),
    )
    sis_side.start()
    assert pause.reached.wait(WAIT)

    restriction_side = Side("restriction", lambda: _restrict(w))
    restriction_side.start()
    meanwhile = blocked_or_finished(restriction_side)
    pause.go.set()
    sis_side.join(WAIT)
    restriction_side.join(WAIT)

    assert (sis_side.error, restriction_side.error) == (None, None)
    assert sis_side.result.files[0].counts["created"] == 1
    link = ObservationLink.objects.get(observer=w.parent, student=w.student)
    assert (link.workflow_state, link.end_reason, link.source) == ("deleted", "restriction", "sis")
    assert restriction_side.result[1] == 1
    assert meanwhile == "blocked"


def test_on_a_sqlite_file_the_second_writer_waits_and_sees_the_first(tmp_path):
    """The same two orders on SQLite as the service runs it (tests/rules/sqlite_race.py)."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'race.sqlite3'}"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.rules.sqlite_race"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])

    during_link = outcome["restriction_during_link"]
    # BEGIN IMMEDIATE: the restriction waited for the link's transaction (no "database is
    # locked"), then ended the link it found.
    assert during_link["second_waited"] is True
    assert (during_link["first"], during_link["second"]) == ("done", "done")
    assert during_link["link"] == ["deleted", "restriction"]
    during_restriction = outcome["link_during_restriction"]
    assert during_restriction["second_waited"] is True
    assert during_restriction["first"] == "done"
    assert during_restriction["second"].startswith("LinkRefused: ")
    assert during_restriction["link"] is None


@pytest.fixture(autouse=True)
def _no_leftover_threads():
    yield
    # A failed assertion must not leave a side paused with its transaction open.
    for pause in PAUSES:
        pause.go.set()
    PAUSES.clear()
    for thread in threading.enumerate():
        if thread.name in ("link", "restriction", "sis"):
            thread.join(WAIT)
    leftover = [t.name for t in threading.enumerate() if t.name in ("link", "restriction", "sis")]
    assert leftover == []
