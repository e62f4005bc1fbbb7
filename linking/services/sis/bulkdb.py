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

import functools
import json
import uuid
from collections.abc import Iterable
from types import SimpleNamespace

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone
from psycopg.types.json import Jsonb

from ...models.lookups import json_array, pg_array


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
            # On SQLite "integer primary key" is the rowid itself: no second index.
            kind = "bigint" if connection.vendor == "postgresql" else "integer"
            cursor.execute(f"CREATE TEMPORARY TABLE {self.table} (id {kind} PRIMARY KEY){suffix}")
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
                    [pg_array(ids)],
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
                    [pg_array(ids)],
                )
            else:
                cursor.execute(
                    f"SELECT id FROM {self.table} "  # noqa: S608
                    "WHERE id IN (SELECT value FROM json_each(%s))",
                    [json_array(ids)],
                )
            return {row[0] for row in cursor.fetchall()}

    def chunks(self, size: int) -> Iterable[list[int]]:
        """The seen ids in order, ``size`` at a time (keyset pages of the table's own index)."""
        last = 0
        while True:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT id FROM {self.table} WHERE id > %s ORDER BY id LIMIT %s",  # noqa: S608
                    [last, size],
                )
                ids = [row[0] for row in cursor.fetchall()]
            if not ids:
                return
            last = ids[-1]
            yield ids

    def unseen(self, queryset: QuerySet) -> QuerySet:
        """``queryset`` less the rows whose primary key was seen.

        ``NOT EXISTS``, not ``NOT IN``: PostgreSQL turns ``NOT IN (subquery)``
        into a hashed subplan only while the ids fit in ``work_mem``, and past
        that probes the whole table per row (300,000 x 300,000).
        """
        table = queryset.model._meta.db_table
        return queryset.extra(  # noqa: S610 - table names are ours, never input
            where=[
                f"NOT EXISTS (SELECT 1 FROM {self.table} seen "  # noqa: S608
                f'WHERE seen.id = "{table}"."id")'
            ]
        )


def json_rows_select(width: int) -> str:
    """SQLite: ``SELECT`` the rows of one JSON parameter (a list of lists), ``width`` columns.

    One statement text whatever the number of rows: a ``VALUES`` list
    sized to the rows is a new statement for SQLite to compile and for
    Python's sqlite3 module to cache at every length (see
    models/lookups.py), and is capped by the parameter limit.
    """
    columns = ", ".join(f"json_extract(value, '$[{index}]')" for index in range(width))
    return f"SELECT {columns} FROM json_each(%s)"  # noqa: S608 - no input in it


def _adapter(field):
    """How a column's Python values become what the driver takes, decided once per column.

    PostgreSQL's driver adapts str, int, bool, datetime, date and UUID itself;
    SQLite stores datetimes, dates and UUIDs as Django's text forms.
    """
    if connection.vendor == "postgresql":
        return None
    internal = field.get_internal_type()
    if internal == "DateTimeField":
        return connection.ops.adapt_datetimefield_value
    if internal == "DateField":
        return connection.ops.adapt_datefield_value
    if internal == "UUIDField":
        return lambda value: None if value is None else value.hex
    return None


def insert_rows(model, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """INSERT database-ready rows (tuples in ``columns`` order), all in one statement.

    bulk_create prepares every field of every object in Python; at five
    observer enrollments and one audit event per link that is most of an
    import's time. Here the values are already what the database stores.
    """
    if not rows:
        return
    fields = [model._meta.get_field(column) for column in columns]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            _unnest_insert(cursor, fields, [list(values) for values in zip(*rows, strict=True)])
        else:
            quote = connection.ops.quote_name
            names = ", ".join(quote(field.column) for field in fields)
            cursor.execute(
                f"INSERT INTO {quote(model._meta.db_table)} ({names}) "
                f"{json_rows_select(len(columns))}",
                [json_array(rows)],
            )
    note_inserted(model, len(rows))


def _unnest_insert(cursor, fields: list, columns: list[list], returning: str = "") -> list:
    """PostgreSQL: ``INSERT ... SELECT * FROM unnest(one array per column)``; the returned rows.

    Each column goes as one array literal written by ``pg_array`` and cast
    to the field's type: one prepared statement whatever the count, no
    Python call per row (COPY took one) and nothing parsed per row (VALUES
    lists are).
    """
    quote = connection.ops.quote_name
    table = quote(fields[0].model._meta.db_table)
    names = ", ".join(quote(field.column) for field in fields)
    arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in fields)
    cursor.execute(
        f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) {returning}",  # noqa: S608
        [pg_array(_json_as_text(column)) for column in columns],
    )
    return cursor.fetchall() if returning else []


def _json_as_text(values: list) -> list:
    """A JSON column's values (psycopg's Jsonb wrappers) as their JSON text, each written once."""
    first = next((value for value in values if value is not None), None)
    if not isinstance(first, Jsonb):
        return values
    texts: dict[int, str] = {}
    for value in values:
        if isinstance(value, Jsonb) and id(value) not in texts:
            texts[id(value)] = (value.dumps or json.dumps)(value.obj)
    return [texts[id(value)] if isinstance(value, Jsonb) else value for value in values]


def insert_returning_ids(model, objs: list) -> None:
    """INSERT model instances in as few statements as possible and set their primary keys.

    ``bulk_create`` prepares every value of every row through the field's
    converters (most of a first import's time at 10 fields x 30,000 rows).
    Here each column is adapted once as a whole: on PostgreSQL the values go
    as one array per column (``INSERT ... SELECT unnest(...) RETURNING id``,
    one prepared statement whatever the count); on SQLite as a multi-row
    VALUES list with RETURNING.
    """
    if not objs:
        return
    meta = model._meta
    model_fields = [field for field in meta.concrete_fields if not field.primary_key]
    now = timezone.now()
    for field in model_fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            for obj in objs:
                setattr(obj, field.attname, now)
    columns = [field.column for field in model_fields]
    attnames = [field.attname for field in model_fields]
    adapters = [_adapter(field) for field in model_fields]
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    names = ", ".join(quote(column) for column in columns)
    values = [
        [adapt(getattr(obj, attname)) if adapt else getattr(obj, attname) for obj in objs]
        for attname, adapt in zip(attnames, adapters, strict=True)
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            ids = [row[0] for row in _unnest_insert(cursor, model_fields, values, "RETURNING id")]
        else:
            rows = [list(row) for row in zip(*values, strict=True)]
            cursor.execute(
                f"INSERT INTO {table} ({names}) {json_rows_select(len(columns))} RETURNING id",
                [json_array(rows)],
            )
            ids = [row[0] for row in cursor.fetchall()]
    if len(ids) != len(objs):
        raise RuntimeError(f"inserted {len(objs)} {meta.db_table} rows but got {len(ids)} ids")
    for obj, pk in zip(objs, ids, strict=True):
        obj.pk = pk
        if hasattr(obj, "_state"):
            obj._state.adding = False
    note_inserted(model, len(objs))


@functools.cache
def _defaults(model) -> tuple[dict, list]:
    static, dynamic = {}, []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        if field.has_default() and callable(field.default):
            dynamic.append((field.attname, field.default))
        else:
            static[field.attname] = field.get_default()
    return static, dynamic


def new_row(model, **values) -> SimpleNamespace:
    """A new row of ``model`` for insert_returning_ids: its defaults, then ``values`` (attnames).

    A plain namespace, not a model instance: building 30,000 instances cost
    more than inserting them.
    """
    static, dynamic = _defaults(model)
    row = SimpleNamespace(pk=None, **static)
    for attname, make in dynamic:
        if attname not in values:
            setattr(row, attname, make())
    row.__dict__.update(values)
    return row


def plan_with_indexes() -> None:
    """Start an import's transaction so PostgreSQL's plans hold while the import grows the tables.

    A first import grows tables from nothing inside one transaction, and
    this machine's PostgreSQL (like many) runs without autovacuum: with no
    statistics for the rows the import itself wrote, the planner takes the
    tables for tiny, scans them whole (or walks a one-column index of the
    root account) and tests every row against the chunk's 1,000 keys, so
    each chunk is slower than the one before. Two things keep the plans the
    index scans the lookups were written for: sequential scans are priced
    out for the transaction, and ``note_inserted`` has the tables ANALYZEd
    (inside the transaction, which counts its own rows) each time they have
    doubled. SQLite gets the ANALYZEs too: without statistics its planner
    takes an equality on the root account for the narrowest index and walked
    every enrollment of the school per chunk.

    The transaction also gets room to sort in memory: a links chunk's
    observer enrollments (about 30,000 rows, sorted so their ids follow the
    file) spilled to disk at PostgreSQL's default 4 MB of ``work_mem``, and
    the sort took as long as the join that fed it.
    """
    _grown.clear()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"SET LOCAL work_mem = '{IMPORT_WORK_MEM}'")


# Per sort or hash of the import's one connection, for the length of its transaction.
IMPORT_WORK_MEM = "32MB"


# table -> [rows at the last ANALYZE (or the planner's estimate), rows inserted since]
_grown: dict[str, list[float]] = {}
ANALYZE_AFTER = 5000


def _estimated_rows(table: str) -> float:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [table])
        else:
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")  # noqa: S608
        row = cursor.fetchone()
    return max(float(row[0]) if row else 0.0, 0.0)


def note_inserted(model, count: int) -> None:
    """Count rows an import inserted; ANALYZE the table once it has doubled since last time."""
    if not count:
        return
    table = model._meta.db_table
    state = _grown.get(table)
    if state is None:
        state = _grown[table] = [_estimated_rows(table), 0.0]
    state[1] += count
    if state[1] >= max(ANALYZE_AFTER, state[0]):
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
        state[0], state[1] = state[0] + state[1], 0.0
