"""Guessing pairing codes: the failure limit holds across gunicorn workers (issue 7).

A real gunicorn with three worker processes serves the test database; the
counters live in the shared cache (Redis through CACHE_URL, or the database
cache). One client sends wrong codes until the limit, then every answer from
every worker is 429 with Retry-After, and the right code is refused without
being consumed.
"""

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from linking.models import EnrollmentType, ObservationLink, PairingCode
from linking.services import accounts as account_services
from linking.services.context import Actor
from linking.services.enrollments import enroll_user
from linking.services.pairing import issue_pairing_code, redeem_pairing_code, revoke_pairing_code
from linking.services.tokens import issue_access_token

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
LIMIT = 5
REDIS_DB = 13
HOST = "localhost"
TIMEOUT = 10


def _database_url() -> str | None:
    """The test database as a DATABASE_URL, or None when another process cannot open it."""
    settings = connection.settings_dict
    if connection.vendor == "postgresql":
        user = quote(settings["USER"] or "", safe="")
        password = quote(settings["PASSWORD"] or "", safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = settings["HOST"] or "127.0.0.1"
        port = settings["PORT"] or 5432
        return f"postgres://{auth}{host}:{port}/{settings['NAME']}"
    name = str(settings["NAME"])
    if (
        connection.vendor == "sqlite"
        and not connection.is_in_memory_db()
        and "mode=memory" not in name
    ):
        return f"sqlite:///{name}"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, port: int, process: subprocess.Popen):
        self.port = port
        self.process = process

    def request(self, method: str, path: str, *, token: str | None = None, body=None):
        """One request on a fresh connection (no keep-alive), so requests spread over workers."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        headers = {"Host": HOST, "Connection": "close"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read()
            return response.status, dict(response.getheaders()), data
        finally:
            conn.close()


def _start_gunicorn(database_url: str, cache_url: str, log_path: Path) -> Server:
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "observers_project.settings",
        "OBSERVERS_ENV": "development",
        "DATABASE_URL": database_url,
        "CACHE_URL": cache_url,
        "RATE_LIMIT_FAILURES": str(LIMIT),
        "RATE_LIMIT_ADDRESS_FAILURES": str(LIMIT),
        "RATE_LIMIT_WINDOW_SECONDS": "900",
        "TRUSTED_PROXIES": "0",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
    }
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            str(GUNICORN),
            "observers_project.wsgi",
            "-w",
            "3",
            "-b",
            f"127.0.0.1:{port}",
            "--timeout",
            "30",
            "--access-logfile",
            "-",
            "--access-logformat",
            "ACCESS %(p)s %(s)s %(U)s",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    server = Server(port, process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited early:\n{log_path.read_text()}")
        try:
            status, _, _ = server.request("GET", "/health")
            if status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.1)  # waiting for a process to bind, not for the clock
    process.kill()
    raise AssertionError(f"gunicorn did not answer /health in 30 s:\n{log_path.read_text()}")


def _stop(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=15)


def _clear_shared_cache(cache_url: str) -> None:
    if cache_url.startswith("redis://"):
        import redis

        redis.Redis.from_url(cache_url).flushdb()
    else:
        table = cache_url.removeprefix("db://")
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")


def _redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2).ping())
    except Exception:
        return False


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "cache_url", [f"redis://127.0.0.1:6379/{REDIS_DB}", "db://observers_cache"]
)
def test_wrong_codes_are_limited_across_gunicorn_workers(cache_url, frozen_now, tmp_path):
    database_url = _database_url()
    if database_url is None:
        pytest.skip(
            "the SQLite test database is in memory and cannot be shared with gunicorn "
            "processes; this test runs on PostgreSQL (DATABASE_URL=postgres://...)"
        )
    if cache_url.startswith("redis://") and not _redis_available():
        pytest.fail("Redis is not running on 127.0.0.1:6379 (.ci/run starts it)")
    _clear_shared_cache(cache_url)

    system = Actor.system()
    school = account_services.create_root_account(name="Local School", domain=HOST)
    course = account_services.create_course(account=school, name="Maths")
    parent = account_services.create_user_with_login(
        name="Parent", root_account=school, unique_id="parent@example.org"
    )
    other_parent = account_services.create_user_with_login(
        name="Other Parent", root_account=school, unique_id="other@example.org"
    )
    redeemer = account_services.create_user_with_login(
        name="Earlier Parent", root_account=school, unique_id="earlier@example.org"
    )
    student = account_services.create_user_with_login(
        name="Student", root_account=school, unique_id="student@example.org"
    )
    enroll_user(user=student, course=course, type=EnrollmentType.STUDENT)
    token = issue_access_token(user=parent, actor=system)[1]
    other_token = issue_access_token(user=other_parent, actor=system)[1]

    # Wrong codes of every kind: expired, already used, revoked and never issued.
    frozen_now.advance(days=-30)
    expired = issue_pairing_code(student=student, root_account=school, actor=system).plaintext
    frozen_now.advance(days=30)
    used = issue_pairing_code(student=student, root_account=school, actor=system).plaintext
    redeem_pairing_code(code=used, observer=redeemer, root_account=school, actor=system)
    revoked_code = issue_pairing_code(student=student, root_account=school, actor=system)
    revoke_pairing_code(pairing_code=revoked_code.pairing_code, actor=system)
    live = issue_pairing_code(student=student, root_account=school, actor=system)
    wrong = ["ZZZZ-ZZZZ", expired, used, revoked_code.plaintext, "0000-0000"]
    assert live.plaintext not in wrong

    path = "/api/v1/users/self/observees"
    server = _start_gunicorn(database_url, cache_url, tmp_path / "gunicorn.log")
    try:
        # Up to the limit: 422, one body for every kind of wrong code (no oracle).
        bodies = set()
        for code in wrong:
            status, _, body = server.request("POST", path, token=token, body={"pairing_code": code})
            assert status == 422, body
            bodies.add(body)
        assert len(bodies) == 1
        assert json.loads(bodies.pop()) == {"errors": [{"message": "Invalid pairing code."}]}

        # Past the limit: 429 with Retry-After from every worker, whatever is sent.
        def attempt(i):
            code = "ZZZZ-ZZZ" + "0123456789"[i % 10]
            return server.request("POST", path, token=token, body={"pairing_code": code})

        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(attempt, range(30)))
        for status, headers, body in results:
            assert status == 429, body
            assert 0 < int(headers["Retry-After"]) <= 901
            payload = json.loads(body)
            assert isinstance(payload["errors"][0]["message"], str)
            assert payload["errors"][0]["message"]

        # The right code from the same user is refused, and so is another user
        # from the same address (the limit is per user and per address).
        for bearer in (token, other_token):
            status, headers, body = server.request(
                "POST", path, token=bearer, body={"pairing_code": live.plaintext}
            )
            assert status == 429, body
            assert int(headers["Retry-After"]) > 0
    finally:
        _stop(server)

    log = (tmp_path / "gunicorn.log").read_text()
    limited_pids = set(re.findall(r"^ACCESS <(\d+)> 429 ", log, re.MULTILINE))
    assert len(limited_pids) >= 2, f"429s came from one worker only:\n{log}"
    assert "Traceback" not in log, log

    code_row = PairingCode.objects.get(pk=live.pairing_code.pk)
    assert code_row.workflow_state == PairingCode.State.ACTIVE
    assert code_row.redeemed_by_id is None
    assert not ObservationLink.objects.filter(observer__in=[parent, other_parent]).exists()
