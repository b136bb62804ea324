"""Calendar months in UTC: what an invoice covers and what the billing page shows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from portal.lib.errors import ApplicationError

MONTH_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Month:
    """A calendar month, [start, end) in UTC."""

    year: int
    month: int

    @classmethod
    def of(cls, moment: datetime | date) -> Month:
        if isinstance(moment, datetime):
            moment = moment.astimezone(UTC)
        return cls(moment.year, moment.month)

    @classmethod
    def parse(cls, text: str) -> Month:
        """'2026-03' → March 2026; anything else is an ApplicationError."""
        match = MONTH_PATTERN.match((text or "").strip())
        if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 2000:
            raise ApplicationError(
                f"{text!r} is not a month; write it as YYYY-MM, e.g. 2026-03.", field="month"
            )
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.next().start

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Month:
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    @property
    def key(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def label(self) -> str:
        return self.start.strftime("%B %Y")

    def days(self) -> list[date]:
        first = self.first_day
        count = (self.end - self.start).days
        return [first + timedelta(days=n) for n in range(count)]

    def __str__(self) -> str:
        return self.label


def midnight(moment: datetime) -> datetime:
    """The UTC midnight at or before `moment`."""
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def next_midnight(moment: datetime) -> datetime:
    """The first UTC midnight strictly after `moment`."""
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC) + timedelta(days=1)
