"""The day's shape: an offer under its target cuts at once, without waiting or a trial, down
to the price its own history held over the same hours of earlier days (the evening's spare is
sold at the night's price hours sooner), and never below it that way."""

from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from portal.market import pricing, services
from portal.market.models import PriceReason, SpotPrice
from portal.market.selectors import spot_price_lows
from portal.market.services.records import record_price
from tests.market.test_cuts import prices, report


def history(market, *rows: tuple[object, str]) -> None:
    for at, price in rows:
        with transaction.atomic():
            record_price(
                region_id=market.region_id,
                instance_type_id=market.instance_type_id,
                price=Decimal(price),
                at=at,
                reason=PriceReason.MARKET,
            )


def test_the_learned_price_is_the_median_of_the_earlier_days_lowest_prices() -> None:
    assert pricing.learned_price([]) is None
    assert pricing.learned_price([Decimal("5")]) == Decimal("5")
    assert pricing.learned_price([Decimal("7"), Decimal("5"), Decimal("6")]) == Decimal("6")
    # One odd day does not set it: of two, the higher.
    assert pricing.learned_price([Decimal("2"), Decimal("7")]) == Decimal("7")


def test_each_earlier_day_gives_its_lowest_price_over_the_same_hours_ahead(market) -> None:
    start = timezone.now().replace(hour=20, minute=0, second=0, microsecond=0)
    two, one = start - timedelta(days=2), start - timedelta(days=1)
    history(
        market,
        (two - timedelta(hours=1), "10.00"),  # in force as the window opens
        (two + timedelta(hours=1), "8.00"),
        (two + timedelta(hours=3, minutes=30), "6.00"),  # after the window
        (one - timedelta(hours=2), "12.00"),  # in force over the whole window
        (one + timedelta(hours=3, minutes=10), "7.00"),  # after the window
    )
    lows = spot_price_lows(
        region_id=market.region_id,
        instance_type_id=market.instance_type_id,
        start=start,
        ahead=timedelta(hours=3),
        days=7,
    )
    assert sorted(lows) == [Decimal("8.00"), Decimal("12.00")]


def test_an_offer_under_its_target_cuts_at_once_to_where_the_same_hours_went_the_day_before(
    market,
) -> None:
    """Yesterday the offer sold at 7.00 over these hours. Today it is at 10.32 and a quarter
    sold (target 50 %): it cuts at the first report, a step (1.25) each 5 minutes, down to
    7.00 and no further, where without the history it would wait half an hour."""
    now = timezone.now().replace(microsecond=0)
    yesterday = now - timedelta(days=1)
    history(
        market,
        (yesterday - timedelta(hours=1), "12.00"),
        (yesterday, "7.00"),
        (yesterday + timedelta(hours=3), "10.32"),  # in force since
    )
    for minute in range(0, 30, 5):
        report(free=48)
        services.spot_prices_adjust(now=now + timedelta(minutes=minute))
    assert prices(market)[-4:] == [
        Decimal("10.32"),
        Decimal("9.07"),
        Decimal("7.82"),
        Decimal("7.00"),
    ]
    cut = SpotPrice.objects.filter(instance_type=market.instance_type).order_by("valid_from").last()
    assert cut is not None
    assert cut.detail.startswith("the same hours of earlier days sold at 7.0000;")


def test_a_history_dearer_than_the_price_now_does_not_hurry_a_cut(market) -> None:
    now = timezone.now().replace(microsecond=0)
    yesterday = now - timedelta(days=1)
    history(market, (yesterday, "12.00"), (yesterday + timedelta(hours=3), "10.32"))
    for minute in range(0, 30, 5):
        report(free=48)
        services.spot_prices_adjust(now=now + timedelta(minutes=minute))
    assert prices(market)[-1] == Decimal("10.32")
