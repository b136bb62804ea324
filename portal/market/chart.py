"""Geometry of a spot price chart (a step line over time), drawn as server-rendered SVG like
the billing chart: no JavaScript, readable without it, described in words for screen readers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from portal.lib.money import format_price, price_digits
from portal.market.models import SpotPrice

WIDTH = 760
HEIGHT = 200
LEFT = 64
RIGHT = 10
TOP = 12
BOTTOM = 26


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class TimeLabel:
    x: float
    label: str


@dataclass(frozen=True)
class PriceChart:
    width: int
    height: int
    left: int
    top: int
    plot_right: float
    plot_bottom: float
    path: str
    ticks: list[Tick]
    time_labels: list[TimeLabel]
    empty: bool
    description: str
    low: Decimal | None
    high: Decimal | None
    last: Decimal | None


def price_chart(
    rows: Sequence[SpotPrice],
    *,
    since: datetime,
    until: datetime,
    currency: str,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> PriceChart:
    """The prices of `rows` (oldest first, as `spot_price_history` gives them) over
    [since, until]."""
    plot_right = width - RIGHT
    plot_bottom = height - BOTTOM
    span = (until - since).total_seconds() or 1.0
    pieces = []
    for row in rows:
        start = max(row.valid_from, since)
        end = min(row.valid_until or until, until)
        if end > start:
            pieces.append((start, end, row.price))
    if not pieces:
        return PriceChart(
            width, height, LEFT, TOP, plot_right, plot_bottom, "", [], [], True,
            "No spot price in this period.", None, None, None,
        )  # fmt: skip
    prices = [price for _, _, price in pieces]
    low, high = min(prices), max(prices)
    bottom_value, top_value = low, high
    if top_value == bottom_value:
        pad = max(bottom_value * Decimal("0.1"), Decimal("0.01"))
    else:
        pad = (top_value - bottom_value) * Decimal("0.1")
    bottom_value = max(Decimal(0), bottom_value - pad)
    top_value = top_value + pad
    value_span = float(top_value - bottom_value)

    def x_of(moment: datetime) -> float:
        return round(LEFT + (moment - since).total_seconds() / span * (plot_right - LEFT), 2)

    def y_of(value: Decimal) -> float:
        return round(
            plot_bottom - float(value - bottom_value) / value_span * (plot_bottom - TOP), 2
        )

    commands = []
    for index, (start, end, price) in enumerate(pieces):
        y = y_of(price)
        if index == 0 or pieces[index - 1][1] != start:
            commands.append(f"M{x_of(start)} {y}")
        else:
            commands.append(f"V{y}")
        commands.append(f"H{x_of(end)}")
    ticks = []
    for step in range(4):
        value = bottom_value + (top_value - bottom_value) * Decimal(step) / Decimal(3)
        ticks.append(Tick(y=y_of(value), label=price_digits(value)))
    labels = []
    if span > 2 * 86400:
        moment = since.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        while moment < until:
            labels.append(TimeLabel(x=x_of(moment), label=f"{moment:%b} {moment.day}"))
            moment += timedelta(days=1)
    else:
        moment = since.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        while moment < until:
            if moment.hour % 6 == 0:
                labels.append(TimeLabel(x=x_of(moment), label=f"{moment:%H}:00"))
            moment += timedelta(hours=1)
    last = pieces[-1][2]
    description = (
        f"Spot price from {format_price(low, currency, per=None)} to "
        f"{format_price(high, currency)}; {format_price(last, currency)} at the end."
    )
    return PriceChart(
        width=width,
        height=height,
        left=LEFT,
        top=TOP,
        plot_right=plot_right,
        plot_bottom=plot_bottom,
        path=" ".join(commands),
        ticks=ticks,
        time_labels=labels,
        empty=False,
        description=description,
        low=low,
        high=high,
        last=last,
    )
