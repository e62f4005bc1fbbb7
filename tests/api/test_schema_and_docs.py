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
    "/api/v1/users/{user_id}/enrollments",
    "/api/v1/courses/{course_id}/enrollments",
    "/api/v1/courses",
    "/api/v1/users/{user_id}/courses",
    "/login/oauth2/auth",
    "/login/oauth2/token",
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


def test_schema_documents_the_read_endpoints_and_oauth2(client, default_account):
    from linking.services.scopes import API_SCOPES

    schema = yaml.safe_load(client.get("/api/schema/", HTTP_HOST="default.test").content)
    enrollments = schema["paths"]["/api/v1/users/{user_id}/enrollments"]
    assert set(enrollments) == {"get"}
    names = {p["name"] for p in enrollments["get"]["parameters"]}
    assert {"type[]", "role[]", "state[]", "include[]", "sis_user_id[]", "page"} <= names
    assert {"200", "400", "401", "404"} <= set(enrollments["get"]["responses"])
    courses = schema["paths"]["/api/v1/courses"]["get"]
    assert {"enrollment_type", "enrollment_state", "state[]", "include[]"} <= {
        p["name"] for p in courses["parameters"]
    }
    properties = schema["components"]["schemas"]["Enrollment"]["properties"]
    assert {"associated_user_id", "observed_user", "role_id", "html_url"} <= set(properties)
    assert "enrollments" in schema["components"]["schemas"]["Course"]["properties"]
    oauth2 = schema["components"]["securitySchemes"]["oauth2"]
    flow = oauth2["flows"]["authorizationCode"]
    assert flow["authorizationUrl"] == "/login/oauth2/auth"
    assert flow["tokenUrl"] == "/login/oauth2/token"
    assert set(flow["scopes"]) == set(API_SCOPES)
    assert {"oauth2": []} in courses["security"]
    token = schema["paths"]["/login/oauth2/token"]
    assert set(token) == {"post", "delete"}
    grant = token["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert grant["properties"]["grant_type"]["enum"] == ["authorization_code", "refresh_token"]
    assert (
        "user"
        in token["post"]["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
    )
    assert schema["paths"]["/login/oauth2/auth"]["get"]["operationId"] == "oauth2_authorize"


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
