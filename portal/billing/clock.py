"""The one place billing reads the time, so that tests can fix it (`patch("...clock.now")`)."""

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    return timezone.now()
