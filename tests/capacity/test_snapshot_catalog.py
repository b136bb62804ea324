"""Each capacity snapshot groups instance types by the GPU model the catalog gives them, as it
is at the report: kept between reports, read again after the catalog changes."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from portal.capacity.selectors import demand_by_place
from portal.capacity.snapshot import snapshot_store
from portal.catalog.models import GpuModel
from portal.provisioning import Capacity


def report():
    return snapshot_store(
        capacities=[
            Capacity(
                "us-east-1",
                "gpu_1x_h100",
                "H100 80GB",
                4,
                8,
                4,
                internal_gpus=2,
                customer_gpus=2,
                shortfall_gpus=0,
                internal_forecast_gpus=None,
            )
        ],
        marker=None,
    )


def test_a_report_groups_by_the_gpu_model_the_catalog_gives_now(catalog):
    first = report()
    assert first.gpu_models is not None and first.gpu_models["gpu_1x_h100"] == "h100"
    assert set(demand_by_place(first)) == {("us-east-1", "h100")}

    with CaptureQueriesContext(connection) as queries:
        report()
    assert not [q for q in queries if "catalog_instancetype" in q["sql"]]  # kept

    # The operator moves the type to another model (a catalog correction): the next report
    # groups it there.
    renamed = GpuModel.objects.create(code="h100sxm", name="H100 80GB SXM", memory_gb=80)
    catalog.h100_1x.gpu_model = renamed
    catalog.h100_1x.save()
    after = report()
    assert after.gpu_models is not None and after.gpu_models["gpu_1x_h100"] == "h100sxm"
    assert set(demand_by_place(after)) == {("us-east-1", "h100sxm")}
