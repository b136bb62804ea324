"""Django's `timesince` ("1 week, 2 days") without its costs per call, for lists that write it
on every row: the same arithmetic (years and months by the calendar from a pivot, the rest in
seconds, up to `depth` adjacent units), the units' words from a table whose translations are
kept (`KeptWords`). tests/web/test_timesince.py compares the two over years of moments.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.utils.timesince import MONTHS_DAYS, TIME_CHUNKS, TIME_STRINGS_KEYS
from django.utils.translation import get_language, gettext

# Weeks to minutes, in seconds, after years and months.
_CHUNKS = tuple(zip(TIME_STRINGS_KEYS[2:], TIME_CHUNKS, strict=True))
# timesince's `gettext(", ")`, by language.
_separators: dict[str | None, str] = {}


class KeptWords:
    """A table of timesince's unit strings ("%(num)d days", lazily translated) written as
    timesince writes them (spaces not breaking), kept per language, unit and number instead of
    translated again for every row."""

    def __init__(self, strings: Mapping[str, Any]) -> None:
        self.strings = strings
        self.kept: dict[tuple[str | None, str, int], str] = {}

    def __call__(self, lang: str | None, unit: str, count: int) -> str:
        key = (lang, unit, count)
        found = self.kept.get(key)
        if found is None:
            if len(self.kept) >= 4096:
                self.kept.clear()
            text = str(self.strings[unit] % {"num": count})
            found = self.kept[key] = text.replace(" ", "\xa0")
        return found


def since(
    d: datetime,
    now: datetime,
    words: KeptWords,
    depth: int = 2,
    lang: str | None = None,
) -> str:
    """`timesince(d, now, depth=depth, time_strings=words.strings)` for aware datetimes, in
    `lang` (the active language, looked up if not given)."""
    lang = lang if lang is not None else get_language()
    now = now.astimezone(d.tzinfo)
    delta = now - d
    if delta.days * 86400 + delta.seconds <= 0:
        return words(lang, "minute", 0)
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
        return words(lang, "minute", 0)
    out = []
    for name, count in parts[first : first + depth]:
        if not count:
            break
        out.append(words(lang, name, count))
    if len(out) == 1:
        return out[0]
    separator = _separators.get(lang)
    if separator is None:
        separator = _separators[lang] = gettext(", ")
    return separator.join(out)
