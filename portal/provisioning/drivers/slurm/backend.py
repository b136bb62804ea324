"""`SlurmBackend`: the provisioning interface (and quota mirroring) mapped onto Slurm jobs.

- create: `POST job/submit`, after looking in `jobs` for the request id (idempotency) and at
  the free GPUs (`CapacityError` when no node has room now);
- get, list: `GET job/{id}`, `GET jobs` filtered on the name prefix and the comment's format;
- stop: a pending job is held. A running one gets SIGUSR1, on which it requeues itself held
  (`scontrol requeuehold`): the GPUs are released; the job id, script and keys are kept;
- start: release the hold and set the begin time to now (a requeued job waits 2 minutes else);
- reboot: SIGUSR2: the job kills every process of the instance and starts dropbear again, on
  the same node, port and GPUs;
- terminate: `DELETE job/{id}` (scancel);
- capacity: `GET nodes`: GPUs per node minus allocated ones and what our pending jobs will take;
- cluster_create: ONE job of `--nodes=N` with the GPUs per node (`cluster.sh`: on every node an
  SSH server named `<cluster>-<i>`, with a hosts file of all nodes); its machines are the
  job's nodes, `<job id>.<i>`; stop, start and terminate of a node act on the whole job;
- set_account_limits, account_limits: the organization's Slurm account's GrpTRES (accounts.py).
"""

from __future__ import annotations

import builtins
import contextlib
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import requests

from ...errors import (
    CapacityError,
    InvalidResponse,
    InvalidState,
    NotFound,
    PermanentError,
    TransientError,
)
from ...interface import (
    FINAL_STATES,
    Capacity,
    Machine,
    MachineState,
    StorageCapacity,
    Volume,
    VolumeState,
)
from ...transport import Timeout, transport_options
from . import accounts
from .capacity import (
    InstanceShape,
    Node,
    capacities,
    demand_of,
    free_instances,
    parse_nodes,
    parse_shape,
    shape_of,
)
from .client import ALREADY_DONE, API, INVALID_ACCOUNT, SlurmClient, has_code
from .jobscript import clean_keys, job_script
from .meta import Meta, with_field
from .states import (
    ACTIVE_STATES,
    HELD_REASONS,
    cluster_node_machine,
    job_machine,
    job_machines,
    machine_state,
    split_id,
)
from .volumes import VolumeStore, check_name, created_at


class SlurmBackend(SlurmClient):
    """Provisioning through slurmrestd. See the package's docstring for the whole picture."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str = "",
        token_file: str | os.PathLike[str] | None = None,
        user: str = "backfill",
        service_user: str = "slurm",
        job_dir: str = "/tmp",  # noqa: S108 - a directory on the compute nodes, not here
        default_account: str = "backfill",
        account_prefix: str = "bf-",
        prefix: str = "bf-",
        instance_types: dict[str, Any] | None = None,
        partitions: dict[str, str] | None = None,
        cpus_per_gpu: int = 1,
        ssh_ports: tuple[int, int] = (20000, 29999),
        timeout: Timeout = 10.0,
        retries: int = 2,
        backoff: float = 0.5,
        stop_wait: float = 15.0,
        internal_qos: tuple[str, ...] = ("internal", "high"),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        volume_root: str | os.PathLike[str] | None = None,
        volume_capacity_gb: int = 0,
        volume_mount_base: str = "~/data",
    ) -> None:
        super().__init__(
            base_url,
            token=token,
            token_file=token_file,
            user=user,
            service_user=service_user,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            session=session,
            sleep=sleep,
        )
        self.job_dir = job_dir
        self.default_account = default_account
        self.account_prefix = account_prefix
        self.prefix = prefix
        self.instance_types = {k: parse_shape(v) for k, v in (instance_types or {}).items()}
        self.partitions = dict(partitions or {})
        self.cpus_per_gpu = max(0, cpus_per_gpu)
        self.ssh_ports = ssh_ports
        self.stop_wait = stop_wait
        self.internal_qos = tuple(internal_qos)
        self._sleep = sleep
        # Volumes (volumes.py): None without a root, and then no volume can be made.
        self.volumes = VolumeStore(volume_root, owner=user) if volume_root else None
        self.volume_capacity_gb = volume_capacity_gb
        self.volume_mount_base = volume_mount_base.rstrip("/") or "~/data"

    @classmethod
    def from_settings(cls, settings: Any) -> SlurmBackend:
        """Reads SLURM_* from Django settings, falling back to the environment (bin/slurm
        writes them to var/slurm/backfill.env), and PROVISIONING_TIMEOUT/RETRIES/BACKOFF."""

        def get(name: str, default: Any = None) -> Any:
            return getattr(settings, name, None) or os.environ.get(name) or default

        ports = get("SLURM_SSH_PORTS", "20000-29999")
        if isinstance(ports, str):
            low, _, high = ports.partition("-")
            ports = (int(low), int(high or low))
        return cls(
            get("SLURM_REST_URL", "http://127.0.0.1:16820"),
            token=get("SLURM_TOKEN", ""),
            token_file=get("SLURM_TOKEN_FILE"),
            user=get("SLURM_JOB_USER", "backfill"),
            service_user=get("SLURM_SERVICE_USER", "slurm"),
            job_dir=get("SLURM_JOB_DIR", "/tmp"),  # noqa: S108
            default_account=get("SLURM_DEFAULT_ACCOUNT", "backfill"),
            prefix=get("SLURM_JOB_PREFIX", "bf-"),
            volume_root=get("SLURM_VOLUME_ROOT"),
            volume_capacity_gb=int(get("SLURM_VOLUME_CAPACITY_GB", 0)),
            volume_mount_base=get("SLURM_VOLUME_MOUNT_BASE", "~/data"),
            instance_types=getattr(settings, "SLURM_INSTANCE_TYPES", None),
            partitions=getattr(settings, "SLURM_PARTITIONS", None),
            cpus_per_gpu=int(get("SLURM_CPUS_PER_GPU", 1)),
            ssh_ports=tuple(ports),
            internal_qos=tuple(str(get("SLURM_INTERNAL_QOS", "internal,high")).split(",")),
            **transport_options(settings),
        )

    # The interface

    def create(
        self,
        *,
        request_id: str,
        instance_type: str,
        region: str,
        image: str,
        ssh_keys: list[str],
        name: str,
        preemptible: bool,
        account: str | None = None,
        volumes: Sequence[str] = (),
    ) -> str:
        shape = self.shape(instance_type)
        keys = clean_keys(ssh_keys)
        jobs = self._jobs()  # the look-up's, and the first read of the jobs below
        existing = self._find(request_id, jobs)
        if existing:
            return existing
        mounts = self._mounts(volumes, region)
        meta = Meta(
            request_id,
            name,
            instance_type,
            region,
            image,
            preemptible,
            created=int(time.time()),
            volumes=tuple(volumes),
        )
        partition = self.partitions.get(region, region)
        nodes, pending = self._nodes_and_pending(partition, jobs)
        if not nodes:
            raise PermanentError(f"Slurm has no partition {partition!r} for region {region!r}")
        fits_somewhere = any(
            n.model == shape.gpu_model and n.gpus >= shape.gpus for n in nodes.values()
        )
        if not fits_somewhere:
            largest = max((n.gpus for n in nodes.values() if n.model == shape.gpu_model), default=0)
            raise PermanentError(
                "Slurm refused the request: Requested node configuration is not available "
                f"(no node of partition {partition} has {shape.gpus} {shape.gpu_model} GPUs; "
                f"the largest has {largest})"
            )
        if free_instances(nodes, shape, pending) == 0:
            raise CapacityError(
                f"no free {shape.gpus}x {shape.gpu_model} in Slurm partition {partition}"
            )
        slurm_account = self.account_name(account) if account else self.default_account
        job = {
            "name": self.prefix + request_id,
            "comment": meta.encode(),
            "partition": partition,
            "gres": f"gpu:{shape.gpu_model}:{shape.gpus}",
            "account": slurm_account,
            "qos": "low" if preemptible else "normal",
            "requeue": True,
            "nodes": "1",
            "tasks": 1,
            "current_working_directory": self.job_dir,
            "standard_output": f"{self.job_dir}/{self.prefix}%j.out",
            "environment": {
                "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                "LANG": "C.UTF-8",
                "BACKFILL_META": meta.encode(),
                "BACKFILL_VOLUMES": mounts,
                "BACKFILL_VOLUME_BASE": self.volume_mount_base,
            },
        }
        if self.cpus_per_gpu:
            job["cpus_per_task"] = self.cpus_per_gpu * shape.gpus
        body = {"script": job_script(keys, self.ssh_ports), "job": job}
        try:
            answer = self.call("POST", f"{API}/job/submit", body, what="submit")
        except PermanentError as exc:
            if not account or not has_code(exc, INVALID_ACCOUNT):
                raise
            # The organization has no Slurm account yet (no quota mirrored so far): make it.
            accounts.ensure_account(account, backend=self)
            answer = self.call("POST", f"{API}/job/submit", body, what="submit")
        job_id = answer.get("job_id") if isinstance(answer, dict) else None
        if not isinstance(job_id, int):
            raise InvalidResponse(f"slurmrestd answered a submit without a job id: {answer!r}")
        return self._settle_duplicates(request_id, str(job_id))

    def get(self, backend_id: str) -> Machine:
        job_id, index = split_id(backend_id)
        job = self._job(job_id)
        if index is None:
            return job_machine(job, self._node_addresses(), self.user)
        meta = Meta.decode(job.get("comment"))
        if meta is None or not 0 <= index < meta.nodes:
            raise NotFound(f"no node {index} in Slurm job {job_id}")
        return cluster_node_machine(job, index, self._node_addresses(), self.user)

    def list(self) -> builtins.list[Machine]:
        jobs = [job for job in self._jobs() if self._is_ours(job)]
        addresses = self._node_addresses() if jobs else {}
        return [m for job in jobs for m in job_machines(job, addresses, self.user)]

    # Clusters (the optional `ClusterBackend` capability)

    def cluster_create(
        self,
        *,
        request_id: str,
        instance_type: str,
        region: str,
        image: str,
        nodes: int,
        ssh_keys: builtins.list[str],
        volumes: builtins.list[str],
        preemptible: bool,
        name: str,
        account: str | None = None,
    ) -> builtins.list[Machine]:
        """One job of `nodes` Slurm nodes, each with the type's GPUs: Slurm starts it on all of
        them at once or not at all. Refused (CapacityError) unless enough nodes are free now,
        so that a cluster never waits half-placed in the queue."""
        if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 2:
            raise PermanentError("a cluster has at least 2 nodes")
        if volumes:
            raise PermanentError("this Slurm driver attaches no volumes")
        shape = self.shape(instance_type)
        keys = clean_keys(ssh_keys)
        existing = self._find(request_id)
        if existing:
            return self._cluster_machines(existing)
        partition = self.partitions.get(region, region)
        known = self._nodes(partition)
        if not known:
            raise PermanentError(f"Slurm has no partition {partition!r} for region {region!r}")
        able = [n for n in known.values() if n.model == shape.gpu_model and n.gpus >= shape.gpus]
        if not able:
            raise PermanentError(
                f"no node of Slurm partition {partition} has {shape.gpus} {shape.gpu_model} GPUs"
            )
        free = sum(1 for n in able if n.up and n.gpus - n.used >= shape.gpus)
        if free < nodes:
            raise CapacityError(
                f"no room for {nodes} nodes of {shape.gpus}x {shape.gpu_model} together in "
                f"Slurm partition {partition} right now: {free} would fit",
                available=free,
            )
        meta = Meta(
            request_id,
            name,
            instance_type,
            region,
            image,
            preemptible,
            created=int(time.time()),
            nodes=nodes,
        )
        slurm_account = self.account_name(account) if account else self.default_account
        job = {
            "name": self.prefix + request_id,
            "comment": meta.encode(),
            "partition": partition,
            "gres": f"gpu:{shape.gpu_model}:{shape.gpus}",  # per node
            "account": slurm_account,
            "qos": "low" if preemptible else "normal",
            "requeue": True,
            "nodes": str(nodes),
            "tasks": nodes,
            "current_working_directory": self.job_dir,
            "standard_output": f"{self.job_dir}/{self.prefix}%j.out",
            "environment": {
                "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                "LANG": "C.UTF-8",
                "BACKFILL_META": meta.encode(),
                "BACKFILL_NAME": name,
            },
        }
        if self.cpus_per_gpu:
            job["cpus_per_task"] = self.cpus_per_gpu * shape.gpus
        body = {"script": job_script(keys, self.ssh_ports, cluster=True), "job": job}
        try:
            answer = self.call("POST", f"{API}/job/submit", body, what="submit")
        except PermanentError as exc:
            if not account or not has_code(exc, INVALID_ACCOUNT):
                raise
            accounts.ensure_account(account, backend=self)
            answer = self.call("POST", f"{API}/job/submit", body, what="submit")
        job_id = answer.get("job_id") if isinstance(answer, dict) else None
        if not isinstance(job_id, int):
            raise InvalidResponse(f"slurmrestd answered a submit without a job id: {answer!r}")
        return self._cluster_machines(self._settle_duplicates(request_id, str(job_id)))

    def cluster_machines(self, request_id: str) -> builtins.list[Machine]:
        """The nodes of the cluster's one job (the oldest, as `cluster_create` keeps it)."""
        job_id = self._find(request_id)
        if job_id is None:
            return []
        try:
            return self._cluster_machines(job_id)
        except NotFound:  # ended and forgotten between the two reads
            return []

    def _cluster_machines(self, job_id: str) -> builtins.list[Machine]:
        return job_machines(self._job(job_id), self._node_addresses(), self.user)

    def start(self, backend_id: str) -> None:
        backend_id = split_id(backend_id)[0]  # a cluster's node: the whole job
        job = self._job(backend_id)
        state = machine_state(job)
        if state in (MachineState.STARTING, MachineState.RUNNING, MachineState.PROVISIONING):
            return
        if state == MachineState.STOPPING:
            job = self._await(backend_id, lambda j: machine_state(j) != MachineState.STOPPING)
            state = machine_state(job)
        if state != MachineState.STOPPED:
            raise InvalidState(f"Slurm job {backend_id} is {state}; only a stopped one starts")
        # Slurm delays a requeued job by 2 minutes (its begin time); start means now, but not
        # within the second of the requeue: slurmd revoked the job's credential then, and a
        # credential issued in that same second is refused ("Job credential revoked"), which
        # ends the job FAILED. One second later is safe (slurmrestd parses "now+1" itself).
        # The hold is released once that second has come: a job released before its begin
        # time waits for the next scheduling pass (up to bf_interval, 30 s by default).
        self._update(backend_id, {"begin_time": "now+1"})
        self._sleep(1.05)
        self._update(backend_id, {"hold": False})

    def stop(self, backend_id: str) -> None:
        backend_id = split_id(backend_id)[0]  # a cluster's node: the whole job
        job = self._job(backend_id)
        state = machine_state(job)
        if state in (MachineState.STOPPING, MachineState.STOPPED):
            return
        if state in FINAL_STATES:
            raise InvalidState(f"Slurm job {backend_id} has ended ({job.get('job_state')})")
        if job.get("job_state") == "PENDING":
            self._update(backend_id, {"hold": True})
            return
        # Running: the job requeues itself held on SIGUSR1 (see instance.sh). Wait until Slurm
        # took it off the node, so that the next get() says stopping or stopped.
        self._signal(backend_id, "SIGUSR1")
        self._await(
            backend_id,
            lambda j: j.get("job_state") not in ("RUNNING", "CONFIGURING"),
            what="stop",
        )

    def reboot(self, backend_id: str) -> None:
        backend_id = split_id(backend_id)[0]  # a cluster's node: the whole job
        job = self._job(backend_id)
        state = machine_state(job)
        if state == MachineState.REBOOTING:
            return
        if state != MachineState.RUNNING:
            raise InvalidState(f"Slurm job {backend_id} is {state}; only a running one reboots")
        self._signal(backend_id, "SIGUSR2")

    def terminate(self, backend_id: str) -> None:
        backend_id = split_id(backend_id)[0]  # a cluster's node: the whole job (it ends whole)
        try:
            job = self._job(backend_id)
        except NotFound:
            return
        if job.get("job_state") not in ACTIVE_STATES:
            return
        try:
            self.call("DELETE", f"{API}/job/{backend_id}", what=f"cancel job {backend_id}")
        except NotFound:
            return
        except PermanentError as exc:
            if not has_code(exc, ALREADY_DONE):
                raise

    def capacity(self) -> builtins.list[Capacity]:
        """Free GPUs, and per region and model the operator's own work: its jobs in an
        internal QOS (SLURM_INTERNAL_QOS, default `internal,high`) running (internal) and
        pending for GPUs (the shortfall), beside the GPUs the portal's jobs hold (customer)."""
        jobs = self._jobs()
        return capacities(
            self._nodes(),
            self._pending_demand(jobs),
            self.instance_types,
            self.partitions,
            demand_of(jobs, internal_qos=self.internal_qos, is_ours=self._is_ours),
        )

    # Volumes (the optional `VolumeBackend` capability; see volumes.py)

    # Directories on shared storage: any number of jobs may use one at once.
    shared_volumes = True

    def _store(self) -> VolumeStore:
        if self.volumes is None:
            raise PermanentError(
                "this Slurm cluster has no volume storage (set SLURM_VOLUME_ROOT to a directory "
                "on the shared storage)"
            )
        return self.volumes

    def _mount_path(self, name: str) -> str:
        return f"{self.volume_mount_base}/{name}"

    def _mounts(self, volumes: Sequence[str], region: str) -> str:
        """`name:path` a line, for the job script; checks that each volume can attach."""
        if not volumes:
            return ""
        store = self._store()
        lines = []
        for volume_id in volumes:
            record = store.read(volume_id)
            if record["state"] == "deleted":
                raise NotFound(f"volume {volume_id} is deleted")
            if record["region"] != region:
                raise PermanentError(
                    f"volume {volume_id} is in {record['region']}; the machine would be in {region}"
                )
            lines.append(f"{record['name']}:{store.data_path(volume_id)}")
        return "\n".join(lines)

    def _holders(self) -> dict[str, builtins.list[str]]:
        """Volume id -> ids of the live machines created with it."""
        holders: dict[str, builtins.list[str]] = {}
        for job in self._jobs():
            if not self._is_ours(job) or job.get("job_state") not in ACTIVE_STATES:
                continue
            meta = Meta.decode(job.get("comment"))
            for volume_id in meta.volumes if meta else ():
                holders.setdefault(volume_id, []).append(str(job["job_id"]))
        return holders

    def _volume(self, record: dict[str, Any], holders: dict[str, builtins.list[str]]) -> Volume:
        deleted = record["state"] == "deleted"
        return Volume(
            backend_id=record["id"],
            request_id=record["request_id"],
            name=record["name"],
            region=record["region"],
            size_gb=int(record["size_gb"]),
            state=VolumeState.DELETED if deleted else VolumeState.AVAILABLE,
            attached_to=() if deleted else tuple(holders.get(record["id"], ())),
            mount_path=self._mount_path(record["name"]),
            created_at=created_at(record),
            detail=record.get("detail", ""),
        )

    def volume_create(
        self, *, request_id: str, region: str, size_gb: int, name: str, account: str | None = None
    ) -> str:
        store = self._store()
        check_name(name)
        if isinstance(size_gb, bool) or not isinstance(size_gb, int) or size_gb < 1:
            raise PermanentError("a volume's size is a whole number of GB, at least 1")
        partition = self.partitions.get(region, region)
        if not self._nodes(partition):
            raise PermanentError(f"Slurm has no partition {partition!r} for region {region!r}")
        with store.locked():
            for record in store.all():
                if record["request_id"] == request_id:
                    return str(record["id"])
            free = self.volume_capacity_gb - store.used_gb()
            if self.volume_capacity_gb and size_gb > free:
                raise CapacityError(
                    f"no room for {size_gb} GB: {max(0, free)} GB of the volume storage's "
                    f"{self.volume_capacity_gb} GB are free"
                )
            record, _created = store.create(
                request_id=request_id, region=region, size_gb=size_gb, name=name, account=account
            )
        return str(record["id"])

    def volume_get(self, backend_id: str) -> Volume:
        record = self._store().read(backend_id)
        return self._volume(record, self._holders())

    def volume_list(self) -> builtins.list[Volume]:
        if self.volumes is None:
            return []
        holders = self._holders()
        return [self._volume(record, holders) for record in self.volumes.all()]

    def volume_resize(self, backend_id: str, size_gb: int) -> None:
        store = self._store()
        with store.locked():
            record = store.read(backend_id)
            more = size_gb - int(record["size_gb"])
            free = self.volume_capacity_gb - store.used_gb()
            if more > 0 and self.volume_capacity_gb and more > free:
                raise CapacityError(f"no room for {more} GB more: {max(0, free)} GB are free")
            store.resize(backend_id, size_gb)

    def volume_delete(self, backend_id: str) -> None:
        if self.volumes is None:
            return
        store = self.volumes
        with store.locked():
            try:
                record = store.read(backend_id)
            except NotFound:
                return
            if record["state"] == "deleted":
                return
            holders = self._holders().get(backend_id)
            if holders:
                raise InvalidState(
                    f"volume {backend_id} is attached to Slurm job {', '.join(holders)}"
                )
            store.delete(backend_id)

    def storage_capacity(self) -> builtins.list[StorageCapacity]:
        if self.volumes is None:
            return []
        regions = sorted(
            set(self.partitions) or {p for n in self._nodes().values() for p in n.partitions}
        )
        used = self.volumes.used_gb()
        total = self.volume_capacity_gb
        return [
            StorageCapacity(region=region, free_gb=max(0, total - used), total_gb=total)
            for region in regions
        ]

    # Reclaims (the optional `ReclaimingBackend` capability)

    def reclaim(self, backend_id: str, at: datetime) -> None:
        """End this preemptible job at `at` (to the second, rounded up): the time goes into
        the job's comment (`reclaim=`), and SIGURG tells the job's script, which writes it to
        `~/.backfill/interruption` and cancels its own job at that second (`reclaimed=1`: an
        interruption, not a termination). Idempotent; an earlier time wins."""
        job = self._job(backend_id)
        meta = Meta.decode(job.get("comment"))
        if meta is None or not meta.preemptible:
            raise PermanentError(f"Slurm job {backend_id} is not preemptible; never reclaimed")
        if job.get("job_state") not in ACTIVE_STATES:
            return
        when = math.ceil(at.timestamp())
        if meta.reclaim and meta.reclaim <= when:
            return
        comment = with_field(str(job.get("comment")), "reclaim", str(when))
        self._update(backend_id, {"comment": comment})
        self._signal(backend_id, "SIGURG")

    # Quota mirroring (the optional `QuotaMirroringBackend` capability)

    def set_account_limits(self, account: str, limits: Mapping[str, int | None]) -> None:
        """The organization's Slurm account `bf-<account>` (made if missing) gets exactly these
        GPU limits per model as GrpTRES; models Slurm does not track are left out."""
        accounts.set_gpu_limits(account, limits, backend=self)

    def account_limits(self, account: str) -> dict[str, int]:
        return accounts.gpu_limits(account, backend=self)

    def account_name(self, org_slug: str) -> str:
        """The Slurm account of an organization: lower case, `bf-<slug>`."""
        return accounts.account_name(org_slug, self.account_prefix)

    def shape(self, instance_type: str) -> InstanceShape:
        return shape_of(instance_type, self.instance_types)

    # Jobs

    def _is_ours(self, job: dict[str, Any]) -> bool:
        name = job.get("name") or ""
        return name.startswith(self.prefix) and Meta.decode(job.get("comment")) is not None

    def _find(
        self, request_id: str, jobs: builtins.list[dict[str, Any]] | None = None
    ) -> str | None:
        ids = sorted(
            job["job_id"]
            for job in (self._jobs() if jobs is None else jobs)
            if job.get("name") == self.prefix + request_id and self._is_ours(job)
        )
        return str(ids[0]) if ids else None

    def _settle_duplicates(self, request_id: str, job_id: str) -> str:
        """Two creates raced past the look-up: keep the oldest job, cancel the others."""
        ids = sorted(
            job["job_id"]
            for job in self._jobs()
            if job.get("name") == self.prefix + request_id
            and self._is_ours(job)
            and job.get("job_state") in ACTIVE_STATES
        )
        if len(ids) <= 1:
            return job_id
        for extra in ids[1:]:
            self.terminate(str(extra))
        return str(ids[0])

    def _jobs(self) -> builtins.list[dict[str, Any]]:
        answer = self.call("GET", f"{API}/jobs", what="list jobs")
        jobs = answer.get("jobs") if isinstance(answer, dict) else None
        if not isinstance(jobs, list):
            raise InvalidResponse("slurmrestd answered jobs without a list 'jobs'")
        return [job for job in jobs if isinstance(job, dict) and isinstance(job.get("job_id"), int)]

    def _job(self, backend_id: str) -> dict[str, Any]:
        if not str(backend_id).isdigit():
            raise NotFound(f"no Slurm job {backend_id!r}")
        answer = self.call("GET", f"{API}/job/{backend_id}", what=f"get job {backend_id}")
        jobs = answer.get("jobs") if isinstance(answer, dict) else None
        if not isinstance(jobs, list):
            raise InvalidResponse("slurmrestd answered a job without a list 'jobs'")
        for job in jobs:
            if isinstance(job, dict) and str(job.get("job_id")) == str(backend_id):
                if not self._is_ours(job):
                    raise NotFound(f"Slurm job {backend_id} is not one of the portal's")
                return job
        raise NotFound(f"no Slurm job {backend_id}")

    def _update(self, backend_id: str, fields: dict[str, Any]) -> None:
        self.call("POST", f"{API}/job/{backend_id}", fields, what=f"update job {backend_id}")

    def _signal(self, backend_id: str, signal: str) -> None:
        self.call(
            "DELETE",
            f"{API}/job/{backend_id}",
            params={"signal": signal},
            what=f"signal job {backend_id}",
        )

    def _await(
        self,
        backend_id: str,
        done: Callable[[dict[str, Any]], bool],
        what: str = "settle",
    ) -> dict[str, Any]:
        deadline = time.monotonic() + self.stop_wait
        while True:
            job = self._job(backend_id)
            if done(job):
                return job
            if time.monotonic() > deadline:
                raise TransientError(
                    f"Slurm job {backend_id} did not {what} within {self.stop_wait:.0f}s "
                    f"(it is {job.get('job_state')})"
                )
            self._sleep(0.1)

    # Nodes

    def _nodes(self, partition: str | None = None) -> dict[str, Node]:
        return parse_nodes(self.call("GET", f"{API}/nodes", what="list nodes"), partition)

    def _node_addresses(self) -> dict[str, str]:
        return {name: node.address for name, node in self._nodes().items()}

    def _pending_demand(
        self, jobs: builtins.list[dict[str, Any]] | None = None
    ) -> dict[str, builtins.list[int]]:
        """GPUs our pending jobs will take soon, per partition (not those held or blocked by
        a limit: they wait for something other than free GPUs)."""
        demand: dict[str, builtins.list[int]] = {}
        for partition, gpus in self._pending_jobs(jobs).values():
            demand.setdefault(partition, []).append(gpus)
        return demand

    def _pending_jobs(
        self, jobs: builtins.list[dict[str, Any]] | None = None, partition: str | None = None
    ) -> dict[int, tuple[str, int]]:
        """`_pending_demand` by job id: (partition, GPUs); of one partition, if given."""
        pending: dict[int, tuple[str, int]] = {}
        for job in self._jobs() if jobs is None else jobs:
            if job.get("job_state") != "PENDING" or not self._is_ours(job):
                continue
            if partition is not None and job.get("partition") != partition:
                continue
            reason = job.get("state_reason") or ""
            if reason in HELD_REASONS or reason.startswith(("Assoc", "QOS")):
                continue
            meta = Meta.decode(job.get("comment"))
            if meta is None:
                continue
            with contextlib.suppress(PermanentError):
                shape = self.shape(meta.instance_type)
                pending[job["job_id"]] = (job.get("partition") or "", shape.gpus)
        return pending

    def _nodes_and_pending(
        self, partition: str, jobs: builtins.list[dict[str, Any]] | None = None, *, reads: int = 3
    ) -> tuple[dict[str, Node], builtins.list[int]]:
        """The partition's nodes and the GPUs our pending jobs there will take, as one view.

        A job that starts while the nodes are read is on its node in that read and pending in
        a read of the jobs before it, or in neither if the jobs are read after. So the jobs
        are read before and after the nodes: when every job pending before is still pending
        after, none of ours started in between and the view holds. Else it is read again; if
        jobs keep starting, the ones pending in either read count (a refusal, never a job
        admitted to GPUs its node no longer has free). `jobs`: a read of the jobs just made,
        taken as the first."""
        before = self._pending_jobs(jobs, partition)
        nodes: dict[str, Node] = {}
        pending = before
        for _read in range(reads):
            nodes = self._nodes(partition)
            after = self._pending_jobs(partition=partition)
            if before.keys() <= after.keys():
                pending = after
                break
            pending = {**after, **before}
            before = after
        return nodes, [gpus for _partition, gpus in pending.values()]
