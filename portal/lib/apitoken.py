"""The format of API tokens: `bf_<prefix>_<secret>`. No Django here.

The prefix (8 hex characters) is public: it is shown in token lists and finds the token row.
The secret (43 URL-safe characters, 256 random bits) is shown once and only its SHA-256 is
kept. A slow hash would add nothing: the secret is random, not a password a person chose.
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

SCHEME = "bf"
PREFIX_LENGTH = 8
_TOKEN = re.compile(r"^bf_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class NewToken:
    value: str  # the whole token, shown once
    prefix: str
    secret_hash: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token() -> NewToken:
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    secret = secrets.token_urlsafe(32)
    return NewToken(
        value=f"{SCHEME}_{prefix}_{secret}", prefix=prefix, secret_hash=hash_secret(secret)
    )


def parse_token(value: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed token, None for anything else."""
    match = _TOKEN.match(value or "")
    return (match.group(1), match.group(2)) if match else None


def secret_matches(secret: str, secret_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), secret_hash)
