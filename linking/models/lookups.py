"""``field__any_of=[...]``: membership as one array parameter on PostgreSQL (``= ANY(%s)``).

One statement whatever the list's length, so a prepared statement's generic
plan is the same index scan as its custom one (see services/sis/bulkdb.py).
Used only on PostgreSQL; elsewhere callers use ``__in``.
"""

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


Field.register_lookup(AnyOf)
ForeignObject.register_lookup(AnyOf)


def any_of(column: str, values: Iterable) -> Q:
    """A filter ``column IN values`` written as one ``= ANY(array)`` parameter on PostgreSQL.

    ``column`` is a model field name (``sis_user_id``, ``user_id``). Elsewhere
    it is the ordinary ``__in`` lookup; an empty list matches nothing.
    """
    values = list(values)
    if not values:
        return Q(pk__in=[])
    if connection.vendor != "postgresql":
        return Q(**{f"{column}__in": values})
    # "IS NOT NULL" written out (it changes no result): a prepared statement's
    # generic plan cannot prove it from "= ANY($1)", and without it the
    # partial unique indexes on SIS ids (WHERE sis_user_id IS NOT NULL) are
    # out of reach and each lookup walks the whole table.
    return Q(**{f"{column}__any_of": values}) & Q(**{f"{column}__isnull": False})
