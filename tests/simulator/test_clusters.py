"""Clusters in the simulated fleet: placed within one fabric, all or nothing."""

from pathlib import Path

import pytest

from portal.lib.clusternaming import cluster_node_request_id
from portal.simulator.catalog import catalog_from_dict
from portal.simulator.engine import Simulator
from portal.simulator.records import BadRequest, CapacityExhausted, Conflict, Timings
from portal.simulator.store import load_state

FLEET = {
    "instance_types": [
        {"name": "gpu_8x_h100", "gpu_model": "H100", "gpu_count": 8},
        {"name": "gpu_4x_h100", "gpu_model": "H100", "gpu_count": 4},
    ],
    "nodes": [
        {"region": "r1", "gpu_model": "H100", "gpus": 8, "count": 2, "fabric": "r1-ib-a"},
        {"region": "r1", "gpu_model": "H100", "gpus": 8, "count": 2, "fabric": "r1-ib-b"},
    ],
    "storage_gb": {"r1": 1000},
}


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sim(tmp_path: Path) -> Simulator:
    return Simulator(
        catalog_from_dict(FLEET),
        Timings(provision=10, jitter=0),
        clock=Clock(),
        state_path=tmp_path / "state.json",
    )


def cluster(sim: Simulator, nodes: int, *, request_id: str = "c1", itype: str = "gpu_8x_h100"):
    return sim.create_cluster(
        request_id=request_id,
        instance_type=itype,
        region="r1",
        image="ubuntu",
        nodes=nodes,
        ssh_keys=["ssh-ed25519 AAAA k"],
        preemptible=False,
        name="train",
    )


def fabric_of(sim: Simulator, machine: dict) -> str:
    node = sim.machines[machine["id"]].node
    found = sim.catalog.node(node or "")
    assert found is not None
    return found.fabric


def test_a_cluster_lands_on_one_fabric_with_its_names_and_network(sim: Simulator) -> None:
    machines, created = cluster(sim, 2)

    assert created
    assert [m["name"] for m in machines] == ["train-0", "train-1"]
    assert [m["request_id"] for m in machines] == [
        cluster_node_request_id("c1", 0),
        cluster_node_request_id("c1", 1),
    ]
    assert len({fabric_of(sim, m) for m in machines}) == 1
    assert machines[0]["ip"] and machines[1]["ip"] is None
    assert machines[0]["hosts"] == machines[1]["hosts"]
    assert machines[0]["hosts"].splitlines() == [
        f"{machines[0]['private_ip']} train-0",
        f"{machines[1]['private_ip']} train-1",
    ]


def test_more_nodes_than_one_fabric_holds_are_refused_even_if_the_region_has_room(
    sim: Simulator,
) -> None:
    # Four free nodes in the region, but two per fabric: three together do not fit.
    with pytest.raises(CapacityExhausted) as refused:
        cluster(sim, 3)

    assert refused.value.available == 2
    assert "2 would fit" in str(refused.value)
    assert sim.machines == {}


def test_smaller_machines_share_the_nodes_of_a_fabric(sim: Simulator) -> None:
    machines, _ = cluster(sim, 4, itype="gpu_4x_h100")

    assert len({fabric_of(sim, m) for m in machines}) == 1


def test_asking_again_returns_the_same_machines_and_other_parameters_conflict(
    sim: Simulator,
) -> None:
    first, _ = cluster(sim, 2)
    again, created = cluster(sim, 2)

    assert not created
    assert [m["id"] for m in again] == [m["id"] for m in first]
    with pytest.raises(Conflict):
        cluster(sim, 2, itype="gpu_4x_h100")
    assert len(sim.machines) == 2


def test_the_cluster_survives_a_restart(sim: Simulator, tmp_path: Path) -> None:
    machines, _ = cluster(sim, 2)

    reloaded = Simulator(catalog_from_dict(FLEET), clock=Clock())
    reloaded.load(load_state(tmp_path / "state.json"))

    def addresses(listed) -> dict[str, str]:
        return {m["name"]: m["private_ip"] for m in listed}

    assert addresses(reloaded.list()) == addresses(machines)
    assert {n.fabric for n in reloaded.catalog.nodes} == {"r1-ib-a", "r1-ib-b"}


@pytest.mark.parametrize("nodes", [0, 1, -3, True, "2"])
def test_bad_node_counts_are_refused(sim: Simulator, nodes) -> None:
    with pytest.raises(BadRequest):
        cluster(sim, nodes)
    assert sim.machines == {}


def test_every_node_mounts_the_clusters_volumes(sim: Simulator) -> None:
    volume, _ = sim.volume_create(request_id="v1", region="r1", size_gb=100, name="data")
    machines, _ = sim.create_cluster(
        request_id="c2",
        instance_type="gpu_8x_h100",
        region="r1",
        image="ubuntu",
        nodes=2,
        ssh_keys=[],
        volumes=[volume["id"]],
        preemptible=False,
        name="train",
    )

    assert [m["volumes"] for m in machines] == [[volume["id"]], [volume["id"]]]


def test_a_preemptible_cluster_is_reclaimed_whole(sim: Simulator) -> None:
    machines, _ = sim.create_cluster(
        request_id="spot",
        instance_type="gpu_4x_h100",
        region="r1",
        image="ubuntu",
        nodes=3,
        ssh_keys=[],
        preemptible=True,
        name="spot",
    )

    noticed = sim.reclaim(machine_ids=[machines[1]["id"]], notice=60)

    assert sorted(m["name"] for m in noticed) == ["spot-0", "spot-1", "spot-2"]
    assert len({m["reclaim_at"] for m in noticed}) == 1
