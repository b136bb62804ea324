"""Writes of a person's own settings."""

from zoneinfo import available_timezones

from portal.accounts.models import User
from portal.lib.errors import ApplicationError


def time_zone_names() -> list[str]:
    return sorted(name for name in available_timezones() if "/" in name or name == "UTC")


def user_time_zone_set(*, user: User, time_zone: str) -> User:
    """Times in pages and e-mails are shown in `time_zone` (an IANA name, e.g. Europe/Paris)."""
    time_zone = (time_zone or "").strip()
    if time_zone not in available_timezones():
        raise ApplicationError(
            f"“{time_zone[:64]}” is not a time zone we know; choose one from the list.",
            field="time_zone",
        )
    user.time_zone = time_zone
    user.save(update_fields=["time_zone"])
    return user
