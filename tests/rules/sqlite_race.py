"""The race of tests/rules/test_race.py on a SQLite file, as the service runs it.

Run by test_race.py in a subprocess: ``python -m tests.rules.sqlite_race DB``
with DATABASE_URL pointing at the file. pytest's SQLite test database is a
shared in-memory one, where a second writer fails at once instead of
waiting, so it cannot show what a real file does: with the service's
settings (``BEGIN IMMEDIATE``, a 20-second busy timeout) the second writer
waits for the first to commit. Prints one JSON line: each order's outcome.
"""

import json
import os
import sys
import threading
import time

WAIT = 10


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "observers_project.settings")
    import django
    from django.conf import settings

    # Tables straight from the models: the schema is what matters here, and
    # creating it this way is several times faster than running every migration.
    settings.MIGRATION_MODULES = {"linking": None}
    django.setup()
    from django.core.management import call_command
    from django.db import connection, connections

    from linking.models import AuditSource, EnrollmentType, LinkSource, ObservationLink
    from linking.services import rules, safeguarding
    from linking.services.accounts import make_account_admin
    from linking.services.context import Actor
    from linking.services.enrollments import enroll_user
    from linking.services.links import link_observer
    from tests import factories

    assert connection.vendor == "sqlite"
    call_command("migrate", run_syncdb=True, verbosity=0)

    root = factories.RootAccountFactory(domain="race.test")
    staff = factories.UserFactory(name="Alice Admin")
    factories.LoginFactory(user=staff, root_account=root)
    make_account_admin(user=staff, account=root)
    course = factories.CourseFactory(account=root)

    def person(name):
        user = factories.UserFactory(name=name)
        factories.LoginFactory(user=user, root_account=root)
        return user

    staff_actor = Actor(user=staff, source=AuditSource.ADMIN)

    def run_order(pause_module, pause_name, first, second, tag):
        """``first`` runs until ``pause_name`` returned, ``second`` runs, then ``first`` goes on."""
        student, parent = person(f"Student {tag}"), person(f"Parent {tag}")
        enroll_user(user=student, course=course, type=EnrollmentType.STUDENT)
        reached, go = threading.Event(), threading.Event()
        original = getattr(pause_module, pause_name)

        def paused(*args, **kwargs):
            result = original(*args, **kwargs)
            if threading.current_thread().name == "first" and not reached.is_set():
                reached.set()
                go.wait(WAIT)
            return result

        setattr(pause_module, pause_name, paused)
        outcomes = {}

        def side(name, work):
            started = time.monotonic()
            try:
                work(student, parent)
                outcomes[name] = "done"
            except Exception as error:
                outcomes[name] = f"{type(error).__name__}: {error}"
            finally:
                outcomes[f"{name}_seconds"] = round(time.monotonic() - started, 2)
                connections.close_all()

        one = threading.Thread(target=side, args=("first", first), name="first")
        one.start()
        reached.wait(WAIT)
        two = threading.Thread(target=side, args=("second", second), name="second")
        two.start()
        # SQLite has no lock view to poll: give the second side time to finish if it could.
        two.join(1.0)
        outcomes["second_waited"] = two.is_alive()
        go.set()
        one.join(WAIT)
        two.join(WAIT)
        setattr(pause_module, pause_name, original)
        link = ObservationLink.objects.filter(observer=parent, student=student).first()
        outcomes["link"] = None if link is None else [link.workflow_state, link.end_reason]
        return outcomes

    def write_link(student, parent):
        link_observer(
            observer=parent,
            student=student,
            root_account=root,
            actor=staff_actor,
            source=LinkSource.ADMIN,
        )

    def restrict(student, parent):
        safeguarding.record_restriction(
            root_account=root,
            student=student,
            observer=parent,
            reason="Court order",
            actor=staff_actor,
        )

    print(
        json.dumps(
            {
                "restriction_during_link": run_order(rules, "judge", write_link, restrict, "a"),
                "link_during_restriction": run_order(
                    safeguarding, "_restricted_links", restrict, write_link, "b"
                ),
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
