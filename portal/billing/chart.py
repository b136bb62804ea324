"""Geometry of the spend-per-day bar chart, drawn as server-rendered SVG (no JavaScript)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.utils.html import format_html_join

from portal.lib.money import format_amount

WIDTH = 760
HEIGHT = 220
LEFT = 64  # room for the y-axis labels
RIGHT = 8
TOP = 12
BOTTOM = 28  # room for the day labels
PIXEL = Decimal("0.01")
MIN_BAR = Decimal("1.5")
NICE_STEPS = (1, 2, 2.5, 5, 10)


@dataclass(frozen=True)
class Bar:
    day: date
    x: float
    y: Decimal
    width: float
    height: Decimal
    value: Decimal
    label: str  # for the tooltip
    future: bool
    today: bool


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class DayLabel:
    x: float
    label: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    left: int
    plot_bottom: float
    plot_right: float
    bars: list[Bar]
    ticks: list[Tick]
    day_labels: list[DayLabel]
    empty: bool
    description: str

    @property
    def bars_svg(self) -> str:
        """The bars as SVG: thirty-one of them, one template loop too many for every page view
        (the axis and labels stay in billing/_chart.html)."""
        return format_html_join(
            "\n",
            '<g class="{}" data-day="{}" data-value="{}"><title>{}</title>'
            '<rect x="{}" y="{}" width="{}" height="{}" rx="2"/></g>',
            (
                (
                    " ".join(
                        [
                            "bar",
                            *(["future"] if bar.future else []),
                            *(["today"] if bar.today else []),
                        ]
                    ),
                    bar.day.isoformat(),
                    bar.value,
                    f"{bar.label} (today, so far)" if bar.today else bar.label,
                    bar.x,
                    bar.y if bar.height else self.plot_bottom - 1,
                    bar.width,
                    bar.height if bar.height else 1,
                )
                for bar in self.bars
            ),
        )


def nice_ceiling(value: Decimal) -> Decimal:
    """The smallest 1, 2, 2.5 or 5 × 10^n that is at least `value` (at least 1)."""
    if value <= 1:
        return Decimal(1)
    magnitude = Decimal(10) ** (len(str(int(value))) - 1)
    for step in NICE_STEPS:
        candidate = Decimal(str(step)) * magnitude
        if candidate >= value:
            return candidate
    return Decimal(10) * magnitude


def bar_chart(
    *, days: list[date], values: dict[date, Decimal], today: date | None, currency: str
) -> BarChart:
    top_value = nice_ceiling(max(values.values(), default=Decimal(0)))
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    slot = plot_width / max(len(days), 1)
    bar_width = max(2.0, slot * 0.72)
    bars = []
    for index, day in enumerate(days):
        value = values.get(day, Decimal(0))
        # Pixels stay Decimal here: the amount is never turned into a float.
        height = (value * plot_height / top_value).quantize(PIXEL) if top_value else Decimal(0)
        if value > 0:
            height = max(height, MIN_BAR)  # a cent still shows
        x = LEFT + index * slot + (slot - bar_width) / 2
        bars.append(
            Bar(
                day=day,
                x=round(x, 2),
                y=round(TOP + plot_height - height, 2),
                width=round(bar_width, 2),
                height=round(height, 2),
                value=value,
                label=f"{day:%b} {day.day}: {format_amount(value, currency)}",
                future=today is not None and day > today,
                today=day == today,
            )
        )
    ticks = [
        Tick(
            y=round(TOP + plot_height - plot_height * fraction, 2),
            label=format_amount((top_value * Decimal(str(fraction))), currency).replace(".00", ""),
        )
        for fraction in (0, 0.25, 0.5, 0.75, 1)
    ]
    day_labels = [
        DayLabel(x=round(LEFT + index * slot + slot / 2, 2), label=str(day.day))
        for index, day in enumerate(days)
        if day.day == 1 or day.day % 5 == 0
    ]
    total = sum(values.values(), Decimal(0))
    busiest = max(values.items(), key=lambda item: item[1], default=None)
    description = (
        f"Spend per day, {format_amount(total, currency)} in total"
        + (
            f"; highest on {busiest[0]:%b} {busiest[0].day}: {format_amount(busiest[1], currency)}"
            if busiest and busiest[1] > 0
            else ""
        )
        + "."
    )
    return BarChart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        plot_bottom=TOP + plot_height,
        plot_right=WIDTH - RIGHT,
        bars=bars,
        ticks=ticks,
        day_labels=day_labels,
        empty=not any(value > 0 for value in values.values()),
        description=description,
    )
