"""The spend-per-day chart: one bar per day, today marked, days to come greyed, amounts exact."""

from datetime import date
from decimal import Decimal

from portal.billing.chart import bar_chart


def test_each_day_is_a_bar_with_its_amount_today_marked_and_later_days_future():
    days = [date(2026, 3, day) for day in range(1, 6)]
    chart = bar_chart(
        days=days,
        values={date(2026, 3, 1): Decimal("10.00"), date(2026, 3, 3): Decimal("0.01")},
        today=date(2026, 3, 3),
        currency="USD",
    )
    svg = str(chart.bars_svg)

    assert svg.count("<g class=") == 5
    assert '<g class="bar" data-day="2026-03-01" data-value="10.00">' in svg
    assert '<g class="bar today" data-day="2026-03-03" data-value="0.01">' in svg
    assert "(today, so far)</title>" in svg
    assert svg.count('class="bar future"') == 2  # the 4th and 5th
    # A day without spend is a 1-pixel line on the axis; a cent still shows as a bar.
    heights = [bar.height for bar in chart.bars]
    assert heights[1] == 0 and 'height="1"' in svg
    assert heights[2] == Decimal("1.5")
    assert chart.description == "Spend per day, $10.01 in total; highest on Mar 1: $10.00."
