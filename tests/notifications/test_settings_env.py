"""The notification settings come from the environment, with production-safe defaults."""

import json
import os
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
NAMES = [
    "OBSERVERS_NOTIFICATION_RETRY_HOURS",
    "OBSERVERS_NOTIFICATION_RETRY_BASE_SECONDS",
    "OBSERVERS_WEBHOOK_TIMEOUT_SECONDS",
    "OBSERVERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES",
]
ENV_NAMES = [
    "NOTIFICATION_RETRY_HOURS",
    "NOTIFICATION_RETRY_BASE_SECONDS",
    "WEBHOOK_TIMEOUT_SECONDS",
    "WEBHOOK_ALLOW_PRIVATE_ADDRESSES",
]


def load_settings(**env) -> dict:
    """The notification settings as a fresh process with ``env`` sees them."""
    clean = {key: value for key, value in os.environ.items() if key not in ENV_NAMES}
    clean.update(DJANGO_SETTINGS_MODULE="observers_project.settings", **env)
    script = (
        "import json; from django.conf import settings; "
        f"print(json.dumps({{name: getattr(settings, name) for name in {NAMES!r}}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=BASE_DIR,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


PRODUCTION = {
    "OBSERVERS_ENV": "production",
    "SECRET_KEY": "x" * 50,
    "ALLOWED_HOSTS": "observers.example.org",
}


def test_defaults_in_development_and_production():
    assert load_settings(OBSERVERS_ENV="development") == {
        "OBSERVERS_NOTIFICATION_RETRY_HOURS": 72,
        "OBSERVERS_NOTIFICATION_RETRY_BASE_SECONDS": 60,
        "OBSERVERS_WEBHOOK_TIMEOUT_SECONDS": 5,
        "OBSERVERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": True,
    }
    assert load_settings(**PRODUCTION)["OBSERVERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES"] is False


def test_environment_variables_set_them():
    assert load_settings(
        **PRODUCTION,
        NOTIFICATION_RETRY_HOURS="3",
        NOTIFICATION_RETRY_BASE_SECONDS="15",
        WEBHOOK_TIMEOUT_SECONDS="2",
        WEBHOOK_ALLOW_PRIVATE_ADDRESSES="true",
    ) == {
        "OBSERVERS_NOTIFICATION_RETRY_HOURS": 3,
        "OBSERVERS_NOTIFICATION_RETRY_BASE_SECONDS": 15,
        "OBSERVERS_WEBHOOK_TIMEOUT_SECONDS": 2,
        "OBSERVERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": True,
    }


def test_the_file_email_backend_works_from_the_environment(tmp_path):
    """Issue 17: EMAIL_BACKEND set to Django's file backend used to crash (no EMAIL_FILE_PATH)."""
    script = (
        "import django; django.setup(); from django.conf import settings; "
        "from django.core.mail import send_mail; "
        "print(settings.EMAIL_FILE_PATH); "
        "send_mail('Hello', 'Body', None, ['sam@example.test'])"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("EMAIL_")}
    env.update(
        DJANGO_SETTINGS_MODULE="observers_project.settings",
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(tmp_path / "outbox"),
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (written,) = (tmp_path / "outbox").iterdir()
    assert "To: sam@example.test" in written.read_text()

    env.pop("EMAIL_FILE_PATH")
    default = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
         "print(settings.EMAIL_FILE_PATH)"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert default.stdout.strip() == str(BASE_DIR / "sent_emails")
