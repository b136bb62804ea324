"""Django's `timesince` ("1 week, 2 days") without its costs per call, for lists that write it
on every row: the same arithmetic (years and months by the calendar from a pivot, the rest in
seconds, up to `depth` adjacent units), with the unit's words given by the caller, who keeps
their translations (tests/web/test_timesince.py compares the two over years of moments).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.utils.timesince import MONTHS_DAYS, TIME_CHUNKS, TIME_STRINGS_KEYS
from django.utils.translation import get_language, gettext

# Weeks to minutes, in seconds, after years and months.
_CHUNKS = tuple(zip(TIME_STRINGS_KEYS[2:], TIME_CHUNKS, strict=True))
# timesince's `gettext(", ")`, by language.
_separators: dict[str | None, str] = {}


def since(
    d: datetime,
    now: datetime,
    words: Callable[[str, int], str],
    depth: int = 2,
    lang: str | None = None,
) -> str:
    """`timesince(d, now, depth=depth)` for aware datetimes, the units written by
    `words(unit, count)` (as `time_strings[unit] % {"num": count}` with its spaces not
    breaking, which timesince adds) and joined as timesince joins them in `lang` (the active
    language, looked up if not given)."""
    now = now.astimezone(d.tzinfo)
    delta = now - d
    if delta.days * 86400 + delta.seconds <= 0:
        return words("minute", 0)
    total_months = (now.year - d.year) * 12 + (now.month - d.month)
    if d.day > now.day or (d.day == now.day and d.time() > now.time()):
        total_months -= 1
    years, months = divmod(total_months, 12)
    pivot = d
    if years or months:
        pivot_year, pivot_month = d.year + years, d.month + months
        if pivot_month > 12:
            pivot_month -= 12
            pivot_year += 1
        day = min(MONTHS_DAYS[pivot_month - 1], d.day)
        pivot = datetime(pivot_year, pivot_month, day, d.hour, d.minute, d.second, tzinfo=d.tzinfo)
    remaining = (now - pivot).total_seconds()
    parts = [("year", years), ("month", months)]
    for name, chunk in _CHUNKS:
        count = int(remaining // chunk)
        parts.append((name, count))
        remaining -= chunk * count
    first = next((i for i, (_name, count) in enumerate(parts) if count), None)
    if first is None:
        return words("minute", 0)
    out = []
    for name, count in parts[first : first + depth]:
        if not count:
            break
        out.append(words(name, count))
    if len(out) == 1:
        return out[0]
    lang = lang if lang is not None else get_language()
    separator = _separators.get(lang)
    if separator is None:
        separator = _separators[lang] = gettext(", ")
    return separator.join(out)
