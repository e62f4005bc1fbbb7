"""The OpenAPI schema and the offline Swagger UI."""

import re

import yaml

PATHS = {
    "/api/v1/users/{user_id}",
    "/api/v1/users/{user_id}/observees",
    "/api/v1/users/{user_id}/observees/{observee_id}",
    "/api/v1/users/{user_id}/observers",
    "/api/v1/users/{user_id}/observers/{observer_id}",
    "/api/v1/users/{user_id}/observer_pairing_codes",
}


def test_schema_describes_every_endpoint(client, default_account):
    response = client.get("/api/schema/", HTTP_HOST="default.test")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == PATHS
    observees = schema["paths"]["/api/v1/users/{user_id}/observees"]
    assert set(observees) == {"get", "post"}
    assert {p["name"] for p in observees["get"]["parameters"]} == {
        "user_id",
        "include[]",
        "page",
        "per_page",
    }
    assert {"200", "401", "404", "422", "400", "429"} <= set(observees["post"]["responses"])
    detail = schema["paths"]["/api/v1/users/{user_id}/observees/{observee_id}"]
    assert set(detail) == {"get", "put", "delete"}
    assert "bearerAuth" in schema["components"]["securitySchemes"]
    observee = schema["components"]["schemas"]["Observee"]["properties"]
    assert "observation_link_root_account_ids" in observee


def test_docs_page_uses_only_local_assets(client, default_account):
    response = client.get("/api/docs/", HTTP_HOST="default.test")
    assert response.status_code == 200
    html = response.content.decode()
    urls = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(
        r"""["'](https?://[^"']+)["']""", html
    )
    assert urls, html
    assert all(not url.startswith(("http://", "https://", "//")) for url in urls), urls
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn" not in html.lower()


def test_swagger_assets_are_served(client, default_account, settings):
    from django.contrib.staticfiles import finders

    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
