"""The Slurm driver's view of free GPUs at a create: its nodes and our pending jobs, read as
one view while a job starts between the reads (slurmrestd's answers scripted: the moment a
job starts cannot be held still in the real Slurm, whose contract tests run the rest)."""

from __future__ import annotations

from typing import Any

from portal.provisioning.drivers.slurm.backend import SlurmBackend
from portal.provisioning.drivers.slurm.capacity import InstanceShape, free_instances
from portal.provisioning.drivers.slurm.client import API
from portal.provisioning.drivers.slurm.meta import Meta

EIGHT_H100 = InstanceShape(gpu_model="h100", gpus=8)


def node(name: str, used: int) -> dict[str, Any]:
    return {
        "name": name,
        "gres": "gpu:h100:8",
        "gres_used": f"gpu:h100:{used}",
        "state": "MIXED" if used else "IDLE",
        "partitions": ["us-east-1"],
    }


def job(state: str) -> dict[str, Any]:
    meta = Meta("req-1", "first", "gpu_8x_h100", "us-east-1", "x", preemptible=False)
    return {
        "job_id": 41,
        "name": "bf-req-1",
        "comment": meta.encode(),
        "job_state": state,
        "partition": "us-east-1",
        "state_reason": "None" if state == "RUNNING" else "Resources",
    }


class ScriptedSlurm(SlurmBackend):
    """slurmrestd answering each read of nodes and of jobs with the next of its script."""

    def __init__(self, *, nodes: list[list[dict]], jobs: list[list[dict]]) -> None:
        super().__init__(
            "http://slurm.invalid", token="scripted", instance_types={"gpu_8x_h100": ("h100", 8)}
        )
        self.script = {"nodes": list(nodes), "jobs": list(jobs)}
        self.reads: list[str] = []

    def call(self, method: str, path: str, payload=None, **kwargs) -> Any:  # type: ignore[override]
        what = path.removeprefix(f"{API}/")
        self.reads.append(what)
        answers = self.script[what]
        return {what: answers.pop(0) if len(answers) > 1 else answers[0]}


def free_for_a_launch(slurm: ScriptedSlurm) -> int:
    nodes, pending = slurm._nodes_and_pending("us-east-1")
    return free_instances(nodes, EIGHT_H100, pending)


def test_a_job_that_started_before_the_nodes_were_read_is_counted_once():
    # Pending when the jobs are first read, on node a by the time the nodes are.
    slurm = ScriptedSlurm(
        nodes=[[node("a", 8), node("b", 0)]],
        jobs=[[job("PENDING")], [job("RUNNING")]],
    )
    assert free_for_a_launch(slurm) == 1  # node b: the job holds node a, and only that
    assert slurm.reads == ["jobs", "nodes", "jobs", "nodes", "jobs"]


def test_a_job_that_started_after_the_nodes_were_read_is_not_lost():
    # Pending at the first read of the jobs, not yet on its node when the nodes are read,
    # running at the second read of the jobs: counted in neither read, it is read again.
    slurm = ScriptedSlurm(
        nodes=[[node("a", 0), node("b", 0)], [node("a", 8), node("b", 0)]],
        jobs=[[job("PENDING")], [job("RUNNING")]],
    )
    assert free_for_a_launch(slurm) == 1


def test_a_pending_job_that_stays_pending_takes_its_place_on_a_free_node():
    slurm = ScriptedSlurm(nodes=[[node("a", 0), node("b", 0)]], jobs=[[job("PENDING")]])
    assert free_for_a_launch(slurm) == 1
    assert slurm.reads == ["jobs", "nodes", "jobs"]  # one view at the first try


def test_jobs_that_keep_starting_count_where_they_might_be_a_refusal_not_an_overcommit():
    # Every read of the jobs differs (a new job of ours starts each time): after the last
    # read, a job pending in either read still counts.
    starting = [[dict(job("PENDING"), job_id=n)] for n in range(10)]
    slurm = ScriptedSlurm(nodes=[[node("a", 0), node("b", 0)]], jobs=starting)
    assert free_for_a_launch(slurm) == 0
