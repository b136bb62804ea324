"""ID tokens are checked against the provider's published keys: form, algorithm, key,
signature, issuer, audience, expiry; each refusal names its reason."""

import base64
import json
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from portal.lib.idtoken import IdTokenError, verify_id_token

ISSUER = "https://login.acme.test"
CLIENT = "backfill-client"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def number(value: int) -> str:
    return b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def rsa_jwk(key, kid="k1"):
    public = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "alg": "RS256", "n": number(public.n), "e": number(public.e)}


def ec_jwk(key, kid="e1"):
    public = key.public_key().public_numbers()
    return {
        "kty": "EC",
        "kid": kid,
        "crv": "P-256",
        "x": b64(public.x.to_bytes(32, "big")),
        "y": b64(public.y.to_bytes(32, "big")),
    }


KEYS = {"keys": [rsa_jwk(RSA_KEY), ec_jwk(EC_KEY)]}


def claims(**overrides):
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": CLIENT,
        "sub": "42",
        "iat": now,
        "exp": now + 300,
        "email": "alice@acme.test",
        **overrides,
    }


def token(payload=None, *, alg="RS256", kid="k1", key=RSA_KEY):
    header = b64(json.dumps({"alg": alg, "kid": kid, "typ": "JWT"}).encode())
    body = b64(json.dumps(payload if payload is not None else claims()).encode())
    signed = f"{header}.{body}".encode()
    if alg == "RS256":
        signature = key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "ES256":
        r, s = decode_dss_signature(key.sign(signed, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        signature = b""
    return f"{header}.{body}.{b64(signature)}"


def verify(value):
    return verify_id_token(value, keys=KEYS, issuer=ISSUER, audience=CLIENT)


def test_a_good_token_gives_its_claims():
    assert verify(token())["email"] == "alice@acme.test"
    assert verify(token(alg="ES256", kid="e1", key=EC_KEY))["sub"] == "42"
    assert verify(token(claims(aud=[CLIENT, "other"], azp=CLIENT)))["sub"] == "42"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (lambda: "not.a.jwt.at.all", "malformed"),
        (lambda: "abc", "malformed"),
        (lambda: token(alg="none"), "bad_algorithm"),
        (lambda: token(alg="HS256"), "bad_algorithm"),
        (lambda: token(kid="nobody"), "unknown_key"),
        (lambda: token(key=OTHER_RSA_KEY), "bad_signature"),
        (lambda: token(claims(iss="https://evil.test")), "wrong_issuer"),
        (lambda: token(claims(aud="someone-else")), "wrong_audience"),
        (lambda: token(claims(aud=[CLIENT, "other"])), "wrong_audience"),
        (lambda: token(claims(exp=int(time.time()) - 3600)), "expired"),
        (lambda: token(claims(exp="tomorrow")), "malformed"),
        (lambda: token(claims(iat=int(time.time()) + 3600)), "malformed"),
        (lambda: token(claims(nbf=int(time.time()) + 3600)), "not_yet_valid"),
        (lambda: token(claims(sub="")), "malformed"),
    ],
)
def test_refusals_name_their_reason(value, reason):
    with pytest.raises(IdTokenError) as refused:
        verify(value())
    assert refused.value.reason == reason
    assert refused.value.message


def test_a_changed_payload_breaks_the_signature():
    header, _body, signature = token().split(".")
    forged = b64(json.dumps(claims(email="mallory@acme.test")).encode())
    with pytest.raises(IdTokenError, match="signature"):
        verify(f"{header}.{forged}.{signature}")
