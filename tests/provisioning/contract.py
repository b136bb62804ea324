"""The contract every provisioning driver must pass, written once.

A driver's test module subclasses `BackendContract`, sets the class attributes to names its
backend knows, and provides a `backend` fixture that yields a driver on an empty fleet (no
machines of ours). A driver with an optional capability subclasses that capability's contract
instead (`QuotaMirroringContract`, itself a `BackendContract`), which `BackendContract` checks.
Nothing
here knows which driver it runs against: state changes are awaited by polling `get()`, since
real backends take their time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime

import pytest

from portal.provisioning import (
    Capacity,
    CapacityError,
    InvalidState,
    Machine,
    MachineState,
    NotFound,
    PermanentError,
    ProvisioningBackend,
    QuotaMirroringBackend,
    driver_supports_quota_mirroring,
    supports_quota_mirroring,
)


def wait_for_state(
    backend: ProvisioningBackend,
    backend_id: str,
    state: str | Iterable[str],
    timeout: float = 30.0,
    interval: float = 0.05,
) -> Machine:
    """Poll until the machine is in `state` (one state or several); fail after `timeout`."""
    wanted = {state} if isinstance(state, str) else set(state)
    deadline = time.monotonic() + timeout
    while True:
        machine = backend.get(backend_id)
        if machine.state in wanted:
            return machine
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{backend_id} is {machine.state} after {timeout}s; wanted {sorted(wanted)}"
            )
        time.sleep(interval)


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.05)


def find_capacity(backend: ProvisioningBackend, region: str, instance_type: str) -> Capacity:
    for entry in backend.capacity():
        if entry.region == region and entry.instance_type == instance_type:
            return entry
    raise AssertionError(f"capacity() has no entry for {instance_type} in {region}")


class BackendContract:
    REGION: str = "us-east-1"
    # A small instance type, and one that takes a whole node of the same region.
    INSTANCE_TYPE: str = "gpu_1x_h100"
    WHOLE_NODE_TYPE: str = "gpu_8x_h100"
    IMAGE: str = "ubuntu-22.04-cuda-12"
    SSH_KEYS: tuple[str, ...] = (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJhY2tmaWxsY29udHJhY3R0ZXN0a2V5 contract@test",
    )
    STATE_TIMEOUT: float = 30.0

    @pytest.fixture
    def backend(self) -> ProvisioningBackend:
        raise NotImplementedError("a driver's test class provides the backend fixture")

    # Helpers

    def launch(
        self,
        backend: ProvisioningBackend,
        *,
        request_id: str | None = None,
        instance_type: str | None = None,
        name: str = "contract",
        preemptible: bool = False,
        account: str | None = None,
    ) -> str:
        return backend.create(
            request_id=request_id or f"req-{uuid.uuid4().hex}",
            instance_type=instance_type or self.INSTANCE_TYPE,
            region=self.REGION,
            image=self.IMAGE,
            ssh_keys=list(self.SSH_KEYS),
            name=name,
            preemptible=preemptible,
            account=account,
        )

    def wait(self, backend: ProvisioningBackend, backend_id: str, state: str) -> Machine:
        return wait_for_state(backend, backend_id, state, self.STATE_TIMEOUT)

    # Create, get, list

    def test_backend_implements_the_interface(self, backend: ProvisioningBackend) -> None:
        assert isinstance(backend, ProvisioningBackend)

    def test_each_capability_of_the_backend_is_tested(self, backend: ProvisioningBackend) -> None:
        if supports_quota_mirroring(backend):
            assert isinstance(self, QuotaMirroringContract), "add QuotaMirroringContract"

    def test_create_reaches_running_with_an_ip(self, backend: ProvisioningBackend) -> None:
        backend_id = self.launch(backend, request_id="req-running", name="box-1")

        assert backend.get(backend_id).state in {MachineState.PROVISIONING, MachineState.RUNNING}
        machine = self.wait(backend, backend_id, MachineState.RUNNING)
        assert machine.backend_id == backend_id
        assert machine.request_id == "req-running"
        assert machine.name == "box-1"
        assert machine.region == self.REGION
        assert machine.instance_type == self.INSTANCE_TYPE
        assert machine.ip
        assert machine.preemptible is False
        assert machine.reclaim_at is None
        assert isinstance(machine.created_at, datetime)
        assert machine.created_at.tzinfo is not None

    def test_create_is_idempotent_on_request_id(self, backend: ProvisioningBackend) -> None:
        first = self.launch(backend, request_id="req-twice")
        second = self.launch(backend, request_id="req-twice")

        assert first == second
        assert [m.backend_id for m in backend.list()] == [first]

    def test_create_again_after_running_returns_the_same_machine(
        self, backend: ProvisioningBackend
    ) -> None:
        backend_id = self.launch(backend, request_id="req-later")
        self.wait(backend, backend_id, MachineState.RUNNING)

        assert self.launch(backend, request_id="req-later") == backend_id
        assert len(backend.list()) == 1

    def test_preemptible_is_reported(self, backend: ProvisioningBackend) -> None:
        backend_id = self.launch(backend, preemptible=True)

        assert backend.get(backend_id).preemptible is True

    def test_get_unknown_id_raises_not_found(self, backend: ProvisioningBackend) -> None:
        with pytest.raises(NotFound):
            backend.get("no-such-machine")

    def test_list_holds_exactly_what_was_created(self, backend: ProvisioningBackend) -> None:
        assert backend.list() == []
        ids = {self.launch(backend, request_id=f"req-list-{n}") for n in range(3)}

        machines = backend.list()
        assert {m.backend_id for m in machines} == ids
        assert {m.request_id for m in machines} == {f"req-list-{n}" for n in range(3)}

    # Lifecycle actions

    def test_stop_then_start(self, backend: ProvisioningBackend) -> None:
        backend_id = self.launch(backend)
        self.wait(backend, backend_id, MachineState.RUNNING)

        backend.stop(backend_id)
        assert backend.get(backend_id).state in {MachineState.STOPPING, MachineState.STOPPED}
        backend.stop(backend_id)
        self.wait(backend, backend_id, MachineState.STOPPED)
        backend.stop(backend_id)

        backend.start(backend_id)
        assert backend.get(backend_id).state in {MachineState.STARTING, MachineState.RUNNING}
        backend.start(backend_id)
        self.wait(backend, backend_id, MachineState.RUNNING)
        backend.start(backend_id)
        assert backend.get(backend_id).state == MachineState.RUNNING

    def test_reboot_comes_back_running(self, backend: ProvisioningBackend) -> None:
        backend_id = self.launch(backend)
        self.wait(backend, backend_id, MachineState.RUNNING)

        backend.reboot(backend_id)
        backend.reboot(backend_id)

        assert backend.get(backend_id).state in {MachineState.REBOOTING, MachineState.RUNNING}
        self.wait(backend, backend_id, MachineState.RUNNING)

    def test_terminate_is_idempotent(self, backend: ProvisioningBackend) -> None:
        backend_id = self.launch(backend)
        self.wait(backend, backend_id, MachineState.RUNNING)

        backend.terminate(backend_id)
        backend.terminate(backend_id)
        self.wait(backend, backend_id, MachineState.TERMINATED)
        backend.terminate(backend_id)

        assert backend.get(backend_id).state == MachineState.TERMINATED

    def test_terminate_while_provisioning(self, backend: ProvisioningBackend) -> None:
        backend_id = self.launch(backend)

        backend.terminate(backend_id)

        self.wait(backend, backend_id, MachineState.TERMINATED)

    def test_terminate_unknown_id_is_fine(self, backend: ProvisioningBackend) -> None:
        backend.terminate("no-such-machine")

    @pytest.mark.parametrize("action", ["start", "stop", "reboot"])
    def test_action_on_unknown_id_raises_not_found(
        self, backend: ProvisioningBackend, action: str
    ) -> None:
        with pytest.raises(NotFound):
            getattr(backend, action)("no-such-machine")

    @pytest.mark.parametrize("action", ["start", "stop", "reboot"])
    def test_action_on_terminated_machine_is_refused(
        self, backend: ProvisioningBackend, action: str
    ) -> None:
        backend_id = self.launch(backend)
        backend.terminate(backend_id)
        self.wait(backend, backend_id, MachineState.TERMINATED)

        with pytest.raises(InvalidState):
            getattr(backend, action)(backend_id)

    # Capacity

    def test_capacity_lists_the_instance_types(self, backend: ProvisioningBackend) -> None:
        entry = find_capacity(backend, self.REGION, self.INSTANCE_TYPE)

        assert entry.gpu_model
        assert 0 < entry.free_gpus <= entry.total_gpus
        assert entry.free_instances > 0

    def test_capacity_drops_while_running_and_recovers_after_terminate(
        self, backend: ProvisioningBackend
    ) -> None:
        before = find_capacity(backend, self.REGION, self.INSTANCE_TYPE)
        backend_id = self.launch(backend)
        self.wait(backend, backend_id, MachineState.RUNNING)

        during = find_capacity(backend, self.REGION, self.INSTANCE_TYPE)
        assert during.free_gpus < before.free_gpus
        assert during.total_gpus == before.total_gpus

        backend.terminate(backend_id)
        self.wait(backend, backend_id, MachineState.TERMINATED)
        wait_until(
            lambda: find_capacity(backend, self.REGION, self.INSTANCE_TYPE) == before,
            self.STATE_TIMEOUT,
            "capacity to recover",
        )

    def test_full_fleet_raises_capacity_error(self, backend: ProvisioningBackend) -> None:
        free = find_capacity(backend, self.REGION, self.WHOLE_NODE_TYPE).free_instances
        assert free > 0
        ids = [self.launch(backend, instance_type=self.WHOLE_NODE_TYPE) for _ in range(free)]
        assert find_capacity(backend, self.REGION, self.WHOLE_NODE_TYPE).free_instances == 0

        with pytest.raises(CapacityError):
            self.launch(backend, request_id="req-no-room", instance_type=self.WHOLE_NODE_TYPE)

        # The refused request made no machine, and room comes back once one is gone.
        assert len(backend.list()) == free
        backend.terminate(ids[0])
        self.wait(backend, ids[0], MachineState.TERMINATED)
        wait_until(
            lambda: find_capacity(backend, self.REGION, self.WHOLE_NODE_TYPE).free_instances == 1,
            self.STATE_TIMEOUT,
            "a node to free up",
        )
        retried = self.launch(backend, request_id="req-no-room", instance_type=self.WHOLE_NODE_TYPE)
        self.wait(backend, retried, MachineState.RUNNING)


class QuotaMirroringContract(BackendContract):
    """The contract and the optional `QuotaMirroringBackend` capability. Each test uses an
    account of its own, never seen by the backend before."""

    # GPU models the backend keeps limits for; the first is the model of INSTANCE_TYPE (one GPU).
    MIRRORED_GPU_MODELS: tuple[str, str] = ("h100", "a100")
    UNKNOWN_GPU_MODEL: str = "rtx9000"

    @staticmethod
    def new_account() -> str:
        return f"org{uuid.uuid4().hex[:8]}"

    def test_backend_declares_quota_mirroring(self, backend: ProvisioningBackend) -> None:
        assert isinstance(backend, QuotaMirroringBackend)
        assert supports_quota_mirroring(backend)
        assert driver_supports_quota_mirroring(type(backend))

    def test_a_new_account_has_no_limits(self, backend: QuotaMirroringBackend) -> None:
        assert backend.account_limits(self.new_account()) == {}

    def test_limits_are_replaced_whole(self, backend: QuotaMirroringBackend) -> None:
        account = self.new_account()
        first, second = self.MIRRORED_GPU_MODELS

        backend.set_account_limits(account, {first: 4, second: 8})
        assert backend.account_limits(account) == {first: 4, second: 8}
        backend.set_account_limits(account, {first: 16})
        assert backend.account_limits(account) == {first: 16}
        backend.set_account_limits(account, {first: 2, second: None})
        assert backend.account_limits(account) == {first: 2}
        backend.set_account_limits(account, {})
        assert backend.account_limits(account) == {}

    def test_setting_the_same_limits_again_changes_nothing(
        self, backend: QuotaMirroringBackend
    ) -> None:
        account = self.new_account()
        first, second = self.MIRRORED_GPU_MODELS

        backend.set_account_limits(account, {first: 0, second: 8})
        backend.set_account_limits(account, {first: 0, second: 8})

        assert backend.account_limits(account) == {first: 0, second: 8}

    def test_a_model_the_backend_does_not_know_is_left_out(
        self, backend: QuotaMirroringBackend
    ) -> None:
        account = self.new_account()
        first = self.MIRRORED_GPU_MODELS[0]

        backend.set_account_limits(account, {first: 2, self.UNKNOWN_GPU_MODEL: 8})

        assert backend.account_limits(account) == {first: 2}

    def test_a_negative_limit_is_refused(self, backend: QuotaMirroringBackend) -> None:
        account = self.new_account()
        first = self.MIRRORED_GPU_MODELS[0]
        backend.set_account_limits(account, {first: 3})

        with pytest.raises(PermanentError):
            backend.set_account_limits(account, {first: -2})
        assert backend.account_limits(account) == {first: 3}

    def test_a_machine_over_its_accounts_limit_waits_until_the_limit_rises(
        self, backend: QuotaMirroringBackend
    ) -> None:
        account = self.new_account()
        model = self.MIRRORED_GPU_MODELS[0]
        backend.set_account_limits(account, {model: 1})

        first = self.launch(backend, account=account, name="within")
        self.wait(backend, first, MachineState.RUNNING)
        second = self.launch(backend, account=account, name="over")
        wait_until(
            lambda: backend.get(second).detail.startswith("waiting for capacity"),
            self.STATE_TIMEOUT,
            "the machine over the limit to say it waits",
        )
        assert backend.get(second).state == MachineState.PROVISIONING

        backend.set_account_limits(account, {model: 2})
        self.wait(backend, second, MachineState.RUNNING)
