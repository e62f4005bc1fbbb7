"""The deploy/ folder: the environment example is complete, and gunicorn serves with its config."""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def settings_read() -> set[str]:
    source = (ROOT / "observers_project" / "settings.py").read_text()
    return set(re.findall(r'env_(?:str|bool|int|list)\(\s*"([A-Z_0-9]+)"', source))


def test_environment_example_lists_every_setting_the_code_reads():
    example = (DEPLOY / "observers.env.example").read_text()
    listed = set(re.findall(r"^#?([A-Z][A-Z_0-9]+)=", example, re.MULTILINE))
    names = settings_read()
    assert len(names) > 40
    assert names - listed == set()
    gunicorn = (DEPLOY / "gunicorn.conf.py").read_text()
    for name in re.findall(r'os\.environ\.get\("([A-Z_]+)"', gunicorn):
        assert name in listed or name == "PROMETHEUS_MULTIPROC_DIR", name


def test_systemd_units_run_the_web_server_and_the_worker():
    web = (DEPLOY / "observers-web.service").read_text()
    worker = (DEPLOY / "observers-worker.service").read_text()
    assert "gunicorn -c deploy/gunicorn.conf.py" in web
    assert "PROMETHEUS_MULTIPROC_DIR=" in web
    assert "EnvironmentFile=/etc/observers/observers.env" in web
    assert "manage.py run_worker" in worker
    assert "EnvironmentFile=/etc/observers/observers.env" in worker


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gunicorn_with_the_deploy_config_serves_and_adds_up_metrics_of_its_workers(tmp_path):
    port = _free_port()
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(
        OBSERVERS_ENV="production",
        SECRET_KEY="gunicorn-test-secret-key-0123456789abcdefghij",
        ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        CACHE_URL="db://observers_cache",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="2",
    )
    python = sys.executable
    for command in (["migrate", "-v0"], ["createcachetable"]):
        subprocess.run([python, "manage.py", *command], cwd=ROOT, env=env, check=True, timeout=120)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "prometheus")
    gunicorn = Path(python).with_name("gunicorn")
    server = subprocess.Popen(
        [str(gunicorn), "-c", "deploy/gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                # Not listening yet, or a worker still importing Django on a busy machine.
                pass
            assert server.poll() is None, server.stderr.read().decode()
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.3)
        ready = requests.get(f"{base}/ready", timeout=5)
        assert ready.status_code == 200
        assert ready.json()["checks"] == {
            "database": "ok",
            "cache": "ok",
            "rate_limit_store": "ok",
            "task_queue": "ok",
        }
        # Many requests over fresh connections land on both workers.
        for _ in range(20):
            assert requests.get(f"{base}/health", timeout=5).status_code == 200
        # Pages still go to HTTPS; the probes answer over plain HTTP.
        page = requests.get(f"{base}/login/", timeout=5, allow_redirects=False)
        assert page.status_code == 301
        assert page.headers["Location"].startswith("https://")
        metrics = requests.get(f"{base}/metrics", timeout=5)
        assert metrics.status_code == 200
        total = 0.0
        names = set()
        for family in text_string_to_metric_families(metrics.text):
            names.add(family.name)
            for sample in family.samples:
                if sample.name == "django_http_responses_total_by_status_view_method_total" and (
                    sample.labels.get("view") == "health"
                ):
                    total += sample.value
        assert total >= 21
        assert {"observers_queue_depth", "observers_sis_batches"} <= names
        assert len(list((tmp_path / "prometheus").glob("*.db"))) >= 2
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stderr.close()
