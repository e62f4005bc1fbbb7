"""Hand-written statements for the hottest paths: every API request, list page and link write.

Building and compiling a queryset costs the ORM 0.3 to 1 ms of Python per
statement, several times what PostgreSQL or SQLite needs to run these
index-bound lookups (bench/README numbers). The statements here are written
once, per database vendor where the SQL differs, and only executed; values
pass through the converters the ORM itself would apply and rows become the
same model instances, so callers see no difference.

Only statements on a hot path belong here (the token, the list page, the
users' root accounts, the redeemable code); everything else stays in the ORM.
"""

from collections.abc import Sequence

from django.db import connections
from django.db.models import Model
from django.db.models.sql import Query


def column_list(model: type[Model], alias: str, fields: Sequence[str] | None = None) -> str:
    """``alias."col", ...`` for ``fields`` of ``model`` (all concrete fields when None)."""
    quote = connections["default"].ops.quote_name
    chosen = _fields(model, fields)
    return ", ".join(f"{alias}.{quote(field.column)}" for field in chosen)


def with_user_sql(model: type[Model], user_field: str, where: str) -> str:
    """Every column of ``model`` (alias ``m``) and of the user ``user_field`` names (``u``).

    Filtered by ``where``; the rows suit ``Select([(model, None), (User, None)])``.
    """
    user = model._meta.get_field(user_field)
    user_model = user.related_model
    return (
        f"SELECT {column_list(model, 'm')}, {column_list(user_model, 'u')}"  # noqa: S608
        f" FROM {model._meta.db_table} m"
        f" INNER JOIN {user_model._meta.db_table} u ON u.id = m.{user.column}"
        f" WHERE {where}"
    )


def _fields(model: type[Model], names: Sequence[str] | None):
    if names is None:
        return list(model._meta.concrete_fields)
    return [model._meta.get_field(name) for name in names]


class Select:
    """A fixed SELECT whose leading columns are model fields, turned into objects.

    ``groups`` is a sequence of ``(model, field names or None for all)`` in
    the order their columns start the select list (built with
    ``column_list``), optionally with a third item: a callable building the
    object from the group's values in field order (default: a model
    instance, as a queryset would make). Any further columns are extra
    values returned as they come. ``rows`` returns, per row, one object per
    group followed by the extra values.
    """

    def __init__(self, groups: Sequence[tuple]):
        self.groups = []
        for model, names, *build in groups:
            fields = _fields(model, names)
            names = [field.attname for field in fields]
            self.groups.append((model, fields, names, build[0] if build else None))
        self._converters: dict[str, list] = {}

    def converters(self, connection) -> list:
        """``[(column position, converters, column)]``: what the ORM would apply to each value."""
        found = self._converters.get(connection.vendor)
        if found is None:
            compiler = Query(None).get_compiler(connection=connection)
            columns = [
                field.get_col(model._meta.db_table)
                for model, fields, _names, _build in self.groups
                for field in fields
            ]
            found = [
                (position, functions, column)
                for position, (functions, column) in compiler.get_converters(columns).items()
            ]
            self._converters[connection.vendor] = found
        return found

    def rows(self, sql: str, params: Sequence, *, using: str = "default") -> list[tuple]:
        connection = connections[using]
        converters = self.converters(connection)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            raw = cursor.fetchall()
        result = []
        for values in raw:
            if converters:
                values = list(values)
                for position, functions, column in converters:
                    value = values[position]
                    for function in functions:
                        value = function(value, column, connection)
                    values[position] = value
            row, start = [], 0
            for model, fields, names, build in self.groups:
                end = start + len(fields)
                if build is None:
                    row.append(model.from_db(using, names, values[start:end]))
                else:
                    row.append(build(values[start:end]))
                start = end
            row.extend(values[start:])
            result.append(tuple(row))
        return result
