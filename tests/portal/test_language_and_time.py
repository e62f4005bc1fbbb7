"""The language switch (remembered), Spanish on the sign-up help, and the school's time zone."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import Client

from linking.models import Account, User
from tests.portal.conftest import HOST

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/login/", "/signup/", "/password_reset/"])
def test_every_page_offers_the_other_language(web, path):
    html = web.get(path).content.decode()
    assert 'action="/language/"' in html
    assert 'name="language" value="es" lang="es"' in html
    spanish = web.get(path, HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert 'name="language" value="en" lang="en"' in spanish


def test_switching_sets_a_cookie_and_goes_back(web):
    response = web.post("/language/", {"language": "es", "next": "/signup/"})
    assert response.status_code == 302 and response["Location"] == "/signup/"
    cookie = response.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "es" and cookie["httponly"] and cookie["samesite"] == "Lax"
    page = web.get("/signup/").content.decode()
    assert '<html lang="es">' in page
    # The sign-up help for codes follows the reader's language (it used to stay English).
    assert "El código que le dio su estudiante" in page and "(hasta 5)" in page


def test_a_signed_in_persons_choice_is_kept_on_their_account(signed_in, parent):
    web = signed_in(parent)
    web.post("/language/", {"language": "es", "next": "/observing/"})
    parent.refresh_from_db()
    assert parent.locale == "es"
    # Another device, no cookie, an English browser: the person's choice wins.
    other = Client(HTTP_HOST=HOST)
    other.force_login(parent, backend="linking.auth_backends.LoginBackend")
    page = other.get("/observing/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="es">' in page


def test_switching_refuses_get_unknown_languages_and_foreign_next(signed_in, parent):
    web = signed_in(parent)
    assert web.get("/language/?language=es").status_code == 405
    response = web.post("/language/", {"language": "xx", "next": "/observing/"})
    assert response.status_code == 302
    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies
    parent.refresh_from_db()
    assert parent.locale == ""
    away = web.post("/language/", {"language": "es", "next": "https://evil.test/"})
    assert away["Location"] == "/"


def test_the_pause_page_says_when_it_ends_in_the_schools_time(web, root_account, settings):
    root_account.time_zone = "America/Chicago"
    root_account.save()
    settings.OBSERVERS_RATE_LIMIT_FAILURES = 1
    web.post("/login/", {"username": "nobody@x.test", "password": "wrong"})
    before = dt.datetime.now(dt.UTC)
    paused = web.post("/login/", {"username": "nobody@x.test", "password": "wrong"})
    assert paused.status_code == 429
    html = paused.content.decode()
    ends = before + dt.timedelta(seconds=int(paused["Retry-After"]))
    local = ends.astimezone(ZoneInfo("America/Chicago"))
    assert "The pause ends at" in html
    # English's TIME_FORMAT: "3:05 p.m." ("3 p.m." on the hour), then the zone's
    # abbreviation; the page's clock may be a second or two past ``before``.
    from django.utils import formats

    written = {
        formats.time_format(local + dt.timedelta(seconds=drift), "TIME_FORMAT")
        for drift in (-1, 0, 1, 2)
    }
    assert any(f"The pause ends at {when}." in html for when in written), written
    assert f"({local:%Z})" in html
    spanish = web.post(
        "/login/", {"username": "nobody@x.test", "password": "wrong"}, HTTP_ACCEPT_LANGUAGE="es"
    ).content.decode()
    assert f"La pausa termina a las {local:%H}:" in spanish


def test_a_school_time_zone_must_be_a_known_one(root_account):
    root_account.time_zone = "Mars/Olympus_Mons"
    with pytest.raises(ValidationError) as refused:
        root_account.full_clean()
    assert "time_zone" in refused.value.message_dict
    assert Account.objects.get(pk=root_account.pk).time_zone == "UTC"
    root_account.time_zone = "Europe/Madrid"
    root_account.full_clean()


def test_unknown_users_locale_falls_back(signed_in, parent):
    User.objects.filter(pk=parent.pk).update(locale="fr-CA")
    page = signed_in(parent).get("/observing/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="en">' in page


def test_the_staff_admin_has_the_switch_too(web, staff_a):
    web.force_login(staff_a, backend="linking.auth_backends.LoginBackend")
    html = web.get("/admin/").content.decode()
    assert 'action="/language/"' in html and 'value="es"' in html
    spanish = web.get("/admin/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "Cerrar sesión" in spanish
