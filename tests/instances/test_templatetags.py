"""The instance tags print exactly what the template code and Django filters they replace did."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.humanize.templatetags import humanize
from django.template import Context, Template
from django.urls import reverse
from django.utils import timezone, translation

from portal.catalog.models import Price
from portal.instances import selectors
from portal.instances.models import State
from portal.instances.templatetags.instances import age, thousands

NOW = datetime(2026, 3, 31, 12, 30, 45, 500_000, tzinfo=UTC)

# The list's row and the state badge as templates, as they were before the tags (the row's
# instance, price and cost now come as one InstanceRow).
OLD_BADGE = (
    '{% load instances %}<span class="badge {{ instance.state|state_tone }}" data-testid="state">'
    '{% if instance.is_transitional %}<span class="dot pulse"></span>{% endif %}'
    "{{ instance.get_state_display }}</span>"
)
OLD_ROW = (
    "{% load humanize instances %}{% with instance=row.instance %}"
    '<tr data-instance="{{ instance.name }}">'
    "<td><a href=\"{% url 'instances:detail' org instance.pk %}\"><strong>{{ instance.name }}"
    '</strong></a>{% if instance.preemptible %} <span class="badge accent" title="May be '
    'reclaimed by the operator, with notice">preemptible</span>{% endif %}'
    '{% if instance.reclaim_pending %} <span class="badge warn">interruption at '
    '{{ instance.reclaim_at|date:"H:i:s" }}</span>{% endif %}</td>'
    "<td>" + OLD_BADGE.removeprefix("{% load instances %}") + "</td>"
    "<td>{{ instance.instance_type.name }}</td>"
    '<td><span class="mono">{{ instance.region.code }}</span></td>'
    '<td>{% if instance.ip %}<span class="mono">{{ instance.ip }}</span>{% else %}'
    '<span class="faint">—</span>{% endif %}</td>'
    '<td class="hide-sm muted" title="{{ instance.created_at|date:\'Y-m-d H:i:s\' }} UTC">'
    "{{ instance.created_at|naturaltime }}</td>"
    '<td class="num">{% if row.hourly_price is None %}<span class="faint">—</span>'
    "{% else %}${{ row.cost|intcomma }}{% endif %}</td>"
    "</tr>{% endwith %}"
)


@pytest.fixture
def frozen(monkeypatch):
    """The same "now" for our tags (timezone.now) and for naturaltime (datetime.now)."""

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return NOW if tz else NOW.replace(tzinfo=None)

    monkeypatch.setattr(timezone, "now", lambda: NOW)
    monkeypatch.setattr(humanize, "datetime", Frozen)
    return NOW


def _ages():
    """Past moments from a second to years back, and month ends (timesince's pivot)."""
    seconds = [0, 1, 59, 60, 61, 119, 3599, 3600, 3661, 7200, 86399, 86400, 86401]
    seconds += [3600 * h + 17 for h in range(0, 24 * 90, 7)]
    seconds += [86400 * d + 5 for d in range(0, 3 * 366, 11)]
    moments = [NOW - timedelta(seconds=s) for s in seconds]
    moments += [datetime(2026, 1, d, 23, 59, 59, tzinfo=UTC) for d in (28, 29, 30, 31)]
    moments += [
        datetime(2026, 2, 28, 12, 30, 46, tzinfo=UTC),
        datetime(2025, 3, 31, 13, tzinfo=UTC),
    ]
    moments += [datetime(2024, 2, 29, 12, tzinfo=UTC), datetime(2025, 12, 31, 13, tzinfo=UTC)]
    return [m for m in moments if m <= NOW]


def test_age_reads_like_naturaltime(frozen):
    for moment in _ages():
        assert age(moment) == humanize.naturaltime(moment), moment


def test_age_hands_the_future_naive_values_and_non_dates_to_naturaltime(frozen):
    for value in [NOW, NOW + timedelta(hours=3), NOW.replace(tzinfo=None), None, "soon"]:
        assert age(value) == humanize.naturaltime(value)


def test_age_follows_the_active_language(frozen):
    moment = NOW - timedelta(days=9, hours=4)
    with translation.override("fr"):
        assert age(moment) == humanize.naturaltime(moment)
        assert age(NOW - timedelta(minutes=5)) == humanize.naturaltime(NOW - timedelta(minutes=5))
    assert age(moment) == "1\xa0week, 2\xa0days ago"


def test_timestamp_reads_like_the_date_filter():
    template = Template("{{ t|date:'Y-m-d H:i:s' }}|{% load instances %}{{ t|timestamp }}")
    for value in [NOW, datetime(987, 1, 2, 3, 4, 5, tzinfo=UTC), None, ""]:
        old, new = template.render(Context({"t": value})).split("|")
        assert old == new
    with timezone.override("Europe/Paris"):
        old, new = template.render(Context({"t": NOW})).split("|")
        assert old == new == "2026-03-31 14:30:45"


def test_thousands_reads_like_intcomma():
    values = ["0.00", "-0.00", "7.5", "999.99", "1000.00", "-1234.56", "1234567.891", "1E+3"]
    for value in [Decimal(v) for v in values] + [Decimal("1e250"), 12345, None, "x"]:
        assert thousands(value) == humanize.intcomma(value), value
    with translation.override("de"):
        assert thousands(Decimal("1234.56")) == humanize.intcomma(Decimal("1234.56"))


@pytest.mark.parametrize("state", list(State))
def test_the_state_badge_is_the_old_include(make_instance, state):
    instance = make_instance(state)
    new = Template("{% load instances %}{% state_badge instance %}")
    context = Context({"instance": instance})
    assert new.render(context) == Template(OLD_BADGE).render(context)


def _normalized(html: str) -> str:
    return re.sub(r">\s+<", "><", html.strip())


@pytest.mark.parametrize(
    "fields",
    [
        {"state": State.RUNNING, "ip": "203.0.113.9", "running_seconds": 3_600_000},
        {"state": State.PROVISIONING},
        {"state": State.STOPPED, "name": "a-<b>&\"'"},
        {"state": State.RUNNING, "preemptible": True, "reclaim_at": NOW + timedelta(minutes=2)},
        {"state": State.TERMINATED, "reclaim_at": NOW},
    ],
)
def test_a_list_row_is_the_old_row(make_instance, team, frozen, fields):
    state = fields.pop("state")
    instance = make_instance(state, created_at=NOW - timedelta(days=40, hours=3), **fields)
    rows = selectors.instance_row_list(
        selectors.instance_list_rows(membership=team.member).filter(pk=instance.pk)
    )
    context = Context({"row": rows[0], "org": "acme"})

    new = Template("{% load instances %}{% instance_row row org %}").render(context)

    assert _normalized(new) == _normalized(Template(OLD_ROW).render(context))


@pytest.mark.parametrize("language", ["en", "fr", "de"])
def test_a_list_row_reads_the_active_language_like_the_old_row(
    make_instance, team, frozen, language
):
    instance = make_instance(
        State.RUNNING, created_at=NOW - timedelta(days=9, hours=4), running_seconds=4_000_000
    )
    rows = selectors.instance_row_list(
        selectors.instance_list_rows(membership=team.member).filter(pk=instance.pk)
    )
    context = Context({"row": rows[0], "org": "acme"})

    with translation.override(language):
        new = Template("{% load instances %}{% instance_row row org %}").render(context)
        old = Template(OLD_ROW).render(context)

    assert _normalized(new) == _normalized(old)


def test_a_row_without_a_price_shows_a_dash(make_instance, team, catalog):
    catalog.h100_1x.prices.all().delete()
    make_instance(State.RUNNING)
    rows = selectors.instance_row_list(selectors.instance_list_rows(membership=team.member))
    assert rows[0].hourly_price is None
    html = Template("{% load instances %}{% instance_row i 'acme' %}").render(
        Context({"i": rows[0]})
    )
    assert html.endswith('<td class="num"><span class="faint">—</span></td></tr>')


def test_rows_have_the_catalog_price_in_force_for_each_kind(make_instance, team):
    on_demand = make_instance(State.RUNNING)
    spot = make_instance(State.RUNNING, preemptible=True)
    price = (
        Price.objects.filter(instance_type_id=on_demand.instance_type_id)
        .order_by("-valid_from")
        .first()
    )
    rows = selectors.instance_row_list(selectors.instance_list_rows(membership=team.member))
    assert {r.instance.pk: r.hourly_price for r in rows} == {
        on_demand.pk: price.on_demand_hourly,
        spot.pk: price.preemptible_hourly,
    }
    assert price.on_demand_hourly != price.preemptible_hourly


def test_instance_url_is_the_detail_url():
    html = Template(
        "{% load instances %}{% instance_url 'acme' 7 %} {% instance_url 'acme' 12 %}"
    ).render(Context())
    assert html.split() == [
        reverse("instances:detail", args=["acme", 7]),
        reverse("instances:detail", args=["acme", 12]),
    ]
