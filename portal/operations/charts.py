"""Stacked bar charts as server-rendered SVG for the overview (no JavaScript, no build step),
drawn like the billing chart: a viewBox that scales to the width of its column."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH = 720
HEIGHT = 190
LEFT = 48
RIGHT = 8
TOP = 10
BOTTOM = 24


@dataclass(frozen=True)
class Series:
    name: str
    css: str  # the class of its rects (colour in the page's style)
    values: Sequence[float | None]


def nice_top(value: float) -> float:
    if value <= 1:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(10 * magnitude)


def stacked_bars(
    *,
    title: str,
    description: str,
    labels: Sequence[str],
    series: Sequence[Series],
    top: float | None = None,
    tick: Callable[[float], str] = lambda v: f"{v:g}",
    testid: str = "",
) -> SafeString:
    """One bar per label, its series stacked bottom-up; a bar's tooltip lists the values."""
    count = max(len(labels), 1)
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    top = top if top is not None else nice_top(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / count
    width = max(2.0, slot * 0.72)
    rects = []
    for i, label in enumerate(labels):
        x = LEFT + i * slot + (slot - width) / 2
        base: float = TOP + plot_h
        tip = ", ".join(f"{s.name} {_shown(s.values[i], tick)}" for s in series)
        for s in series:
            value = s.values[i] or 0.0
            height = plot_h * value / top if top else 0.0
            if height <= 0:
                continue
            base -= height
            rects.append(
                (
                    s.css,
                    f"{label}: {tip}",
                    round(x, 2),
                    round(base, 2),
                    round(width, 2),
                    round(height, 2),
                )
            )
    bars = format_html_join(
        "\n",
        '<rect class="{}" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>',
        ((css, x, y, w, h, tip) for css, tip, x, y, w, h in rects),
    )
    ticks = format_html_join(
        "\n",
        '<line x1="{}" x2="{}" y1="{}" y2="{}" class="grid-line"/>'
        '<text x="{}" y="{}" class="tick" text-anchor="end" dominant-baseline="middle">{}</text>',
        (
            (LEFT, WIDTH - RIGHT, y, y, LEFT - 6, y, tick(top * f))
            for f in (0, 0.5, 1)
            for y in [round(TOP + plot_h - plot_h * f, 2)]
        ),
    )
    every = max(1, count // 6)
    axis = format_html_join(
        "\n",
        '<text x="{}" y="{}" class="day" text-anchor="middle">{}</text>',
        (
            (round(LEFT + i * slot + slot / 2, 2), HEIGHT - 6, label)
            for i, label in enumerate(labels)
            if i % every == 0
        ),
    )
    legend = format_html_join(
        "", '<span><i class="{}"></i>{}</span>', ((s.css, s.name) for s in series)
    )
    return format_html(
        '<figure class="ov-chart" data-testid="{}"><figcaption><strong>{}</strong> '
        '<span class="ov-key">{}</span></figcaption>'
        '<svg viewBox="0 0 {} {}" width="100%" role="img" aria-label="{}" '
        'preserveAspectRatio="xMidYMid meet"><title>{}</title><desc>{}</desc>{}{}{}</svg>'
        "</figure>",
        testid,
        title,
        legend,
        WIDTH,
        HEIGHT,
        title,
        title,
        description,
        ticks,
        bars,
        axis,
    )


def _shown(value: float | None, tick: Callable[[float], str]) -> str:
    return "—" if value is None else tick(value)


def percent(value: float) -> str:
    return f"{value * 100:.0f} %"


def empty() -> SafeString:
    return mark_safe("")  # noqa: S308 - a constant
