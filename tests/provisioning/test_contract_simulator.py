import pytest

from portal.provisioning.drivers.simulator import SimulatorBackend
from portal.simulator.control import ControlError
from portal.simulator.process import SimulatorProcess

from .contract import ClusterContract, ReclaimContract, VolumeContract


class TestSimulatorContract(ClusterContract, VolumeContract, ReclaimContract):
    """The contract on zero delays, and on short real ones so transitional states are seen."""

    @pytest.fixture(params=[0.0, 0.05], ids=["instant", "delayed"])
    def backend(
        self, request: pytest.FixtureRequest, simulator: SimulatorProcess
    ) -> SimulatorBackend:
        delay = request.param
        simulator.control.set_delays(
            provision=delay, start=delay, stop=delay, reboot=delay, terminate=delay
        )
        self.simulator = simulator
        return SimulatorBackend(simulator.url, simulator.token, timeout=(1.0, 2.0), backoff=0)

    @pytest.fixture
    def internal_demand(self, simulator: SimulatorProcess):
        def set_demand(gpus: int) -> None:
            simulator.control.set_demand(
                curves=[{"region": self.REGION, "gpu_model": "H100 80GB", "gpus": gpus}]
            )

        return set_demand

    def write_file(self, backend: object, machine_id: str, path: str, text: str) -> None:
        self.simulator.control.write_file(machine_id, path, text)

    def read_file(self, backend: object, machine_id: str, path: str) -> str | None:
        try:
            return self.simulator.control.read_file(machine_id, path)
        except ControlError as exc:
            if " 404 " in str(exc):
                return None
            raise


class TestSimulatorContractUnsharedVolumes(TestSimulatorContract):
    """The same where the simulator attaches a volume to one live machine at a time."""

    @pytest.fixture(params=[0.0], ids=["instant"])
    def backend(
        self, request: pytest.FixtureRequest, simulator: SimulatorProcess
    ) -> SimulatorBackend:
        simulator.control.set_shared_volumes(False)
        self.simulator = simulator
        return SimulatorBackend(
            simulator.url, simulator.token, timeout=(1.0, 2.0), backoff=0, shared_volumes=False
        )
