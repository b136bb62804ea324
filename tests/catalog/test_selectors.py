from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from portal.catalog.selectors import catalog_offers, monthly, prices_in_force
from tests.catalog.factories import GpuModelFactory, InstanceTypeFactory, PriceFactory

pytestmark = pytest.mark.django_db


def codes(offers) -> list[str]:
    return [offer.instance_type.code for offer in offers]


def test_lists_active_types_in_active_regions_with_a_price(gpu_catalog):
    assert codes(catalog_offers()) == ["gpu_1x_h100", "gpu_8x_h100", "gpu_1x_l40s"]


def test_an_inactive_region_is_neither_shown_nor_makes_a_type_launchable(gpu_catalog):
    InstanceTypeFactory(
        code="only_closed", gpu_model=gpu_catalog.h100, regions=[gpu_catalog.closed]
    )
    offers = {offer.instance_type.code: offer for offer in catalog_offers()}
    assert "only_closed" not in offers
    assert [r.code for r in offers["gpu_8x_h100"].regions] == ["eu-west-1", "us-east-1"]


def test_a_type_without_regions_or_without_a_price_in_force_is_left_out(gpu_catalog):
    InstanceTypeFactory(code="nowhere", gpu_model=gpu_catalog.h100)
    later = InstanceTypeFactory(
        code="later", gpu_model=gpu_catalog.h100, regions=[gpu_catalog.us_east]
    )
    PriceFactory(instance_type=later, valid_from=timezone.now() + timedelta(days=1))
    assert "nowhere" not in codes(catalog_offers())
    assert "later" not in codes(catalog_offers())


def test_the_price_in_force_is_the_latest_that_has_started(gpu_catalog):
    now = timezone.now()
    PriceFactory(
        instance_type=gpu_catalog.h100_1x,
        valid_from=now - timedelta(days=1),
        on_demand_hourly=Decimal("2.19"),
        preemptible_hourly=Decimal("1.09"),
    )
    PriceFactory(
        instance_type=gpu_catalog.h100_1x,
        valid_from=now + timedelta(days=1),
        on_demand_hourly=Decimal("9.99"),
        preemptible_hourly=Decimal("9.99"),
    )
    offer = next(o for o in catalog_offers() if o.instance_type == gpu_catalog.h100_1x)
    assert offer.on_demand_hourly == Decimal("2.19")
    assert offer.preemptible_hourly == Decimal("1.09")
    assert offer.on_demand_monthly == Decimal("1598.70")  # 2.19 * 730
    assert offer.preemptible_monthly == Decimal("795.70")
    # Asked about the past, the older price answers.
    assert prices_in_force(instance_types=[gpu_catalog.h100_1x], at=now - timedelta(days=2))[
        gpu_catalog.h100_1x.pk
    ].on_demand_hourly == Decimal("2.49")


def test_filters_by_region_and_gpu_model(gpu_catalog):
    assert codes(catalog_offers(region=gpu_catalog.eu_west)) == ["gpu_8x_h100", "gpu_1x_l40s"]
    assert codes(catalog_offers(gpu_model=gpu_catalog.h100)) == ["gpu_1x_h100", "gpu_8x_h100"]
    assert codes(catalog_offers(region=gpu_catalog.eu_west, gpu_model=gpu_catalog.h100)) == [
        "gpu_8x_h100"
    ]
    assert codes(catalog_offers(region=gpu_catalog.eu_west, gpu_model=gpu_catalog.a100)) == []


def test_a_fixed_number_of_queries_however_many_types(gpu_catalog, django_assert_num_queries):
    gpu = GpuModelFactory()
    for _ in range(15):
        instance_type = InstanceTypeFactory(
            gpu_model=gpu, regions=[gpu_catalog.us_east, gpu_catalog.eu_west]
        )
        PriceFactory(instance_type=instance_type, valid_from=timezone.now() - timedelta(days=9))
        PriceFactory(instance_type=instance_type, valid_from=timezone.now() - timedelta(days=2))
    with django_assert_num_queries(3):
        offers = catalog_offers()
        for offer in offers:
            _ = (offer.gpu_model.name, offer.on_demand_monthly, [r.code for r in offer.regions])
    assert len(offers) == 18


def test_prices_in_force_is_one_query(gpu_catalog, django_assert_num_queries):
    types = [gpu_catalog.h100_1x, gpu_catalog.h100_8x, gpu_catalog.l40s_1x]
    with django_assert_num_queries(1):
        prices = prices_in_force(instance_types=types)
    assert {t.pk for t in types} == set(prices)
    assert prices_in_force(instance_types=[]) == {}


def test_monthly_is_730_hours_to_the_cent():
    assert monthly(Decimal("19.92")) == Decimal("14541.60")
    assert monthly(Decimal("0.0125")) == Decimal("9.13")
