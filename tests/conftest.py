"""Shared fixtures: tenants, people and a controllable clock."""

import datetime as dt

import pytest
from django.core.cache import cache
from django.db import connections
from django.utils import timezone

from linking.services.accounts import make_account_admin
from linking.services.context import Actor
from tests import factories


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _clear_cache(db):
    # Rate-limit counters live in the cache (a database table by default), so
    # every test gets database access and starts from zero.
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
def postgresql_only(transactional_db):
    """For tests of real concurrency: they need PostgreSQL, and say so when skipped."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL (SQLite serialises every writer)")


@pytest.fixture
def staff_a(root_account, make_user):
    """A staff admin (built-in AccountAdmin role) of the default school."""
    user = make_user("Alice Admin", root_account)
    make_account_admin(user=user, account=root_account)
    return user


@pytest.fixture
def staff_b(other_root_account, make_user):
    """A staff admin of the other school: the outsider for school A's data."""
    user = make_user("Bob Admin", other_root_account)
    make_account_admin(user=user, account=other_root_account)
    return user


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


@pytest.fixture
def browser_page(live_server, request):
    """A Playwright page in Debian's headless Chromium; saves a screenshot under tests/artifacts/.

    Usage: ``browser_page.goto(live_server.url + "/...")``. The screenshot is
    named after the test and taken when the test ends, pass or fail.
    """
    import os
    from pathlib import Path

    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the
    # test itself makes are still synchronous and safe.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    artifacts = Path(__file__).resolve().parent / "artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15000)
        try:
            yield page
        finally:
            page.screenshot(path=str(artifacts / f"{request.node.name}.png"), full_page=True)
            # While Playwright's event loop runs, Django keeps this thread's
            # connection in a context of its own that nothing closes; left open,
            # PostgreSQL's test database cannot be dropped at the end of the run.
            connections.close_all()
            context.close()
            browser.close()
