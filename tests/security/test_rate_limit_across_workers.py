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


def _start_gunicorn(
    database_url: str,
    cache_url: str,
    log_path: Path,
    extra_env: dict | None = None,
    workers: int = 3,
) -> Server:
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
        **(extra_env or {}),
    }
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            str(GUNICORN),
            "observers_project.wsgi",
            "-w",
            str(workers),
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


def _shared_stores(cache_url: str) -> str:
    """The database URL gunicorn's workers share with the test, the cache emptied.

    Skips on SQLite (its test database is in memory, no other process sees
    it; CI's PostgreSQL pass runs these tests) and fails when Redis is down.
    """
    database_url = _database_url()
    if database_url is None:
        pytest.skip(
            "the SQLite test database is in memory and cannot be shared with gunicorn "
            "processes; this test runs on PostgreSQL (DATABASE_URL=postgres://...)"
        )
    if cache_url.startswith("redis://") and not _redis_available():
        pytest.fail("Redis is not running on 127.0.0.1:6379 (.ci/run starts it)")
    _clear_shared_cache(cache_url)
    return database_url


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "cache_url", [f"redis://127.0.0.1:6379/{REDIS_DB}", "db://observers_cache"]
)
def test_wrong_codes_are_limited_across_gunicorn_workers(cache_url, frozen_now, tmp_path):
    database_url = _shared_stores(cache_url)

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


CONCURRENT_GUESSES = 40
EXACT_LIMIT = 10
GUESSERS = 3


def _post_form(server: Server, path: str, fields: dict, *, cookie: str):
    from urllib.parse import urlencode

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    headers = {
        "Host": HOST,
        "Connection": "close",
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": cookie,
    }
    try:
        conn.request("POST", path, body=urlencode(fields), headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "cache_url", [f"redis://127.0.0.1:6379/{REDIS_DB}", "db://observers_cache"]
)
def test_concurrent_guesses_get_exactly_the_limit_across_workers(cache_url, tmp_path):
    """Wrong codes and wrong passwords sent at once: exactly the limit is tried (finding 6).

    Three parents each send 40 wrong codes, and 40 wrong passwords go to the
    sign-in page for each of three logins, all at the same time, to six
    gunicorn workers. Before, the limit was checked before the failure was
    counted, and an attack run counted 13 failures against a limit of 10.
    """
    database_url = _shared_stores(cache_url)
    from linking.models import AuditAction, AuditEvent

    school = account_services.create_root_account(name="Local School", domain=HOST)
    parents, tokens = [], []
    for n in range(GUESSERS):
        parent = account_services.create_user_with_login(
            name=f"Parent {n}", root_account=school, unique_id=f"parent{n}@example.org"
        )
        parents.append(parent)
        tokens.append(issue_access_token(user=parent, actor=Actor.system())[1])
        account_services.create_user_with_login(
            name=f"Target {n}",
            root_account=school,
            unique_id=f"target{n}@example.org",
            password="right pw 1",
        )

    server = _start_gunicorn(
        database_url,
        cache_url,
        tmp_path / "gunicorn.log",
        extra_env={
            "RATE_LIMIT_FAILURES": str(EXACT_LIMIT),
            "RATE_LIMIT_ADDRESS_FAILURES": "1000",
            # The test's users carry the fast hasher of tests/conftest.py.
            "PASSWORD_HASHERS": "django.contrib.auth.hashers.MD5PasswordHasher",
        },
        workers=6,
    )
    try:
        # The sign-in page's CSRF cookie and token, shared by every guess.
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
        conn.request("GET", "/login/", headers={"Host": HOST, "Connection": "close"})
        page = conn.getresponse()
        cookie = page.getheader("Set-Cookie").split(";", 1)[0]
        csrf = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.read()).group(1)
        conn.close()

        def guess(i):
            who, n = divmod(i, CONCURRENT_GUESSES)
            if who < GUESSERS:
                body = {"pairing_code": f"ZZZZ-ZZ{n:02d}"}
                status, headers, _data = server.request(
                    "POST", "/api/v1/users/self/observees", token=tokens[who], body=body
                )
                return "code", who, status, headers
            fields = {
                "csrfmiddlewaretoken": csrf.decode(),
                "username": f"target{who - GUESSERS}@example.org",
                "password": f"wrong {n}",
            }
            status, headers, _data = _post_form(server, "/login/", fields, cookie=cookie)
            return "password", who - GUESSERS, status, headers

        with ThreadPoolExecutor(max_workers=50) as pool:
            results = list(pool.map(guess, range(2 * GUESSERS * CONCURRENT_GUESSES)))
    finally:
        _stop(server)

    tried = {"code": 422, "password": 200}
    for kind in tried:
        for who in range(GUESSERS):
            statuses = sorted(s for k, w, s, _ in results if k == kind and w == who)
            assert statuses == [tried[kind]] * EXACT_LIMIT + [429] * (
                CONCURRENT_GUESSES - EXACT_LIMIT
            ), (kind, who)
    assert all(int(h["Retry-After"]) > 0 for _, _, status, h in results if status == 429)
    for parent in parents:
        failed = AuditEvent.objects.filter(action=AuditAction.CODE_FAILED, actor=parent).count()
        assert failed == EXACT_LIMIT
    assert not ObservationLink.objects.exists()
    log = (tmp_path / "gunicorn.log").read_text()
    assert "Traceback" not in log, log
    assert len(set(re.findall(r"^ACCESS <(\d+)> 429 ", log, re.MULTILINE))) >= 2, log
