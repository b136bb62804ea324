"""Lists write an age on every row with portal.web.timesince's `since`: it must read exactly as
Django's timesince, whatever the moment (month ends, leap days, years back) and language."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone, translation
from django.utils.timesince import TIME_STRINGS, timesince

from portal.web.admin import list_age
from portal.web.timesince import KeptWords, since

NOW = datetime(2026, 3, 31, 12, 30, 45, 500_000, tzinfo=UTC)


def _moments() -> list[datetime]:
    seconds = [-60, 0, 1, 59, 60, 61, 3599, 3600, 3661, 86399, 86400, 86401]
    seconds += [3600 * h + 17 for h in range(0, 24 * 60, 5)]
    seconds += [86400 * d + 5 for d in range(0, 4 * 366, 7)]
    moments = [NOW - timedelta(seconds=s) for s in seconds]
    moments += [datetime(2026, 1, d, 23, 59, 59, tzinfo=UTC) for d in (28, 29, 30, 31)]
    moments += [datetime(2024, 2, 29, 12, tzinfo=UTC), datetime(2025, 12, 31, 13, tzinfo=UTC)]
    return moments


_words = KeptWords(TIME_STRINGS)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_since_reads_like_timesince(depth):
    for moment in _moments():
        assert since(moment, NOW, _words, depth) == timesince(moment, NOW, depth=depth), moment


def test_since_compares_the_moments_in_the_first_ones_time_zone():
    paris = NOW.astimezone(timezone.get_fixed_timezone(60))
    moment = datetime(2026, 1, 31, 23, 30, tzinfo=timezone.get_fixed_timezone(60))
    assert since(moment, NOW, _words) == timesince(moment, paris)


def test_a_lists_age_reads_like_timesince_in_the_active_language(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    moment = NOW - timedelta(days=9, hours=4)
    with translation.override("fr"):
        assert list_age(moment) == timesince(moment, NOW, depth=1)
        assert list_age(moment, depth=2) == timesince(moment, NOW, depth=2)
    assert list_age(moment) == "1\xa0week"
