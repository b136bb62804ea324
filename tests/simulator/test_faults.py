import random
from typing import Any

import pytest

from portal.simulator.faults import FaultError, Faults


def test_next_fires_exactly_that_many_times_then_the_rate_decides() -> None:
    faults = Faults(error_next=2)
    rng = random.Random(1)

    assert [faults.fires("error", rng) for _ in range(4)] == [True, True, False, False]
    faults.update({"error_rate": 1.0})
    assert faults.fires("error", rng)


def test_a_rate_fires_about_that_often() -> None:
    faults = Faults(slow_rate=0.25)
    rng = random.Random(7)

    hits = sum(faults.fires("slow", rng) for _ in range(4000))

    assert 800 < hits < 1200


@pytest.mark.parametrize(
    "change",
    [
        {"error_rate": 1.5},
        {"error_rate": "often"},
        {"error_next": -1},
        {"error_next": 1.5},
        {"error_status": 404},
        {"slow_seconds": 10_000},
        {"slow_after": "yes"},
        {"garbage_kind": "poetry"},
        {"chaos_monkey": True},
    ],
)
def test_bad_settings_are_refused_and_change_nothing(change: dict[str, Any]) -> None:
    faults = Faults()

    with pytest.raises(FaultError):
        faults.update({"error_rate": 0.5, **change})
    assert faults == Faults()
