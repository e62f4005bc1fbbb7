"""The management commands: create_root_account, issue_token, seed_demo."""

import io
import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from linking.models import (
    AccessToken,
    Account,
    AccountAdmin,
    AuditEvent,
    Course,
    Enrollment,
    Login,
    ObservationLink,
    User,
)
from linking.services.tokens import authenticate_access_token


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# --- create_root_account --------------------------------------------------------


def test_create_root_account_with_settings_and_admin(db):
    out, _ = run(
        "create_root_account",
        "Lakeside School",
        "--domain=Lakeside.test",
        "--self-registration=all",
        "--no-pairing-codes",
        "--code-lifetime-hours=48",
        "--no-credential-linking",
        "--avatars",
        "--time-zone=America/Chicago",
        "--admin-login=boss",
        "--admin-password=s3cret-pass",
        "--admin-name=Big Boss",
    )
    account = Account.objects.get(domain="lakeside.test")
    assert "Lakeside School" in out and "boss" in out
    assert account.self_registration == "all"
    assert not account.pairing_codes_enabled and not account.credential_linking_allowed
    assert account.avatars_enabled and account.pairing_code_lifetime_hours == 48
    assert account.time_zone == "America/Chicago"
    login = Login.objects.get(root_account=account, unique_id="boss")
    assert login.check_password("s3cret-pass") and login.user.name == "Big Boss"
    assert login.user.is_staff and not login.user.is_superuser
    assert AccountAdmin.objects.get(user=login.user).account == account


def test_create_root_account_defaults(db):
    run("create_root_account", "Plain", "--domain", "plain.test")
    account = Account.objects.get(domain="plain.test")
    assert account.pairing_codes_enabled and account.credential_linking_allowed
    assert not account.avatars_enabled and account.self_registration == "observer"
    assert account.time_zone == "UTC"
    assert not AccountAdmin.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--domain=default.test"], "already uses this domain"),
        (["--domain=not a host"], "not a valid host name"),
        (["--domain=new.test", "--code-lifetime-hours=0"], "between 1 and 2160"),
        (["--domain=new.test", "--time-zone=Mars/Base"], "not a known time zone"),
        (["--domain=new.test", "--admin-login=boss"], "needs --admin-password"),
        (["--domain=new.test", "--admin-password=x"], "need --admin-login"),
    ],
)
def test_create_root_account_errors(root_account, args, message):
    with pytest.raises(CommandError, match=message):
        run("create_root_account", "Again", *args)
    assert Account.objects.count() == 1
    assert not User.objects.exists()


def test_create_root_account_exits_non_zero(db, tmp_path):
    # A separate process: the command line must end with a non-zero status.
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}"}
    result = subprocess.run(
        [sys.executable, "manage.py", "create_root_account", "X", "--domain", "bad domain"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "not a valid host name" in result.stderr


# --- issue_token ------------------------------------------------------------------


def test_issue_token_prints_a_working_token_once(parent, root_account, frozen_now):
    login = parent.logins.get()
    out, err = run(
        "issue_token",
        login.unique_id.upper(),
        "--domain=default.test",
        "--purpose=integration",
        "--expires-days=30",
    )
    plaintext = out.strip()
    assert "\n" not in plaintext and "shown only this once" in err
    token = authenticate_access_token(plaintext)
    assert token.user == parent and token.purpose == "integration"
    assert token.expires_at == frozen_now.now + timedelta(days=30)
    assert plaintext not in str(list(AccessToken.objects.values())) + str(
        list(AuditEvent.objects.values())
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody", "--domain=default.test"], "No active login"),
        (["x", "--domain=nowhere.test"], "No root account"),
    ],
)
def test_issue_token_errors(root_account, args, message):
    with pytest.raises(CommandError, match=message):
        run("issue_token", *args)
    assert not AccessToken.objects.exists()


def test_issue_token_with_scopes(parent, root_account):
    scope = "url:GET|/api/v1/users/:user_id/enrollments"
    out, _err = run(
        "issue_token", parent.logins.get().unique_id, "--domain=default.test", f"--scope={scope}"
    )
    token = authenticate_access_token(out.strip())
    assert token.scopes == [scope]
    assert token.scope_policy.enforced and token.scope_policy.scopes == (scope,)
    with pytest.raises(CommandError, match="Unknown scope"):
        run(
            "issue_token",
            parent.logins.get().unique_id,
            "--domain=default.test",
            "--scope=url:GET|/nowhere",
        )
    assert AccessToken.objects.count() == 1


def test_issue_token_refuses_non_positive_expiry(parent, root_account):
    with pytest.raises(CommandError, match="at least 1"):
        run(
            "issue_token",
            parent.logins.get().unique_id,
            "--domain=default.test",
            "--expires-days=0",
        )
    assert not AccessToken.objects.exists()


def test_issue_token_refuses_a_login_of_another_school(parent, other_root_account):
    with pytest.raises(CommandError):
        run("issue_token", parent.logins.get().unique_id, "--domain=external.test")


# --- seed_demo --------------------------------------------------------------------

TOKEN_LINE = re.compile(r"user \d+\s+(\S{40,})$", re.MULTILINE)


def snapshot():
    return {
        model.__name__: model.objects.count()
        for model in (Account, User, Login, Course, Enrollment, ObservationLink, AccountAdmin)
    }


def test_seed_demo_is_idempotent_and_prints_fresh_tokens(db, settings):
    settings.OBSERVERS_DEFAULT_DOMAIN = "localhost"
    first_out, _ = run("seed_demo")
    first = snapshot()
    first_tokens = TOKEN_LINE.findall(first_out)
    second_out, _ = run("seed_demo", "--base-url=http://127.0.0.1:8765")
    second_tokens = TOKEN_LINE.findall(second_out)

    assert snapshot() == first
    assert len(first_tokens) == len(second_tokens) == 3
    assert set(first_tokens).isdisjoint(second_tokens)
    assert all(authenticate_access_token(t) is None for t in first_tokens)
    assert all(authenticate_access_token(t) is not None for t in second_tokens)
    assert AccessToken.objects.usable().count() == 3
    assert "http://127.0.0.1:8765/admin/" in second_out

    school = Account.objects.get(domain="localhost")
    assert Account.objects.filter(domain="other.localhost").exists()
    admin_login = Login.objects.get(root_account=school, unique_id="admin")
    assert admin_login.check_password("admin-password") and admin_login.user.is_staff
    assert AccountAdmin.objects.filter(user=admin_login.user, account=school).exists()
    for login_id in ("pat.rivera", "jordan.chen", "sam.rivera", "casey.chen", "teacher"):
        assert f"{login_id} / " in second_out
        assert Login.objects.get(root_account=school, unique_id=login_id).password

    link = ObservationLink.objects.active().get(root_account=school)
    assert (link.observer.name, link.student.name) == ("Pat Rivera", "Sam Rivera")
    mirrored = Enrollment.objects.filter(
        user=link.observer, type="observer", workflow_state="active"
    )
    assert mirrored.count() == Enrollment.objects.filter(user=link.student, type="student").count()
    assert mirrored.count() >= 2


def test_seed_demo_keeps_a_removed_demo_link_removed(db, system_actor):
    from linking.services.links import unlink_observer

    run("seed_demo")
    link = ObservationLink.objects.get()
    unlink_observer(link=link, actor=system_actor)
    run("seed_demo")
    link.refresh_from_db()
    assert link.workflow_state == "deleted"
