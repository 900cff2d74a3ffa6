"""Secrets at rest: provider tokens and SIP passwords stored encrypted in the database.

Fernet (cryptography: AES-128-CBC + HMAC-SHA256, authenticated) with a key derived from
HUB_SECRET by HKDF-SHA256 under a fixed purpose label. Deriving instead of using HUB_SECRET
directly keeps the two uses apart: the secret also signs session tokens (HS256), and a key
for one purpose must reveal nothing about the other; HKDF also turns a secret of any length
into the exact 32 bytes Fernet wants. A database dump alone therefore never yields a
usable Twilio token or trunk password. Changing HUB_SECRET makes stored secrets unreadable
(`SecretUnreadable`): they must then be entered again.
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_PURPOSE = b"contact-hub secrets at rest v1"


class SecretUnreadable(ValueError):
    """A stored secret cannot be decrypted (HUB_SECRET changed, or the value is damaged)."""


@functools.lru_cache(maxsize=8)
def _fernet(hub_secret: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(hub_secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(hub_secret: str, plaintext: str) -> str:
    return _fernet(hub_secret).encrypt(plaintext.encode()).decode()


def decrypt(hub_secret: str, ciphertext: str) -> str:
    try:
        return _fernet(hub_secret).decrypt(ciphertext.encode()).decode()
    except (InvalidToken, ValueError) as exc:
        raise SecretUnreadable(
            "a stored secret cannot be decrypted (was HUB_SECRET changed?): enter it again"
        ) from exc


def last4(secret: str) -> str:
    """What the API may show of a secret: its last 4 characters."""
    return secret[-4:] if len(secret) >= 8 else ""
