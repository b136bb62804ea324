"""The e-mail backend of the settings: the real one (EMAIL_DELIVERY_BACKEND, from the
EMAIL_BACKEND variable), counted for Prometheus: messages the server took and messages it
did not (the outbox retries those)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend

from portal.lib import metrics


class MeteredEmailBackend(BaseEmailBackend):
    def __init__(self, fail_silently: bool = False, **kwargs):
        super().__init__(fail_silently=fail_silently)
        self.inner = get_connection(
            settings.EMAIL_DELIVERY_BACKEND, fail_silently=fail_silently, **kwargs
        )

    def open(self):
        return self.inner.open()

    def close(self):
        return self.inner.close()

    def send_messages(self, email_messages):
        messages = list(email_messages)
        try:
            sent = self.inner.send_messages(messages) or 0
        except Exception:
            metrics.EMAILS_FAILED.inc(len(messages))
            raise
        metrics.EMAILS_SENT.inc(sent)
        if len(messages) > sent:
            metrics.EMAILS_FAILED.inc(len(messages) - sent)
        return sent
