"""portal.lib.sshkey: what is accepted, what is refused and why, and ssh-keygen's fingerprints."""

import base64
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from portal.lib.sshkey import SshKeyError, fingerprint_sha256, parse_public_key
from tests.lib.keys import openssh_private, private_key, public_line

# Made with OpenSSH 9.2's ssh-keygen; the fingerprints are what `ssh-keygen -lf` printed.
ED25519_VECTOR = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE3CT82U8IEJC5OqXOQNmKP+l9BsH7v30U5xIayLJFCT ann@laptop"
)
ED25519_VECTOR_FINGERPRINT = "SHA256:zZMAStJ+4jKNEcQ6WB1rW4VuEt8SE1v22ElflsrQzBs"
RSA_VECTOR = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDyHUBNvRySsRrE/apnJumGDwOEdeWpluXG3uc0Petza5LYioCFkJ6S"
    "XLl1ky79exIEiQLz2cpwG/mc5XpofaM8bJJWnp48bZKsN/TOvZz6K9kg4zraSNudWTrhovjk9kPM7r9NoAnSrVzQTF74"
    "VxlT/9a1Xxy1p/AtVsyrZbQk/730eY2ODVBW+vC4pYODt+jsgzT4scHLU1rYWXIz/lwmfK+NIBjiSq+icjfpPzGvu4HT"
    "Qd6VQp5KJthdQyOynCnYw5G2YgFj+duletDXrBgTMfvaF3xXDPvVtAgrl7OYrm/gm0ObOy7SbY69xnLz5oQnu2nZs6MS"
    "LparuKewbOfn c rsab2048"
)
RSA_VECTOR_FINGERPRINT = "SHA256:ZR38Gt+bRZ3PAd2ehxqt+Wo6pMUB/yR6Z67KClsWQCQ"
DSA_KEY = (
    "ssh-dss AAAAB3NzaC1kc3MAAACBAMzsWjh0FuXKa4SuaV0UZgP0J+ODZkoLKXMF4kPo+YHA3GFGS6vHki9bXog4lwSy"
    "pvTI4ZKG4dhtt4L8VO9Hwd89GHy2qLlJZqgy/F61btB9fsp0ZIVHGLpt1PDFzxnKybfXfQ7mX1/EjshfSw2Ox3FHbiK6"
    "Jw87TRg+FcITwV+tAAAAFQDO66ElsUrKTZOGeRNFTR2wdy3cuwAAAIBVLK+ej99z9KcJCICqrWM3JfieXk7t/Er7mb9s"
    "lbGJeuYB/MO+SH2o28caKCdU4vYzGSUz08DtmFm5LamB2HqAFM5ZZwPuwSKo+9g6amIo6xxDwiLlv0vkFIZ/u+n1kYA8"
    "sG/4DeUyVvTVPHOzOX3IPtvon7jQo9LszKeil9ZWlQAAAIEAkb88bo7rT6iRZN17yGuZoRAfVd33IgPPIKe5fiNl6yb5"
    "Upxn84H8BXkbeKASI9igiJuuGJIObPFH+ipFskNN3MtsC1Af1DtcZXwcjE0fzDfeTEBl1bYq+FEc3I3oYpk7n+UOnt2F"
    "oaCd5pmcew4xSNPH7rrfP19P+GQfLxBD6AM= root@vm"
)
PUTTY_PRIVATE = """PuTTY-User-Key-File-3: ssh-ed25519
Encryption: none
Comment: eddsa-key-20240101
Public-Lines: 2
AAAAC3NzaC1lZDI1NTE5AAAAIE3CT82U8IEJC5OqXOQNmKP+l9BsH7v30U5xIayL
JFCT
Private-Lines: 1
AAAAIGZha2Vfc2VjcmV0X2J5dGVzX2Zvcl90ZXN0aW5nX29ubHk=
Private-MAC: 0000000000000000000000000000000000000000000000000000000000000000
"""

ACCEPTED = [
    ("ed25519", 0, "ssh-ed25519", 256),
    ("ecdsa", 256, "ecdsa-sha2-nistp256", 256),
    ("ecdsa", 384, "ecdsa-sha2-nistp384", 384),
    ("ecdsa", 521, "ecdsa-sha2-nistp521", 521),
    ("rsa", 2048, "ssh-rsa", 2048),
    ("rsa", 3072, "ssh-rsa", 3072),
    ("rsa", 4096, "ssh-rsa", 4096),
]


def refused(text: str) -> SshKeyError:
    with pytest.raises(SshKeyError) as caught:
        parse_public_key(text)
    return caught.value


# Accepted


@pytest.mark.parametrize(("kind", "bits", "key_type", "expected_bits"), ACCEPTED)
def test_every_accepted_type(kind, bits, key_type, expected_bits):
    line = public_line(private_key(kind, bits), comment="ann@laptop")

    parsed = parse_public_key(line)

    assert parsed.key_type == key_type
    assert parsed.bits == expected_bits
    assert parsed.comment == "ann@laptop"
    assert parsed.normalized == line
    blob = base64.b64decode(line.split()[1])
    assert parsed.fingerprint == fingerprint_sha256(blob)


@pytest.mark.parametrize(
    ("line", "fingerprint", "bits"),
    [(ED25519_VECTOR, ED25519_VECTOR_FINGERPRINT, 256), (RSA_VECTOR, RSA_VECTOR_FINGERPRINT, 2048)],
)
def test_fingerprint_of_known_vectors_made_by_ssh_keygen(line, fingerprint, bits):
    parsed = parse_public_key(line)

    assert parsed.fingerprint == fingerprint
    assert parsed.bits == bits


def test_fingerprint_is_unpadded_base64_of_the_sha256_of_the_blob():
    assert fingerprint_sha256(b"") == "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"


ssh_keygen = shutil.which("ssh-keygen")


@pytest.mark.skipif(ssh_keygen is None, reason="ssh-keygen is not installed")
@pytest.mark.parametrize(
    "args",
    [
        ["-t", "ed25519"],
        ["-t", "ecdsa", "-b", "256"],
        ["-t", "ecdsa", "-b", "384"],
        ["-t", "ecdsa", "-b", "521"],
        ["-t", "rsa", "-b", "2048"],
        ["-t", "rsa", "-b", "4096"],
    ],
)
def test_fingerprint_and_bits_equal_ssh_keygens(tmp_path, args):
    path = tmp_path / "key"
    subprocess.run(
        [ssh_keygen, "-q", *args, "-N", "", "-C", "ann@laptop", "-f", str(path)], check=True
    )
    listed = subprocess.run(
        [ssh_keygen, "-lf", f"{path}.pub"], check=True, capture_output=True, text=True
    ).stdout.split()  # "256 SHA256:... ann@laptop (ED25519)"

    parsed = parse_public_key((tmp_path / "key.pub").read_text())

    assert parsed.fingerprint == listed[1]
    assert parsed.bits == int(listed[0])
    assert parsed.comment == "ann@laptop"


@pytest.mark.skipif(ssh_keygen is None, reason="ssh-keygen is not installed")
def test_the_normalized_key_is_one_ssh_keygen_reads_with_the_same_fingerprint(tmp_path):
    messy = "\r\n  " + ED25519_VECTOR.replace(" ", " \t ") + "  \r\n\r\n"
    parsed = parse_public_key(messy)
    (tmp_path / "k.pub").write_text(parsed.normalized + "\n")

    listed = subprocess.run(
        [ssh_keygen, "-lf", str(tmp_path / "k.pub")], check=True, capture_output=True, text=True
    ).stdout

    assert parsed.fingerprint in listed


def test_whitespace_around_and_inside_is_normalized():
    body = ED25519_VECTOR.split()[1]

    parsed = parse_public_key(f"\n\n  ssh-ed25519\t{body}   Ann's   work laptop \r\n")

    assert parsed.normalized == f"ssh-ed25519 {body} Ann's work laptop"
    assert parsed.comment == "Ann's work laptop"


def test_a_key_without_a_comment():
    body = ED25519_VECTOR.split()[1]

    parsed = parse_public_key(f"ssh-ed25519 {body}")

    assert parsed.normalized == f"ssh-ed25519 {body}"
    assert parsed.comment == ""


# Refused


def test_dsa_is_refused():
    error = refused(DSA_KEY)
    assert error.code == "unsupported_type"
    assert "DSA" in error.message
    assert "ssh-keygen -t ed25519" in error.message


def test_rsa_1024_is_refused():
    error = refused(public_line(private_key("rsa", 1024)))
    assert error.code == "too_short"
    assert "1024 bits" in error.message
    assert "2048" in error.message


def test_rsa_larger_than_ssh_keygen_makes_is_refused():
    huge = rsa.RSAPublicNumbers(65537, 2**16500 + 1).public_key()
    line = huge.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    assert refused(line).code == "too_long_key"


@pytest.mark.parametrize(
    "text",
    [
        "hello",
        "AAAAC3NzaC1lZDI1NTE5AAAAIE3CT82U8IEJC5OqXOQNmKP+l9BsH7v30U5xIayLJFCT",
        'from="10.0.0.1" ' + ED25519_VECTOR,
        "ssh-ed25519",
        "ssh-ed25519 not-base64!!!",
        "ssh-ed25519 AAAA",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE3CT82U8IEJC5OqXOQNmKP+l9BsH7v30U5xIayLJF",  # cut
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE3CT82U8IEJC5OqXOQNmKP+l9BsH7v30U5xIayLJFCTAAAA",
        ED25519_VECTOR.replace("ssh-ed25519", "ssh-rsa"),  # header and body disagree
        RSA_VECTOR.replace("ssh-rsa", "ecdsa-sha2-nistp256"),
        "ssh-ed25519 " + base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\xff\xff").decode(),
    ],
)
def test_garbage_is_refused(text):
    error = refused(text)
    assert error.code in {"invalid", "unsupported_type"}
    assert error.message


@pytest.mark.parametrize("text", ["", "   ", "\n\r\n\t"])
def test_nothing_is_refused(text):
    assert refused(text).code == "empty"


def test_a_key_broken_over_two_lines_is_refused():
    body = ED25519_VECTOR.split()[1]
    error = refused(f"ssh-ed25519 {body[:30]}\n{body[30:]}")
    assert "single line" in error.message


def test_too_long_input_is_refused():
    assert refused(ED25519_VECTOR + " " + "x" * 9000).code == "too_long"


@pytest.mark.parametrize(
    "key_type",
    [
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
        "ssh-ed25519-cert-v01@openssh.com",
        "ssh-xmss@openssh.com",
    ],
)
def test_security_keys_certificates_and_others_are_refused(key_type):
    error = refused(f"{key_type} AAAAC3NzaC1lZDI1NTE5AAAAIE3CT82U8IEJC5OqXOQNmKP")
    assert error.code == "unsupported_type"


PRIVATE_KEYS = {
    "openssh": lambda: openssh_private(),
    "rsa pem": lambda: (
        private_key("rsa", 2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        .decode()
    ),
    "ec pem": lambda: (
        private_key("ecdsa", 256)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        .decode()
    ),
    "pkcs8": lambda: (
        private_key()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    ),
    "encrypted pkcs8": lambda: (
        private_key()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
        .decode()
    ),
    "putty": lambda: PUTTY_PRIVATE,
    "public and private together": lambda: ED25519_VECTOR + "\n" + openssh_private(),
}


@pytest.mark.parametrize("kind", PRIVATE_KEYS)
def test_a_private_key_is_refused_with_a_warning(kind):
    text = PRIVATE_KEYS[kind]()
    assert "PRIVATE KEY" in text or "PuTTY" in text

    error = refused(text)

    assert error.code == "private_key"
    assert "Never share a private key" in error.message
    assert ".pub" in error.message
    assert text.strip().splitlines()[1] not in error.message  # the secret is not echoed


def test_the_openssh_private_key_header_is_recognised():
    text = openssh_private()
    assert text.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert refused(text).code == "private_key"


@pytest.mark.parametrize(
    "text",
    [
        ED25519_VECTOR + "\n" + RSA_VECTOR,
        public_line() + "\n\n" + public_line(comment="second"),
        public_line() + " " + public_line(),  # on one line, the second would pass for a comment
        ED25519_VECTOR + " " + RSA_VECTOR,
    ],
)
def test_two_keys_in_one_paste_are_refused(text):
    error = refused(text)
    assert error.code == "multiple"
    assert "one at a time" in error.message


def test_rfc4716_and_pem_public_keys_are_refused_with_the_conversion_command():
    rfc4716 = "---- BEGIN SSH2 PUBLIC KEY ----\nAAAAC3Nza\n---- END SSH2 PUBLIC KEY ----"
    assert "ssh-keygen -i -f" in refused(rfc4716).message
    pem = (
        private_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    assert "ssh-keygen -i -m PKCS8" in refused(pem).message


@given(st.text(max_size=400))
def test_any_text_is_either_a_key_or_a_clear_refusal(text):
    try:
        parsed = parse_public_key(text)
    except SshKeyError as error:
        assert error.message
    else:
        assert parsed.fingerprint.startswith("SHA256:")


@given(st.binary(max_size=300), st.sampled_from(["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256"]))
def test_any_blob_is_either_a_key_or_a_clear_refusal(blob, key_type):
    try:
        parse_public_key(f"{key_type} {base64.b64encode(blob).decode()}")
    except SshKeyError as error:
        assert error.message
