"""Verifying an OpenID Connect ID token (a signed JWT) against the provider's published keys.

    claims = verify_id_token(token, keys=jwks, issuer=..., audience=client_id)

Checks, in this order, and raises IdTokenError naming the first that fails: the token's form,
an asymmetric algorithm (RS256/384/512, ES256/384; never "none" or a shared-secret HS*), a
published key with the token's key id, the signature, the issuer, the audience (and the
authorized party when there are several audiences), the expiry, and the issue time. Only
`cryptography` is used (no JWT library), so the rules are all here to read.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
_CURVES: dict[str, tuple[type[ec.SECP256R1 | ec.SECP384R1], int]] = {
    "ES256": (ec.SECP256R1, 32),
    "ES384": (ec.SECP384R1, 48),
}
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384")
LEEWAY_SECONDS = 60


@dataclass
class IdTokenError(Exception):
    """Why the token is refused: `reason` is machine-readable, `message` for people."""

    reason: str
    message: str

    def __str__(self) -> str:
        return self.message


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _int(value: str) -> int:
    return int.from_bytes(_b64decode(value), "big")


def unverified_header(token: str) -> dict[str, Any]:
    try:
        header = json.loads(_b64decode(token.split(".")[0]))
    except (ValueError, IndexError, UnicodeDecodeError):
        raise IdTokenError("malformed", "The sign-in token is not a valid JWT.") from None
    if not isinstance(header, dict):
        raise IdTokenError("malformed", "The sign-in token is not a valid JWT.")
    return header


def _public_key(jwk: dict[str, Any], algorithm: str) -> PublicKey:
    try:
        if algorithm.startswith("RS"):
            if jwk.get("kty") != "RSA":
                raise ValueError
            return rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"])).public_key()
        curve, _size = _CURVES[algorithm]
        if jwk.get("kty") != "EC":
            raise ValueError
        numbers = ec.EllipticCurvePublicNumbers(_int(jwk["x"]), _int(jwk["y"]), curve())
        return numbers.public_key()
    except (KeyError, ValueError, TypeError):
        raise IdTokenError(
            "bad_key", "The provider publishes a key that does not fit the token's algorithm."
        ) from None


def _verify_signature(key: PublicKey, algorithm: str, signed: bytes, signature: bytes) -> None:
    digest = _HASHES[algorithm[2:]]()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), digest)
        else:
            _curve, size = _CURVES[algorithm]
            if len(signature) != 2 * size:
                raise InvalidSignature
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            key.verify(encode_dss_signature(r, s), signed, ec.ECDSA(digest))
    except InvalidSignature:
        raise IdTokenError(
            "bad_signature",
            "The sign-in token's signature does not match the provider's published keys.",
        ) from None


def verify_id_token(
    token: str,
    *,
    keys: dict[str, Any],
    issuer: str,
    audience: str,
    now: float | None = None,
    leeway: int = LEEWAY_SECONDS,
) -> dict[str, Any]:
    """The token's claims, if it passes every check; IdTokenError otherwise."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise IdTokenError("malformed", "The sign-in token is not a valid JWT.")
    header = unverified_header(token)
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise IdTokenError(
            "bad_algorithm",
            f"The sign-in token uses the algorithm {algorithm!r}; Backfill accepts only "
            "tokens signed with the provider's published keys (RS256, ES256, …).",
        )
    candidates = [
        jwk
        for jwk in (keys.get("keys") or [])
        if isinstance(jwk, dict) and (header.get("kid") is None or jwk.get("kid") == header["kid"])
    ]
    if not candidates:
        raise IdTokenError(
            "unknown_key", "The sign-in token is signed with a key the provider does not publish."
        )
    try:
        signature = _b64decode(parts[2])
        claims = json.loads(_b64decode(parts[1]))
    except (ValueError, UnicodeDecodeError):
        raise IdTokenError("malformed", "The sign-in token is not a valid JWT.") from None
    signed = f"{parts[0]}.{parts[1]}".encode("ascii")
    last_error: IdTokenError | None = None
    for jwk in candidates:
        try:
            _verify_signature(_public_key(jwk, algorithm), algorithm, signed, signature)
            break
        except IdTokenError as error:
            last_error = error
    else:
        assert last_error is not None
        raise last_error
    if not isinstance(claims, dict):
        raise IdTokenError("malformed", "The sign-in token is not a valid JWT.")
    if str(claims.get("iss", "")).rstrip("/") != issuer.rstrip("/"):
        raise IdTokenError(
            "wrong_issuer", f"The sign-in token was issued by {claims.get('iss')!r}, not {issuer}."
        )
    audiences = claims.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else audiences
    if not isinstance(audiences, list) or audience not in audiences:
        raise IdTokenError(
            "wrong_audience",
            "The sign-in token was issued for another application (its audience is not "
            "Backfill's client ID).",
        )
    if len(audiences) > 1 and claims.get("azp") != audience:
        raise IdTokenError(
            "wrong_audience",
            "The sign-in token names several audiences but not Backfill as its authorized party.",
        )
    now = time.time() if now is None else now
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        raise IdTokenError("malformed", "The sign-in token has no expiry time.")
    if expires + leeway < now:
        raise IdTokenError("expired", "The sign-in token has expired. Sign in again.")
    issued = claims.get("iat")
    if not isinstance(issued, int | float) or isinstance(issued, bool) or issued - leeway > now:
        raise IdTokenError(
            "malformed", "The sign-in token's issue time is missing or in the future."
        )
    not_before = claims.get("nbf")
    if isinstance(not_before, int | float) and not_before - leeway > now:
        raise IdTokenError("not_yet_valid", "The sign-in token is not valid yet.")
    if not claims.get("sub"):
        raise IdTokenError("malformed", "The sign-in token names no subject.")
    return claims
