"""manage.py configure_sso: the same service as the admin, for IT people's scripts."""

import pytest
from django.core.management import CommandError, call_command

from linking.models import AuditAction, AuditEvent, IdentityProvider
from linking.services import secret_box

pytestmark = pytest.mark.django_db


def test_configure_then_change_one_setting(root_account, monkeypatch, capsys):
    monkeypatch.setenv("SSO_SECRET", "from-the-environment")
    call_command(
        "configure_sso",
        "--domain",
        "default.test",
        "--name",
        "Riverside Google",
        "--issuer",
        "https://accounts.google.com",
        "--client-id",
        "abc.apps.googleusercontent.com",
        "--client-secret-env",
        "SSO_SECRET",
        "--require-for-students",
        "yes",
    )
    assert "https://default.test/login/sso/callback/" in capsys.readouterr().out
    provider = IdentityProvider.objects.get(root_account=root_account)
    assert secret_box.decrypt(provider.client_secret_encrypted) == "from-the-environment"
    assert provider.required_for_students and not provider.required_for_staff

    call_command("configure_sso", "--domain", "default.test", "--require-for-staff", "yes")
    provider.refresh_from_db()
    assert provider.required_for_staff and provider.required_for_students
    assert provider.name == "Riverside Google"
    assert secret_box.decrypt(provider.client_secret_encrypted) == "from-the-environment"
    events = AuditEvent.objects.filter(action=AuditAction.SSO_CONFIGURED)
    assert events.count() == 2
    assert {event.source for event in events} == {"command"}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--domain", "nowhere.test"], "No school is served at nowhere.test."),
        (
            [
                "--domain",
                "default.test",
                "--name",
                "X",
                "--issuer",
                "http://idp.example.org",
                "--client-id",
                "c",
                "--client-secret-env",
                "SSO_SECRET",
            ],
            "The issuer must be an https:// address.",
        ),
        (
            [
                "--domain",
                "default.test",
                "--name",
                "X",
                "--issuer",
                "https://idp.example.org",
                "--client-id",
                "c",
            ],
            "The client secret is required.",
        ),
        (
            [
                "--domain",
                "default.test",
                "--name",
                "X",
                "--issuer",
                "https://idp.example.org",
                "--client-id",
                "c",
                "--client-secret-env",
                "UNSET_VARIABLE_H18",
            ],
            "The variable UNSET_VARIABLE_H18 is empty or unset.",
        ),
    ],
)
def test_bad_input_is_refused_with_a_message(root_account, monkeypatch, arguments, message):
    monkeypatch.setenv("SSO_SECRET", "s")
    with pytest.raises(CommandError, match=message.replace(".", r"\.")):
        call_command("configure_sso", *arguments)
    assert not IdentityProvider.objects.exists()
