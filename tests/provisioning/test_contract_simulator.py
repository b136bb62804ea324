import pytest

from portal.provisioning.drivers.simulator import SimulatorBackend
from portal.simulator.process import SimulatorProcess

from .contract import BackendContract


class TestSimulatorContract(BackendContract):
    """The contract on zero delays, and on short real ones so transitional states are seen."""

    @pytest.fixture(params=[0.0, 0.05], ids=["instant", "delayed"])
    def backend(
        self, request: pytest.FixtureRequest, simulator: SimulatorProcess
    ) -> SimulatorBackend:
        delay = request.param
        simulator.control.set_delays(
            provision=delay, start=delay, stop=delay, reboot=delay, terminate=delay
        )
        return SimulatorBackend(simulator.url, simulator.token, timeout=(1.0, 2.0), backoff=0)
