"""The instance list and page read each instance's price with the instance itself: the same
price as `instance_hourly_prices`, and a new catalog or spot price shows on the next view."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.catalog.models import Price
from portal.instances import selectors
from portal.instances.models import State
from portal.market.models import PriceReason
from portal.market.services import spot_price_history_add

pytestmark = pytest.mark.django_db


def url(name, *args, org="acme"):
    return reverse(f"instances:{name}", args=[org, *args])


def _spot(catalog, price: str, *, hours_ago: int = 1):
    from portal.market.models import SpotPrice

    start = (timezone.now() - timedelta(hours=hours_ago)).replace(microsecond=0)
    spot_price_history_add(
        rows=[
            SpotPrice(
                region=catalog.us_east,
                instance_type=catalog.h100_1x,
                price=Decimal(price),
                valid_from=start,
                reason=PriceReason.MARKET,
            )
        ]
    )


def _mix(make_instance, catalog):
    return [
        make_instance(State.RUNNING),  # on-demand, $2.49
        make_instance(State.RUNNING, preemptible=True),  # the spot price, where there is one
        make_instance(State.STOPPED, preemptible=True, region=catalog.eu_west),  # no spot: $1.29
        make_instance(State.RUNNING, instance_type=catalog.l40s_1x, region=catalog.eu_west),
        make_instance(State.PENDING, instance_type=catalog.unpriced),  # priced only next month
    ]


def test_the_list_prices_each_row_as_instance_hourly_prices_does(team, catalog, make_instance):
    _spot(catalog, "0.87")
    instances = _mix(make_instance, catalog)
    page, rows = selectors.instance_list_page(membership=team.member, number=None, per_page=25)
    expected = selectors.instance_hourly_prices(instances)
    assert {row.instance.pk: row.hourly_price for row in rows} == expected
    assert expected[instances[1].pk] == Decimal("0.87")
    assert expected[instances[2].pk] == Decimal("1.29")
    assert expected[instances[4].pk] is None
    assert page.paginator.count == 5 and page.number == 1


def test_the_detail_page_reads_the_price_as_instance_hourly_price_does(
    team, catalog, make_instance
):
    _spot(catalog, "0.87")
    for instance in _mix(make_instance, catalog):
        found, hourly = selectors.instance_priced_for_member(membership=team.member, pk=instance.pk)
        assert found == instance
        assert hourly == selectors.instance_hourly_price(instance=instance)


def test_a_new_spot_price_shows_on_the_next_view_of_the_list_and_the_page(
    client_for, team, catalog, make_instance
):
    instance = make_instance(
        State.RUNNING, preemptible=True, running_since=timezone.now() - timedelta(hours=2)
    )
    client = client_for(team.member.user)
    assert "$2.58" in client.get(url("list")).text  # 2 h at the catalog's $1.29
    assert "$1.29/hour (preemptible)" in client.get(url("detail", instance.pk)).text
    _spot(catalog, "0.50", hours_ago=3)
    assert "$1.00" in client.get(url("list")).text  # 2 h at $0.50
    assert "$0.50/hour (preemptible)" in client.get(url("detail", instance.pk)).text


def test_a_new_catalog_price_shows_on_the_next_view(client_for, team, catalog, make_instance):
    instance = make_instance(State.RUNNING, running_since=timezone.now() - timedelta(hours=2))
    client = client_for(team.member.user)
    assert "$4.98" in client.get(url("list")).text
    Price.objects.create(
        instance_type=catalog.h100_1x,
        valid_from=timezone.now() - timedelta(seconds=1),
        on_demand_hourly=Decimal("3.00"),
        preemptible_hourly=Decimal("1.50"),
    )
    assert "$6.00" in client.get(url("list")).text
    assert "$3.00/hour (on-demand)" in client.get(url("detail", instance.pk)).text


@pytest.mark.parametrize("number", ["2", "9", "0", "-1", "x", "02", ""])
def test_every_page_number_lands_where_the_paginator_would(team, make_instance, number):
    from django.core.paginator import Paginator

    for _ in range(5):
        make_instance(State.RUNNING)
    page, rows = selectors.instance_list_page(membership=team.member, number=number, per_page=2)
    expected = Paginator(selectors.instance_list_rows(membership=team.member), 2).get_page(number)
    assert page.number == expected.number
    assert page.paginator.count == 5 and page.paginator.num_pages == 3
    assert [row.instance.pk for row in rows] == [i.pk for i in expected.object_list]


def test_a_page_of_rows_has_what_the_orm_reads_for_it(team, catalog, make_instance, outsider):
    """The page's rows (one SQL statement) are `instance_list_rows`' rows: the same instances
    in the same order, each with the values a row shows."""
    _mix(make_instance, catalog)
    make_instance(State.RUNNING, reclaim_at=timezone.now() + timedelta(minutes=2), ip="192.0.2.7")
    shown = ("pk", "name", "preemptible", "state", "reclaim_at", "stop_at", "ip", "created_at")
    shown += ("running_since", "running_seconds", "type_name", "region_code")
    for number in ("1", "2"):
        page, rows = selectors.instance_list_page(membership=team.member, number=number, per_page=4)
        expected = list(selectors.instance_list_rows(membership=team.member))[
            (int(number) - 1) * 4 : int(number) * 4
        ]
        assert [[getattr(row.instance, name) for name in shown] for row in rows] == [
            [getattr(instance, name) for name in shown] for instance in expected
        ]
        assert page.paginator.count == 6
