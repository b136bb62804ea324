"""What a person reads in their mailbox and in their authenticator app, for tests."""

import re
import time
from urllib.parse import urlsplit

from allauth.mfa import app_settings
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.core import mail


def mails_to(address: str) -> list:
    """The messages sent to `address` so far (Django's in-memory outbox)."""
    return [message for message in mail.outbox if address in message.to]


def link_in(message, contains: str) -> str:
    """The path of the first link in the message's text whose URL contains `contains`."""
    for url in re.findall(r"https?://[^\s<>\"']+", message.body):
        if contains in url:
            return urlsplit(url).path
    raise AssertionError(f"No link with {contains!r} in:\n{message.body}")


def totp_code(secret: str) -> str:
    """What an authenticator app shows now; waits out the last second of a period."""
    period = app_settings.TOTP_PERIOD
    if period - time.time() % period < 1:
        time.sleep(1)
    return format_hotp_value(hotp_value(secret, int(time.time()) // period))
