"""The billing page's loops written in Python (templatetags/billing.py) give the HTML of the
template fragments they replaced, kept here as they were, for the same values."""

import re
from datetime import date
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.urls import reverse

from portal.billing.chart import bar_chart
from portal.billing.periods import Month
from portal.billing.rating.by_instance import InstanceUsage
from portal.billing.rating.by_line import Line

OLD_LINES = """{% load billing money %}{% for line in lines %}
      <tr>
        <td><strong>{{ line.instance_type_name }}</strong></td>
        <td><span class="mono">{{ line.region_code }}</span></td>
        <td>{% if line.kind == "stopped" %}<span class="badge">stopped (disk)</span>{% elif line.kind == "preemptible" %}<span class="badge accent">preemptible</span>{% else %}<span class="badge info">on-demand</span>{% endif %}</td>
        <td class="num">{{ line.hours|hours }}</td>
        <td class="num">{% if line.kind == "stopped" %}<span class="faint">—</span>{% else %}{{ line.gpu_hours|hours }}{% endif %}</td>
        <td class="num">{% if line.averaged %}<span class="faint" title="The average spot price paid">avg </span>{% endif %}{{ line.unit_price|price:line.currency }}</td>
        <td class="num"><strong>{{ line.amount|money:line.currency }}</strong></td>
      </tr>
    {% endfor %}"""  # noqa: E501

OLD_INSTANCES = """{% load billing instances money %}{% for u in usages %}
      <tr>
        <td>{% if can_view_instances %}<a href="{% instance_url slug u.instance_id %}"><strong>{{ u.name }}</strong></a>{% else %}<strong>{{ u.name }}</strong>{% endif %}{% if u.preemptible %} <span class="badge accent">spot</span>{% endif %} <span class="muted small-state">{{ u.state }}</span></td>
        <td>{{ u.instance_type_name }}</td>
        <td><span class="mono">{{ u.region_code }}</span></td>
        <td class="num">{{ u.running_hours|hours }}</td>
        <td class="num">{% if u.stopped_seconds %}{{ u.stopped_hours|hours }}{% else %}<span class="faint">—</span>{% endif %}</td>
        <td class="num">{{ u.amount|money:currency }}</td>
      </tr>
    {% endfor %}"""  # noqa: E501

OLD_MONTHS = """{% for m in months %}<option value="{{ m.key }}"{% if m == chosen %} selected{% endif %}>{{ m.label }}</option>{% endfor %}"""  # noqa: E501

OLD_CHART = """{% load billing %}{% with c=o.chart %}
<figure class="spend-chart" data-testid="spend-chart">
<svg viewBox="0 0 {{ c.width }} {{ c.height }}" width="100%" role="img" aria-labelledby="chart-title chart-desc" preserveAspectRatio="xMidYMid meet">
  <title id="chart-title">Spend per day, {{ o.month.label }}</title>
  <desc id="chart-desc">{{ c.description }}</desc>
  {% for t in c.ticks %}
  <line x1="{{ c.left }}" x2="{{ c.plot_right }}" y1="{{ t.y }}" y2="{{ t.y }}" class="grid-line{% if forloop.first %} base{% endif %}"/>
  <text x="{{ c.left|add:'-8' }}" y="{{ t.y }}" class="tick" text-anchor="end" dominant-baseline="middle">{{ t.label }}</text>
  {% endfor %}
  {{ c.bars_svg }}
  {% for d in c.day_labels %}<text x="{{ d.x }}" y="{{ c.height|add:'-8' }}" class="day" text-anchor="middle">{{ d.label }}</text>{% endfor %}
</svg>
<figcaption class="muted">{{ c.description }}{% if o.current %} Today's bar grows as the day goes on.{% endif %}</figcaption>
</figure>
{% endwith %}"""  # noqa: E501


def _normalized(html: str) -> str:
    return re.sub(r">\s+<", "><", html.strip())


def _line(kind: str, **fields) -> Line:
    values = {
        "instance_type_id": 1,
        "instance_type_name": "1x H100 <80GB>",
        "instance_type_code": "h100-1x",
        "region_id": 1,
        "region_code": "us-east-1",
        "kind": kind,
        "unit_price": Decimal("2.4900"),
        "currency": "USD",
        "seconds": 3_725_123,
        "gpu_seconds": 7_450_246,
        "amount": Decimal("12345.67"),
    }
    return Line(**{**values, **fields})


LINES = [
    _line("on_demand"),
    _line("preemptible", unit_price=Decimal("1.2345"), averaged=True, currency="EUR"),
    _line("stopped", unit_price=Decimal("0.0125"), amount=Decimal("0.004")),
    _line("on_demand", region_code="eu-west-1 & 'x'", seconds=0, gpu_seconds=0),
]


def test_the_line_rows_are_the_old_rows():
    context = Context({"lines": LINES})
    new = Template("{% load billing %}{% usage_line_rows lines %}").render(context)
    assert _normalized(new) == _normalized(Template(OLD_LINES).render(context))
    assert "avg </span>€1.2345" in new and "1x H100 &lt;80GB&gt;" in new


def _usage(**fields) -> InstanceUsage:
    values = {
        "instance_id": 7,
        "name": "train-<1>",
        "state": "running",
        "instance_type_name": "8x H100",
        "region_code": "us-east-1",
        "preemptible": False,
        "running_seconds": 5400,
        "stopped_seconds": 0,
        "amount": Decimal("1234.5"),
    }
    return InstanceUsage(**{**values, **fields})


USAGES = [
    _usage(),
    _usage(instance_id=12, preemptible=True, stopped_seconds=86_400_000, state="stopped"),
    _usage(instance_id=13, name='a "quoted" & name', running_seconds=0, amount=Decimal(0)),
]


@pytest.mark.parametrize("linked", [True, False])
def test_the_instance_rows_are_the_old_rows(linked):
    context = Context(
        {"usages": USAGES, "currency": "USD", "slug": "acme", "can_view_instances": linked}
    )
    new = Template(
        "{% load billing %}{% instance_usage_rows usages currency slug can_view_instances %}"
    ).render(context)
    assert _normalized(new) == _normalized(Template(OLD_INSTANCES).render(context))
    assert (reverse("instances:detail", args=["acme", 12]) in new) == linked


def test_the_month_options_are_the_old_options():
    months = [Month(2026, 3), Month(2026, 2), Month(2026, 1), Month(2025, 12)]
    context = Context({"months": months, "chosen": Month(2026, 2)})
    new = Template("{% load billing %}{% month_options months chosen %}").render(context)
    assert new == Template(OLD_MONTHS).render(context)
    assert new.count(" selected") == 1


@pytest.mark.parametrize("today", [date(2026, 3, 17), None])
def test_the_chart_is_the_old_chart(today):
    month = Month(2026, 3)
    values = {day: Decimal(day.day * 37) / 7 for day in month.days() if day.day <= 17}
    values[date(2026, 3, 4)] = Decimal(0)
    chart = bar_chart(days=month.days(), values=values, today=today, currency="USD")
    overview = {"chart": chart, "month": month, "current": today is not None}
    context = Context({"o": overview})
    new = Template("{% load billing %}{% spend_chart o.chart o.month.label o.current %}").render(
        context
    )
    assert _normalized(new) == _normalized(Template(OLD_CHART).render(context))
    assert new.count('class="day"') == len(chart.day_labels) > 0


OLD_SPOT = """{% load billing money %}{% for line, prices in o.spot_breakdowns %}
  <details class="spot-breakdown" data-testid="spot-breakdown">
    <summary>{{ line.instance_type_name }} · <span class="mono">{{ line.region_code }}</span> · preemptible: {{ prices|length }} price{{ prices|length|pluralize }}, average {{ line.unit_price|per_hour:line.currency }}</summary>
    <table class="table compact">
      <thead><tr><th class="num">Spot price / hour</th><th class="num">Hours</th><th class="num">Seconds</th></tr></thead>
      <tbody>
      {% for price, seconds in prices %}<tr><td class="num">{{ price|price:o.currency }}</td><td class="num">{{ seconds|seconds_hours }}</td><td class="num">{{ seconds }}</td></tr>{% endfor %}
      </tbody>
    </table>
  </details>
  {% endfor %}"""  # noqa: E501


def test_the_spot_breakdowns_are_the_old_ones():
    breakdowns = [
        (LINES[1], [(Decimal("1.2345"), 3600), (Decimal("0.9"), 1_234_567)]),
        (_line("preemptible", region_code="<eu>"), [(Decimal("2.00"), 59)]),
    ]
    context = Context({"o": {"spot_breakdowns": breakdowns, "currency": "USD"}})
    new = Template("{% load billing %}{% spot_breakdowns o.spot_breakdowns o.currency %}").render(
        context
    )
    assert _normalized(new) == _normalized(Template(OLD_SPOT).render(context))
    assert "2 prices, average €1.2345/hour" in new and "1 price, average" in new
