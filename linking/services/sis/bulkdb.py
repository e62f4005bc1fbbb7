"""Database helpers for bulk SIS work: key lists that plan well, and sets of seen rows.

Two things the profile of the row-by-row importer taught (issue 12):

- A chunk's lookup by a list of keys written as ``IN (%s, %s, ...)`` is a
  different prepared statement for every list length, and PostgreSQL
  switches such statements to a generic plan after five runs; at 1,000
  parameters the generic plan cost 200 times the custom one. ``= ANY(%s)``
  with one array parameter is one statement whose generic plan is an index
  scan, however long the list.
- A bulk file replaces the SIS-owned set, so the import must know which rows
  it saw. Holding every seen id in Python grows with the file; a temporary
  table keeps the importer's memory flat and lets the database do the
  anti-join.
"""

import uuid
from collections.abc import Iterable

from django.db import connection
from django.db.models import QuerySet

from ...models.lookups import any_of, filter_any  # noqa: F401 - re-exported for the importer


class SeenIds:
    """A temporary table of primary keys an import has seen, for the anti-join at the end.

    Used as a context manager inside the import's transaction; the table is
    dropped on exit (on PostgreSQL also at commit, whichever comes first).
    """

    def __init__(self, label: str):
        self.table = f"sis_seen_{label}_{uuid.uuid4().hex[:12]}"

    def __enter__(self) -> "SeenIds":
        suffix = " ON COMMIT DROP" if connection.vendor == "postgresql" else ""
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TEMPORARY TABLE {self.table} (id bigint PRIMARY KEY){suffix}")
        return self

    def __exit__(self, *exc) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")

    def add(self, ids: Iterable[int]) -> None:
        ids = sorted(set(ids))
        if not ids:
            return
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    f"INSERT INTO {self.table} (id) SELECT unnest(%s::bigint[]) "
                    "ON CONFLICT DO NOTHING",
                    [ids],
                )
            else:
                cursor.executemany(
                    f"INSERT OR IGNORE INTO {self.table} (id) VALUES (%s)",  # noqa: S608
                    [(i,) for i in ids],
                )

    def which(self, ids: Iterable[int]) -> set[int]:
        """The given ids that were seen already."""
        ids = list(set(ids))
        if not ids:
            return set()
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    f"SELECT id FROM {self.table} WHERE id = ANY(%s::bigint[])",  # noqa: S608
                    [ids],
                )
            else:
                marks = ", ".join(["%s"] * len(ids))
                cursor.execute(f"SELECT id FROM {self.table} WHERE id IN ({marks})", ids)  # noqa: S608
            return {row[0] for row in cursor.fetchall()}

    def unseen(self, queryset: QuerySet) -> QuerySet:
        """``queryset`` less the rows whose primary key was seen."""
        table = queryset.model._meta.db_table
        return queryset.extra(  # noqa: S610 - table names are ours, never input
            where=[f'"{table}"."id" NOT IN (SELECT id FROM {self.table})']  # noqa: S608
        )

    def only_seen(self, queryset: QuerySet) -> QuerySet:
        """``queryset`` narrowed to the rows whose primary key was seen."""
        table = queryset.model._meta.db_table
        return queryset.extra(  # noqa: S610 - table names are ours, never input
            where=[f'"{table}"."id" IN (SELECT id FROM {self.table})']  # noqa: S608
        )
