"""A database lost in the middle of an API request answers 503 with a Canvas body, never 500.

The failure is injected at the database driver boundary (``execute_wrapper``),
after the tenant and the token were resolved, so the error surfaces inside
the DRF view; bench/soak.py proves the same against a really stopped
PostgreSQL under load.
"""

import pytest
from django.db import InterfaceError, OperationalError, connection

from linking.models import ObservationLink
from tests.security.conftest import HOST_A


def _fail_on(table, error):
    def wrapper(execute, sql, params, many, context):
        if table in sql:
            raise error("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    return wrapper


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_lost_database_inside_an_api_view_is_503(schools, bearer, error, method):
    a = schools["a"]
    client = bearer(a["admin"], HOST_A)
    path = f"/api/v1/users/{a['parent'].pk}/observees"
    if method != "get":
        path += f"/{a['student'].pk}"
    before = list(ObservationLink.objects.values())

    with connection.execute_wrapper(_fail_on(ObservationLink._meta.db_table, error)):
        response = getattr(client, method)(path)

    assert response.status_code == 503, response.content
    assert response["Retry-After"]
    assert response.json()["errors"][0]["error_code"] == "service_unavailable"
    assert list(ObservationLink.objects.values()) == before
