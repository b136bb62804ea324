"""Internal demand on a fake clock: the daily curve, bursts, the shortfall, and reclaims the
portal orders (the simulator picks no victims itself)."""

import pytest

from portal.simulator.catalog import catalog_from_dict
from portal.simulator.engine import Simulator
from portal.simulator.records import BadRequest

from .test_engine import FLEET, TIMINGS, Clock, capacity, create

MIDNIGHT = 1_800_057_600.0  # 2027-01-15 00:00 UTC (a multiple of 86400)


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.now = MIDNIGHT
    return clock


@pytest.fixture
def sim(clock: Clock) -> Simulator:
    sim = Simulator(catalog_from_dict(FLEET), TIMINGS, clock=clock)
    return sim


def curve(**fields):
    return {"region": "r1", "gpu_model": "H100", **fields}


def test_the_daily_curve_peaks_at_the_peak_hour_and_a_fast_day_runs_in_minutes(
    sim: Simulator, clock: Clock
) -> None:
    sim.set_demand(
        {
            "day_seconds": 240,  # a day in 4 minutes
            "start_hour": 0,
            "curves": [curve(trough=0.25, peak=0.75, peak_hour=12)],
        }
    )
    assert capacity(sim, "gpu_1x_h100")["internal_gpus"] == 4  # midnight: the trough, 25 % of 16
    clock.advance(120)  # noon, simulated
    view = sim.demand_view()
    assert view["hour_of_day"] == 12
    assert capacity(sim, "gpu_1x_h100")["internal_gpus"] == 12  # the peak, 75 %
    assert capacity(sim, "gpu_1x_h100")["free_gpus"] == 4


def test_bursts_are_random_but_the_same_seed_gives_the_same_day(clock: Clock) -> None:
    def day(seed: int) -> list[int]:
        sim = Simulator(catalog_from_dict(FLEET), TIMINGS, clock=clock)
        clock.now = MIDNIGHT
        sim.set_demand(
            {
                "seed": seed,
                "day_seconds": 1440,  # a simulated minute a real second
                "start_hour": 0,
                "curves": [curve(trough=0.25, peak=0.25, bursts_per_day=12, burst_size=0.5)],
            }
        )
        values = []
        for _ in range(48):
            values.append(capacity(sim, "gpu_1x_h100")["internal_gpus"])
            clock.advance(30)
        return values

    first = day(7)
    assert first == day(7)
    assert set(first) == {4, 12}  # the trough, and bursts of half the fleet on top
    assert first != day(8)


def test_a_day_may_fall_longer_than_it_rises_and_burst_at_given_moments(
    sim: Simulator, clock: Clock
) -> None:
    """Peak at 14:00, trough at 03:00 (13 hours down, 11 up), a burst of a quarter of the fleet
    from 20:00 for two hours on the first day only."""
    burst = MIDNIGHT + 20 * 3600
    sim.set_demand(
        {
            "curves": [
                curve(
                    trough=0.25,
                    peak=0.75,
                    peak_hour=14,
                    trough_hour=3,
                    burst_size=0.25,
                    burst_minutes=120,
                    bursts_at=[burst],
                )
            ]
        }
    )

    def internal_at(hour: float) -> int:
        clock.now = MIDNIGHT + hour * 3600
        return capacity(sim, "gpu_1x_h100")["internal_gpus"]

    assert internal_at(3) == 4  # the trough, 25 % of 16
    assert internal_at(14) == 12  # the peak, 75 %
    assert internal_at(8.5) == 8  # half-way up (11 hours from 03:00 to 14:00)
    assert internal_at(20.5) == 12  # half-way down (13 hours to 03:00), 50 %, plus the burst
    assert internal_at(22) == internal_at(24 + 22)  # the burst is over by 22:00 ...
    assert internal_at(21.5) - internal_at(24 + 21.5) == 4  # ... and came on the first day only


def test_demand_into_customer_gpus_is_reported_as_a_shortfall_no_machine_is_touched(
    sim: Simulator, clock: Clock
) -> None:
    spot = create(sim, "gpu_4x_h100", preemptible=True)
    on_demand = create(sim, "gpu_4x_h100")
    sim.set_demand({"curves": [curve(gpus=14)]})

    entry = capacity(sim, "gpu_1x_h100")
    assert (entry["internal_gpus"], entry["customer_gpus"], entry["free_gpus"]) == (8, 8, 0)
    assert entry["shortfall_gpus"] == 6
    clock.advance(3600)
    assert sim.get(spot["id"])["state"] == "running"
    assert sim.get(spot["id"])["reclaim_at"] is None
    assert sim.get(on_demand["id"])["state"] == "running"

    # The portal orders the reclaim of the preemptible machine; its GPUs go to internal work.
    at = clock.now + 120
    sim.reclaim_machine(spot["id"], at)
    sim.reclaim_machine(spot["id"], at + 60)  # again, later: the first time stands
    assert sim.interruption(spot["id"]) == {
        "action": "terminate",
        "time": sim.get(spot["id"])["reclaim_at"],
    }
    clock.advance(119)
    assert sim.get(spot["id"])["state"] == "running"
    clock.advance(1)
    assert sim.get(spot["id"])["state"] == "interrupted"
    assert sim.interruption(spot["id"]) is None
    entry = capacity(sim, "gpu_1x_h100")
    assert (entry["internal_gpus"], entry["shortfall_gpus"]) == (12, 2)


def test_an_on_demand_machine_is_never_reclaimed(sim: Simulator) -> None:
    on_demand = create(sim, "gpu_1x_h100")
    with pytest.raises(BadRequest, match="not preemptible"):
        sim.reclaim_machine(on_demand["id"], 0)
    assert sim.get(on_demand["id"])["reclaim_at"] is None


def test_the_forecast_is_the_curve_fifteen_minutes_ahead(sim: Simulator, clock: Clock) -> None:
    sim.set_demand(
        {
            "start_hour": 11.75,
            "curves": [curve(trough=0.0, peak=1.0, peak_hour=12, bursts_per_day=100)],
        }
    )
    assert capacity(sim, "gpu_1x_h100")["internal_forecast_gpus"] == 16


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"curves": [curve(peak=1.5)]}, "peak must be between 0 and 1"),
        ({"curves": [curve(trough=0.8, peak=0.5)]}, "trough must not be above peak"),
        ({"curves": [{"region": "r9", "gpu_model": "H100"}]}, "no 'H100' nodes in region 'r9'"),
        ({"curves": [curve(gpus=-1)]}, "gpus must be a whole number"),
        ({"day_seconds": 0}, "day_seconds must be at least 1"),
        ({"curves": [curve(), curve()]}, "one curve per region"),
        ({"speed": 2}, "unknown fields"),
        ({"curves": [curve(trough_hour=25)]}, "trough_hour must be between 0 and 24"),
        ({"curves": [curve(bursts_at=["noon"])]}, "bursts_at must be a list of times"),
    ],
)
def test_bad_demand_is_refused_and_changes_nothing(sim: Simulator, body, message) -> None:
    sim.set_demand({"curves": [curve(gpus=3)]})
    with pytest.raises(BadRequest, match=message):
        sim.set_demand(body)
    assert capacity(sim, "gpu_1x_h100")["internal_gpus"] == 3


def test_the_demand_survives_a_reload(tmp_path, clock: Clock) -> None:
    path = tmp_path / "state.json"
    sim = Simulator(catalog_from_dict(FLEET), TIMINGS, clock=clock, state_path=path)
    sim.set_demand({"curves": [curve(gpus=5)]})
    again = Simulator(catalog_from_dict(FLEET), TIMINGS, clock=clock)
    import json

    again.load(json.loads(path.read_text()))
    assert capacity(again, "gpu_1x_h100")["internal_gpus"] == 5
