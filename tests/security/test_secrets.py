"""Secrets: keyed hashes at rest, nothing in the logs, production settings (issue 7)."""

import hashlib
import json
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from rest_framework.test import APIClient

from linking.models import ObservationLink, PairingCode
from linking.services.context import Actor
from linking.services.errors import InvalidPairingCode
from linking.services.hashing import keyed_hash
from linking.services.pairing import (
    find_redeemable_code,
    issue_pairing_code,
    normalize_code,
    redeem_pairing_code,
)
from linking.services.tokens import authenticate_access_token, issue_access_token
from tests.security.conftest import CLIENT_IP, HOST_A

ROOT = Path(__file__).resolve().parents[2]
PATH = "/api/v1/users/self/observees"


def _all_values():
    """(table, value) for every non-null value of every table in the database."""
    tables = connection.introspection.table_names()
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if value is not None:
                        if isinstance(value, memoryview | bytes):
                            value = bytes(value).decode("latin-1")
                        yield table, str(value)


def _leaks(plaintexts):
    return [(table, value) for table, value in _all_values() for p in plaintexts if p in value]


def test_codes_and_tokens_are_only_stored_as_keyed_hashes(schools, bearer):
    a = schools["a"]
    system = Actor.system()
    token_row, token = issue_access_token(user=a["parent"], actor=system)
    issued = issue_pairing_code(student=a["student"], root_account=a["school"], actor=system)
    spare = issue_pairing_code(student=a["student"], root_account=a["school"], actor=system)
    canonical = normalize_code(issued.plaintext)
    redeemer = bearer(a["admin"], HOST_A)
    response = redeemer.post(PATH, {"pairing_code": issued.plaintext}, format="json")
    assert response.status_code == 200, response.content
    assert PairingCode.objects.get(pk=issued.pairing_code.pk).workflow_state == "redeemed"

    # No column of any row (codes, tokens, audit events, sessions, cache) holds a secret.
    secrets_issued = [token, issued.plaintext, canonical, spare.plaintext]
    secrets_issued.append(normalize_code(spare.plaintext))
    assert _leaks(secrets_issued) == []
    # ... while the scan does see what it looks for (the stored hash).
    assert _leaks([PairingCode.objects.get(pk=issued.pairing_code.pk).code_hash])

    # The stored values are HMACs under the server's key, not plain digests.
    assert issued.pairing_code.code_hash == keyed_hash("pairing-code", canonical)
    assert issued.pairing_code.code_hash != hashlib.sha256(canonical.encode()).hexdigest()
    assert token_row.token_hash == keyed_hash("access-token", token)
    assert token_row.token_hash != hashlib.sha256(token.encode()).hexdigest()
    assert token_row.token_hint == token[-4:]


def test_a_different_hash_key_matches_nothing(schools, settings):
    a = schools["a"]
    system = Actor.system()
    token = issue_access_token(user=a["parent"], actor=system)[1]
    issued = issue_pairing_code(student=a["student"], root_account=a["school"], actor=system)
    assert authenticate_access_token(token).user_id == a["parent"].pk
    assert find_redeemable_code(code=issued.plaintext, root_account=a["school"], actor=system)

    # A dump of the table is useless without HASH_KEY: under another key the
    # same secrets match no row.
    settings.HASH_KEY = "another-key-" + "x" * 40
    assert authenticate_access_token(token) is None
    with pytest.raises(InvalidPairingCode):
        find_redeemable_code(code=issued.plaintext, root_account=a["school"], actor=system)


def test_redemption_logs_neither_the_code_nor_the_token(schools, caplog):
    a = schools["a"]
    system = Actor.system()
    token = issue_access_token(user=a["parent"], actor=system)[1]
    issued = issue_pairing_code(student=a["student"], root_account=a["school"], actor=system)
    other = issue_pairing_code(student=a["student"], root_account=a["school"], actor=system)
    client = APIClient(HTTP_HOST=HOST_A, REMOTE_ADDR=CLIENT_IP)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    # ``other`` typed lower-case with a space, its last symbol changed: a wrong code.
    last = "Y" if other.plaintext.endswith("Z") else "Z"
    typed_wrong = other.plaintext.lower().replace("-", " ")[:-1] + last

    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    connection.force_debug_cursor = True  # log every SQL statement with its parameters
    try:
        wrong = client.post(PATH, {"pairing_code": typed_wrong}, format="json")
        right = client.post(PATH, {"pairing_code": issued.plaintext.lower()}, format="json")
        with pytest.raises(InvalidPairingCode):  # a used code, through the service
            redeem_pairing_code(
                code=issued.plaintext,
                observer=a["admin"],
                root_account=a["school"],
                actor=system,
            )
    finally:
        connection.force_debug_cursor = False

    assert wrong.status_code == 422 and right.status_code == 200, right.content
    assert ObservationLink.objects.active().filter(observer=a["parent"]).count() == 1
    logged = caplog.text + "".join(repr(record.args) for record in caplog.records)
    # The queries were logged (with the hash as their parameter) ...
    assert "SELECT" in logged
    assert issued.pairing_code.code_hash in logged
    # ... but no form of the codes or the token ever was.
    for secret in (
        issued.plaintext,
        normalize_code(issued.plaintext),
        issued.plaintext.lower(),
        normalize_code(issued.plaintext).lower(),
        typed_wrong,
        token,
    ):
        assert secret not in logged


def _production_env(**extra):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CACHE_URL", "SECRET_KEY", "DEBUG", "HASH_KEY"}
    }
    env.update(
        OBSERVERS_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(64)[:50],
        ALLOWED_HOSTS="example.org",
        CACHE_URL="locmem://",
        DJANGO_SETTINGS_MODULE="observers_project.settings",
    )
    env.update(extra)
    return {key: value for key, value in env.items() if value is not None}


def _manage(*args, env):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_in_production_with_hsts_preload():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env=_production_env(SECURE_HSTS_PRELOAD="true"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_is_clean_with_production_settings():
    # Preload is opt-in (SECURE_HSTS_PRELOAD) because leaving the browsers'
    # preload list takes months, so its check is silenced while it is off;
    # every other deployment check passes.
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=_production_env())
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues (1 silenced)." in output
    result = _manage("check", "--deploy", env=_production_env() | {"SECURE_HSTS_PRELOAD": "true"})
    assert "System check identified no issues (0 silenced)." in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("secret_key", "reason"),
    [
        (None, "missing"),
        ("", "empty"),
        ("too-short", "short"),
        ("dev-only-insecure-secret-key-do-not-use-in-production", "the development key"),
    ],
)
def test_production_refuses_to_start_without_a_real_secret_key(secret_key, reason):
    env = _production_env()
    env.pop("SECRET_KEY")
    if secret_key is not None:
        env["SECRET_KEY"] = secret_key
    result = _manage("check", env=env)
    assert result.returncode != 0, reason
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY must be set to a random string of at least 32 characters" in result.stderr


def test_production_refuses_to_start_without_allowed_hosts():
    env = _production_env()
    env.pop("ALLOWED_HOSTS")
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "ALLOWED_HOSTS must list the served host names in production" in result.stderr


# Runs in a fresh process under production settings against a throw-away
# SQLite file: migrates, creates a school and a parent, and reports what the
# responses carried.
PRODUCTION_PROBE = r"""
import json
import django

django.setup()
from django.core.management import call_command
from django.test import Client

call_command("migrate", verbosity=0)
from linking.services import accounts

school = accounts.create_root_account(name="Production School", domain="example.org")
accounts.create_user_with_login(
    name="Parent", root_account=school, unique_id="parent@example.org",
    password="a long enough password",
)


def describe(response):
    return {
        "status": response.status_code,
        "headers": {key.lower(): value for key, value in response.headers.items()},
        "cookies": {
            name: {
                "secure": bool(morsel["secure"]),
                "httponly": bool(morsel["httponly"]),
                "samesite": morsel["samesite"],
            }
            for name, morsel in response.cookies.items()
        },
    }


https = {"HTTP_X_FORWARDED_PROTO": "https"}
client = Client(HTTP_HOST="example.org")
report = {
    "plain_http": describe(client.get("/login/")),
    "login_page": describe(client.get("/login/", **https)),
    "login": describe(
        client.post(
            "/login/",
            {"username": "parent@example.org", "password": "a long enough password"},
            **https,
        )
    ),
    "api": describe(client.get("/api/v1/users/self", **https)),
    "unknown_host": describe(Client(HTTP_HOST="evil.example").get("/login/", **https)),
}
print("REPORT" + json.dumps(report))
"""


@pytest.fixture(scope="module")
def production_report(tmp_path_factory):
    database = tmp_path_factory.mktemp("production") / "db.sqlite3"
    env = _production_env(
        DATABASE_URL=f"sqlite:///{database}",
        ALLOWED_HOSTS="example.org",
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
    )
    result = subprocess.run(
        [sys.executable, "-c", PRODUCTION_PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("REPORT"))
    return json.loads(line.removeprefix("REPORT"))


def test_production_redirects_plain_http_to_https(production_report):
    plain = production_report["plain_http"]
    assert plain["status"] == 301
    assert plain["headers"]["location"] == "https://example.org/login/"


@pytest.mark.parametrize("name", ["login_page", "login", "api"])
def test_production_responses_carry_hsts_frame_denial_and_nosniff(production_report, name):
    headers = production_report[name]["headers"]
    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"


def test_production_cookies_are_secure(production_report):
    login = production_report["login"]
    assert login["status"] == 302, login
    cookies = login["cookies"]
    assert {"sessionid", "csrftoken"} <= set(cookies)
    assert cookies["sessionid"] == {"secure": True, "httponly": True, "samesite": "Lax"}
    assert cookies["csrftoken"]["secure"] is True
    assert production_report["login_page"]["cookies"]["csrftoken"]["secure"] is True


def test_production_refuses_unknown_hosts(production_report):
    assert production_report["unknown_host"]["status"] == 400


@pytest.mark.parametrize("name", ["login_page", "login", "api"])
def test_production_responses_carry_a_content_security_policy(production_report, name):
    policy = production_report[name]["headers"]["content-security-policy"]
    directives = {part.strip().split(" ", 1)[0]: part.strip() for part in policy.split(";")}
    assert directives["default-src"] == "default-src 'self'"
    assert directives["script-src"] == "script-src 'self'"  # no inline or remote scripts
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    assert directives["object-src"] == "object-src 'none'"
