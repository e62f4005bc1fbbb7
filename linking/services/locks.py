"""Row locks on the student that order a link's writing against a restriction's recording.

The race they close: a link is judged (no restriction in force) while a
restriction is being recorded; the restriction ends the links it sees and
commits; the link, judged a moment earlier, commits after it and survives
the order. So every writer of a link takes a share lock on the student's
row *before* judging the rules, and recording a restriction takes the
exclusive lock on it *before* ending links: whichever comes second waits
for the other to commit and then sees its work (PostgreSQL's READ COMMITTED
gives each later statement a fresh snapshot).

``FOR KEY SHARE`` is the weakest lock that ``FOR UPDATE`` waits for: the
ordinary updates of the student's row (a sign-in, a name from the SIS) do
not wait for a link being written, and links being written at once do not
wait for each other. Locks are taken in id order, so two writers locking
several students cannot deadlock.

SQLite has no row locks and needs none: the service opens every transaction
with ``BEGIN IMMEDIATE`` (settings.py), which takes the database's one
write lock at once, so a link's transaction and a restriction's run one
after the other (the second waits up to the busy timeout, 20 seconds) and
the rules, judged inside the link's transaction, see any restriction
committed before it.
"""

from collections.abc import Iterable

from django.db import connection

from ..models import User
from ..models.lookups import pg_array


def _lock(student_ids: Iterable[int], strength: str) -> None:
    ids = sorted(set(student_ids))
    if not ids or connection.vendor != "postgresql":
        return
    table = connection.ops.quote_name(User._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {table} WHERE id = ANY(%s::bigint[]) ORDER BY id {strength}",  # noqa: S608
            [pg_array(ids)],
        )


def share_students(student_ids: Iterable[int]) -> None:
    """Before judging a link: wait for a restriction being recorded on these students.

    Inside the transaction that writes the link (held until it commits);
    one statement for a chunk of an SIS file, in id order.
    """
    _lock(student_ids, "FOR KEY SHARE")


def lock_student(student_id: int) -> None:
    """Before a restriction ends links: wait for the links being written to this student."""
    _lock([student_id], "FOR UPDATE")
