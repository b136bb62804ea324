"""Parse and check an SSH public key pasted by a person. No Django here.

`parse_public_key(text)` accepts one OpenSSH public key (the one line of a `.pub` file) of a type
we allow, and returns it normalized with its type, size and fingerprint. Anything else raises
`SshKeyError` with a message written for the person who pasted it.
"""

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ED25519 = "ssh-ed25519"
ECDSA_P256 = "ecdsa-sha2-nistp256"
ECDSA_P384 = "ecdsa-sha2-nistp384"
ECDSA_P521 = "ecdsa-sha2-nistp521"
RSA = "ssh-rsa"
ACCEPTED_TYPES = (ED25519, ECDSA_P256, ECDSA_P384, ECDSA_P521, RSA)

RSA_MIN_BITS = 2048
RSA_MAX_BITS = 16384  # the largest ssh-keygen makes
MAX_INPUT_LENGTH = 8192  # a 16384-bit RSA key with a long comment fits easily

# Key types that exist but that we refuse, with the reason.
_SECURITY_KEYS = "Hardware security keys (FIDO, -sk) are not supported yet."
_REFUSED_TYPES = {
    "ssh-dss": "DSA keys are no longer considered secure and OpenSSH has dropped them.",
    "sk-ssh-ed25519@openssh.com": _SECURITY_KEYS,
    "sk-ecdsa-sha2-nistp256@openssh.com": _SECURITY_KEYS,
}
_CERTIFICATE_SUFFIX = "-cert-v01@openssh.com"
_KNOWN_TYPES = frozenset(ACCEPTED_TYPES) | frozenset(_REFUSED_TYPES)

_HOW_TO_CREATE = "To make a new key: ssh-keygen -t ed25519"
_PASTE_THE_PUB = (
    "Paste the public key: the one line in the .pub file, e.g. ~/.ssh/id_ed25519.pub, "
    "which starts with ssh-ed25519, ecdsa-sha2-… or ssh-rsa."
)

_PRIVATE_KEY_MARKERS = ("PRIVATE KEY", "PuTTY-User-Key-File")
PRIVATE_KEY_WARNING = (
    "This is a PRIVATE key. Never share a private key, with us or with anyone: whoever has it "
    "can log in as you. Paste the public key instead, the contents of the .pub file "
    "(e.g. ~/.ssh/id_ed25519.pub). If you pasted this private key anywhere else, treat it as "
    "compromised and create a new key pair."
)
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


class SshKeyError(ValueError):
    """The text is not a public key we accept. `message` is meant for the person; `code` for code.

    Codes: empty, private_key, too_long, multiple, wrong_format, invalid, unsupported_type,
    too_short, too_long_key.
    """

    def __init__(self, message: str, *, code: str = "invalid"):
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class ParsedKey:
    key_type: str  # e.g. "ssh-ed25519"
    bits: int  # as `ssh-keygen -l` reports it: 256 for ed25519, the curve size, the RSA modulus
    fingerprint: str  # "SHA256:<base64 without padding>", as `ssh-keygen -l` prints it
    normalized: str  # "type base64[ comment]" on one line, single spaces
    comment: str


def parse_public_key(text: str) -> ParsedKey:
    text = (text or "").strip()
    if not text:
        raise SshKeyError(f"Paste a public key. {_HOW_TO_CREATE}", code="empty")
    # Before anything else, and whatever else the text holds: never accept, echo or keep a secret.
    if contains_private_key(text):
        raise SshKeyError(PRIVATE_KEY_WARNING, code="private_key")
    if len(text) > MAX_INPUT_LENGTH:
        raise SshKeyError(
            f"That is too long to be one public key. {_PASTE_THE_PUB}", code="too_long"
        )
    if "BEGIN SSH2 PUBLIC KEY" in text:
        raise SshKeyError(
            "This key is in the SSH2 (RFC 4716) format. Convert it to OpenSSH's one-line format "
            "with: ssh-keygen -i -f key.pub",
            code="wrong_format",
        )
    if "BEGIN PUBLIC KEY" in text or "BEGIN RSA PUBLIC KEY" in text:
        raise SshKeyError(
            "This is a PEM public key. Convert it to OpenSSH's one-line format with: "
            "ssh-keygen -i -m PKCS8 -f key.pem",
            code="wrong_format",
        )

    lines = [line.split() for line in text.splitlines() if line.strip()]
    key_lines = [tokens for tokens in lines if _starts_with_key(tokens)]
    if len(key_lines) > 1 or (key_lines and _has_second_key(key_lines[0][2:])):
        raise SshKeyError(
            "This holds more than one key. Add them one at a time, each with its own name.",
            code="multiple",
        )
    if len(lines) > 1:
        raise SshKeyError(
            f"A public key is a single line; this has {len(lines)}. {_PASTE_THE_PUB}",
            code="invalid",
        )

    tokens = lines[0]
    key_type = tokens[0]
    if key_type.endswith(_CERTIFICATE_SUFFIX):
        raise SshKeyError(
            "This is an SSH certificate, not a public key. Paste the .pub file of the key itself.",
            code="unsupported_type",
        )
    if key_type in _REFUSED_TYPES:
        raise SshKeyError(f"{_REFUSED_TYPES[key_type]} {_HOW_TO_CREATE}", code="unsupported_type")
    if key_type not in ACCEPTED_TYPES:
        if _looks_like_key_type(key_type):
            raise SshKeyError(
                f"Keys of type {key_type[:40]} are not accepted. Use ed25519, ECDSA or RSA "
                f"(2048 bits or more). {_HOW_TO_CREATE}",
                code="unsupported_type",
            )
        raise SshKeyError(f"This does not look like an SSH public key. {_PASTE_THE_PUB}")
    if len(tokens) < 2 or not _BASE64.match(tokens[1]):
        raise SshKeyError(f"The key after {key_type} is missing or damaged. {_PASTE_THE_PUB}")

    try:
        blob = base64.b64decode(tokens[1], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SshKeyError(f"The key after {key_type} is damaged. {_PASTE_THE_PUB}") from exc
    try:
        key = serialization.load_ssh_public_key(f"{key_type} {tokens[1]}".encode("ascii"))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SshKeyError(
            f"The key after {key_type} is damaged or incomplete; copy the whole line again. "
            f"{_PASTE_THE_PUB}"
        ) from exc
    if _blob_type(blob) != key_type:
        raise SshKeyError(
            f"The line says {key_type} but the key inside is of another type. {_PASTE_THE_PUB}"
        )

    bits = _bits(key)
    if key_type == RSA and bits < RSA_MIN_BITS:
        raise SshKeyError(
            f"This RSA key has {bits} bits; at least {RSA_MIN_BITS} are needed. "
            f"{_HOW_TO_CREATE} (or -t rsa -b 4096).",
            code="too_short",
        )
    if key_type == RSA and bits > RSA_MAX_BITS:
        raise SshKeyError(
            f"This RSA key has {bits} bits; at most {RSA_MAX_BITS} are accepted.",
            code="too_long_key",
        )

    # Re-encode through the parser so that the stored key is canonical, then hash that blob,
    # exactly as ssh-keygen does for `-l`.
    canonical = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    canonical_type, canonical_b64 = canonical.decode("ascii").split(" ", 1)
    comment = " ".join(tokens[2:])
    normalized = f"{canonical_type} {canonical_b64}" + (f" {comment}" if comment else "")
    return ParsedKey(
        key_type=canonical_type,
        bits=bits,
        fingerprint=fingerprint_sha256(base64.b64decode(canonical_b64)),
        normalized=normalized,
        comment=comment,
    )


def contains_private_key(text: str) -> bool:
    """OpenSSH, PEM (RSA, EC, DSA, PKCS#8, encrypted) and PuTTY private keys."""
    return any(marker in (text or "") for marker in _PRIVATE_KEY_MARKERS)


def fingerprint_sha256(blob: bytes) -> str:
    """`ssh-keygen -l`'s fingerprint of a key's wire-format blob."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")
    return f"SHA256:{digest}"


def _bits(key: serialization.SSHPublicKeyTypes) -> int:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return 256
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.key_size
    if isinstance(key, rsa.RSAPublicKey):
        return key.key_size
    raise SshKeyError("This kind of key is not accepted.", code="unsupported_type")


def _blob_type(blob: bytes) -> str:
    """The type name written inside the key blob (a uint32 length, then the name)."""
    if len(blob) < 4:
        return ""
    length = int.from_bytes(blob[:4], "big")
    return blob[4 : 4 + length].decode("ascii", errors="replace")


def _looks_like_key_type(token: str) -> bool:
    return token.startswith(("ssh-", "ecdsa-", "sk-", "rsa-sha2-")) or "@openssh.com" in token


def _starts_with_key(tokens: list[str]) -> bool:
    return bool(tokens) and (tokens[0] in _KNOWN_TYPES or _looks_like_key_type(tokens[0]))


def _has_second_key(rest: list[str]) -> bool:
    """Two keys pasted on one line: the second would otherwise pass for the first's comment."""
    return any(
        (word in _KNOWN_TYPES or _looks_like_key_type(word)) and following.startswith("AAAA")
        for word, following in zip(rest, rest[1:], strict=False)
    )
