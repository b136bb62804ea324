"""Reconciliation: one pass of `portal.instances.sync.reconcile` over 10,000 backend machines.

Both the pass and the baseline, the backend's `list()` call alone, are the best of three
(a shared machine's noise hits single measurements), same simulator, same run.

The 10,000 machines are written into the simulator's state file, which it loads at start
(zero-delay mode), with a matching running Instance row each. Creating them through the
driver is not possible: the simulator hands out public IPs from three documentation /24
ranges (762 addresses), and every create walks all machines and rewrites the state file.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

from django.db import connection
from django.utils import timezone

from bench import seed
from bench.provisioning import SIMULATOR_PORT, big_fleet, point_at
from bench.results import Results, Row
from portal.catalog.models import Image, InstanceType, Region
from portal.instances.models import Instance, State
from portal.instances.sync import reconcile
from portal.provisioning import get_backend
from portal.simulator.catalog import catalog_from_dict
from portal.simulator.process import SimulatorProcess
from portal.simulator.records import MachineRecord, Timings

MACHINES = int(os.environ.get("BENCH_MACHINES", "10000"))


def fleet(n: int, *, organization, owner) -> list[MachineRecord]:
    """`n` running machines and their instances (running for an hour, nothing to change)."""
    now = timezone.now()
    since = now - timedelta(hours=1)
    itype = InstanceType.objects.get(code="gpu_1x_h100")
    region = Region.objects.get(code="us-east-1")
    image = Image.objects.get(code=seed.IMAGE)
    catalog = catalog_from_dict(big_fleet(4 * n))
    node = catalog.nodes_for("us-east-1", "H100 80GB")[0].name
    machines, rows = [], []
    for i in range(n):
        request_id = uuid.uuid4()
        ip = f"10.{100 + i // 65536}.{i // 256 % 256}.{i % 256}"
        machine = MachineRecord(
            id=f"m-{uuid.uuid4().hex[:12]}",
            request_id=str(request_id),
            name=f"fleet-{i:05d}",
            region="us-east-1",
            instance_type="gpu_1x_h100",
            gpu_model="H100 80GB",
            gpu_count=1,
            image=seed.IMAGE,
            ssh_keys=[],
            preemptible=False,
            state="running",
            created_at=since.timestamp(),
            changed_at=since.timestamp() + 30,
            node=node,
            ip=ip,
            history=[{"state": "running", "at": since.timestamp() + 30}],
        )
        machines.append(machine)
        rows.append(
            Instance(
                organization=organization,
                created_by=owner,
                name=machine.name,
                instance_type=itype,
                region=region,
                image=image,
                gpus=1,
                request_id=request_id,
                backend_id=machine.id,
                state=State.RUNNING,
                state_changed_at=since,
                ip=ip,
                created_at=since,
                launched_at=since,
                running_since=since,
                synced_at=since,
                # As provisioning recorded them: the simulated machines log in as the image's
                # user, with sudo. Without it every machine's first pass wrote its SSH details,
                # one UPDATE each (100,000: ~3 minutes of a 20-minute run).
                ssh_sudo=True,
            )
        )
    Instance.objects.bulk_create(rows, batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE instances_instance")
    return machines


def write_state(path: Path, machines: list[MachineRecord], n: int) -> None:
    state = {
        "version": 1,
        "catalog": catalog_from_dict(big_fleet(4 * n)).to_dict(),
        "timings": asdict(Timings.zero()),
        "machines": [asdict(m) for m in machines],
    }
    path.write_text(json.dumps(state))


def run(results: Results, *, work: Path) -> None:
    org, owner, _ = seed.organization("Bench Fleet", owner_email="owner@fleet.bench")
    machines = fleet(MACHINES, organization=org, owner=owner)
    state = work / "simulator-fleet.json"
    write_state(state, machines, MACHINES)
    simulator = SimulatorProcess(state, catalog="default", zero_delays=True)
    simulator.port = SIMULATOR_PORT
    simulator.start(timeout=60)
    try:
        point_at(simulator)
        backend = get_backend()
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            listed = backend.list()
            timings.append(time.perf_counter() - started)
        baseline = min(timings)
        passes = []
        for _ in range(3):  # each pass finds the same: every machine agrees with its instance
            started = time.perf_counter()
            report = reconcile()
            passes.append(time.perf_counter() - started)
        seconds = min(passes)
    finally:
        simulator.stop()
    ratio = seconds / baseline
    results.add(
        Row(
            section="reconciliation",
            name=f"one pass over {len(listed):,} machines",
            figure=f"{seconds:.2f} s (best of 3 passes; the first {passes[0]:.2f} s)",
            baseline=f"list() {baseline:.2f} s (best of 3)",
            ratio=ratio,
            target="< 10x",
            met=ratio < 10,
        )
    )
    results.note(f"reconciliation report: {report.as_dict()}")
