"""Endpoint secrets: made, shown once, kept encrypted with a key derived from SECRET_KEY.

MultiFernet over SECRET_KEY and SECRET_KEY_FALLBACKS: after a key rotation, secrets encrypted
under the old key still decrypt (and are re-encrypted on the next roll).
"""

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def _fernet() -> MultiFernet:
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet(
        [
            Fernet(base64.urlsafe_b64encode(hashlib.sha256(f"webhooks:{key}".encode()).digest()))
            for key in keys
        ]
    )


def encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def hint(secret: str) -> str:
    return secret[: len(PREFIX) + 4] + "…"
