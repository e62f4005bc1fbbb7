"""Encrypting secrets the service must use again (an SSO provider's client secret).

Tokens and codes people present are only ever hashed (``hashing.keyed_hash``);
a client secret has to be sent to the provider, so it is encrypted instead,
with Fernet (AES-128-CBC and HMAC-SHA256, from ``cryptography``) under a key
derived from SSO_ENCRYPTION_KEY (HASH_KEY unless set). Keys listed in
SSO_ENCRYPTION_PREVIOUS_KEYS still decrypt, so the key can be rotated:
``manage.py rotate_sso_secrets`` re-encrypts every stored secret under the
current key.
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretUnreadable(Exception):
    """The stored secret was encrypted under a key this server no longer has."""


def _fernet(key: str) -> Fernet:
    digest = hashlib.sha256(f"observers:sso-client-secret:{key}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _box() -> MultiFernet:
    keys = [settings.SSO_ENCRYPTION_KEY, *settings.SSO_ENCRYPTION_PREVIOUS_KEYS]
    return MultiFernet([_fernet(key) for key in keys])


def encrypt(plaintext: str) -> str:
    return _box().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _box().decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable() from exc


def rotate(ciphertext: str) -> str:
    """The same secret encrypted under the current key."""
    try:
        return _box().rotate(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable() from exc
