"""The `slurm` driver: machines are long-running Slurm jobs, driven through slurmrestd.

Talks to slurmrestd's `v0.0.38` API (Slurm 22.05) over HTTP with JWT in proxy mode: one service
token of the SlurmUser (`X-SLURM-USER-TOKEN`) and `X-SLURM-USER-NAME` set to the Unix user the
jobs run as. Every call has a time-out and is retried on transient errors (slurmrestd or
slurmctld down, time-outs, garbage answers), like the simulator driver. docs/slurm.md has the
whole picture; in short:

An instance is one batch job named `<prefix><request id>` (prefix "bf-") that holds the instance
type's GPUs as gres (`gpu:h100:2`), with `CUDA_VISIBLE_DEVICES` set by Slurm, in the partition
named after the region, charged to the organization's Slurm account, in QOS `low` when
preemptible. The job runs Debian's dropbear on a free port of its node, accepting exactly the
instance's SSH keys: the keys are written into the job's own directory, bind-mounted over
`~/.ssh` in a private mount namespace (an unprivileged user namespace), so instances of the same
Unix user never see each other's keys. Once dropbear listens, the job reports its port by adding
`port=` to its own comment (`scontrol update`); `get()` returns the node's address as `ip`, the
port in `ssh_port` (and in `detail`) and the Unix user in `ssh_user`.

Mapping of the interface onto Slurm:

- create: `POST job/submit`, after looking in `jobs` for the request id (idempotency) and at
  the free GPUs (`CapacityError` when no node has room now);
- get, list: `GET job/{id}`, `GET jobs` filtered on the name prefix and the comment's format;
- stop: a pending job is held. A running one gets SIGUSR1, on which it requeues itself held
  (`scontrol requeuehold`): the GPUs are released; the job id, script and keys are kept;
- start: release the hold and set the begin time to now (a requeued job waits 2 minutes else);
- reboot: SIGUSR2: the job kills every process of the instance and starts dropbear again, on
  the same node, port and GPUs;
- terminate: `DELETE job/{id}` (scancel);
- capacity: `GET nodes`: GPUs per node minus allocated ones and what our pending jobs will take.

States: PENDING is provisioning (starting after a stop, stopped while held), with
"waiting for capacity (<reason>)" when Slurm says why (AssocGrpGRES: the organization's Slurm
account is at its GPU limit); RUNNING is provisioning until the job reported its port for this
run, then running (with `reclaim_at` when a preemption's grace time runs); PREEMPTED is
interrupted; CANCELLED is terminated; FAILED, NODE_FAIL, TIMEOUT, OUT_OF_MEMORY and a job that
ended by itself are failed, with Slurm's reason in `detail`.

Limits: a stop loses everything but the job (processes, files outside shared storage, the node,
the port: a started instance may come back on another node and port); a started instance waits
in "starting" for free GPUs rather than failing; a create racing another for the last GPUs may
wait in "provisioning" (waiting for capacity) instead of getting `CapacityError`; Slurm forgets
ended jobs after MinJobAge (300 s), after which `get()` says `NotFound`.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import requests

from ..errors import (
    AuthenticationError,
    CapacityError,
    InvalidResponse,
    InvalidState,
    NotFound,
    PermanentError,
    TransientError,
)
from ..interface import Capacity, Machine, MachineState
from .transport import transport_options

Timeout = float | tuple[float, float]

API = "/slurm/v0.0.38"
DB_API = "/slurmdb/v0.0.38"
COMMENT_TAG = "backfill:v1"
INSTANCE_TYPE_RE = re.compile(r"^gpu_(\d+)x_([a-z0-9]+)$")
GRES_RE = re.compile(r"^gpu:([A-Za-z0-9_-]+):(\d+)")
DEFAULT_COUNTS = (1, 2, 4, 8)

# Slurm error numbers (slurm_errno.h) that mean "the same call may work later".
TRANSIENT_CODES = frozenset(
    {
        *range(1001, 1005),  # SLURM_COMMUNICATIONS_{CONNECTION,SEND,RECEIVE,SHUTDOWN}_ERROR
        1013,  # SLURM_COMMUNICATIONS_MISSING_SOCKET_ERROR
        *range(1019, 1026),  # rejected, time-outs, delayed, shutting down
        *range(1800, 1806),  # SLURMCTLD_COMMUNICATIONS_*: slurmctld is down or unreachable
        2027,  # ESLURM_IN_STANDBY_MODE
        *range(5003, 5006),  # socket time-outs
        7000,  # ESLURM_DB_CONNECTION: slurmdbd is down
        7008,  # ESLURM_DB_CONNECTION_INVALID
    }
)
AUTH_CODES = frozenset(
    {
        1007,  # SLURM_PROTOCOL_AUTHENTICATION_ERROR
        2002,  # ESLURM_ACCESS_DENIED
        *range(6000, 6012),  # ESLURM_AUTH_*: invalid or expired credential
        9008,  # ESLURM_REST_AUTH_FAIL
    }
)
INVALID_JOB_ID = 2017
ALREADY_DONE = 2021  # ESLURM_ALREADY_DONE: job/step already completing or completed
NODE_CONFIG_UNAVAILABLE = 2014  # ESLURM_REQUESTED_NODE_CONFIG_UNAVAILABLE
INVALID_ACCOUNT = 2045  # ESLURM_INVALID_ACCOUNT

ACTIVE_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED"})
FAILED_STATES = frozenset(
    {"FAILED", "NODE_FAIL", "BOOT_FAIL", "TIMEOUT", "OUT_OF_MEMORY", "DEADLINE", "COMPLETED"}
)
HELD_REASONS = frozenset({"JobHeldUser", "JobHeldAdmin"})
NO_REASON = frozenset({"None", "", "BeginTime"})
BAD_NODE_STATES = ("DOWN", "DRAIN", "FAIL", "NOT_RESPONDING", "INVAL", "UNKNOWN", "FUTURE")


@dataclass(frozen=True)
class InstanceShape:
    """What an instance type asks of Slurm."""

    gpu_model: str
    gpus: int


@dataclass(frozen=True)
class Meta:
    """What the driver keeps in a job's comment (URL-encoded: no spaces, no quotes)."""

    request_id: str
    name: str
    instance_type: str
    region: str
    image: str
    preemptible: bool
    created: int = 0  # epoch seconds of the create (Slurm resets submit_time on a requeue)
    port: int | None = None
    run: int | None = None
    error: str = ""

    def encode(self) -> str:
        fields = {
            "rid": self.request_id,
            "type": self.instance_type,
            "region": self.region,
            "image": self.image,
            "pre": "1" if self.preemptible else "0",
            "name": self.name,
            "at": str(self.created),
        }
        return f"{COMMENT_TAG}?{urlencode(fields)}"

    @classmethod
    def decode(cls, comment: str | None) -> Meta | None:
        if not comment or not comment.startswith(COMMENT_TAG + "?"):
            return None
        fields = dict(parse_qsl(comment[len(COMMENT_TAG) + 1 :], keep_blank_values=True))
        try:
            return cls(
                request_id=fields["rid"],
                name=fields.get("name", ""),
                instance_type=fields["type"],
                region=fields["region"],
                image=fields.get("image", ""),
                preemptible=fields.get("pre") == "1",
                created=int(fields.get("at") or 0),
                port=int(fields["port"]) if fields.get("port") else None,
                run=int(fields["run"]) if fields.get("run") else None,
                error=fields.get("error", ""),
            )
        except (KeyError, ValueError):
            return None


class SlurmBackend:
    """Provisioning through slurmrestd. See the module docstring for the mapping."""

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
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not token and not token_file:
            raise ValueError("the slurm driver needs SLURM_TOKEN or SLURM_TOKEN_FILE")
        self.base_url = base_url.rstrip("/")
        self.user = user
        self.service_user = service_user
        self.job_dir = job_dir
        self.default_account = default_account
        self.account_prefix = account_prefix
        self.prefix = prefix
        self.instance_types = {k: _shape(k, v) for k, v in (instance_types or {}).items()}
        self.partitions = dict(partitions or {})
        self.cpus_per_gpu = max(0, cpus_per_gpu)
        self.ssh_ports = ssh_ports
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.stop_wait = stop_wait
        self.session = session or requests.Session()
        self.session.headers.update({"User-Agent": "backfill-portal"})
        self._token = token
        self._token_file = Path(token_file) if token_file else None
        self._token_mtime: float | None = None
        self._sleep = sleep

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
            instance_types=getattr(settings, "SLURM_INSTANCE_TYPES", None),
            partitions=getattr(settings, "SLURM_PARTITIONS", None),
            cpus_per_gpu=int(get("SLURM_CPUS_PER_GPU", 1)),
            ssh_ports=tuple(ports),
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
    ) -> str:
        shape = self.shape(instance_type)
        keys = _clean_keys(ssh_keys)
        existing = self._find(request_id)
        if existing:
            return existing
        meta = Meta(
            request_id, name, instance_type, region, image, preemptible, created=int(time.time())
        )
        partition = self.partitions.get(region, region)
        nodes = self._nodes(partition)
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
        if self._free_instances(nodes, shape, partition) == 0:
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
            },
        }
        if self.cpus_per_gpu:
            job["cpus_per_task"] = self.cpus_per_gpu * shape.gpus
        body = {"script": job_script(keys, self.ssh_ports), "job": job}
        try:
            answer = self._call("POST", f"{API}/job/submit", body, what="submit")
        except PermanentError as exc:
            if not account or f"[{INVALID_ACCOUNT}]" not in str(exc):
                raise
            # The organization has no Slurm account yet (no quota mirrored so far): make it.
            from ..slurm_accounts import ensure_account

            ensure_account(account, backend=self)
            answer = self._call("POST", f"{API}/job/submit", body, what="submit")
        job_id = answer.get("job_id") if isinstance(answer, dict) else None
        if not isinstance(job_id, int):
            raise InvalidResponse(f"slurmrestd answered a submit without a job id: {answer!r}")
        return self._settle_duplicates(request_id, str(job_id))

    def get(self, backend_id: str) -> Machine:
        job = self._job(backend_id)
        return self._machine(job, self._node_addresses())

    def list(self) -> list[Machine]:
        jobs = [job for job in self._jobs() if self._is_ours(job)]
        addresses = self._node_addresses() if jobs else {}
        return [self._machine(job, addresses) for job in jobs]

    def start(self, backend_id: str) -> None:
        job = self._job(backend_id)
        state = self._state(job)
        if state in (MachineState.STARTING, MachineState.RUNNING, MachineState.PROVISIONING):
            return
        if state == MachineState.STOPPING:
            job = self._await(backend_id, lambda j: self._state(j) != MachineState.STOPPING)
            state = self._state(job)
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
        job = self._job(backend_id)
        state = self._state(job)
        if state in (MachineState.STOPPING, MachineState.STOPPED):
            return
        if state in _FINAL:
            raise InvalidState(f"Slurm job {backend_id} has ended ({job.get('job_state')})")
        if job.get("job_state") == "PENDING":
            self._update(backend_id, {"hold": True})
            return
        # Running: the job requeues itself held on SIGUSR1 (see job_script). Wait until Slurm
        # took it off the node, so that the next get() says stopping or stopped.
        self._signal(backend_id, "SIGUSR1")
        self._await(
            backend_id,
            lambda j: j.get("job_state") not in ("RUNNING", "CONFIGURING"),
            what="stop",
        )

    def reboot(self, backend_id: str) -> None:
        job = self._job(backend_id)
        state = self._state(job)
        if state == MachineState.REBOOTING:
            return
        if state != MachineState.RUNNING:
            raise InvalidState(f"Slurm job {backend_id} is {state}; only a running one reboots")
        self._signal(backend_id, "SIGUSR2")

    def terminate(self, backend_id: str) -> None:
        try:
            job = self._job(backend_id)
        except NotFound:
            return
        if job.get("job_state") not in ACTIVE_STATES:
            return
        try:
            self._call("DELETE", f"{API}/job/{backend_id}", what=f"cancel job {backend_id}")
        except NotFound:
            return
        except PermanentError as exc:
            if f"[{ALREADY_DONE}]" not in str(exc):
                raise

    def capacity(self) -> builtins.list[Capacity]:
        nodes = self._nodes()
        pending = self._pending_demand()
        result = []
        by_partition: dict[str, dict[str, _Node]] = {}
        for node in nodes.values():
            for partition in node.partitions:
                by_partition.setdefault(partition, {})[node.name] = node
        regions = {partition: region for region, partition in self.partitions.items()}
        for partition, members in sorted(by_partition.items()):
            free = _free_after(members, pending.get(partition, []))
            for code, shape in sorted(self._shapes_for(members).items()):
                fitting = [n for n in members.values() if n.model == shape.gpu_model]
                result.append(
                    Capacity(
                        region=regions.get(partition, partition),
                        instance_type=code,
                        gpu_model=shape.gpu_model,
                        free_gpus=sum(free[n.name] for n in fitting),
                        total_gpus=sum(n.gpus for n in fitting),
                        free_instances=sum(free[n.name] // shape.gpus for n in fitting),
                    )
                )
        return result

    # Accounts (quota mirroring lives in portal.provisioning.slurm_accounts)

    def account_name(self, org_slug: str) -> str:
        """The Slurm account of an organization: lower case, `bf-<slug>`."""
        slug = org_slug.strip().lower()
        if not slug or not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", slug):
            raise PermanentError(f"{org_slug!r} cannot name a Slurm account")
        return f"{self.account_prefix}{slug}"

    def shape(self, instance_type: str) -> InstanceShape:
        if instance_type in self.instance_types:
            return self.instance_types[instance_type]
        match = INSTANCE_TYPE_RE.match(instance_type)
        if not match:
            raise PermanentError(
                f"the slurm driver does not know instance type {instance_type!r} "
                "(name it gpu_<count>x_<model> or list it in SLURM_INSTANCE_TYPES)"
            )
        return InstanceShape(gpu_model=match.group(2), gpus=int(match.group(1)))

    # Jobs

    def _is_ours(self, job: dict[str, Any]) -> bool:
        name = job.get("name") or ""
        return name.startswith(self.prefix) and Meta.decode(job.get("comment")) is not None

    def _find(self, request_id: str) -> str | None:
        ids = sorted(
            job["job_id"]
            for job in self._jobs()
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
        answer = self._call("GET", f"{API}/jobs", what="list jobs")
        jobs = answer.get("jobs") if isinstance(answer, dict) else None
        if not isinstance(jobs, list):
            raise InvalidResponse("slurmrestd answered jobs without a list 'jobs'")
        return [job for job in jobs if isinstance(job, dict) and isinstance(job.get("job_id"), int)]

    def _job(self, backend_id: str) -> dict[str, Any]:
        if not str(backend_id).isdigit():
            raise NotFound(f"no Slurm job {backend_id!r}")
        answer = self._call("GET", f"{API}/job/{backend_id}", what=f"get job {backend_id}")
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
        self._call("POST", f"{API}/job/{backend_id}", fields, what=f"update job {backend_id}")

    def _signal(self, backend_id: str, signal: str) -> None:
        self._call(
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

    # Job -> Machine

    def _state(self, job: dict[str, Any]) -> MachineState:
        return _job_state(job, Meta.decode(job.get("comment")))[0]

    def _machine(self, job: dict[str, Any], addresses: dict[str, str]) -> Machine:
        meta = Meta.decode(job.get("comment"))
        if meta is None:
            raise InvalidResponse(f"Slurm job {job.get('job_id')} has no portal comment")
        state, detail = _job_state(job, meta)
        node = job.get("batch_host") or job.get("nodes") or ""
        ip = addresses.get(node) if node and state not in _FINAL else None
        port = meta.port if state == MachineState.RUNNING else None
        if port and ip:
            detail = detail or f"SSH on {ip} port {port}"
        reclaim_at = None
        if state in (MachineState.RUNNING, MachineState.INTERRUPTED) and job.get("preempt_time"):
            reclaim_at = _timestamp(job.get("end_time")) or _timestamp(job.get("preempt_time"))
        return Machine(
            backend_id=str(job["job_id"]),
            request_id=meta.request_id,
            name=meta.name,
            region=meta.region,
            instance_type=meta.instance_type,
            state=state,
            ip=ip if state in (MachineState.RUNNING, MachineState.REBOOTING) else None,
            preemptible=meta.preemptible,
            reclaim_at=reclaim_at,
            detail=detail,
            created_at=_timestamp(meta.created)
            or _timestamp(job.get("submit_time"))
            or datetime.now(UTC),
            ssh_port=port,
            ssh_user=job.get("user_name") or self.user,
        )

    # Nodes and capacity

    def _nodes(self, partition: str | None = None) -> dict[str, _Node]:
        answer = self._call("GET", f"{API}/nodes", what="list nodes")
        raw = answer.get("nodes") if isinstance(answer, dict) else None
        if not isinstance(raw, list):
            raise InvalidResponse("slurmrestd answered nodes without a list 'nodes'")
        nodes = {}
        for item in raw:
            node = _Node.parse(item)
            if node and (partition is None or partition in node.partitions):
                nodes[node.name] = node
        return nodes

    def _node_addresses(self) -> dict[str, str]:
        return {name: node.address for name, node in self._nodes().items()}

    def _pending_demand(self) -> dict[str, builtins.list[int]]:
        """GPUs our pending jobs will take soon, per partition (not those held or blocked by
        a limit: they wait for something other than free GPUs)."""
        demand: dict[str, builtins.list[int]] = {}
        for job in self._jobs():
            if job.get("job_state") != "PENDING" or not self._is_ours(job):
                continue
            reason = job.get("state_reason") or ""
            if reason in HELD_REASONS or reason.startswith(("Assoc", "QOS")):
                continue
            meta = Meta.decode(job.get("comment"))
            if meta is None:
                continue
            with contextlib.suppress(PermanentError):
                shape = self.shape(meta.instance_type)
                demand.setdefault(job.get("partition") or "", []).append(shape.gpus)
        return demand

    def _free_instances(self, nodes: dict[str, _Node], shape: InstanceShape, partition: str) -> int:
        free = _free_after(nodes, self._pending_demand().get(partition, []))
        return sum(free[n.name] // shape.gpus for n in nodes.values() if n.model == shape.gpu_model)

    def _shapes_for(self, nodes: dict[str, _Node]) -> dict[str, InstanceShape]:
        models = {n.model for n in nodes.values()}
        largest = {m: max(n.gpus for n in nodes.values() if n.model == m) for m in models}
        if self.instance_types:
            return {
                code: shape
                for code, shape in self.instance_types.items()
                if shape.gpu_model in models and shape.gpus <= largest[shape.gpu_model]
            }
        return {
            f"gpu_{count}x_{model}": InstanceShape(model, count)
            for model in models
            for count in DEFAULT_COUNTS
            if count <= largest[model]
        }

    # Transport

    def token(self) -> str:
        """The service token; a token file is read again whenever it changes (rotation)."""
        if self._token_file is None:
            return self._token
        try:
            mtime = self._token_file.stat().st_mtime
            if mtime != self._token_mtime:
                self._token = self._token_file.read_text().strip()
                self._token_mtime = mtime
        except OSError as exc:
            raise AuthenticationError(f"cannot read SLURM_TOKEN_FILE {self._token_file}") from exc
        return self._token

    def _call(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        *,
        params: dict[str, str] | None = None,
        what: str = "",
        user: str | None = None,
    ) -> Any:
        """One API call, retried on transient errors, garbage answers included."""
        attempt = 0
        while True:
            try:
                return self._call_once(method, path, payload, params, what, user)
            except TransientError:
                if attempt >= self.retries:
                    raise
            self._sleep(self.backoff * 2**attempt)
            attempt += 1

    def _call_once(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None,
        params: dict[str, str] | None,
        what: str,
        user: str | None,
    ) -> Any:
        what = f"slurmrestd {what or method + ' ' + path}"
        headers = {"X-SLURM-USER-NAME": user or self.user, "X-SLURM-USER-TOKEN": self.token()}
        try:
            response = self.session.request(
                method,
                self.base_url + path,
                json=payload,
                params=params,
                headers=headers,
                timeout=self.timeout,
            )
        except requests.Timeout as exc:
            raise TransientError(f"{what}: no answer within {self.timeout}s") from exc
        except requests.RequestException as exc:
            raise TransientError(f"{what}: Slurm's REST API is unreachable ({exc})") from exc

        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        errors = _errors(body)
        if status in (401, 403):
            raise AuthenticationError(
                f"{what}: HTTP {status}, Slurm refused the token "
                "(expired or revoked? check SLURM_TOKEN / SLURM_TOKEN_FILE)"
            )
        if errors:
            error = _error(what, status, errors)
            if (
                isinstance(error, TransientError)
                and _unspecified(errors)
                and path.startswith(API + "/")
            ):
                # slurmrestd 22.05 answers a bad token with the same "Unspecified error" as a
                # slurmctld that is down: tell them apart.
                self._raise_if_token_refused(what)
            raise error
        if status in (408, 429, 502, 503, 504) or status >= 500:
            raise TransientError(f"{what}: HTTP {status} {response.text[:200]}".rstrip())
        if status >= 400:
            raise PermanentError(f"{what}: HTTP {status} {response.text[:200]}".rstrip())
        if body is None:
            raise InvalidResponse(f"{what}: HTTP {status} answer is not JSON")
        return body

    def _raise_if_token_refused(self, what: str) -> None:
        """AuthenticationError when the service token is expired, malformed or refused.

        An expired or malformed token is seen in the token itself (its `exp` claim; no
        signature check here, Slurm does that). A token Slurm does not accept otherwise (a new
        jwt key, a wrong user) is refused by slurmdbd with an authentication error that
        slurmrestd does pass on, so one accounting call with the same token tells.
        """
        token = self.token()
        claims = _jwt_claims(token)
        if claims is None:
            raise AuthenticationError(f"{what}: the Slurm token is not a JWT (check SLURM_TOKEN)")
        expires = claims.get("exp")
        if isinstance(expires, int | float) and expires <= time.time():
            when = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            raise AuthenticationError(f"{what}: the Slurm token expired at {when}")
        try:
            self._call_once(
                "GET",
                f"{DB_API}/user/{self.service_user}",
                None,
                None,
                "check token",
                self.service_user,
            )
        except AuthenticationError as exc:
            raise AuthenticationError(f"{what}: Slurm refused the token ({exc})") from exc
        except (PermanentError, TransientError, InvalidResponse):
            return  # the token is not the problem as far as we can tell


@dataclass(slots=True)
class _Node:
    """A GPU node as slurmrestd describes it (`parse`); None for a node without GPUs."""

    name: str
    address: str
    model: str  # the GPU model, as in the node's gres
    gpus: int
    used: int  # GPUs allocated now
    partitions: list[str]
    up: bool

    @classmethod
    def parse(cls, data: Any) -> _Node | None:
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            return None
        match = GRES_RE.match(data.get("gres") or "")
        if not match:
            return None  # no GPUs: not for sale
        used = 0
        for part in (data.get("gres_used") or "").split(","):
            used_match = GRES_RE.match(part)
            if used_match:
                used += int(used_match.group(2))
        states = {str(data.get("state", "")).upper()} | {
            str(flag).upper() for flag in data.get("state_flags") or []
        }
        return cls(
            name=data["name"],
            address=data.get("address") or data.get("hostname") or data["name"],
            model=match.group(1),
            gpus=int(match.group(2)),
            used=used,
            partitions=list(data.get("partitions") or []),
            up=not any(bad in state for state in states for bad in BAD_NODE_STATES),
        )


def _free_after(nodes: dict[str, _Node], pending: Iterable[int]) -> dict[str, int]:
    """Free GPUs per node once our pending jobs are placed (first fit, largest first)."""
    free = {n.name: (max(0, n.gpus - n.used) if n.up else 0) for n in nodes.values()}
    for gpus in sorted(pending, reverse=True):
        for name in sorted(free, key=lambda k: free[k]):
            if free[name] >= gpus:
                free[name] -= gpus
                break
    return free


_FINAL = frozenset({MachineState.TERMINATED, MachineState.FAILED, MachineState.INTERRUPTED})


def _job_state(job: dict[str, Any], meta: Meta | None) -> tuple[MachineState, str]:
    """The machine state and detail of a Slurm job."""
    state = str(job.get("job_state") or "")
    reason = str(job.get("state_reason") or "")
    restarts = int(job.get("restart_cnt") or 0)
    describe = str(job.get("state_description") or "")
    waiting = MachineState.STARTING if restarts else MachineState.PROVISIONING
    if state == "PENDING":
        if reason in HELD_REASONS:
            return MachineState.STOPPED, ""
        if reason in NO_REASON:
            return waiting, ""
        return waiting, f"waiting for capacity ({reason})"
    if state in ("CONFIGURING", "REQUEUED", "REQUEUE_FED"):
        return waiting, ""
    if state == "RUNNING":
        if meta and meta.port and (meta.run or 0) == restarts:
            return MachineState.RUNNING, ""
        return waiting, "the SSH server is starting"
    if state in ("COMPLETING", "REQUEUE_HOLD", "SIGNALING", "STAGE_OUT"):
        if reason in HELD_REASONS or "held" in describe or state == "REQUEUE_HOLD":
            return MachineState.STOPPING, ""
        if job.get("preempt_time"):
            return MachineState.INTERRUPTED, "preempted by the operator's work"
        return MachineState.TERMINATING, ""
    if state == "SUSPENDED":
        return MachineState.STOPPED, "suspended by the operator"
    if state == "PREEMPTED":
        return MachineState.INTERRUPTED, "preempted by the operator's work"
    if state == "CANCELLED":
        return MachineState.TERMINATED, ""
    if state in FAILED_STATES:
        why = (meta.error if meta else "") or describe or (reason if reason != "None" else "")
        exit_code = job.get("exit_code")
        text = f"Slurm job {state.lower().replace('_', ' ')}"
        if state == "COMPLETED":
            text = "the instance's Slurm job ended by itself"
        if why:
            text += f": {why}"
        if exit_code not in (None, 0):
            text += f" (exit code {exit_code})"
        return MachineState.FAILED, text
    return MachineState.FAILED, f"unknown Slurm job state {state!r}"


def _errors(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return []
    return [e for e in body["errors"] if isinstance(e, dict)]


def _error(what: str, status: int, errors: list[dict[str, Any]]) -> Exception:
    def code(error: dict[str, Any]) -> int:
        value = error.get("error_code", error.get("error_number"))
        return value if isinstance(value, int) else -1

    codes = [code(e) for e in errors if code(e) > 0]
    text = "; ".join(
        " - ".join(str(part) for part in (e.get("error"), e.get("description")) if part)
        + (f" [{code(e)}]" if code(e) > 0 else "")
        for e in errors
    )
    message = f"{what}: {text}"
    if any(c in AUTH_CODES for c in codes) or "authentication" in text.lower():
        return AuthenticationError(f"{message} (expired or revoked token?)")
    if INVALID_JOB_ID in codes:
        return NotFound(message)
    if any(c in TRANSIENT_CODES for c in codes):
        return TransientError(message)
    if not codes and status >= 500:
        # slurmrestd answers "Unspecified error" (-1) when it cannot reach slurmctld.
        return TransientError(f"{message} (is slurmctld down?)")
    if NODE_CONFIG_UNAVAILABLE in codes:
        return PermanentError(f"Slurm refused the request: {text}")
    return PermanentError(message)


def _unspecified(errors: list[dict[str, Any]]) -> bool:
    return all(e.get("error_number", e.get("error_code", -1)) in (-1, None) for e in errors)


def _jwt_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT, unverified; None when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, TypeError):
        return None
    return claims if isinstance(claims, dict) else None


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, int) and 0 < value < 2**31 * 2:
        return datetime.fromtimestamp(value, UTC)
    return None


def _shape(code: str, value: Any) -> InstanceShape:
    if isinstance(value, InstanceShape):
        return value
    if isinstance(value, dict):
        return InstanceShape(gpu_model=str(value["gpu_model"]), gpus=int(value["gpus"]))
    model, gpus = value
    return InstanceShape(gpu_model=str(model), gpus=int(gpus))


def _clean_keys(ssh_keys: Iterable[str]) -> builtins.list[str]:
    keys = [key.strip() for key in ssh_keys if key and key.strip()]
    for key in keys:
        if "\n" in key or "\r" in key or "\0" in key:
            raise PermanentError("an SSH key spans several lines")
    if not keys:
        raise PermanentError("an instance needs at least one SSH key")
    return keys


def job_script(ssh_keys: builtins.list[str], ports: tuple[int, int]) -> str:
    """The batch script of an instance: dropbear with exactly these keys, until cancelled.

    Signals: USR1 = stop (requeue held), USR2 = reboot (kill the instance's processes, start
    dropbear again), TERM = a preemption notice (keep serving until the grace time ends).
    """
    keys = "\n".join(ssh_keys)
    low, high = ports
    return f"""#!/bin/bash
# A Backfill instance: an SSH server on a free port of this node, with the instance's keys.
export HOME="${{HOME:-$(getent passwd "$(id -un)" | cut -d: -f6)}}" USER="$(id -un)"
cd "$HOME" 2>/dev/null || true
want=run
trap 'want=stop; [ -n "$ssh" ] && kill "$ssh" 2>/dev/null' USR1
trap 'want=reboot; [ -n "$ssh" ] && kill "$ssh" 2>/dev/null' USR2
trap 'notice=1' TERM
ssh=
state="$HOME/.backfill/$SLURM_JOB_ID"
report() {{ scontrol update JobId="$SLURM_JOB_ID" Comment="$BACKFILL_META&$1" >/dev/null; }}
fail() {{
  echo "backfill: $1" >&2
  report "error=$(printf %s "$1" | tr -c 'A-Za-z0-9._-' '+')"
  exit 1
}}
umask 077
mkdir -p "$state/ssh" "$HOME/.ssh" || fail "cannot create $state"
chmod 700 "$HOME" "$HOME/.ssh" "$state" "$state/ssh" 2>/dev/null
cat > "$state/ssh/authorized_keys" <<'BACKFILL_KEYS'
{keys}
BACKFILL_KEYS
[ -f "$state/hostkey" ] || dropbearkey -t ed25519 -f "$state/hostkey" >/dev/null 2>&1 \\
  || fail "dropbearkey is missing on the node (apt-get install dropbear-bin)"
unshare -Urm true 2>/dev/null \
  || fail "this node cannot give the instance its own SSH keys (no user namespaces)"
uid=$(id -u); gid=$(id -g)
serve() {{  # $1 = port; dropbear in a mount namespace where ~/.ssh is this instance's
  unshare -Urm sh -c 'mount --bind "$1" "$2" && exec unshare -U --map-user="$3" --map-group="$4" \\
    dropbear -F -E -e -w -s -j -k -p "$5" -r "$6" -P "$7"' sh \\
    "$state/ssh" "$HOME/.ssh" "$uid" "$gid" "$1" "$state/hostkey" "$state/dropbear.pid" &
  ssh=$!
  for _ in $(seq 50); do
    kill -0 "$ssh" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}}
kill_instance() {{  # every process of this job but this script
  for dir in /proc/[0-9]*; do
    pid=${{dir#/proc/}}
    [ "$pid" = $$ ] && continue
    grep -qsxz "SLURM_JOB_ID=$SLURM_JOB_ID" "$dir/environ" && kill -KILL "$pid" 2>/dev/null
  done
}}
port=
for candidate in $(shuf -i {low}-{high} -n 40); do
  (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null && continue
  if serve "$candidate"; then port=$candidate; break; fi
  kill "$ssh" 2>/dev/null; ssh=
done
[ -n "$port" ] || fail "no free port for the SSH server"
report "port=$port&run=${{SLURM_RESTART_COUNT:-0}}"
while true; do
  wait "$ssh"
  case "$want" in
    stop)
      # Slurm takes the job off the node and keeps it held; nothing more to do here.
      scontrol requeuehold "$SLURM_JOB_ID" && exit 0
      fail "could not requeue itself" ;;
    reboot)
      want=run
      kill_instance
      sleep 0.2
      serve "$port" || fail "the SSH server did not come back after a reboot" ;;
    *)
      kill -0 "$ssh" 2>/dev/null && continue
      sleep 0.5
      serve "$port" || fail "the SSH server died and did not come back" ;;
  esac
done
"""
