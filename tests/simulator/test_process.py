"""The simulator as a program: restarts keep its state; bad start-up arguments fail clearly."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from portal.provisioning import MachineState
from portal.provisioning.drivers.simulator import SimulatorBackend
from portal.simulator.process import REPO_ROOT, SimulatorProcess
from tests.provisioning.contract import wait_for_state

FLEET = {
    "instance_types": [{"name": "gpu_4x_b200", "gpu_model": "B200", "gpu_count": 4}],
    "nodes": [{"region": "lab-1", "gpu_model": "B200", "gpus": 8}],
}


@pytest.fixture
def own_simulator(tmp_path: Path) -> Iterator[SimulatorProcess]:
    with SimulatorProcess(tmp_path / "state.json") as process:
        yield process


def driver_for(process: SimulatorProcess) -> SimulatorBackend:
    return SimulatorBackend(process.url, process.token, timeout=2, retries=0)


def launch(driver: SimulatorBackend, request_id: str, region: str = "us-east-1") -> str:
    return driver.create(
        request_id=request_id,
        instance_type="gpu_4x_b200" if region == "lab-1" else "gpu_1x_h100",
        region=region,
        image="ubuntu",
        ssh_keys=[],
        name=request_id,
        preemptible=False,
    )


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portal.simulator", "--port", "0", *args],
        cwd=REPO_ROOT,
        env=env or {k: v for k, v in os.environ.items() if k != "SIMULATOR_TOKEN"},
        capture_output=True,
        text=True,
        timeout=10,
    )


def test_state_survives_a_restart(own_simulator: SimulatorProcess) -> None:
    driver = driver_for(own_simulator)
    running = launch(driver, "req-running")
    stopped = launch(driver, "req-stopped")
    driver.stop(stopped)
    capacity = driver.capacity()
    before = driver.list()
    own_simulator.control.set_delays(provision=1, jitter=0)
    booting = launch(driver, "req-booting")

    own_simulator.restart()

    assert [m for m in driver.list() if m.backend_id != booting] == before
    assert launch(driver, "req-running") == running
    # Time went on while it was down: the machine that was booting comes up by itself.
    assert driver.get(booting).state in {MachineState.PROVISIONING, MachineState.RUNNING}
    wait_for_state(driver, booting, MachineState.RUNNING, timeout=5)
    driver.terminate(booting)
    wait_for_state(driver, booting, MachineState.TERMINATED, timeout=5)
    assert driver.capacity() == capacity
    assert driver.get(stopped).state == MachineState.STOPPED
    assert json.loads(own_simulator.state_path.read_text())["version"] == 1


def test_a_catalog_file_sets_the_fleet(tmp_path: Path) -> None:
    catalog = tmp_path / "fleet.json"
    catalog.write_text(json.dumps(FLEET))

    with SimulatorProcess(tmp_path / "state.json", catalog=str(catalog)) as process:
        driver = driver_for(process)
        launch(driver, "a", region="lab-1")
        launch(driver, "b", region="lab-1")

        [entry] = driver.capacity()
        assert (entry.region, entry.free_gpus, entry.total_gpus) == ("lab-1", 0, 8)


def test_a_token_is_required(tmp_path: Path) -> None:
    result = run_cli("--state", str(tmp_path / "s.json"))

    assert result.returncode == 2
    assert "token" in result.stderr


def test_the_token_can_come_from_the_environment(tmp_path: Path) -> None:
    env = {**os.environ, "SIMULATOR_TOKEN": "from-env"}
    process = subprocess.Popen(
        [sys.executable, "-m", "portal.simulator", "--port", "0", "--quiet"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        assert SimulatorBackend(url, "from-env", timeout=2).list() == []
    finally:
        process.terminate()
        process.wait(5)
        process.stdout.close()


@pytest.mark.parametrize(
    ("state", "catalog", "message"),
    [
        ("{broken", "default", "simulator:"),
        ("[]", "default", "does not hold a simulator state"),
        (None, "/nonexistent/fleet.json", "cannot read catalog"),
    ],
)
def test_bad_start_up_files_fail_clearly(
    tmp_path: Path, state: str | None, catalog: str, message: str
) -> None:
    state_path = tmp_path / "state.json"
    if state is not None:
        state_path.write_text(state)

    result = run_cli("--token", "t", "--state", str(state_path), "--catalog", catalog)

    assert result.returncode == 1
    assert message in result.stderr


def test_what_the_simulator_answered_survives_a_crash(tmp_path: Path) -> None:
    """A create, stop or terminate the simulator answered is on disk before the answer: a kill -9
    right after it loses nothing. (The state file is otherwise written once a minute here, so
    only the write before the answer can keep it.)"""
    process = SimulatorProcess(tmp_path / "state.json", extra_args=("--flush-interval", "60"))
    with process:
        driver = driver_for(process)
        kept = launch(driver, "req-kept")
        stopped = launch(driver, "req-stopped")
        ended = launch(driver, "req-ended")
        wait_for_state(driver, kept, MachineState.RUNNING, timeout=5)
        process.kill()
        process.start()
        assert {m.backend_id for m in driver.list()} == {kept, stopped, ended}

        driver.stop(stopped)
        driver.terminate(ended)
        made = [launch(driver, f"req-burst-{n}") for n in range(10)]
        process.kill()
        process.start()

        machines = {m.backend_id: m for m in driver.list()}
        assert set(made) <= set(machines)
        assert machines[kept].state == MachineState.RUNNING
        assert machines[stopped].state in (MachineState.STOPPING, MachineState.STOPPED)
        assert machines[ended].state in (MachineState.TERMINATING, MachineState.TERMINATED)
        # The same request id still finds the machine it made before the crash.
        assert launch(driver, "req-burst-3") == made[3]
