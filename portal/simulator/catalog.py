"""The simulated fleet: instance types and the GPU nodes of each region.

A catalog file is JSON of this shape (`count` expands one entry into several nodes;
`storage_gb` is the volume storage of a region, `DEFAULT_STORAGE_GB` where not given):

    {"instance_types": [{"name": "gpu_1x_h100", "gpu_model": "H100 80GB", "gpu_count": 1}],
     "nodes": [{"region": "us-east-1", "gpu_model": "H100 80GB", "gpus": 8, "count": 4,
                "fabric": "use1-ib-a"}],
     "storage_gb": {"us-east-1": 50000}}

A fabric is a group of nodes of one region on one fast network: the placement unit of a
cluster, whose machines all land on nodes of one fabric. An entry without `fabric` is a fabric
of its own (`<region>-<model>-fabric`, shared by the entries of that region and model).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

H100 = "H100 80GB"
A100 = "A100 80GB"
L40S = "L40S 48GB"


DEFAULT_STORAGE_GB = 10_000


class CatalogError(ValueError):
    pass


@dataclass(frozen=True)
class InstanceType:
    name: str
    gpu_model: str
    gpu_count: int
    vcpus: int = 0
    memory_gib: int = 0


@dataclass(frozen=True)
class Node:
    name: str
    region: str
    gpu_model: str
    gpus: int
    fabric: str = ""


@dataclass(frozen=True)
class Catalog:
    instance_types: dict[str, InstanceType]
    nodes: tuple[Node, ...]
    # Volume storage per region, in GB (regions not named have DEFAULT_STORAGE_GB).
    storage: dict[str, int] = field(default_factory=dict)

    def storage_gb(self, region: str) -> int:
        return self.storage.get(region, DEFAULT_STORAGE_GB)

    @property
    def regions(self) -> list[str]:
        return list(self._regions)

    def nodes_for(self, region: str, gpu_model: str) -> list[Node]:
        return list(self._by_place.get((region, gpu_model), ()))

    # The catalog never changes (a new one replaces it), so its indexes are built once: every
    # capacity report and placement asks for a place's nodes.
    @cached_property
    def _regions(self) -> tuple[str, ...]:
        return tuple(sorted({node.region for node in self.nodes}))

    @cached_property
    def _by_place(self) -> dict[tuple[str, str], tuple[Node, ...]]:
        places: dict[tuple[str, str], list[Node]] = {}
        for node in self.nodes:
            places.setdefault((node.region, node.gpu_model), []).append(node)
        return {place: tuple(nodes) for place, nodes in places.items()}

    def fabrics_for(self, region: str, gpu_model: str) -> dict[str, list[Node]]:
        """The nodes of `region` and `gpu_model` per fabric, fabrics in name order."""
        fabrics: dict[str, list[Node]] = {}
        for node in sorted(self.nodes_for(region, gpu_model), key=lambda n: (n.fabric, n.name)):
            fabrics.setdefault(node.fabric, []).append(node)
        return fabrics

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance_types": [asdict(t) for t in self.instance_types.values()],
            "nodes": [asdict(n) for n in self.nodes],
            "storage_gb": dict(self.storage),
        }


def _types(model: str, slug: str, counts: tuple[int, ...], vcpus: int, mem: int) -> list[dict]:
    return [
        {
            "name": f"gpu_{n}x_{slug}",
            "gpu_model": model,
            "gpu_count": n,
            "vcpus": vcpus * n,
            "memory_gib": mem * n,
        }
        for n in counts
    ]


DEFAULT_CATALOG: dict[str, Any] = {
    "instance_types": [
        *_types(H100, "h100", (1, 2, 4, 8), 26, 225),
        *_types(A100, "a100", (1, 2, 4, 8), 30, 200),
        *_types(L40S, "l40s", (1, 2, 4, 8), 16, 120),
    ],
    "nodes": [
        {"region": "us-east-1", "gpu_model": H100, "gpus": 8, "count": 4},
        {"region": "us-east-1", "gpu_model": A100, "gpus": 8, "count": 3},
        {"region": "us-east-1", "gpu_model": L40S, "gpus": 8, "count": 2},
        {"region": "eu-west-1", "gpu_model": H100, "gpus": 8, "count": 2},
        {"region": "eu-west-1", "gpu_model": A100, "gpus": 8, "count": 2},
        {"region": "eu-west-1", "gpu_model": L40S, "gpus": 8, "count": 2},
        {"region": "ap-south-1", "gpu_model": A100, "gpus": 8, "count": 2},
        {"region": "ap-south-1", "gpu_model": L40S, "gpus": 8, "count": 1},
    ],
    "storage_gb": {"us-east-1": 100_000, "eu-west-1": 50_000, "ap-south-1": 20_000},
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _positive_int(entry: dict[str, Any], key: str, default: int | None = None) -> int:
    value = entry.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise CatalogError(f"{key!r} must be a positive integer in {entry!r}")
    return value


def _text(entry: dict[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(f"{key!r} must be a non-empty string in {entry!r}")
    return value


def catalog_from_dict(data: Any) -> Catalog:
    if not isinstance(data, dict):
        raise CatalogError("a catalog is a JSON object")
    types: dict[str, InstanceType] = {}
    for entry in data.get("instance_types") or []:
        if not isinstance(entry, dict):
            raise CatalogError(f"bad instance type {entry!r}")
        itype = InstanceType(
            name=_text(entry, "name"),
            gpu_model=_text(entry, "gpu_model"),
            gpu_count=_positive_int(entry, "gpu_count"),
            vcpus=int(entry.get("vcpus", 0)),
            memory_gib=int(entry.get("memory_gib", 0)),
        )
        if itype.name in types:
            raise CatalogError(f"instance type {itype.name!r} is listed twice")
        types[itype.name] = itype

    nodes: list[Node] = []
    seen: dict[tuple[str, str], int] = {}
    for entry in data.get("nodes") or []:
        if not isinstance(entry, dict):
            raise CatalogError(f"bad node {entry!r}")
        region, model = _text(entry, "region"), _text(entry, "gpu_model")
        gpus, count = _positive_int(entry, "gpus"), _positive_int(entry, "count", 1)
        fabric = _text(entry, "fabric") if "fabric" in entry else f"{region}-{_slug(model)}-fabric"
        for _ in range(count):
            if "name" in entry and count == 1:
                name = _text(entry, "name")
            else:
                seen[(region, model)] = number = seen.get((region, model), 0) + 1
                name = f"{region}-{_slug(model)}-{number:02d}"
            nodes.append(Node(name=name, region=region, gpu_model=model, gpus=gpus, fabric=fabric))
    names = [n.name for n in nodes]
    if len(names) != len(set(names)):
        raise CatalogError("node names must be unique")
    if not types or not nodes:
        raise CatalogError("a catalog needs at least one instance type and one node")
    storage = data.get("storage_gb") or {}
    if not isinstance(storage, dict) or not all(
        isinstance(region, str) and isinstance(gb, int) and not isinstance(gb, bool) and gb >= 0
        for region, gb in storage.items()
    ):
        raise CatalogError("'storage_gb' must map regions to whole numbers of GB >= 0")
    return Catalog(instance_types=types, nodes=tuple(nodes), storage=dict(storage))


def load_catalog(source: str | None) -> Catalog:
    """The catalog in the JSON file `source`, or the default one for None / "default"."""
    if not source or source == "default":
        return catalog_from_dict(DEFAULT_CATALOG)
    try:
        data = json.loads(Path(source).read_text())
    except (OSError, ValueError) as exc:
        raise CatalogError(f"cannot read catalog {source}: {exc}") from exc
    return catalog_from_dict(data)
