"""portal/lib/webhook_signature.py: what a receiver checks."""

import hashlib
import hmac

import pytest

from portal.lib.webhook_signature import SignatureError, compute, sign, verify

SECRET = "whsec_test"
BODY = b'{"id":"evt_1","type":"webhook.test"}'


def test_the_header_is_t_and_v1_hmac_of_t_dot_body():
    header = sign(SECRET, BODY, timestamp=1_767_225_600)

    expected = hmac.new(SECRET.encode(), b"1767225600." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1767225600,v1={expected}"
    assert compute(SECRET, BODY, 1_767_225_600) == expected


def test_a_fresh_signature_verifies():
    header = sign(SECRET, BODY, timestamp=1000)

    assert verify(SECRET, BODY, header, now=1100) == 1000


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [
        ("whsec_other", BODY, 1000),  # another secret
        (SECRET, BODY + b" ", 1000),  # a changed body
        (SECRET, BODY, 1000 + 301),  # replayed after the tolerance
        (SECRET, BODY, 1000 - 301),  # from the future
    ],
)
def test_anything_else_is_refused(secret, body, now):
    header = sign(SECRET, BODY, timestamp=1000)

    with pytest.raises(SignatureError):
        verify(secret, body, header, now=now)


@pytest.mark.parametrize("header", ["", "t=abc,v1=00", "v1=00", "t=1000", "garbage"])
def test_a_malformed_header_is_refused(header):
    with pytest.raises(SignatureError):
        verify(SECRET, BODY, header, now=1000)


def test_one_matching_v1_of_several_is_enough():
    good = sign(SECRET, BODY, timestamp=1000).split(",")[1]

    assert verify(SECRET, BODY, f"t=1000,v1={'0' * 64},{good}", now=1000) == 1000
