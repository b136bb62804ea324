"""Fresh public and private keys for tests, made with the cryptography package (no ssh-keygen)."""

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

_CURVES = {256: ec.SECP256R1, 384: ec.SECP384R1, 521: ec.SECP521R1}


def private_key(kind: str = "ed25519", bits: int = 0):
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "ecdsa":
        return ec.generate_private_key(_CURVES[bits or 256]())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=bits or 2048)
    raise ValueError(kind)


def public_line(key=None, comment: str = "") -> str:
    """`type base64[ comment]` of a private key's public half (a new ed25519 key by default)."""
    key = key or private_key()
    line = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    return f"{line} {comment}" if comment else line


def openssh_private(key=None) -> str:
    key = key or private_key()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
