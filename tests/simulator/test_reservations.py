"""Reservations in the simulated fleet: held GPUs in `_used_gpus()`, the fleet check, the
owner's machines drawing on them, idempotence, persistence, and the HTTP driver."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from portal.provisioning import CapacityError, supports_reservations
from portal.provisioning.drivers.simulator import SimulatorBackend
from portal.simulator.catalog import catalog_from_dict
from portal.simulator.engine import Simulator
from portal.simulator.records import BadRequest, CapacityExhausted, Conflict
from tests.simulator.test_engine import FLEET, TIMINGS, Clock, capacity, create

HOUR = 3600.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock: Clock) -> Simulator:
    return Simulator(catalog_from_dict(FLEET), TIMINGS, clock=clock)


def reserve(sim: Simulator, clock: Clock, gpus: int = 8, **kwargs: Any) -> dict[str, Any]:
    reservation_id = kwargs.pop("reservation_id", "reservation-1")
    values = {
        "region": "r1",
        "gpu_model": "H100",
        "gpus": gpus,
        "start": clock.now - HOUR,
        "end": clock.now + 10 * HOUR,
        "account": "acme",
        **kwargs,
    }
    reservation, _ = sim.reserve(reservation_id, **values)
    return reservation


def test_held_gpus_are_not_free_for_others_but_free_for_the_owner(sim, clock):
    reserve(sim, clock, gpus=8)
    assert capacity(sim, "gpu_1x_h100")["free_gpus"] == 8  # 16 in r1, 8 held
    create(sim, "gpu_8x_h100", account="rival")
    with pytest.raises(CapacityExhausted):
        create(sim, "gpu_1x_h100", account="rival")
    mine = create(sim, "gpu_8x_h100", account="acme")  # drawn on the reservation
    assert mine["state"] == "provisioning"
    with pytest.raises(CapacityExhausted):
        create(sim, "gpu_1x_h100", account="acme")  # beyond it: the fleet is full


def test_a_preemptible_machine_of_the_owner_does_not_draw_on_it(sim, clock):
    reserve(sim, clock, gpus=16)
    with pytest.raises(CapacityExhausted):
        create(sim, "gpu_1x_h100", account="acme", preemptible=True)


def test_the_hold_counts_only_during_the_period(sim, clock):
    reserve(sim, clock, gpus=16, start=clock.now + HOUR, end=clock.now + 2 * HOUR)
    assert capacity(sim, "gpu_1x_h100")["free_gpus"] == 16
    clock.advance(HOUR)
    assert capacity(sim, "gpu_1x_h100")["free_gpus"] == 0
    clock.advance(HOUR)
    assert capacity(sim, "gpu_1x_h100")["free_gpus"] == 16


def test_overlapping_reservations_beyond_the_fleet_are_refused(sim, clock):
    reserve(sim, clock, gpus=12, reservation_id="a")
    reserve(sim, clock, gpus=4, reservation_id="b")
    with pytest.raises(CapacityExhausted, match="fleet has 16"):
        reserve(sim, clock, gpus=1, reservation_id="c")
    # After both end, the whole fleet can be reserved again.
    reserve(
        sim,
        clock,
        gpus=16,
        reservation_id="d",
        start=clock.now + 10 * HOUR,
        end=clock.now + 20 * HOUR,
    )
    assert sorted(sim.reservations) == ["a", "b", "d"]


def test_idempotent_on_the_id_and_conflict_on_other_parameters(sim, clock):
    first = reserve(sim, clock, gpus=8)
    again, created = sim.reserve("reservation-1", **{k: v for k, v in first.items() if k != "id"})
    assert (again, created) == (first, False)
    with pytest.raises(Conflict):
        reserve(sim, clock, gpus=4)


@pytest.mark.parametrize(
    "change",
    [{"gpus": 0}, {"gpus": True}, {"end": 0}, {"start": "soon"}, {"region": "nowhere"}],
)
def test_bad_reservations_are_refused(sim, clock, change):
    with pytest.raises(BadRequest):
        reserve(sim, clock, **change)
    assert sim.reservations == {}


def test_release_frees_the_gpus_and_is_idempotent(sim, clock):
    reserve(sim, clock, gpus=16)
    assert sim.release("reservation-1") is True
    assert sim.release("reservation-1") is False
    assert capacity(sim, "gpu_1x_h100")["free_gpus"] == 16


def test_reservations_survive_a_restart(sim, clock):
    reserve(sim, clock, gpus=8)
    restarted = Simulator(catalog_from_dict(FLEET), TIMINGS, clock=clock)
    restarted.load(sim.to_dict())
    assert restarted.reservations == sim.reservations
    assert capacity(restarted, "gpu_1x_h100")["free_gpus"] == 8


def test_the_driver_reserves_and_releases_over_http(simulator):
    driver = SimulatorBackend(simulator.url, simulator.token, retries=0, backoff=0)
    assert supports_reservations(driver)
    now = datetime.now(UTC)
    fleet = sum(c.total_gpus for c in driver.capacity() if c.instance_type == "gpu_1x_h100")
    driver.reserve(
        reservation_id="reservation-7",
        region="us-east-1",
        gpu_model=next(
            c.gpu_model
            for c in driver.capacity()
            if c.instance_type == "gpu_1x_h100" and c.region == "us-east-1"
        ),
        gpus=8,
        start=now - timedelta(minutes=1),
        end=now + timedelta(hours=1),
        account="acme",
    )
    assert [r["id"] for r in simulator.control.state()["reservations"]] == ["reservation-7"]
    with pytest.raises(CapacityError):
        driver.reserve(
            reservation_id="reservation-8",
            region="us-east-1",
            gpu_model=simulator.control.state()["reservations"][0]["gpu_model"],
            gpus=fleet * 10,
            start=now,
            end=now + timedelta(hours=1),
        )
    driver.release("reservation-7")
    driver.release("reservation-7")
    assert simulator.control.state()["reservations"] == []
