"""The contract every provisioning driver must pass, written once.

A driver's test module subclasses `BackendContract`, sets the class attributes to names its
backend knows, and provides a `backend` fixture that yields a driver on an empty fleet (no
machines of ours). A driver with an optional capability subclasses that capability's contract
instead (`QuotaMirroringContract`, `VolumeContract`, each a `BackendContract`), which
`BackendContract` checks.
Nothing
here knows which driver it runs against: state changes are awaited by polling `get()`, since
real backends take their time.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import pytest

from portal.provisioning import (
    Capacity,
    CapacityError,
    ClusterBackend,
    InvalidState,
    Machine,
    MachineState,
    NotFound,
    PermanentError,
    ProvisioningBackend,
    QuotaMirroringBackend,
    ReclaimingBackend,
    Volume,
    VolumeBackend,
    VolumeState,
    cluster_node_request_id,
    driver_supports_clusters,
    driver_supports_quota_mirroring,
    driver_supports_volumes,
    supports_clusters,
    supports_quota_mirroring,
    supports_reclaim,
    supports_volumes,
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
                f"{backend_id} is {machine.state} ({machine.detail or 'no detail'}) after "
                f"{timeout}s; wanted {sorted(wanted)}"
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
    # Seconds of notice the reclaim contract gives (short: the tests wait it out).
    RECLAIM_NOTICE: float = 1.5

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
        region: str | None = None,
        volumes: tuple[str, ...] = (),
    ) -> str:
        if volumes:
            return backend.create(
                request_id=request_id or f"req-{uuid.uuid4().hex}",
                instance_type=instance_type or self.INSTANCE_TYPE,
                region=region or self.REGION,
                image=self.IMAGE,
                ssh_keys=list(self.SSH_KEYS),
                name=name,
                preemptible=preemptible,
                account=account,
                volumes=list(volumes),
            )
        return backend.create(
            request_id=request_id or f"req-{uuid.uuid4().hex}",
            instance_type=instance_type or self.INSTANCE_TYPE,
            region=region or self.REGION,
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
        if supports_reclaim(backend):
            assert isinstance(self, ReclaimContract), "add ReclaimContract"
        if supports_clusters(backend):
            assert isinstance(self, ClusterContract), "add ClusterContract"
        if supports_volumes(backend):
            assert isinstance(self, VolumeContract), "add VolumeContract"

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


class ReclaimContract(BackendContract):
    """The contract, internal demand in `capacity()`, and the optional `ReclaimingBackend`
    capability. The driver's test class provides `internal_demand`: a callable that makes the
    operator's own work want that many GPUs of the contract's instance type's model in REGION
    (0: none), the way that backend learns of it (the simulator's control endpoint, a job in
    Slurm's internal QOS)."""

    @pytest.fixture
    def internal_demand(self) -> Callable[[int], None]:
        raise NotImplementedError("a driver's test class provides the internal_demand fixture")

    def test_backend_declares_reclaims(self, backend: ProvisioningBackend) -> None:
        assert supports_reclaim(backend)

    def test_capacity_reports_the_fleet_internal_and_customer_gpus(
        self, backend: ProvisioningBackend
    ) -> None:
        before = find_capacity(backend, self.REGION, self.INSTANCE_TYPE)
        backend_id = self.launch(backend, preemptible=True)
        self.wait(backend, backend_id, MachineState.RUNNING)

        entry = find_capacity(backend, self.REGION, self.INSTANCE_TYPE)
        assert entry.customer_gpus == before.customer_gpus + 1
        assert entry.internal_gpus + entry.customer_gpus + entry.free_gpus <= entry.total_gpus
        assert entry.shortfall_gpus == 0

    def test_internal_demand_into_customer_gpus_is_a_shortfall_and_ends_no_machine(
        self, backend: ProvisioningBackend, internal_demand: Callable[[int], None]
    ) -> None:
        backend_id = self.launch(backend, preemptible=True)
        self.wait(backend, backend_id, MachineState.RUNNING)
        total = find_capacity(backend, self.REGION, self.INSTANCE_TYPE).total_gpus

        internal_demand(total)  # the operator's work wants every GPU of the fleet

        def settled() -> bool:  # a real scheduler places the internal work in its own time
            entry = find_capacity(backend, self.REGION, self.INSTANCE_TYPE)
            return entry.shortfall_gpus > 0 and entry.free_gpus == 0

        wait_until(settled, self.STATE_TIMEOUT, "a shortfall with nothing free")
        entry = find_capacity(backend, self.REGION, self.INSTANCE_TYPE)
        assert entry.free_gpus == 0
        assert entry.shortfall_gpus == entry.customer_gpus
        assert entry.internal_gpus == total - entry.customer_gpus
        # The backend reports it; the portal decides who goes. The machine is left alone.
        machine = backend.get(backend_id)
        assert machine.state == MachineState.RUNNING
        assert machine.reclaim_at is None

    def test_reclaim_ends_the_machine_at_the_time_and_internal_work_takes_its_gpus(
        self, backend: ReclaimingBackend, internal_demand: Callable[[int], None]
    ) -> None:
        assert isinstance(backend, ProvisioningBackend)
        backend_id = self.launch(backend, preemptible=True)
        self.wait(backend, backend_id, MachineState.RUNNING)
        total = find_capacity(backend, self.REGION, self.INSTANCE_TYPE).total_gpus
        internal_demand(total)

        at = datetime.now(UTC) + timedelta(seconds=self.RECLAIM_NOTICE)
        backend.reclaim(backend_id, at)
        backend.reclaim(backend_id, at + timedelta(seconds=30))  # again, later: no change
        machine = backend.get(backend_id)
        assert machine.state == MachineState.RUNNING  # the notice runs
        assert machine.reclaim_at is not None
        assert abs((machine.reclaim_at - at).total_seconds()) < 1.5

        ended = self.wait(backend, backend_id, MachineState.INTERRUPTED)
        assert datetime.now(UTC) >= at - timedelta(seconds=0.5)
        assert ended.ip is None or ended.state == MachineState.INTERRUPTED
        wait_until(
            lambda: find_capacity(backend, self.REGION, self.INSTANCE_TYPE).shortfall_gpus == 0,
            self.STATE_TIMEOUT,
            "the internal work to get the GPUs",
        )
        backend.reclaim(backend_id, at)  # an ended machine: a no-op

    def test_reclaim_of_an_unknown_machine_is_not_found(self, backend: ReclaimingBackend) -> None:
        with pytest.raises(NotFound):
            backend.reclaim("no-such-machine-0", datetime.now(UTC) + timedelta(seconds=60))

    def test_an_on_demand_machine_is_never_reclaimed(self, backend: ReclaimingBackend) -> None:
        assert isinstance(backend, ProvisioningBackend)
        backend_id = self.launch(backend, preemptible=False)
        self.wait(backend, backend_id, MachineState.RUNNING)
        with pytest.raises(PermanentError):
            backend.reclaim(backend_id, datetime.now(UTC) + timedelta(seconds=1))
        assert backend.get(backend_id).reclaim_at is None


class VolumeContract(BackendContract):
    """The contract and the optional `VolumeBackend` capability.

    `OTHER_REGION` is a second region of the backend. A driver whose test can reach inside a
    machine implements `write_file` and `read_file` (as a program on the running machine
    would); the data tests are skipped without them.
    """

    OTHER_REGION: str = "eu-west-1"
    # The instance type launched with volumes in OTHER_REGION.
    OTHER_REGION_TYPE: str = "gpu_1x_a100"

    def write_file(self, backend: VolumeBackend, machine_id: str, path: str, text: str) -> None:
        pytest.skip("this driver's test cannot reach inside a machine")

    def read_file(self, backend: VolumeBackend, machine_id: str, path: str) -> str | None:
        """The file's text, None when there is no such file."""
        pytest.skip("this driver's test cannot reach inside a machine")

    @staticmethod
    def volume_name() -> str:
        return f"vol-{uuid.uuid4().hex[:8]}"

    def make_volume(
        self, backend: VolumeBackend, *, size_gb: int = 10, region: str | None = None
    ) -> Volume:
        backend_id = backend.volume_create(
            request_id=f"vreq-{uuid.uuid4().hex}",
            region=region or self.REGION,
            size_gb=size_gb,
            name=self.volume_name(),
        )
        return backend.volume_get(backend_id)

    def test_backend_declares_volumes(self, backend: ProvisioningBackend) -> None:
        assert isinstance(backend, VolumeBackend)
        assert supports_volumes(backend)
        assert driver_supports_volumes(type(backend))
        assert isinstance(backend.shared_volumes, bool)

    def test_volume_create_is_idempotent_on_request_id(self, backend: VolumeBackend) -> None:
        name = self.volume_name()
        first = backend.volume_create(
            request_id="vreq-twice", region=self.REGION, size_gb=20, name=name
        )
        second = backend.volume_create(
            request_id="vreq-twice", region=self.REGION, size_gb=20, name=name
        )

        assert first == second
        volume = backend.volume_get(first)
        assert volume.backend_id == first
        assert volume.request_id == "vreq-twice"
        assert volume.name == name
        assert volume.region == self.REGION
        assert volume.size_gb == 20
        assert volume.state == VolumeState.AVAILABLE
        assert volume.attached_to == ()
        assert volume.mount_path.endswith(name)
        assert volume.created_at.tzinfo is not None
        assert [v.backend_id for v in backend.volume_list()].count(first) == 1

    @pytest.mark.parametrize("size_gb", [0, -5])
    def test_volume_of_no_size_is_refused(self, backend: VolumeBackend, size_gb: int) -> None:
        with pytest.raises(PermanentError):
            backend.volume_create(
                request_id=f"vreq-{uuid.uuid4().hex}",
                region=self.REGION,
                size_gb=size_gb,
                name=self.volume_name(),
            )

    def test_volume_in_an_unknown_region_is_refused(self, backend: VolumeBackend) -> None:
        with pytest.raises(PermanentError):
            backend.volume_create(
                request_id=f"vreq-{uuid.uuid4().hex}",
                region="no-such-region-9",
                size_gb=1,
                name=self.volume_name(),
            )

    def test_volume_larger_than_the_region_holds_is_refused(self, backend: VolumeBackend) -> None:
        storage = {entry.region: entry for entry in backend.storage_capacity()}
        free = storage[self.REGION].free_gb
        with pytest.raises(CapacityError):
            self.make_volume(backend, size_gb=free + 1)

    def test_storage_capacity_drops_by_the_size_and_recovers_after_delete(
        self, backend: VolumeBackend
    ) -> None:
        def free() -> int:
            return {e.region: e for e in backend.storage_capacity()}[self.REGION].free_gb

        before = free()
        volume = self.make_volume(backend, size_gb=25)
        assert free() == before - 25
        backend.volume_delete(volume.backend_id)
        assert free() == before

    def test_volume_resize_grows_and_never_shrinks(self, backend: VolumeBackend) -> None:
        volume = self.make_volume(backend, size_gb=10)

        backend.volume_resize(volume.backend_id, 30)
        backend.volume_resize(volume.backend_id, 30)
        assert backend.volume_get(volume.backend_id).size_gb == 30

        with pytest.raises(InvalidState):
            backend.volume_resize(volume.backend_id, 20)
        assert backend.volume_get(volume.backend_id).size_gb == 30

    def test_volume_unknown_id(self, backend: VolumeBackend) -> None:
        with pytest.raises(NotFound):
            backend.volume_get("no-such-volume")
        with pytest.raises(NotFound):
            backend.volume_resize("no-such-volume", 10)
        backend.volume_delete("no-such-volume")

    def test_volume_delete_is_idempotent(self, backend: VolumeBackend) -> None:
        volume = self.make_volume(backend)

        backend.volume_delete(volume.backend_id)
        backend.volume_delete(volume.backend_id)

        with contextlib.suppress(NotFound):
            assert backend.volume_get(volume.backend_id).state == VolumeState.DELETED
        live = [v.backend_id for v in backend.volume_list() if v.state != VolumeState.DELETED]
        assert volume.backend_id not in live

    def test_machine_with_a_volume_holds_it_until_it_ends(
        self, backend: ProvisioningBackend
    ) -> None:
        assert supports_volumes(backend)
        volume = self.make_volume(backend)
        machine_id = self.launch(backend, volumes=(volume.backend_id,))
        machine = self.wait(backend, machine_id, MachineState.RUNNING)

        assert machine.volumes == (volume.backend_id,)
        assert backend.volume_get(volume.backend_id).attached_to == (machine_id,)
        with pytest.raises(InvalidState):
            backend.volume_delete(volume.backend_id)
        backend.volume_resize(volume.backend_id, 15)  # grows while attached

        backend.terminate(machine_id)
        self.wait(backend, machine_id, MachineState.TERMINATED)
        wait_until(
            lambda: backend.volume_get(volume.backend_id).attached_to == (),
            self.STATE_TIMEOUT,
            "the volume to be free",
        )
        after = backend.volume_get(volume.backend_id)
        assert after.state == VolumeState.AVAILABLE
        assert after.size_gb == 15
        backend.volume_delete(volume.backend_id)

    def test_machine_with_an_unknown_volume_is_refused(self, backend: ProvisioningBackend) -> None:
        with pytest.raises(NotFound):
            self.launch(backend, volumes=("no-such-volume",))
        assert backend.list() == []

    def test_machine_with_a_volume_of_another_region_is_refused(
        self, backend: ProvisioningBackend
    ) -> None:
        assert supports_volumes(backend)
        volume = self.make_volume(backend, region=self.OTHER_REGION)

        with pytest.raises(PermanentError):
            self.launch(backend, volumes=(volume.backend_id,))
        assert backend.list() == []

    def test_second_machine_on_a_volume_only_where_volumes_are_shared(
        self, backend: ProvisioningBackend
    ) -> None:
        assert supports_volumes(backend)
        volume = self.make_volume(backend)
        first = self.launch(backend, volumes=(volume.backend_id,), name="first")
        self.wait(backend, first, MachineState.RUNNING)

        if backend.shared_volumes:
            second = self.launch(backend, volumes=(volume.backend_id,), name="second")
            self.wait(backend, second, MachineState.RUNNING)
            assert set(backend.volume_get(volume.backend_id).attached_to) == {first, second}
        else:
            with pytest.raises(InvalidState):
                self.launch(backend, volumes=(volume.backend_id,), name="second")
            assert [m.backend_id for m in backend.list()] == [first]

    def test_what_is_written_on_a_volume_is_there_on_the_next_machine(
        self, backend: ProvisioningBackend
    ) -> None:
        assert supports_volumes(backend)
        volume = self.make_volume(backend)
        first = self.launch(backend, volumes=(volume.backend_id,), name="writer")
        self.wait(backend, first, MachineState.RUNNING)
        self.write_file(backend, first, f"{volume.mount_path}/hello.txt", "kept\n")
        self.write_file(backend, first, "/tmp/scratch.txt", "lost\n")  # noqa: S108

        backend.terminate(first)
        self.wait(backend, first, MachineState.TERMINATED)
        second = self.launch(backend, volumes=(volume.backend_id,), name="reader")
        self.wait(backend, second, MachineState.RUNNING)

        assert self.read_file(backend, second, f"{volume.mount_path}/hello.txt") == "kept\n"
        assert self.read_file(backend, second, "/tmp/scratch.txt") is None  # noqa: S108


class ClusterContract(BackendContract):
    """The contract and the optional `ClusterBackend` capability: N machines together or none."""

    # A region that lacks INSTANCE_TYPE's GPU model.
    REGION_WITHOUT_TYPE: str = "ap-south-1"

    def launch_cluster(
        self,
        backend: ClusterBackend,
        *,
        nodes: int = 2,
        request_id: str | None = None,
        instance_type: str | None = None,
        region: str | None = None,
        name: str = "train",
    ) -> list[Machine]:
        return backend.cluster_create(
            request_id=request_id or str(uuid.uuid4()),
            instance_type=instance_type or self.INSTANCE_TYPE,
            region=region or self.REGION,
            image=self.IMAGE,
            nodes=nodes,
            ssh_keys=list(self.SSH_KEYS),
            volumes=[],
            preemptible=False,
            name=name,
        )

    def test_backend_declares_clusters(self, backend: ProvisioningBackend) -> None:
        assert isinstance(backend, ClusterBackend)
        assert supports_clusters(backend)
        assert driver_supports_clusters(type(backend))

    def test_a_cluster_comes_up_whole_with_names_addresses_and_hosts(
        self, backend: ClusterBackend
    ) -> None:
        request_id = str(uuid.uuid4())
        machines = self.launch_cluster(backend, request_id=request_id, name="llm")

        assert [m.name for m in machines] == ["llm-0", "llm-1"]
        assert [m.request_id for m in machines] == [
            cluster_node_request_id(request_id, i) for i in range(2)
        ]
        assert len({m.backend_id for m in machines}) == 2
        running = [self.wait(backend, m.backend_id, MachineState.RUNNING) for m in machines]
        head, worker = running
        assert head.ip, "the head has the public address"
        # Distinct addresses where the nodes are distinct hosts (the simulator's tests); a
        # local Slurm's nodes all listen on 127.0.0.1.
        assert all(m.private_ip for m in running)
        # Every node has the same hosts file, which lists every node.
        assert head.hosts == worker.hosts
        for machine in running:
            assert f"{machine.private_ip} {machine.name}" in head.hosts.splitlines()

    def test_cluster_create_is_idempotent_on_request_id(self, backend: ClusterBackend) -> None:
        request_id = str(uuid.uuid4())
        first = self.launch_cluster(backend, request_id=request_id)
        again = self.launch_cluster(backend, request_id=request_id)

        assert [m.backend_id for m in again] == [m.backend_id for m in first]
        assert sorted(m.backend_id for m in backend.list()) == sorted(m.backend_id for m in first)

    def test_cluster_machines_reads_every_node_at_once_in_node_order(
        self, backend: ClusterBackend
    ) -> None:
        request_id = str(uuid.uuid4())
        machines = self.launch_cluster(backend, request_id=request_id, name="read")
        for machine in machines:
            self.wait(backend, machine.backend_id, MachineState.RUNNING)

        read = backend.cluster_machines(request_id)

        assert [m.backend_id for m in read] == [m.backend_id for m in machines]
        assert [m.name for m in read] == ["read-0", "read-1"]
        for machine in read:  # each as `get` shows it
            one = backend.get(machine.backend_id)
            assert (machine.state, machine.ip, machine.private_ip, machine.hosts) == (
                one.state,
                one.ip,
                one.private_ip,
                one.hosts,
            )
        assert backend.cluster_machines(str(uuid.uuid4())) == []

    def test_cluster_machines_shows_the_nodes_ending(self, backend: ClusterBackend) -> None:
        request_id = str(uuid.uuid4())
        machines = self.launch_cluster(backend, request_id=request_id)
        for machine in machines:
            backend.terminate(machine.backend_id)
        for machine in machines:
            self.wait(backend, machine.backend_id, MachineState.TERMINATED)

        read = backend.cluster_machines(request_id)

        # Ended nodes are reported as ended while the backend remembers them, or left out.
        assert {m.backend_id for m in read} <= {m.backend_id for m in machines}
        assert all(m.state == MachineState.TERMINATED for m in read)

    def test_a_cluster_that_does_not_fit_whole_creates_nothing_and_says_how_many_fit(
        self, backend: ClusterBackend
    ) -> None:
        free = find_capacity(backend, self.REGION, self.WHOLE_NODE_TYPE).free_instances
        assert free >= 2

        with pytest.raises(CapacityError) as refused:
            self.launch_cluster(backend, nodes=free + 1, instance_type=self.WHOLE_NODE_TYPE)

        assert refused.value.available is not None
        assert 0 <= refused.value.available <= free
        assert str(refused.value.available) in str(refused.value)
        assert backend.list() == []
        assert find_capacity(backend, self.REGION, self.WHOLE_NODE_TYPE).free_instances == free

    def test_a_cluster_of_one_node_is_refused(self, backend: ClusterBackend) -> None:
        with pytest.raises(PermanentError):
            self.launch_cluster(backend, nodes=1)
        assert backend.list() == []

    def test_a_type_the_region_lacks_is_refused(self, backend: ClusterBackend) -> None:
        with pytest.raises(PermanentError):
            self.launch_cluster(backend, region=self.REGION_WITHOUT_TYPE)
        assert backend.list() == []

    def test_the_nodes_are_terminated_one_by_one_and_free_their_gpus(
        self, backend: ClusterBackend
    ) -> None:
        before = find_capacity(backend, self.REGION, self.INSTANCE_TYPE)
        machines = self.launch_cluster(backend)
        for machine in machines:
            backend.terminate(machine.backend_id)
        for machine in machines:
            self.wait(backend, machine.backend_id, MachineState.TERMINATED)
        wait_until(
            lambda: find_capacity(backend, self.REGION, self.INSTANCE_TYPE) == before,
            self.STATE_TIMEOUT,
            "capacity to recover",
        )
