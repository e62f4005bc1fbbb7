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
"""

import json
from collections.abc import Iterable

from django.db import connection
from django.db.models import Field, Lookup, Q
from django.db.models.fields.related import ForeignObject


class AnyOf(Lookup):
    lookup_name = "any_of"
    prepare_rhs = False

    def get_db_prep_lookup(self, value, connection):
        field = self.lhs.output_field
        prep = getattr(field, "target_field", field)
        return "%s", [[prep.get_db_prep_value(v, connection, prepared=False) for v in value]]

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        _, rhs_params = self.get_db_prep_lookup(self.rhs, connection)
        return f"{lhs} = ANY(%s)", [*lhs_params, *rhs_params]

    def as_sqlite(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        _, [values] = self.get_db_prep_lookup(self.rhs, connection)
        # lhs is the compiled column; the values are one parameter.
        sql = f"{lhs} IN (SELECT value FROM json_each(%s))"  # noqa: S608
        return sql, [*lhs_params, json_array(values)]


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
    return Q(**{f"{column}__any_of": values}) & Q(**{f"{column}__isnull": False})
