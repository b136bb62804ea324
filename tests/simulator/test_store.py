"""The state on disk: a snapshot and a journal of the changes since, as a crash leaves them."""

from pathlib import Path
from typing import Any

import pytest

from portal.provisioning import MachineState
from portal.provisioning.drivers.simulator import SimulatorBackend
from portal.simulator.catalog import catalog_from_dict
from portal.simulator.engine import Simulator
from portal.simulator.process import SimulatorProcess
from portal.simulator.records import Timings
from portal.simulator.store import journal_path, load_state, read_snapshot
from tests.provisioning.contract import wait_for_state

FLEET = {
    "instance_types": [{"name": "gpu_1x_h100", "gpu_model": "H100", "gpu_count": 1}],
    "nodes": [{"region": "r1", "gpu_model": "H100", "gpus": 8, "count": 128}],
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def simulator(state: Path, clock: Clock) -> Simulator:
    return Simulator(
        catalog_from_dict(FLEET), Timings(provision=10, jitter=0), state_path=state, clock=clock
    )


def create(sim: Simulator, n: int) -> dict[str, Any]:
    machine, _ = sim.create(
        request_id=f"req-{n}",
        instance_type="gpu_1x_h100",
        region="r1",
        image="ubuntu",
        ssh_keys=[],
        name=f"box-{n}",
        preemptible=n % 2 == 0,
    )
    return machine


def reloaded(state: Path, clock: Clock) -> Simulator:
    sim = Simulator(catalog_from_dict(FLEET), state_path=state, clock=clock)
    saved = load_state(state)
    assert saved is not None
    sim.load(saved)
    return sim


def test_a_change_writes_a_line_whatever_the_size_of_the_fleet(tmp_path: Path) -> None:
    """A change appends its own records to the journal: what a create writes does not grow
    with the fleet (the whole state was written on every change: O(machines))."""
    state, clock = tmp_path / "state.json", Clock()
    sim = simulator(state, clock)
    create(sim, 0)  # the first write of a process is a snapshot
    sizes = []
    for n in range(1, 301):
        before = journal_path(state).stat().st_size if journal_path(state).exists() else 0
        create(sim, n)
        sizes.append(journal_path(state).stat().st_size - before)

    assert max(sizes) < 1_000
    assert max(sizes) - min(sizes) < 10  # the request id's digits


def test_a_torn_last_line_is_left_out(tmp_path: Path) -> None:
    """A crash in the middle of an append leaves part of a line, never answered: the state is
    what was answered before it, and the next changes are kept after it."""
    state, clock = tmp_path / "state.json", Clock()
    sim = simulator(state, clock)
    kept = [create(sim, n)["id"] for n in range(3)]
    with journal_path(state).open("ab") as journal:
        journal.write(b'{"seq":3,"machines":[{"id":"m-half')

    again = reloaded(state, clock)
    assert {m["id"] for m in again.list()} == set(kept)

    later = create(again, 9)["id"]
    assert {m["id"] for m in reloaded(state, clock).list()} == {*kept, later}


def test_a_corrupt_line_before_the_last_stops_the_load(tmp_path: Path) -> None:
    state, clock = tmp_path / "state.json", Clock()
    sim = simulator(state, clock)
    for n in range(3):
        create(sim, n)
    lines = journal_path(state).read_bytes().split(b"\n")
    lines[0] = lines[0][:20]
    journal_path(state).write_bytes(b"\n".join(lines))

    with pytest.raises(ValueError, match="line 1 is corrupt"):
        load_state(state)


def test_compaction_leaves_the_same_state(tmp_path: Path) -> None:
    """The journal is folded into a new snapshot once it outgrows it; the state read back is
    the same before and after, and the same as the running simulator's."""
    state, clock = tmp_path / "state.json", Clock()
    sim = simulator(state, clock)
    sim.compact_bytes = 4_000
    made = [create(sim, n)["id"] for n in range(40)]
    sim.reserve("res-1", region="r1", gpu_model="H100", gpus=4, start=clock.now, end=clock.now + 9)
    sim.reserve("res-2", region="r1", gpu_model="H100", gpus=2, start=clock.now, end=clock.now + 9)
    sim.release("res-1")
    clock.now += 10
    for machine_id in made[:10]:
        sim.action(machine_id, "stop")
    sim.reclaim(gpus=2, notice=60)
    expected = sim.dump()

    snapshot = read_snapshot(state)
    assert snapshot is not None and len(snapshot["machines"]) > 1  # compacted since the first
    assert 0 < journal_path(state).stat().st_size <= state.stat().st_size
    assert reloaded(state, clock).dump() == expected

    sim.compact()
    assert journal_path(state).stat().st_size == 0
    assert reloaded(state, clock).dump() == expected


def test_lines_a_snapshot_already_holds_are_not_replayed(tmp_path: Path) -> None:
    """A crash between writing a snapshot and emptying the journal leaves the old lines: they
    are older than the snapshot and must not take its records back."""
    state, clock = tmp_path / "state.json", Clock()
    sim = simulator(state, clock)
    machine = create(sim, 1)["id"]
    clock.now += 10
    sim.action(machine, "stop")
    old_journal = journal_path(state).read_bytes()
    sim.compact()
    journal_path(state).write_bytes(old_journal)

    assert reloaded(state, clock).get(machine)["state"] == "stopping"


def test_a_change_answered_survives_kill_9_with_a_torn_line_after_it(tmp_path: Path) -> None:
    """A stop answered, then kill -9 while the next change was half written: the stop is there
    after the restart, and changes made after the restart survive the next kill -9."""
    state = tmp_path / "state.json"
    process = SimulatorProcess(state, extra_args=("--flush-interval", "60"))
    with process:
        driver = SimulatorBackend(process.url, process.token, timeout=2, retries=0)

        def launch(request_id: str) -> str:
            return driver.create(
                request_id=request_id,
                instance_type="gpu_1x_h100",
                region="us-east-1",
                image="ubuntu",
                ssh_keys=[],
                name=request_id,
                preemptible=False,
            )

        first = launch("req-first")
        wait_for_state(driver, first, MachineState.RUNNING, timeout=5)
        driver.stop(first)
        process.kill()
        with journal_path(state).open("ab") as journal:
            journal.write(b'{"seq":99,"mach')

        process.start()
        assert driver.get(first).state in (MachineState.STOPPING, MachineState.STOPPED)
        second = launch("req-second")
        process.kill()

        process.start()
        assert {m.backend_id for m in driver.list()} == {first, second}
