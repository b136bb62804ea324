import json
from pathlib import Path
from typing import Any

import pytest

from portal.simulator.catalog import (
    DEFAULT_CATALOG,
    CatalogError,
    catalog_from_dict,
    load_catalog,
)


def test_default_fleet() -> None:
    catalog = load_catalog("default")

    assert catalog.regions == ["ap-south-1", "eu-west-1", "us-east-1"]
    for name in ("gpu_1x_h100", "gpu_8x_h100", "gpu_8x_a100", "gpu_1x_l40s"):
        assert name in catalog.instance_types
    assert catalog.instance_types["gpu_8x_a100"].gpu_count == 8
    h100s = catalog.nodes_for("us-east-1", catalog.instance_types["gpu_1x_h100"].gpu_model)
    assert [n.name for n in h100s] == [f"us-east-1-h100-80gb-0{i}" for i in range(1, 5)]
    assert all(n.gpus == 8 for n in h100s)


def test_round_trips_through_its_dict() -> None:
    catalog = catalog_from_dict(DEFAULT_CATALOG)

    assert catalog_from_dict(catalog.to_dict()) == catalog


def test_loads_a_file_with_named_nodes(tmp_path: Path) -> None:
    path = tmp_path / "fleet.json"
    path.write_text(
        json.dumps(
            {
                "instance_types": [{"name": "gpu_2x_b200", "gpu_model": "B200", "gpu_count": 2}],
                "nodes": [{"name": "rack7", "region": "lab", "gpu_model": "B200", "gpus": 4}],
            }
        )
    )

    catalog = load_catalog(str(path))

    assert catalog.node("rack7") is not None
    assert catalog.regions == ["lab"]


def test_unreadable_file_is_a_catalog_error(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{nope")

    with pytest.raises(CatalogError):
        load_catalog(str(tmp_path / "bad.json"))
    with pytest.raises(CatalogError):
        load_catalog(str(tmp_path / "missing.json"))


TYPE = {"name": "t", "gpu_model": "M", "gpu_count": 1}
NODE = {"region": "r", "gpu_model": "M", "gpus": 8}


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"instance_types": [TYPE]},
        {"nodes": [NODE]},
        {"instance_types": [TYPE, TYPE], "nodes": [NODE]},
        {"instance_types": [{**TYPE, "gpu_count": 0}], "nodes": [NODE]},
        {"instance_types": [{**TYPE, "gpu_count": True}], "nodes": [NODE]},
        {"instance_types": [TYPE], "nodes": [{**NODE, "gpus": -8}]},
        {"instance_types": [TYPE], "nodes": [{**NODE, "region": ""}]},
        {"instance_types": [TYPE], "nodes": [{**NODE, "name": "a"}, {**NODE, "name": "a"}]},
        {"instance_types": ["t"], "nodes": [NODE]},
    ],
)
def test_invalid_catalogs_are_refused(data: Any) -> None:
    with pytest.raises(CatalogError):
        catalog_from_dict(data)
