"""Fixtures for the SIS import and export tests."""

import pytest

from linking.models import AuditSource
from linking.services.context import Actor
from linking.services.sis import import_sis


@pytest.fixture
def sis_dir(tmp_path):
    """write(name, text_or_bytes) -> the file's path inside a fresh directory."""
    directory = tmp_path / "sis"
    directory.mkdir()

    def write(name: str, content: str | bytes):
        path = directory / name
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
        return path

    write.directory = directory
    return write


@pytest.fixture
def sis_actor():
    return Actor(user=None, source=AuditSource.SIS)


@pytest.fixture
def run_import(root_account, sis_actor):
    def run(*paths, account=None, **options):
        return import_sis(
            paths=list(paths), root_account=account or root_account, actor=sis_actor, **options
        )

    return run


@pytest.fixture
def sis_users(make_user, root_account):
    """U001..U004 with active logins (SIS ids) in the root account, as in Canvas's specs."""
    return {
        sis_id: make_user(f"User {sis_id}", root_account, sis_user_id=sis_id)
        for sis_id in ("U001", "U002", "U003", "U004")
    }
