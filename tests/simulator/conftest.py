from collections.abc import Callable, Iterator
from typing import Any

import pytest

from portal.provisioning.drivers.simulator import SimulatorBackend
from portal.simulator.process import SimulatorProcess


@pytest.fixture(scope="session")
def simulator_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    with SimulatorProcess(tmp_path_factory.mktemp("simulator") / "state.json") as process:
        yield process


@pytest.fixture
def simulator(simulator_process: SimulatorProcess) -> SimulatorProcess:
    """The simulator on the default fleet with no machines, no faults and zero delays."""
    simulator_process.control.reset()
    return simulator_process


@pytest.fixture
def make_driver(simulator: SimulatorProcess) -> Callable[..., SimulatorBackend]:
    def make(**options: Any) -> SimulatorBackend:
        options = {"timeout": (1.0, 2.0), "retries": 2, "backoff": 0, **options}
        return SimulatorBackend(simulator.url, options.pop("token", simulator.token), **options)

    return make


@pytest.fixture
def driver(make_driver: Callable[..., SimulatorBackend]) -> SimulatorBackend:
    return make_driver()
