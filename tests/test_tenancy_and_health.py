"""The tenant comes from the host; /health and database faults answer without a 500."""

import pytest
from django.db import OperationalError

from linking import middleware
from linking.models import Account


@pytest.mark.django_db
def test_health_runs_one_query(client, django_assert_num_queries):
    with django_assert_num_queries(1):
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_health_is_503_when_the_database_fails(client, monkeypatch):
    class UnreachableDatabase:
        def cursor(self):
            raise OperationalError("connection refused")

    monkeypatch.setattr("linking.health.connection", UnreachableDatabase())
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


def test_root_account_follows_the_host(rf, root_account, other_root_account):
    assert middleware.root_account_for_host("external.test:8000") == other_root_account
    assert middleware.root_account_for_host("DEFAULT.test.") == root_account


def test_unknown_host_refused_when_not_allowed(client, root_account, settings):
    settings.OBSERVERS_ALLOW_UNKNOWN_HOSTS = False
    response = client.get("/admin/login/", HTTP_HOST="elsewhere.test")
    assert response.status_code == 404
    assert response.json() == {"errors": [{"message": "No institution is served at this address."}]}


def test_unknown_host_falls_back_in_development(root_account, settings):
    settings.OBSERVERS_ALLOW_UNKNOWN_HOSTS = True
    settings.OBSERVERS_DEFAULT_DOMAIN = "default.test"
    assert middleware.root_account_for_host("127.0.0.1") == root_account


def test_tenant_cache_holds_for_its_lifetime(root_account, settings, django_assert_num_queries):
    settings.OBSERVERS_TENANT_CACHE_SECONDS = 60
    middleware._tenant_cache.clear()
    try:
        assert middleware.root_account_for_host("default.test") == root_account
        with django_assert_num_queries(0):
            assert middleware.root_account_for_host("default.test") == root_account
    finally:
        middleware._tenant_cache.clear()


def test_lost_database_while_resolving_tenant_is_503(client, root_account, monkeypatch):
    def broken(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(middleware, "root_account_for_host", broken)
    api = client.get("/api/v1/users/self/observees", HTTP_HOST="default.test")
    assert api.status_code == 503
    assert api["Retry-After"] == "30"
    assert api.json()["errors"][0]["error_code"] == "service_unavailable"
    page = client.get("/", HTTP_HOST="default.test")
    assert page.status_code == 503
    assert Account.objects.count() == 1
