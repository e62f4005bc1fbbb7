"""Shared fixtures: tenants, people and a controllable clock."""

import datetime as dt

import pytest
from django.core.cache import cache
from django.utils import timezone

from linking.services.context import Actor
from tests import factories


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _clear_cache():
    # Rate-limit counters live in the cache; each test starts from zero.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def root_account(db):
    return factories.RootAccountFactory(name="Default School", domain="default.test")


@pytest.fixture
def other_root_account(db):
    return factories.RootAccountFactory(name="External School", domain="external.test")


@pytest.fixture
def make_user(db):
    """make_user("Name", account, account2, ...) -> a user with a login in each root account."""

    def make(name: str = "", *root_accounts, sis_user_id: str | None = None, **fields):
        user = factories.UserFactory(**({"name": name} if name else {}), **fields)
        for account in root_accounts:
            factories.LoginFactory(user=user, root_account=account, sis_user_id=sis_user_id)
        return user

    return make


@pytest.fixture
def system_actor():
    return Actor.system()


@pytest.fixture
def frozen_now(monkeypatch):
    """A clock tests move by hand: ``frozen_now.advance(hours=2)``."""

    class Clock:
        def __init__(self):
            self.now = timezone.now().replace(microsecond=0)

        def advance(self, **delta):
            self.now += dt.timedelta(**delta)
            return self.now

    clock = Clock()
    monkeypatch.setattr(timezone, "now", lambda: clock.now)
    return clock
