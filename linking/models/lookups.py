"""``field__any_of=[...]``: membership as one parameter, whatever the list's length.

PostgreSQL gets ``= ANY(%s)`` with an array, so a prepared statement's
generic plan is the same index scan as its custom one (see
services/sis/bulkdb.py). SQLite gets ``IN (SELECT value FROM json_each(%s))``
with a JSON array: the statement's text no longer depends on the list's
length. With ``IN (%s, %s, ...)`` each length was a new statement for
SQLite to compile and for Python's sqlite3 module to keep in its cache of
128 prepared statements; an import's chunks of every length filled it with
statements of thousands of parameters, and its memory grew with the
district (91 -> 105 MB, 96 -> 123 MB from 10,000 to 100,000 users).

PostgreSQL arrays of ids and strings go as one array literal built by
``pg_array`` rather than as a Python list: psycopg adapts a list element by
element in Python and tests each element with a regular expression, about
1.2 microseconds an element; a links file's chunk sends some 80,000
elements (the people it names, the links' columns, the mirrors' pairs).
``str.join`` builds the same array three to five times faster.
"""

import json
from collections.abc import Iterable
from datetime import date, datetime

from django.db import connection
from django.db.models import Field, Lookup, Q
from django.db.models.fields.related import ForeignObject


class AnyOf(Lookup):
    lookup_name = "any_of"
    prepare_rhs = False

    def get_db_prep_lookup(self, value, connection):
        field = self.lhs.output_field
        prep = getattr(field, "target_field", field)
        values = list(value)
        plain = _PLAIN_TYPES.get(prep.get_internal_type())
        if plain is not None and all(type(v) is plain for v in values):
            # An id or a text as it is: the field would only return it unchanged.
            return "%s", [values]
        return "%s", [[prep.get_db_prep_value(v, connection, prepared=False) for v in values]]

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        _, [values] = self.get_db_prep_lookup(self.rhs, connection)
        field = self.lhs.output_field
        # Texts as text[]: a varchar(255)[] parameter is coerced back to
        # text[] element by element, and a generic plan's filter does that
        # for every row it tests (a 4,000-key lookup took 2.5 times as long).
        text = _PLAIN_TYPES.get(getattr(field, "target_field", field).get_internal_type()) is str
        kind = "text" if text else field.db_type(connection)
        array = pg_array(values) if kind else values
        if isinstance(array, str):
            return f"{lhs} = ANY(%s::{kind}[])", [*lhs_params, array]
        return f"{lhs} = ANY(%s)", [*lhs_params, values]

    def as_sqlite(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        _, [values] = self.get_db_prep_lookup(self.rhs, connection)
        # lhs is the compiled column; the values are one parameter.
        sql = f"{lhs} IN (SELECT value FROM json_each(%s))"  # noqa: S608
        return sql, [*lhs_params, json_array(values)]


# Fields whose database value is a Python int or str as it is, by internal type.
_PLAIN_TYPES = {
    **dict.fromkeys(
        (
            "AutoField",
            "BigAutoField",
            "SmallAutoField",
            "IntegerField",
            "BigIntegerField",
            "SmallIntegerField",
            "PositiveIntegerField",
            "PositiveBigIntegerField",
            "PositiveSmallIntegerField",
        ),
        int,
    ),
    **dict.fromkeys(("CharField", "TextField", "SlugField", "EmailField"), str),
}


def pg_array(values: list):
    """A PostgreSQL array literal of ``values``, or ``values`` itself when they are of another type.

    Ints, strings, booleans, dates, aware date-times and None are written;
    the statement casts the parameter (``%s::bigint[]``), so the literal
    reaches the server as the same typed array psycopg would have sent.
    """
    if all(type(v) is int for v in values):
        return "{" + ",".join(map(str, values)) + "}"
    if not all(
        type(v) in _ELEMENT and (type(v) is not datetime or v.tzinfo is not None) for v in values
    ):
        return values
    # A column often repeats a value (a chunk's time, state or source): each is written once.
    written: dict[tuple, str] = {}
    elements = []
    for value in values:
        key = (type(value), value)
        text = written.get(key)
        if text is None:
            text = written[key] = _ELEMENT[key[0]](value)
        elements.append(text)
    return "{" + ",".join(elements) + "}"


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_ELEMENT = {
    int: str,
    str: _quoted,
    bool: lambda value: "t" if value else "f",
    type(None): lambda value: "NULL",
    date: lambda value: value.isoformat(),
    datetime: lambda value: '"' + value.isoformat() + '"',
}


def json_array(values: Iterable) -> str:
    """A list of ids or strings as one JSON parameter for SQLite's ``json_each``."""
    return json.dumps(list(values), separators=(",", ":"))


Field.register_lookup(AnyOf)
ForeignObject.register_lookup(AnyOf)


def any_of(column: str, values: Iterable) -> Q:
    """A filter ``column IN values`` written as one parameter (see the module's docstring).

    ``column`` is a model field name (``sis_user_id``, ``user_id``). On
    another database it is the ordinary ``__in`` lookup; an empty list
    matches nothing.
    """
    values = list(values)
    if not values:
        return Q(pk__in=[])
    if connection.vendor not in ("postgresql", "sqlite"):
        return Q(**{f"{column}__in": values})
    # "IS NOT NULL" written out (it changes no result): a prepared statement's
    # generic plan cannot prove it from "= ANY($1)", and without it the
    # partial unique indexes on SIS ids (WHERE sis_user_id IS NOT NULL) are
    # out of reach and each lookup walks the whole table.
    return Q(**{f"{column}__any_of": KeyList(values)}) & Q(**{f"{column}__isnull": False})


class KeyList:
    """The values of an ``any_of`` filter, held so Django does not walk them.

    Django resolves a lookup's list value element by element, looking for
    expressions (half a million calls in a links file); keys never are.
    """

    __slots__ = ("values",)

    def __init__(self, values: list):
        self.values = values

    def __iter__(self):
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)
