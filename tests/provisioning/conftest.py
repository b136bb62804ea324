from collections.abc import Iterator

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
def driver(simulator: SimulatorProcess) -> SimulatorBackend:
    return SimulatorBackend(simulator.url, simulator.token, timeout=(1.0, 2.0), backoff=0)


@pytest.fixture(scope="session")
def local_slurm():
    """A real Slurm (bin/slurm) for the session: 2 nodes of 8 H100 in us-east-1, 8 A100 in
    eu-west-1, QOS low with a 3 s grace time, slurmrestd with JWT."""
    from .slurm_cluster import LocalSlurm

    cluster = LocalSlurm()
    try:
        yield cluster.start()
    finally:
        cluster.purge()
