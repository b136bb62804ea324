from decimal import Decimal
from html import escape  # django.utils.html.escape without its check for lazy strings
from typing import Any

from django import template
from django.urls import reverse
from django.utils.formats import number_format
from django.utils.safestring import mark_safe

from portal.web.templatetags import money as money_filters

register = template.Library()

# The one money format (portal.lib.money, issue 19): `{% load billing %}` keeps offering the
# `money` and `unit_price` filters, the very ones of `{% load money %}`.
register.filter("money", money_filters.money)
money = money_filters.money
register.filter("unit_price", money_filters.unit_price)


@register.filter
def hours(value, places: int = 2) -> str:
    """Decimal hours with a thousands separator: 1,234.50."""
    if value is None:
        return ""
    return f"{Decimal(value):,.{int(places)}f}"


@register.filter
def seconds_hours(value) -> str:
    """Seconds as hours with two decimals: 5400 → 1.50."""
    return f"{Decimal(int(value)) / Decimal(3600):,.2f}"


# The billing page's loops, written in Python (issue 21): the same HTML as the template
# fragments they replace (tests/billing/test_page_tags.py renders both), without a template
# node, variable lookup and filter call per cell: ~7 ms of the page's CPU at 1,000 instances
# (its 12 lines, 20 instances, 31 days and the month picker). Every value from the database
# goes through escape().

KIND_BADGES = {
    "stopped": '<span class="badge">stopped (disk)</span>',
    "preemptible": '<span class="badge accent">preemptible</span>',
}
ON_DEMAND_BADGE = '<span class="badge info">on-demand</span>'
DASH = '<span class="faint">—</span>'
AVERAGED = '<span class="faint" title="The average spot price paid">avg </span>'


def _number(value: Any) -> str:
    """A number as `{{ value }}` renders it (floats and Decimals plain, no grouping)."""
    return escape(number_format(value))


@register.simple_tag
def usage_line_rows(lines: list) -> str:
    """The `<tr>`s of the billing page's lines (by instance type, region and price)."""
    rows = []
    for line in lines:
        kind = KIND_BADGES.get(line.kind, ON_DEMAND_BADGE)
        gpu_hours = DASH if line.kind == "stopped" else escape(hours(line.gpu_hours))
        averaged = AVERAGED if line.averaged else ""
        unit_price = escape(money_filters.price(line.unit_price, line.currency))
        rows.append(
            "<tr>"
            f"<td><strong>{escape(line.instance_type_name)}</strong></td>"
            f'<td><span class="mono">{escape(line.region_code)}</span></td>'
            f"<td>{kind}</td>"
            f'<td class="num">{escape(hours(line.hours))}</td>'
            f'<td class="num">{gpu_hours}</td>'
            f'<td class="num">{averaged}{unit_price}</td>'
            f'<td class="num"><strong>{escape(money(line.amount, line.currency))}</strong></td>'
            "</tr>"
        )
    return mark_safe("".join(rows))  # noqa: S308 - constants and escaped values only


@register.simple_tag
def instance_usage_rows(usages: list, currency: str, org_slug: str, linked: bool) -> str:
    """The `<tr>`s of the billing page's most expensive instances; each name links to the
    instance's page when `linked` (one reverse() for all of them)."""
    prefix = reverse("instances:detail", args=[org_slug, 0])[:-2] if linked else ""
    rows = []
    for usage in usages:
        name = f"<strong>{escape(usage.name)}</strong>"
        if linked:
            name = f'<a href="{escape(prefix)}{usage.instance_id}/">{name}</a>'
        spot = ' <span class="badge accent">spot</span>' if usage.preemptible else ""
        stopped = escape(hours(usage.stopped_hours)) if usage.stopped_seconds else DASH
        rows.append(
            "<tr>"
            f'<td>{name}{spot} <span class="muted small-state">{escape(usage.state)}</span></td>'
            f"<td>{escape(usage.instance_type_name)}</td>"
            f'<td><span class="mono">{escape(usage.region_code)}</span></td>'
            f'<td class="num">{escape(hours(usage.running_hours))}</td>'
            f'<td class="num">{stopped}</td>'
            f'<td class="num">{escape(money(usage.amount, currency))}</td>'
            "</tr>"
        )
    return mark_safe("".join(rows))  # noqa: S308 - constants and escaped values only


@register.simple_tag
def month_options(months: list, chosen: Any) -> str:
    """The month picker's `<option>`s, the chosen month selected."""
    return mark_safe(  # noqa: S308 - the months' keys and labels, escaped
        "".join(
            f'<option value="{escape(month.key)}"{" selected" if month == chosen else ""}>'
            f"{escape(month.label)}</option>"
            for month in months
        )
    )


@register.simple_tag
def spend_chart(chart: Any, month_label: str, current: bool) -> str:
    """The spend-per-day chart (`BarChart`) as SVG in its figure."""
    left, plot_right = _number(chart.left), _number(chart.plot_right)
    ticks = "".join(
        f'\n  <line x1="{left}" x2="{plot_right}" y1="{_number(tick.y)}" y2="{_number(tick.y)}"'
        f' class="grid-line{" base" if index == 0 else ""}"/>'
        f'\n  <text x="{_number(chart.left - 8)}" y="{_number(tick.y)}" class="tick"'
        f' text-anchor="end" dominant-baseline="middle">{escape(tick.label)}</text>'
        for index, tick in enumerate(chart.ticks)
    )
    day_y = _number(chart.height - 8)
    days = "".join(
        f'<text x="{_number(day.x)}" y="{day_y}" class="day" text-anchor="middle">'
        f"{escape(day.label)}</text>"
        for day in chart.day_labels
    )
    bars = "\n".join(
        f'<g class="bar{" future" if bar.future else ""}{" today" if bar.today else ""}"'
        f' data-day="{bar.day.isoformat()}" data-value="{escape(str(bar.value))}">'
        f"<title>{escape(f'{bar.label} (today, so far)' if bar.today else bar.label)}</title>"
        f'<rect x="{bar.x}" y="{bar.y if bar.height else chart.plot_bottom - 1}"'
        f' width="{bar.width}" height="{bar.height if bar.height else 1}" rx="2"/></g>'
        for bar in chart.bars
    )  # BarChart.bars_svg's markup, without format_html_join's escaping of every number
    description = escape(chart.description)
    today = " Today's bar grows as the day goes on." if current else ""
    return mark_safe(  # noqa: S308 - constants, numbers and escaped values only
        '<figure class="spend-chart" data-testid="spend-chart">\n'
        f'<svg viewBox="0 0 {_number(chart.width)} {_number(chart.height)}" width="100%"'
        ' role="img" aria-labelledby="chart-title chart-desc"'
        ' preserveAspectRatio="xMidYMid meet">\n'
        f'  <title id="chart-title">Spend per day, {escape(month_label)}</title>\n'
        f'  <desc id="chart-desc">{description}</desc>'
        f"{ticks}\n"
        f"  {bars}\n"
        f"  {days}\n"
        "</svg>\n"
        f'<figcaption class="muted">{description}{today}</figcaption>\n'
        "</figure>\n"
    )


@register.simple_tag
def spot_breakdowns(breakdowns: list, currency: str) -> str:
    """Each preemptible line's seconds at each spot price, as a `<details>` of its own."""
    parts = []
    for line, prices in breakdowns:
        count = len(prices)
        rows = "".join(
            f'<tr><td class="num">{escape(money_filters.price(price, currency))}</td>'
            f'<td class="num">{escape(seconds_hours(seconds))}</td>'
            f'<td class="num">{_number(seconds)}</td></tr>'
            for price, seconds in prices
        )
        average = escape(money_filters.per_hour(line.unit_price, line.currency))
        parts.append(
            '\n  <details class="spot-breakdown" data-testid="spot-breakdown">\n'
            f"    <summary>{escape(line.instance_type_name)} · "
            f'<span class="mono">{escape(line.region_code)}</span> · preemptible: {count} '
            f"price{'' if count == 1 else 's'}, average {average}</summary>\n"
            '    <table class="table compact">\n'
            '      <thead><tr><th class="num">Spot price / hour</th><th class="num">Hours</th>'
            '<th class="num">Seconds</th></tr></thead>\n'
            f"      <tbody>\n      {rows}\n      </tbody>\n"
            "    </table>\n"
            "  </details>"
        )
    return mark_safe("".join(parts))  # noqa: S308 - constants, numbers and escaped values
