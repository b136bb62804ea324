"""The simulated fleet's state and rules, without any HTTP.

Time drives every transition, evaluated lazily: each machine stores when its current transition
ends (`transition_at`) and, if reclaimed, when its GPUs are taken back (`reclaim_at`); every call
first advances all machines to "now". Nothing runs in the background, so the state file plus the
clock is the whole truth and a restart simply catches up.

A machine holds GPUs on one node exactly while `node` is set. Stopping releases them (a stopped
machine bills only storage) and starting places the machine again, so a start can hit
`CapacityExhausted`. Capacity is computed from the machines in `_used_gpus()`, the one place where
reservations (GPUs held for an account from a start to an end) are subtracted too: while in
force, a reservation's GPUs that its account's machines do not use count as used for everyone
else, and its account's machines are placed as if the reservation did not exist.
"""

from __future__ import annotations

import builtins  # `list` is also a method of Simulator: annotations after it name the type
import ipaddress
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from portal.lib.clusternaming import cluster_hosts, cluster_node_name, cluster_node_request_id

from .catalog import Catalog, CatalogError, catalog_from_dict
from .demand import Demand, parse_demand
from .records import (
    FINAL_STATES,
    NEXT_STATE,
    RECLAIMABLE,
    BadRequest,
    CapacityExhausted,
    Conflict,
    MachineRecord,
    Timings,
    UnknownMachine,
    UnknownVolume,
    VolumeRecord,
    WrongState,
    _iso,
)
from .store import COMPACT_MIN_BYTES, append_journal, encode_state, journal_line, save_state

STATE_VERSION = 1
MACHINE_FIELDS = tuple(f.name for f in fields(MachineRecord))
VOLUME_FIELDS = tuple(f.name for f in fields(VolumeRecord))

logger = logging.getLogger(__name__)

IP_POOLS = ("203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24")
# Written out once: building them on each create (ipaddress objects) was half its CPU.
PUBLIC_ADDRESSES = tuple(
    str(address) for pool in IP_POOLS for address in ipaddress.ip_network(pool).hosts()
)


VOLUME_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


def _text(value: Any, what: str, max_length: int = 200) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise BadRequest(f"{what} must be a non-empty string of at most {max_length} characters")
    return value


class Simulator:
    def __init__(
        self,
        catalog: Catalog,
        timings: Timings | None = None,
        *,
        state_path: Path | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        flush_interval: float = 0.0,
    ) -> None:
        self.catalog = catalog
        self.timings = timings or Timings()
        self.state_path = state_path
        self.clock = clock
        self.rng = rng or random.Random()
        self.machines: dict[str, MachineRecord] = {}
        self.reservations: dict[str, dict[str, Any]] = {}
        self.demand = Demand()

        self.volumes: dict[str, VolumeRecord] = {}
        # A network filesystem: a volume may be attached to several live machines at once.
        self.shared_volumes = True
        self.lock = threading.RLock()
        # 0: every change is written (journaled, fsynced) as it is made. > 0: changes are
        # queued and a background thread writes them at most every `flush_interval` seconds
        # (and `close()` writes what is left), so a burst of creates costs one write. The HTTP
        # server flushes before it answers a change (server.RequestHandler._make_durable), so
        # the interval only delays what reads catch up with the clock.
        self.flush_interval = flush_interval
        self._dirty = False
        # The state on disk is a snapshot and a journal of changes since (portal.simulator.
        # store): `_seq` numbers the last change, `_pending` holds the journal lines not
        # written yet, and the first write of a process is a snapshot (a journal left by a
        # crash may end in a torn line that must not be appended to).
        self._seq = 0
        self._pending: builtins.list[str] = []
        self._snapshot_due = True
        self._journal_bytes = 0
        self._snapshot_bytes = 0
        self.compact_bytes = COMPACT_MIN_BYTES
        self._write_lock = threading.Lock()
        self._closed = threading.Event()
        self._flusher: threading.Thread | None = None

    # Persistence

    def to_dict(self, *, records: bool = True) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "catalog": self.catalog.to_dict(),
            "timings": asdict(self.timings),
            "machines": [asdict(m) for m in self.machines.values()] if records else [],
            "reservations": list(self.reservations.values()),
            "demand": self.demand.to_dict(),
            "volumes": [asdict(v) for v in self.volumes.values()] if records else [],
            "shared_volumes": self.shared_volumes,
            "journal_seq": self._seq,
        }

    def _state_text(self) -> str:
        """`to_dict()` encoded, called with the lock held: the records are read as they are
        (encoded at once, nothing to copy) and json's C encoder writes them (copying each
        record with `asdict` and an indented dump made a snapshot at 500 machines ~170 ms)."""
        return encode_state(
            {
                **self.to_dict(records=False),
                "machines": [_fields(m, MACHINE_FIELDS) for m in self.machines.values()],
                "volumes": [_fields(v, VOLUME_FIELDS) for v in self.volumes.values()],
            }
        )

    def load(self, data: dict[str, Any]) -> None:
        """Take a saved state (`store.load_state`: the snapshot with its journal replayed)."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported simulator state version {data.get('version')!r}")
        self.catalog = catalog_from_dict(data["catalog"])
        self.timings = Timings(**data["timings"])
        self.machines = {m["id"]: MachineRecord(**m) for m in data["machines"]}
        self.reservations = {r["id"]: r for r in data.get("reservations", [])}
        self.demand = Demand.from_dict(data.get("demand") or {})

        self.volumes = {v["id"]: VolumeRecord(**v) for v in data.get("volumes", [])}
        self.shared_volumes = bool(data.get("shared_volumes", True))
        self._seq = int(data.get("journal_seq", 0))
        self._pending = []
        self._snapshot_due = True

    def _save(
        self,
        *,
        machines: Iterable[MachineRecord] = (),
        volumes: Iterable[VolumeRecord] = (),
        reservations: Iterable[dict[str, Any]] = (),
        released: Iterable[str] = (),
    ) -> None:
        """Called with the lock held after every change, naming the records it changed: they
        go to the journal (O(records changed)). A change that names none (the catalog, the
        timings, demand, a record forgotten) is written as a whole snapshot."""
        if self.state_path is None:
            return
        changed: dict[str, builtins.list[Any]] = {
            "machines": [_fields(m, MACHINE_FIELDS) for m in machines],
            "volumes": [_fields(v, VOLUME_FIELDS) for v in volumes],
            "reservations": list(reservations),
            "released": list(released),
        }
        if self._snapshot_due or not any(changed.values()):
            self._snapshot_due = True
            self._pending = []  # the snapshot holds them
        else:
            self._seq += 1
            self._pending.append(journal_line(self._seq, changed))
        self._dirty = True
        if self.flush_interval <= 0:
            self._write(self._take())
            return
        if self._flusher is None and not self._closed.is_set():
            self._flusher = threading.Thread(
                target=self._flush_loop, name="simulator-state-flusher", daemon=True
            )
            self._flusher.start()

    def _take(self) -> tuple[builtins.list[str], str | None] | None:
        """With the lock held: the journal lines to write, or the snapshot's text when one is
        due (the first write of a process, a change the journal does not hold, or a journal
        grown past the snapshot: compaction); None when nothing changed."""
        if not self._dirty:
            return None
        self._dirty = False
        lines, self._pending = self._pending, []
        size = sum(len(line) for line in lines)  # ASCII: json escapes the rest
        if self._snapshot_due or self._journal_bytes + size > max(
            self.compact_bytes, self._snapshot_bytes
        ):
            self._snapshot_due = False
            return [], self._state_text()
        return lines, None

    def _write(self, work: tuple[builtins.list[str], str | None] | None) -> None:
        if work is None or self.state_path is None:
            return
        lines, snapshot = work
        try:
            if snapshot is not None:
                save_state(self.state_path, snapshot)
                self._snapshot_bytes, self._journal_bytes = len(snapshot), 0
            else:
                self._journal_bytes += append_journal(self.state_path, lines)
        except BaseException:
            with self.lock:
                # A failed append may have left part of a line: the next write is a snapshot.
                self._dirty = self._snapshot_due = True
            raise

    def _flush_loop(self) -> None:
        while not self._closed.wait(self.flush_interval):
            try:
                self.flush()
            except Exception:  # a full disk must not stop the flusher; the next pass retries
                logger.exception("could not write the simulator state to %s", self.state_path)

    def flush(self) -> None:
        """Write what changed since the last write (fsynced) now. With a flush interval,
        concurrent callers share one write: the first takes every change made so far."""
        if self.state_path is None:
            return
        if self.flush_interval <= 0:
            with self.lock:  # changes are written as they are made, under the lock
                self._write(self._take())
            return
        with self._write_lock:
            with self.lock:
                work = self._take()
            self._write(work)

    def compact(self) -> None:
        """Write the whole state as a snapshot now and empty the journal."""
        with self.lock:
            self._snapshot_due = self._dirty = True
        self.flush()

    def close(self) -> None:
        """Stop the flusher and write what is not written yet (on shutdown), as a snapshot
        when the journal holds changes, so the next start reads one file."""
        self._closed.set()
        if self._flusher is not None:
            self._flusher.join(timeout=10)
        if self._dirty or self._journal_bytes:
            self.compact()

    # Time

    def _delay(self, kind: str) -> float:
        base = float(getattr(self.timings, kind))
        spread = base * self.timings.jitter
        return max(0.0, base + self.rng.uniform(-spread, spread))

    def _advance(self, machine: MachineRecord, now: float) -> None:
        while True:
            events = []
            if machine.reclaim_at is not None and machine.state in RECLAIMABLE:
                events.append((machine.reclaim_at, "reclaim"))
            if machine.transition_at is not None:
                events.append((machine.transition_at, "transition"))
            due = [event for event in events if event[0] <= now]
            if not due:
                return
            at, kind = min(due)
            if kind == "reclaim":
                self._end(machine, "interrupted", at, "reclaimed by the operator")
            elif machine.state == "provisioning" and machine.fails_on_boot:
                self._end(machine, "failed", at, "failed to boot: hardware fault")
            else:
                self._set_state(machine, NEXT_STATE[machine.state], at)

    def _advance_all(self) -> float:
        now = self.clock()
        for machine in self.machines.values():
            self._advance(machine, now)
        return now

    def _set_state(
        self, machine: MachineRecord, state: str, at: float, delay: str | None = None
    ) -> None:
        machine.state = state
        machine.changed_at = at
        machine.transition_at = at + self._delay(delay) if delay else None
        machine.detail = ""
        if state in ("stopped", "terminated"):
            machine.node = None
        if state == "stopped":
            machine.reclaim_at = None  # the notice was about GPUs it no longer holds
            machine.notice_at = None
        if state == "terminated":
            machine.ip = None
            machine.files = {}  # the machine's own disk dies with it; its volumes do not
        machine.history = [*machine.history[-49:], {"state": state, "at": at}]

    def _end(self, machine: MachineRecord, state: str, at: float, detail: str) -> None:
        self._set_state(machine, state, at)
        machine.node = None
        machine.ip = None
        machine.files = {}
        machine.detail = detail

    # Placement

    def _used_gpus(
        self,
        account: str | None = None,
        *,
        held: dict[str, int] | None = None,
        internal: dict[str, int] | None = None,
    ) -> dict[str, int]:
        """GPUs taken per node, as `account` sees them (None: as everyone else sees them):
        customers' machines, reservations, and the operator's own work on what is left.
        `held` (`_held_gpus()`) and `internal` (`_internal_by_node`) are computed if not
        given, for a caller that needs them too."""
        if held is None:
            held = self._held_gpus()
        used = dict(held) if account is None else self._held_gpus(account)
        if internal is None:
            internal = self._internal_by_node(held)
        for node, gpus in internal.items():
            used[node] = used.get(node, 0) + gpus
        return used

    def _internal_by_node(self, held: dict[str, int] | None = None) -> dict[str, int]:
        """Where the operator's own work runs: its wanted GPUs on what customers and
        reservations leave (`held`, as everyone else sees them: computed if not given),
        fullest nodes first (whole nodes stay free for large machines)."""
        if not self.demand.curves:
            return {}
        if held is None:
            held = self._held_gpus()
        now = self.clock()
        placed: dict[str, int] = {}
        for curve in self.demand.curves:
            nodes = self.catalog.nodes_for(curve.region, curve.gpu_model)
            fleet = sum(n.gpus for n in nodes)
            wanted = self.demand.wanted(curve.region, curve.gpu_model, fleet, now)
            for node in sorted(nodes, key=lambda n: (n.gpus - held.get(n.name, 0), n.name)):
                take = min(wanted, node.gpus - held.get(node.name, 0))
                if take > 0:
                    placed[node.name] = take
                    wanted -= take
        return placed

    def _held_gpus(self, account: str | None = None) -> dict[str, int]:
        """GPUs held per node by machines and reservations, as `account` sees them."""
        used: dict[str, int] = {}
        own: dict[tuple[str, str, str], int] = {}  # on-demand GPUs per (account, region, model)
        for machine in self.machines.values():
            if machine.node is not None:
                used[machine.node] = used.get(machine.node, 0) + machine.gpu_count
                if machine.account and not machine.preemptible:
                    key = (machine.account, machine.region, machine.gpu_model)
                    own[key] = own.get(key, 0) + machine.gpu_count
        now = self.clock()
        for reservation in sorted(self.reservations.values(), key=lambda r: r["id"]):
            if not reservation["start"] <= now < reservation["end"]:
                continue
            if account is not None and reservation["account"] == account:
                continue  # its own machines may use every GPU it holds
            key = (reservation["account"] or "", reservation["region"], reservation["gpu_model"])
            in_use = min(own.get(key, 0), reservation["gpus"])
            own[key] = own.get(key, 0) - in_use
            held = reservation["gpus"] - in_use
            nodes = self.catalog.nodes_for(reservation["region"], reservation["gpu_model"])
            for node in sorted(nodes, key=lambda n: used.get(n.name, 0) - n.gpus):
                take = min(held, node.gpus - used.get(node.name, 0))
                if take > 0:
                    used[node.name] = used.get(node.name, 0) + take
                    held -= take
        return used

    def _place(
        self, region: str, gpu_model: str, gpu_count: int, account: str | None = None
    ) -> str:
        """Best fit: the node that has the fewest free GPUs left after placing the machine."""
        used = self._used_gpus(account)
        best: tuple[int, str] | None = None
        for node in self.catalog.nodes_for(region, gpu_model):
            left = node.gpus - used.get(node.name, 0) - gpu_count
            if left >= 0 and (best is None or left < best[0]):
                best = (left, node.name)
        if best is None:
            raise CapacityExhausted(
                f"no capacity for {gpu_count}x {gpu_model} in {region} right now"
            )
        return best[1]

    def _allocate_ip(self) -> str:
        """The first public address no machine holds, in the pools' order."""
        taken = {m.ip for m in self.machines.values() if m.ip}
        for address in PUBLIC_ADDRESSES:
            if address not in taken:
                return address
        raise CapacityExhausted("no public IP addresses left")

    # The provisioning API

    def create(
        self,
        *,
        request_id: Any,
        instance_type: Any,
        region: Any,
        image: Any,
        ssh_keys: Any,
        name: Any,
        preemptible: Any,
        fails_on_boot: bool = False,
        account: Any = None,
        volumes: Any = None,
    ) -> tuple[dict[str, Any], bool]:
        """Returns the machine and whether it was created now (False: an earlier request)."""
        volumes = [] if volumes is None else volumes
        if not isinstance(volumes, list) or not all(isinstance(v, str) for v in volumes):
            raise BadRequest("volumes must be a list of volume ids")
        if len(set(volumes)) != len(volumes):
            raise BadRequest("a volume is listed twice")
        request_id = _text(request_id, "request_id", 128)
        name = _text(name, "name")
        image = _text(image, "image")
        if not isinstance(ssh_keys, list) or not all(isinstance(k, str) for k in ssh_keys):
            raise BadRequest("ssh_keys must be a list of strings")
        if not isinstance(preemptible, bool):
            raise BadRequest("preemptible must be true or false")
        if account is not None:
            account = _text(account, "account", 128)
        with self.lock:
            now = self._advance_all()
            existing = self._by_request(request_id)
            if existing is not None:
                asked = (instance_type, region, image, name, preemptible, volumes)
                had = (
                    existing.instance_type,
                    existing.region,
                    existing.image,
                    existing.name,
                    existing.preemptible,
                    existing.volumes,
                )
                if asked != had:
                    raise Conflict(f"request_id {request_id!r} was used with other parameters")
                return existing.public(), False

            itype = self.catalog.instance_types.get(instance_type)
            if itype is None:
                raise BadRequest(f"unknown instance type {instance_type!r}")
            if region not in self.catalog.regions:
                raise BadRequest(f"unknown region {region!r}")
            if not self.catalog.nodes_for(region, itype.gpu_model):
                raise BadRequest(f"{instance_type} is not offered in {region}")
            self._check_attachable(volumes, region)
            # A preemptible machine never draws on a reservation.
            node = self._place(
                region, itype.gpu_model, itype.gpu_count, None if preemptible else account
            )
            machine = MachineRecord(
                id=f"m-{uuid.uuid4().hex[:12]}",
                request_id=request_id,
                name=name,
                region=region,
                instance_type=itype.name,
                gpu_model=itype.gpu_model,
                gpu_count=itype.gpu_count,
                image=image,
                ssh_keys=list(ssh_keys),
                preemptible=preemptible,
                state="provisioning",
                created_at=now,
                changed_at=now,
                node=node,
                ip=self._allocate_ip(),
                fails_on_boot=fails_on_boot,
                account=account,
                volumes=list(volumes),
            )
            self._set_state(machine, "provisioning", now, "provision")
            self.machines[machine.id] = machine
            self._advance(machine, now)
            self._save(machines=[machine])
            return machine.public(), True

    def create_cluster(
        self,
        *,
        request_id: Any,
        instance_type: Any,
        region: Any,
        image: Any,
        nodes: Any,
        ssh_keys: Any,
        preemptible: Any,
        name: Any,
        volumes: Any = (),
        account: Any = None,
        fails_on_boot: builtins.list[bool] | None = None,
    ) -> tuple[builtins.list[dict[str, Any]], bool]:
        """N machines of one type on the nodes of one fabric, all or none.

        Returns the machines in node order and whether they were created now (False: an
        earlier request). Machine i is `<name>-i` with the request id
        `cluster_node_request_id(request_id, i)`; node 0 alone has a public address; all have
        a private one on the cluster's own network and the same hosts file.
        """
        request_id = _text(request_id, "request_id", 128)
        name = _text(name, "name", 58)
        image = _text(image, "image")
        if isinstance(nodes, bool) or not isinstance(nodes, int) or not 2 <= nodes <= 1024:
            raise BadRequest("nodes must be a whole number from 2 to 1024")
        if not isinstance(ssh_keys, list) or not all(isinstance(k, str) for k in ssh_keys):
            raise BadRequest("ssh_keys must be a list of strings")
        if not isinstance(volumes, list | tuple) or not all(isinstance(v, str) for v in volumes):
            raise BadRequest("volumes must be a list of volume ids")
        volumes = list(volumes)
        if len(set(volumes)) != len(volumes):
            raise BadRequest("a volume is listed twice")
        if not isinstance(preemptible, bool):
            raise BadRequest("preemptible must be true or false")
        if account is not None:
            account = _text(account, "account", 128)
        with self.lock:
            now = self._advance_all()
            existing = sorted(
                (m for m in self.machines.values() if m.cluster == request_id),
                key=lambda m: m.node_index or 0,
            )
            if existing:
                head = existing[0]
                asked = (instance_type, region, image, name, preemptible, nodes, volumes)
                had = (
                    head.instance_type,
                    head.region,
                    head.image,
                    head.name.rsplit("-", 1)[0],
                    head.preemptible,
                    len(existing),
                    head.volumes,
                )
                if asked != had:
                    raise Conflict(f"request_id {request_id!r} was used with other parameters")
                return [m.public() for m in existing], False

            itype = self.catalog.instance_types.get(instance_type)
            if itype is None:
                raise BadRequest(f"unknown instance type {instance_type!r}")
            if region not in self.catalog.regions:
                raise BadRequest(f"unknown region {region!r}")
            if not self.catalog.nodes_for(region, itype.gpu_model):
                raise BadRequest(f"{instance_type} is not offered in {region}")
            self._check_attachable(volumes, region)
            if volumes and not self.shared_volumes:
                raise WrongState(
                    "this backend attaches a volume to one machine at a time; the nodes of a "
                    "cluster cannot share one"
                )
            placement = self._place_together(
                region, itype.gpu_model, itype.gpu_count, nodes, None if preemptible else account
            )
            network = self._private_network()
            addresses = [str(network[10 + i]) for i in range(nodes)]
            names = [cluster_node_name(name, i) for i in range(nodes)]
            hosts = cluster_hosts(list(zip(addresses, names, strict=True)))
            fails = list(fails_on_boot or [])
            created = []
            for index, node in enumerate(placement):
                machine = MachineRecord(
                    id=f"m-{uuid.uuid4().hex[:12]}",
                    request_id=cluster_node_request_id(request_id, index),
                    name=names[index],
                    region=region,
                    instance_type=itype.name,
                    gpu_model=itype.gpu_model,
                    gpu_count=itype.gpu_count,
                    image=image,
                    ssh_keys=list(ssh_keys),
                    preemptible=preemptible,
                    state="provisioning",
                    created_at=now,
                    changed_at=now,
                    node=node,
                    ip=self._allocate_ip() if index == 0 else None,
                    fails_on_boot=bool(fails[index]) if index < len(fails) else False,
                    account=account,
                    volumes=list(volumes),
                    cluster=request_id,
                    node_index=index,
                    private_ip=addresses[index],
                    hosts=hosts,
                )
                self._set_state(machine, "provisioning", now, "provision")
                self.machines[machine.id] = machine
                created.append(machine)
            for machine in created:
                self._advance(machine, now)
            self._save(machines=created)
            return [m.public() for m in created], True

    def _place_together(
        self, region: str, gpu_model: str, gpu_count: int, count: int, account: str | None
    ) -> builtins.list[str]:
        """The nodes of one fabric for `count` machines (best fit, one machine at a time), or
        CapacityExhausted saying how many would fit together now."""
        used = self._used_gpus(account)
        best_fit = 0
        for nodes in self.catalog.fabrics_for(region, gpu_model).values():
            taken = dict(used)
            chosen: builtins.list[str] = []
            while len(chosen) < count:
                fits = [
                    (n.gpus - taken.get(n.name, 0) - gpu_count, n.name)
                    for n in nodes
                    if n.gpus - taken.get(n.name, 0) >= gpu_count
                ]
                if not fits:
                    break
                node = min(fits)[1]
                taken[node] = taken.get(node, 0) + gpu_count
                chosen.append(node)
            if len(chosen) == count:
                return chosen
            best_fit = max(best_fit, len(chosen))
        raise CapacityExhausted(
            f"no room for {count} machines of {gpu_count}x {gpu_model} together on one fabric "
            f"in {region} right now: {best_fit} would fit",
            available=best_fit,
        )

    def _private_network(self) -> ipaddress.IPv4Network:
        """A /16 of 10.0.0.0/8 that no living cluster uses."""
        taken = {
            m.private_ip.split(".")[1]
            for m in self.machines.values()
            if m.private_ip and m.state not in FINAL_STATES
        }
        for second in range(256):
            if str(second) not in taken:
                return ipaddress.IPv4Network(f"10.{second}.0.0/16")
        raise CapacityExhausted("no private networks left")

    def _by_request(self, request_id: str) -> MachineRecord | None:
        return next((m for m in self.machines.values() if m.request_id == request_id), None)

    def _machine(self, machine_id: str) -> MachineRecord:
        machine = self.machines.get(machine_id)
        if machine is None:
            raise UnknownMachine(f"no machine {machine_id!r}")
        return machine

    def get(self, machine_id: str) -> dict[str, Any]:
        with self.lock:
            self._advance_all()
            return self._machine(machine_id).public()

    def list(self) -> list[dict[str, Any]]:
        with self.lock:
            self._advance_all()
            return [m.public() for m in sorted(self.machines.values(), key=_creation_order)]

    def cluster(self, request_id: str) -> builtins.list[dict[str, Any]]:
        """The machines of the cluster created with `request_id`, in node order ([] if none)."""
        with self.lock:
            self._advance_all()
            nodes = [m for m in self.machines.values() if m.cluster == request_id]
            return [m.public() for m in sorted(nodes, key=lambda m: m.node_index or 0)]

    def action(self, machine_id: str, action: str) -> dict[str, Any]:
        handlers = {
            "start": self._start,
            "stop": self._stop,
            "reboot": self._reboot,
            "terminate": self._terminate,
        }
        if action not in handlers:
            raise UnknownMachine(f"no action {action!r}")
        with self.lock:
            now = self._advance_all()
            machine = self._machine(machine_id)
            if handlers[action](machine, now):
                self._advance(machine, now)
                self._save(machines=[machine])
            return machine.public()

    # Each handler returns whether it changed anything; doing nothing is how they stay idempotent.

    def _refuse(self, machine: MachineRecord, action: str) -> WrongState:
        return WrongState(f"cannot {action} machine {machine.id} while it is {machine.state}")

    def _start(self, machine: MachineRecord, now: float) -> bool:
        if machine.state in ("provisioning", "starting", "running", "rebooting"):
            return False
        if machine.state != "stopped":
            raise self._refuse(machine, "start")
        machine.node = self._place(
            machine.region,
            machine.gpu_model,
            machine.gpu_count,
            None if machine.preemptible else machine.account,
        )
        self._set_state(machine, "starting", now, "start")
        return True

    def _stop(self, machine: MachineRecord, now: float) -> bool:
        if machine.state in ("stopping", "stopped"):
            return False
        if machine.state not in ("running", "starting", "rebooting"):
            raise self._refuse(machine, "stop")
        self._set_state(machine, "stopping", now, "stop")
        return True

    def _reboot(self, machine: MachineRecord, now: float) -> bool:
        if machine.state == "rebooting":
            return False
        if machine.state != "running":
            raise self._refuse(machine, "reboot")
        self._set_state(machine, "rebooting", now, "reboot")
        return True

    def _terminate(self, machine: MachineRecord, now: float) -> bool:
        if machine.state == "terminating" or machine.state in FINAL_STATES:
            return False
        self._set_state(machine, "terminating", now, "terminate")
        return True

    def capacity(self) -> builtins.list[dict[str, Any]]:
        with self.lock:
            now = self._advance_all()
            held = self._held_gpus()
            internal = self._internal_by_node(held)
            used = self._used_gpus(held=held, internal=internal)
            customer: dict[str, int] = {}
            for machine in self.machines.values():
                if machine.node is not None:
                    customer[machine.node] = customer.get(machine.node, 0) + machine.gpu_count
            places: dict[tuple[str, str], dict[str, Any]] = {}  # worked out once per place
            result = []
            for itype in self.catalog.instance_types.values():
                for region in self.catalog.regions:
                    place = places.get((region, itype.gpu_model))
                    if place is None:
                        place = places[(region, itype.gpu_model)] = self._place_capacity(
                            region, itype.gpu_model, now, used, internal, customer
                        )
                    if not place["free"]:
                        continue
                    result.append(
                        {
                            "region": region,
                            "instance_type": itype.name,
                            "gpu_model": itype.gpu_model,
                            "gpu_count": itype.gpu_count,
                            "free_gpus": place["free_gpus"],
                            "total_gpus": place["total_gpus"],
                            "free_instances": sum(f // itype.gpu_count for f in place["free"]),
                            "internal_gpus": place["internal_gpus"],
                            "customer_gpus": place["customer_gpus"],
                            "shortfall_gpus": place["shortfall_gpus"],
                            "internal_forecast_gpus": place["internal_forecast_gpus"],
                        }
                    )
            return result

    def _place_capacity(
        self,
        region: str,
        gpu_model: str,
        now: float,
        used: dict[str, int],
        internal: dict[str, int],
        customer: dict[str, int],
    ) -> dict[str, Any]:
        """One place's figures for `capacity()`, the same for each instance type there."""
        nodes = self.catalog.nodes_for(region, gpu_model)
        fleet = sum(n.gpus for n in nodes)
        internal_gpus = sum(internal.get(n.name, 0) for n in nodes)
        free = [n.gpus - used.get(n.name, 0) for n in nodes]
        return {
            "free": free,
            "free_gpus": sum(free),
            "total_gpus": fleet,
            "internal_gpus": internal_gpus,
            "customer_gpus": sum(customer.get(n.name, 0) for n in nodes),
            "shortfall_gpus": max(
                0, self.demand.wanted(region, gpu_model, fleet, now) - internal_gpus
            )
            if nodes
            else 0,
            "internal_forecast_gpus": self.demand.forecast(region, gpu_model, fleet, now)
            if nodes
            else 0,
        }

    # Internal demand and the portal's reclaims

    def set_demand(self, body: Any) -> dict[str, Any]:
        """Replace the internal-demand curves (see portal.simulator.demand)."""
        with self.lock:
            now = self._advance_all()
            places = {(n.region, n.gpu_model) for n in self.catalog.nodes}
            self.demand = parse_demand(body, now=now, known_places=places)
            self._save()
            return self.demand_view()

    def demand_view(self) -> dict[str, Any]:
        """The curves, and per place what the operator's work wants and gets now."""
        with self.lock:
            now = self._advance_all()
            internal = self._internal_by_node()
            places = []
            for curve in self.demand.curves:
                nodes = self.catalog.nodes_for(curve.region, curve.gpu_model)
                fleet = sum(n.gpus for n in nodes)
                wanted = self.demand.wanted(curve.region, curve.gpu_model, fleet, now)
                got = sum(internal.get(n.name, 0) for n in nodes)
                places.append(
                    {
                        "region": curve.region,
                        "gpu_model": curve.gpu_model,
                        "fleet_gpus": fleet,
                        "wanted_gpus": wanted,
                        "internal_gpus": got,
                        "shortfall_gpus": max(0, wanted - got),
                    }
                )
            sim_hour = (self.demand.sim_time(now) % 86400) / 3600
            return {**self.demand.to_dict(), "hour_of_day": round(sim_hour, 3), "now": places}

    def reclaim_machine(self, machine_id: str, at: Any) -> dict[str, Any]:
        """The portal ends this preemptible machine at `at` (epoch seconds), after the notice
        it gave. Idempotent; the earliest time asked stands; a no-op once it has ended."""
        if isinstance(at, bool) or not isinstance(at, int | float):
            raise BadRequest("at must be a time")
        with self.lock:
            now = self._advance_all()
            machine = self._machine(machine_id)
            if not machine.preemptible:
                raise BadRequest(f"machine {machine.id} is not preemptible; it is never reclaimed")
            if machine.state in FINAL_STATES or machine.state not in RECLAIMABLE:
                return machine.public()
            if machine.reclaim_at is None or float(at) < machine.reclaim_at:
                machine.reclaim_at = float(at)
                machine.detail = "reclaim ordered by the operator"
                self._advance(machine, now)
                self._save(machines=[machine])
            return machine.public()

    def notice_machine(self, machine_id: str, at: Any) -> dict[str, Any]:
        """The portal announces (or, with `at` None, withdraws) a reclaim of this preemptible
        machine at `at` (epoch seconds) that it may still call off: the time is on the
        machine's metadata, nothing ends (`reclaim_machine` ends it). A no-op once it ended."""
        if at is not None and (isinstance(at, bool) or not isinstance(at, int | float)):
            raise BadRequest("at must be a time or null")
        with self.lock:
            self._advance_all()
            machine = self._machine(machine_id)
            if not machine.preemptible:
                raise BadRequest(f"machine {machine.id} is not preemptible; it is never reclaimed")
            if machine.state in FINAL_STATES:
                return machine.public()
            machine.notice_at = None if at is None else float(at)
            self._save(machines=[machine])
            return machine.public()

    def interruption(self, machine_id: str) -> dict[str, Any] | None:
        """What the machine's metadata service says: the reclaim time (the end ordered, else
        a notice announced), or None."""
        with self.lock:
            self._advance_all()
            machine = self._machine(machine_id)
            at = machine.reclaim_at if machine.reclaim_at is not None else machine.notice_at
            if at is None or machine.state in FINAL_STATES:
                return None
            return {"action": "terminate", "time": _iso(at)}

    # Volumes

    def _check_attachable(self, volume_ids: builtins.list[str], region: str) -> None:
        for volume_id in volume_ids:
            volume = self.volumes.get(volume_id)
            if volume is None or volume.state == "deleted":
                raise UnknownVolume(f"no volume {volume_id!r}")
            if volume.region != region:
                raise BadRequest(
                    f"volume {volume_id} is in {volume.region}; the machine would be in {region}"
                )
            holders = self._attached_to(volume_id)
            if holders and not self.shared_volumes:
                raise WrongState(
                    f"volume {volume_id} is attached to machine {holders[0]}; this backend "
                    "attaches a volume to one machine at a time"
                )

    def _attached_to(self, volume_id: str) -> builtins.list[str]:
        return [
            m.id
            for m in sorted(self.machines.values(), key=_creation_order)
            if volume_id in m.volumes and m.state not in FINAL_STATES
        ]

    def _volume(self, volume_id: str) -> VolumeRecord:
        volume = self.volumes.get(volume_id)
        if volume is None:
            raise UnknownVolume(f"no volume {volume_id!r}")
        return volume

    def _volume_public(self, volume: VolumeRecord) -> dict[str, Any]:
        return volume.public(self._attached_to(volume.id))

    def _storage_used(self, region: str) -> int:
        return sum(
            v.size_gb for v in self.volumes.values() if v.region == region and v.state != "deleted"
        )

    def _check_room(self, region: str, more_gb: int) -> None:
        total = self.catalog.storage_gb(region)
        free = total - self._storage_used(region)
        if more_gb > free:
            raise CapacityExhausted(
                f"no room for {more_gb} GB more in {region}: {free} GB of {total} GB are free"
            )

    def volume_create(
        self, *, request_id: Any, region: Any, size_gb: Any, name: Any, account: Any = None
    ) -> tuple[dict[str, Any], bool]:
        request_id = _text(request_id, "request_id", 128)
        if not isinstance(name, str) or not VOLUME_NAME.match(name):
            raise BadRequest(
                "name must be 1 to 63 lower-case letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        if isinstance(size_gb, bool) or not isinstance(size_gb, int) or size_gb < 1:
            raise BadRequest("size_gb must be a whole number of GB, at least 1")
        if account is not None:
            account = _text(account, "account", 128)
        with self.lock:
            now = self._advance_all()
            existing = next((v for v in self.volumes.values() if v.request_id == request_id), None)
            if existing is not None:
                if (existing.region, existing.name) != (region, name):
                    raise Conflict(f"request_id {request_id!r} was used with other parameters")
                return self._volume_public(existing), False
            if region not in self.catalog.regions:
                raise BadRequest(f"unknown region {region!r}")
            self._check_room(region, size_gb)
            volume = VolumeRecord(
                id=f"v-{uuid.uuid4().hex[:12]}",
                request_id=request_id,
                name=name,
                region=region,
                size_gb=size_gb,
                state="available",
                created_at=now,
                changed_at=now,
                account=account,
            )
            self.volumes[volume.id] = volume
            self._save(volumes=[volume])
            return self._volume_public(volume), True

    def volume_get(self, volume_id: str) -> dict[str, Any]:
        with self.lock:
            self._advance_all()
            return self._volume_public(self._volume(volume_id))

    def volume_list(self) -> builtins.list[dict[str, Any]]:
        with self.lock:
            self._advance_all()
            volumes = sorted(self.volumes.values(), key=lambda v: (v.created_at, v.id))
            return [self._volume_public(v) for v in volumes]

    def volume_resize(self, volume_id: str, size_gb: Any) -> dict[str, Any]:
        if isinstance(size_gb, bool) or not isinstance(size_gb, int) or size_gb < 1:
            raise BadRequest("size_gb must be a whole number of GB, at least 1")
        with self.lock:
            now = self._advance_all()
            volume = self._volume(volume_id)
            if volume.state == "deleted":
                raise WrongState(f"volume {volume_id} is deleted")
            if size_gb < volume.size_gb:
                raise WrongState(f"volume {volume_id} has {volume.size_gb} GB; a volume only grows")
            if size_gb > volume.size_gb:
                self._check_room(volume.region, size_gb - volume.size_gb)
                volume.size_gb = size_gb
                volume.changed_at = now
                self._save(volumes=[volume])
            return self._volume_public(volume)

    def volume_delete(self, volume_id: str) -> dict[str, Any] | None:
        with self.lock:
            now = self._advance_all()
            volume = self.volumes.get(volume_id)
            if volume is None:
                return None
            if volume.state != "deleted":
                holders = self._attached_to(volume_id)
                if holders:
                    raise WrongState(
                        f"volume {volume_id} is attached to machine {', '.join(holders)}"
                    )
                volume.state = "deleted"
                volume.changed_at = now
                volume.files = {}
                self._save(volumes=[volume])
            return self._volume_public(volume)

    def storage_capacity(self) -> builtins.list[dict[str, Any]]:
        with self.lock:
            result = []
            for region in self.catalog.regions:
                total = self.catalog.storage_gb(region)
                result.append(
                    {
                        "region": region,
                        "total_gb": total,
                        "free_gb": max(0, total - self._storage_used(region)),
                    }
                )
            return result

    def set_shared_volumes(self, shared: bool) -> None:
        with self.lock:
            self.shared_volumes = shared
            self._save()

    def lose_volume(self, volume_id: str) -> None:
        """The backend forgets a volume entirely (its data with it)."""
        with self.lock:
            self._volume(volume_id)
            del self.volumes[volume_id]
            self._save()

    # Files, as a program on the machine writes and reads them (for tests and demos)

    def _file_place(self, machine: MachineRecord, path: str) -> tuple[dict[str, str], str]:
        """The dict that holds `path` as the machine sees it: a volume's or the machine's."""
        if not isinstance(path, str) or not path.startswith("/") or ".." in path.split("/"):
            raise BadRequest("path must be an absolute path without '..'")
        for volume_id in machine.volumes:
            volume = self.volumes.get(volume_id)
            if volume is not None and volume.state != "deleted":
                prefix = volume.mount_path + "/"
                if path.startswith(prefix) and len(path) > len(prefix):
                    return volume.files, path[len(prefix) :]
        return machine.files, path

    def write_file(self, machine_id: str, path: Any, content: Any) -> None:
        if not isinstance(content, str):
            raise BadRequest("content must be a string")
        with self.lock:
            self._advance_all()
            machine = self._machine(machine_id)
            if machine.state != "running":
                raise WrongState(f"machine {machine_id} is {machine.state}; it must be running")
            place, key = self._file_place(machine, path)
            place[key] = content
            volumes = (self.volumes[v] for v in machine.volumes if v in self.volumes)
            self._save(machines=[machine], volumes=volumes)

    def read_file(self, machine_id: str, path: Any) -> str:
        with self.lock:
            self._advance_all()
            machine = self._machine(machine_id)
            if machine.state != "running":
                raise WrongState(f"machine {machine_id} is {machine.state}; it must be running")
            place, key = self._file_place(machine, path)
            if key not in place:
                raise UnknownMachine(f"no file {path} on machine {machine_id}")
            return place[key]

    # Reservations

    def reserve(
        self,
        reservation_id: Any,
        *,
        region: Any,
        gpu_model: Any,
        gpus: Any,
        start: Any,
        end: Any,
        account: Any = None,
    ) -> tuple[dict[str, Any], bool]:
        """Hold GPUs for `account` over [start, end) (epoch seconds). Idempotent on the id.

        Refused (CapacityExhausted) when, at some moment of the period, the reservations in
        force would hold more GPUs than the region has of that model.
        """
        reservation_id = _text(reservation_id, "reservation_id", 128)
        if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
            raise BadRequest("gpus must be a whole number of at least 1")
        if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in (start, end)):
            raise BadRequest("start and end must be numbers (epoch seconds)")
        if end <= start:
            raise BadRequest("end must be after start")
        if account is not None:
            account = _text(account, "account", 128)
        wanted = {
            "id": reservation_id,
            "region": region,
            "gpu_model": gpu_model,
            "gpus": gpus,
            "start": float(start),
            "end": float(end),
            "account": account,
        }
        with self.lock:
            self._advance_all()
            existing = self.reservations.get(reservation_id)
            if existing is not None:
                if existing != wanted:
                    raise Conflict(f"reservation {reservation_id!r} exists with other parameters")
                return dict(existing), False
            nodes = self.catalog.nodes_for(region, gpu_model)
            if not nodes:
                raise BadRequest(f"no {gpu_model!r} nodes in region {region!r}")
            fleet = sum(node.gpus for node in nodes)
            others = [
                r
                for r in self.reservations.values()
                if (r["region"], r["gpu_model"]) == (region, gpu_model)
                and r["start"] < end
                and r["end"] > start
            ]
            moments = {float(start), *(r["start"] for r in others if start <= r["start"] < end)}
            peak = max(
                sum(r["gpus"] for r in others if r["start"] <= moment < r["end"])
                for moment in moments
            )
            if peak + gpus > fleet:
                raise CapacityExhausted(
                    f"cannot reserve {gpus}x {gpu_model} in {region}: the fleet has {fleet} and "
                    f"other reservations hold up to {peak} in that period"
                )
            self.reservations[reservation_id] = wanted
            self._save(reservations=[wanted])
            return dict(wanted), True

    def release(self, reservation_id: str) -> bool:
        with self.lock:
            released = self.reservations.pop(reservation_id, None) is not None
            if released:
                self._save(released=[reservation_id])
            return released

    def list_reservations(self) -> builtins.list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in sorted(self.reservations.values(), key=lambda r: r["id"])]

    def catalog_view(self) -> dict[str, Any]:
        with self.lock:
            return {"regions": self.catalog.regions, **self.catalog.to_dict()}

    # Control: what the operator's side and the tests do to the fleet

    def lose(self, machine_id: str) -> None:
        """The backend forgets a machine entirely, as if its record had been lost."""
        with self.lock:
            self._machine(machine_id)
            del self.machines[machine_id]
            self._save()

    def fail(self, machine_id: str, detail: str = "hardware fault") -> dict[str, Any]:
        with self.lock:
            now = self._advance_all()
            machine = self._machine(machine_id)
            if machine.state not in FINAL_STATES:
                self._end(machine, "failed", now, detail)
                self._save(machines=[machine])
            return machine.public()

    def reclaim(
        self,
        *,
        machine_ids: builtins.list[str] | None = None,
        region: str | None = None,
        gpu_model: str | None = None,
        gpus: int | None = None,
        notice: float | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """Internal demand rises: announce the reclaim of preemptible machines.

        Picks the given machines, or the newest matching ones until `gpus` GPUs are covered
        (all matching ones without `gpus`). Each gets `reclaim_at = now + notice`.
        """
        with self.lock:
            now = self._advance_all()
            notice = self.timings.reclaim_notice if notice is None else notice
            if machine_ids is not None:
                chosen = [self._machine(mid) for mid in machine_ids]
                for machine in chosen:
                    if not machine.preemptible:
                        raise BadRequest(f"machine {machine.id} is not preemptible")
            else:
                chosen = list(self._reclaim_candidates(region, gpu_model, gpus))
            chosen = self._whole_clusters(chosen)
            noticed = []
            for machine in chosen:
                if machine.state in RECLAIMABLE and machine.reclaim_at is None:
                    machine.reclaim_at = now + notice
                    machine.detail = "reclaim announced by the operator"
                    self._advance(machine, now)
                    noticed.append(machine)
            if noticed:
                self._save(machines=noticed)
            return [m.public() for m in noticed]

    def _whole_clusters(self, chosen: builtins.list[MachineRecord]) -> builtins.list[MachineRecord]:
        """A cluster is reclaimed whole: every node of a chosen node's cluster joins it."""
        clusters = {m.cluster for m in chosen if m.cluster}
        if not clusters:
            return chosen
        siblings = [
            m
            for m in sorted(self.machines.values(), key=_creation_order)
            if m.cluster in clusters and m not in chosen
        ]
        return [*chosen, *siblings]

    def _reclaim_candidates(
        self, region: str | None, gpu_model: str | None, gpus: int | None
    ) -> Iterator[MachineRecord]:
        covered = 0
        for machine in sorted(self.machines.values(), key=_creation_order, reverse=True):
            if gpus is not None and covered >= gpus:
                return
            if (
                machine.preemptible
                and machine.state in RECLAIMABLE
                and machine.reclaim_at is None
                and region in (None, machine.region)
                and gpu_model in (None, machine.gpu_model)
            ):
                covered += machine.gpu_count
                yield machine

    def set_catalog(self, catalog: Catalog) -> None:
        """Replace the fleet; refused while a machine holds GPUs that the new fleet lacks."""
        with self.lock:
            self._advance_all()
            for node_name, used in self._held_gpus().items():
                old, new = self.catalog.node(node_name), catalog.node(node_name)
                if (
                    new is None
                    or old is None
                    or new.gpus < used
                    or ((new.region, new.gpu_model) != (old.region, old.gpu_model))
                ):
                    raise Conflict(f"node {node_name} runs machines the new fleet cannot hold")
            self.catalog = catalog
            self._save()

    def set_timings(self, changes: dict[str, Any]) -> Timings:
        with self.lock:
            self.timings = self.timings.updated(changes)
            self._save()
            return self.timings

    def reset(self, catalog: Catalog, timings: Timings) -> None:
        with self.lock:
            self.machines.clear()
            self.reservations.clear()
            self.demand = Demand()

            self.volumes.clear()
            self.shared_volumes = True
            self.catalog = catalog
            self.timings = timings
            self._save()

    def dump(self) -> dict[str, Any]:
        """Everything, node placement included, for tests and debugging."""
        with self.lock:
            self._advance_all()
            data = self.to_dict()
            data["used_gpus"] = self._used_gpus()
            data["volumes"] = [
                {**asdict(v), "attached_to": self._attached_to(v.id)} for v in self.volumes.values()
            ]
            return data


def _creation_order(machine: MachineRecord) -> tuple[float, str]:
    return (machine.created_at, machine.id)


def _fields(record: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """A record's fields as they are (not copied: for encoding at once)."""
    return {name: getattr(record, name) for name in names}


def parse_catalog(data: Any) -> Catalog:
    try:
        return catalog_from_dict(data)
    except CatalogError as exc:
        raise BadRequest(str(exc)) from exc
