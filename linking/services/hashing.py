"""Keyed hashing of bearer secrets (pairing codes and access tokens)."""

import hashlib
import hmac

from django.conf import settings


def keyed_hash(purpose: str, secret: str) -> str:
    """HMAC-SHA256 of ``secret`` under the server's HASH_KEY, separated by ``purpose``.

    Lookups go through the hash (an indexed equality match), so the plaintext
    never has to be compared; a database leak exposes no usable secret.
    """
    key = hashlib.sha256(f"observers:{purpose}:{settings.HASH_KEY}".encode()).digest()
    return hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()
