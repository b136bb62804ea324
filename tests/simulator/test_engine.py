"""The fleet's rules on a fake clock, without HTTP."""

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from portal.simulator.catalog import catalog_from_dict
from portal.simulator.engine import Simulator
from portal.simulator.records import (
    BadRequest,
    CapacityExhausted,
    Conflict,
    Timings,
    UnknownMachine,
    WrongState,
)
from portal.simulator.store import load_state

FLEET = {
    "instance_types": [
        {"name": "gpu_1x_h100", "gpu_model": "H100", "gpu_count": 1},
        {"name": "gpu_4x_h100", "gpu_model": "H100", "gpu_count": 4},
        {"name": "gpu_8x_h100", "gpu_model": "H100", "gpu_count": 8},
        {"name": "gpu_1x_l40s", "gpu_model": "L40S", "gpu_count": 1},
    ],
    "nodes": [
        {"region": "r1", "gpu_model": "H100", "gpus": 8, "count": 2},
        {"region": "r2", "gpu_model": "L40S", "gpus": 4},
    ],
}
N1, N2 = "r1-h100-01", "r1-h100-02"
TIMINGS = Timings(
    provision=10, start=5, stop=5, reboot=5, terminate=2, jitter=0, reclaim_notice=120
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock: Clock) -> Simulator:
    return Simulator(catalog_from_dict(FLEET), TIMINGS, clock=clock)


def create(
    sim: Simulator,
    instance_type: str = "gpu_1x_h100",
    *,
    request_id: str | None = None,
    preemptible: bool = False,
    region: str = "r1",
    **extra: Any,
) -> dict[str, Any]:
    machine, _ = sim.create(
        request_id=request_id or f"req-{len(sim.machines)}",
        instance_type=instance_type,
        region=region,
        image="ubuntu",
        ssh_keys=[],
        name="box",
        preemptible=preemptible,
        **extra,
    )
    return machine


def node_of(sim: Simulator, machine: dict[str, Any]) -> str | None:
    return sim.machines[machine["id"]].node


def capacity(sim: Simulator, instance_type: str) -> dict[str, Any]:
    return next(c for c in sim.capacity() if c["instance_type"] == instance_type)


def test_provisioning_becomes_running_after_the_delay(sim: Simulator, clock: Clock) -> None:
    machine = create(sim)
    assert machine["state"] == "provisioning"

    clock.advance(9.9)
    assert sim.get(machine["id"])["state"] == "provisioning"
    clock.advance(0.2)
    running = sim.get(machine["id"])

    assert running["state"] == "running"
    # The transition happened when the delay ended, not when someone looked.
    assert running["updated_at"] == "2027-01-15T08:00:10+00:00"


def test_two_half_node_machines_share_a_node_and_a_whole_node_needs_an_empty_one(
    sim: Simulator,
) -> None:
    first, second = create(sim, "gpu_4x_h100"), create(sim, "gpu_4x_h100")
    whole = create(sim, "gpu_8x_h100")

    assert node_of(sim, first) == node_of(sim, second) == N1
    assert node_of(sim, whole) == N2
    with pytest.raises(CapacityExhausted):
        create(sim, "gpu_1x_h100")


def test_best_fit_prefers_the_fullest_node_that_fits(sim: Simulator, clock: Clock) -> None:
    a, b = create(sim, "gpu_4x_h100"), create(sim, "gpu_4x_h100")
    c = create(sim, "gpu_4x_h100")
    assert node_of(sim, c) == N2
    for machine in (a, b):
        sim.action(machine["id"], "terminate")
    clock.advance(2)

    # N1 is empty and N2 has 4 free: first fit would break up N1, best fit keeps it whole.
    assert node_of(sim, create(sim, "gpu_4x_h100")) == N2
    assert node_of(sim, create(sim, "gpu_8x_h100")) == N1


def test_capacity_counts_whole_instances_per_node(sim: Simulator) -> None:
    create(sim, "gpu_4x_h100")
    create(sim, "gpu_1x_h100")

    assert capacity(sim, "gpu_8x_h100") == {
        "region": "r1",
        "instance_type": "gpu_8x_h100",
        "gpu_model": "H100",
        "gpu_count": 8,
        "free_gpus": 11,
        "total_gpus": 16,
        "free_instances": 1,
        "internal_gpus": 0,
        "customer_gpus": 5,
        "shortfall_gpus": 0,
        "internal_forecast_gpus": None,
    }
    assert capacity(sim, "gpu_4x_h100")["free_instances"] == 2
    assert capacity(sim, "gpu_1x_l40s")["region"] == "r2"


def test_stopping_releases_the_gpus_and_starting_needs_room_again(
    sim: Simulator, clock: Clock
) -> None:
    a, _ = create(sim, "gpu_8x_h100"), create(sim, "gpu_8x_h100")
    clock.advance(10)
    sim.action(a["id"], "stop")
    assert node_of(sim, a) is not None
    clock.advance(5)
    assert sim.get(a["id"])["state"] == "stopped"
    assert node_of(sim, a) is None

    create(sim, "gpu_8x_h100")
    with pytest.raises(CapacityExhausted):
        sim.action(a["id"], "start")
    assert sim.get(a["id"])["state"] == "stopped"


def test_actions_are_idempotent_and_refused_where_they_do_not_apply(
    sim: Simulator, clock: Clock
) -> None:
    machine = create(sim)
    with pytest.raises(WrongState):
        sim.action(machine["id"], "stop")
    with pytest.raises(WrongState):
        sim.action(machine["id"], "reboot")
    clock.advance(10)

    sim.action(machine["id"], "reboot")
    clock.advance(1)
    again = sim.action(machine["id"], "reboot")
    assert again["state"] == "rebooting"
    clock.advance(4)
    assert sim.get(machine["id"])["state"] == "running"

    before = sim.action(machine["id"], "start")
    assert sim.action(machine["id"], "start") == before
    with pytest.raises(UnknownMachine):
        sim.action(machine["id"], "explode")


def test_terminate_is_a_no_op_once_ended(sim: Simulator, clock: Clock) -> None:
    machine = create(sim)
    sim.action(machine["id"], "terminate")
    clock.advance(2)
    ended = sim.get(machine["id"])
    assert ended["state"] == "terminated"
    assert ended["ip"] is None

    clock.advance(5)
    assert sim.action(machine["id"], "terminate") == ended
    with pytest.raises(WrongState):
        sim.action(machine["id"], "start")


def test_create_is_idempotent_on_request_id(sim: Simulator) -> None:
    first, created = sim.create(
        request_id="r",
        instance_type="gpu_1x_h100",
        region="r1",
        image="ubuntu",
        ssh_keys=[],
        name="box",
        preemptible=False,
    )
    assert created
    again, created = sim.create(
        request_id="r",
        instance_type="gpu_1x_h100",
        region="r1",
        image="ubuntu",
        ssh_keys=[],
        name="box",
        preemptible=False,
    )

    assert not created
    assert again == first
    with pytest.raises(Conflict, match="other parameters"):
        create(sim, "gpu_4x_h100", request_id="r")


@pytest.mark.parametrize(
    "change",
    [
        {"instance_type": "gpu_3x_tpu"},
        {"region": "mars-1"},
        {"instance_type": "gpu_1x_l40s", "region": "r1"},
        {"request_id": ""},
        {"request_id": "x" * 129},
        {"preemptible": "no"},
        {"ssh_keys": "ssh-ed25519 AAAA"},
    ],
)
def test_bad_create_requests_are_refused(sim: Simulator, change: dict[str, Any]) -> None:
    fields = {
        "request_id": "r",
        "instance_type": "gpu_1x_h100",
        "region": "r1",
        "image": "ubuntu",
        "ssh_keys": [],
        "name": "box",
        "preemptible": False,
    }

    with pytest.raises(BadRequest):
        sim.create(**{**fields, **change})
    assert sim.machines == {}


def test_ips_are_unique_test_addresses_and_released_on_terminate(
    sim: Simulator, clock: Clock
) -> None:
    machines = [create(sim) for _ in range(10)]
    ips = [m["ip"] for m in machines]

    assert len(set(ips)) == 10
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("203.0.113.0/24") for ip in ips)
    sim.action(machines[0]["id"], "terminate")
    clock.advance(2)
    assert create(sim)["ip"] == ips[0]


def test_reclaim_gives_notice_then_interrupts_and_frees_the_gpus(
    sim: Simulator, clock: Clock
) -> None:
    machine = create(sim, "gpu_8x_h100", preemptible=True)
    clock.advance(10)

    [noticed] = sim.reclaim()
    assert noticed["id"] == machine["id"]
    assert noticed["reclaim_at"] == "2027-01-15T08:02:10+00:00"
    assert noticed["state"] == "running"
    clock.advance(119)
    assert sim.get(machine["id"])["state"] == "running"
    assert capacity(sim, "gpu_8x_h100")["free_instances"] == 1

    clock.advance(2)
    interrupted = sim.get(machine["id"])
    assert interrupted["state"] == "interrupted"
    assert interrupted["updated_at"] == interrupted["reclaim_at"]
    assert interrupted["ip"] is None
    assert capacity(sim, "gpu_8x_h100")["free_instances"] == 2
    assert sim.reclaim() == []


def test_reclaim_by_gpus_takes_the_newest_preemptible_machines(
    sim: Simulator, clock: Clock
) -> None:
    preemptible = []
    for _ in range(3):
        preemptible.append(create(sim, preemptible=True))
        clock.advance(1)
    old, mid, new = preemptible
    on_demand = create(sim)
    clock.advance(10)

    noticed = sim.reclaim(gpus=2, notice=30)

    assert [m["id"] for m in noticed] == [new["id"], mid["id"]]
    assert sim.get(old["id"])["reclaim_at"] is None
    assert sim.get(on_demand["id"])["reclaim_at"] is None
    with pytest.raises(BadRequest, match="not preemptible"):
        sim.reclaim(machine_ids=[on_demand["id"]])


def test_reclaim_filters_by_region_and_model(sim: Simulator) -> None:
    h100 = create(sim, preemptible=True)
    create(sim, "gpu_1x_l40s", region="r2", preemptible=True)

    assert [m["id"] for m in sim.reclaim(region="r1")] == [h100["id"]]
    assert [m["gpu_model"] for m in sim.reclaim(gpu_model="L40S")] == ["L40S"]


def test_stopping_before_the_reclaim_cancels_it(sim: Simulator, clock: Clock) -> None:
    machine = create(sim, preemptible=True)
    clock.advance(10)
    sim.reclaim(notice=60)

    sim.action(machine["id"], "stop")
    clock.advance(5)
    stopped = sim.get(machine["id"])
    assert (stopped["state"], stopped["reclaim_at"]) == ("stopped", None)

    clock.advance(100)
    sim.action(machine["id"], "start")
    clock.advance(5)
    assert sim.get(machine["id"])["state"] == "running"


def test_terminating_during_the_notice_ends_as_terminated(sim: Simulator, clock: Clock) -> None:
    machine = create(sim, preemptible=True)
    clock.advance(10)
    sim.reclaim(notice=60)

    sim.action(machine["id"], "terminate")
    clock.advance(100)

    assert sim.get(machine["id"])["state"] == "terminated"


def test_boot_failures_and_injected_failures(sim: Simulator, clock: Clock) -> None:
    doomed = create(sim, fails_on_boot=True)
    healthy = create(sim)
    clock.advance(10)

    assert sim.get(doomed["id"])["state"] == "failed"
    assert "boot" in sim.get(doomed["id"])["detail"]
    assert node_of(sim, doomed) is None

    failed = sim.fail(healthy["id"], "GPU fell off the bus")
    assert (failed["state"], failed["detail"]) == ("failed", "GPU fell off the bus")
    assert capacity(sim, "gpu_1x_h100")["free_gpus"] == 16


def test_a_lost_machine_is_forgotten_entirely(sim: Simulator) -> None:
    machine = create(sim, request_id="req-lost")

    sim.lose(machine["id"])

    with pytest.raises(UnknownMachine):
        sim.get(machine["id"])
    assert sim.list() == []
    assert capacity(sim, "gpu_1x_h100")["free_gpus"] == 16
    with pytest.raises(UnknownMachine):
        sim.lose(machine["id"])


def test_fleet_changes_may_not_strand_running_machines(sim: Simulator) -> None:
    create(sim, "gpu_8x_h100")
    bigger = {**FLEET, "nodes": [*FLEET["nodes"], {"region": "r3", "gpu_model": "H100", "gpus": 8}]}

    sim.set_catalog(catalog_from_dict(bigger))
    assert "r3" in sim.catalog.regions

    with pytest.raises(Conflict, match=N1):
        sim.set_catalog(catalog_from_dict({**FLEET, "nodes": [FLEET["nodes"][1]]}))


def test_state_survives_a_reload_and_time_keeps_running(tmp_path: Path, clock: Clock) -> None:
    state = tmp_path / "state.json"
    sim = Simulator(catalog_from_dict(FLEET), TIMINGS, state_path=state, clock=clock)
    machine = create(sim, preemptible=True)
    sim.reclaim(notice=60)
    listed = sim.list()

    reloaded = Simulator(catalog_from_dict(FLEET), Timings(), clock=clock)
    reloaded.load(load_state(state))
    assert reloaded.list() == listed
    assert reloaded.timings == TIMINGS

    clock.advance(10)
    assert reloaded.get(machine["id"])["state"] == "running"
    clock.advance(50)
    assert reloaded.get(machine["id"])["state"] == "interrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.json.journal"]


def test_timings_are_validated(sim: Simulator) -> None:
    assert sim.set_timings({"provision": 1}).provision == 1.0
    for bad in ({"provision": -1}, {"provision": "fast"}, {"warp": 1}, {"stop": True}):
        with pytest.raises(BadRequest):
            sim.set_timings(bad)
