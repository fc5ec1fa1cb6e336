"""Secrets at rest (AES-256-GCM) and API key hashing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_NONCE_BYTES = 12
_VERSION = b"\x01"


def load_key(encryption_key: str | None, secret_key: str) -> bytes:
    """The 32-byte AES key: ``ENCRYPTION_KEY`` (base64 or hex), else derived from SECRET_KEY.

    The derived fallback keeps the zero-config demo working; production sets ENCRYPTION_KEY.
    """
    if encryption_key:
        for decode in (base64.urlsafe_b64decode, base64.b64decode, bytes.fromhex):
            try:
                key = decode(encryption_key)
            except ValueError:
                continue
            if len(key) == 32:
                return key
        raise ValueError("ENCRYPTION_KEY must be 32 bytes, base64 or hex encoded")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"cartrecovery-at-rest")
    return hkdf.derive(secret_key.encode())


def encrypt(key: bytes, plaintext: str, associated_data: bytes = b"") -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext.encode(), associated_data)


def decrypt(key: bytes, blob: bytes, associated_data: bytes = b"") -> str:
    blob = bytes(blob)
    if blob[:1] != _VERSION:
        raise ValueError("unknown ciphertext version")
    nonce, ciphertext = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
    return AESGCM(key).decrypt(nonce, ciphertext, associated_data).decode()


def hash_api_key(key: str) -> bytes:
    # Keys carry 256 bits of randomness, so a fast hash is enough (no password stretching).
    return hashlib.sha256(key.encode()).digest()


def new_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    return hmac.compare_digest(a, b)
