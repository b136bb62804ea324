"""The operator overview: the numbers, and a fixed number of queries however many organizations."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from portal.billing.models import UsageInterval
from portal.billing.money import cents
from portal.billing.rating import rated
from portal.billing.usage import usage_changed
from portal.instances.models import Instance, State
from portal.operations import kept
from portal.operations.history import history_changed
from portal.operations.selectors import group_rows, operator_overview
from portal.orgs.models import Organization
from portal.quotas.models import QuotaRequest
from portal.reservations.models import Reservation


def populate(catalog, n: int, *, now, prefix: str = "a"):
    """n organizations, each with a running on-demand instance, a preemptible one, a failed
    one, usage this month and last month, and an open quota request."""
    orgs = Organization.objects.bulk_create(
        [Organization(name=f"Org {prefix}{i:04d}", slug=f"org-{prefix}{i:04d}") for i in range(n)]
    )
    common = {"instance_type": catalog.h100_1x, "region": catalog.us_east, "image": catalog.ubuntu}
    instances = Instance.objects.bulk_create(
        [
            Instance(
                organization=o,
                name=name,
                state=state,
                preemptible=pre,
                gpus=1,
                state_changed_at=now - timedelta(hours=2),
                **common,
            )
            for o in orgs
            for name, state, pre in (
                ("run", State.RUNNING, False),
                ("spot", State.RUNNING, True),
                ("broken", State.FAILED, False),
            )
        ]
    )
    this_month = now.replace(day=1, hour=1, minute=0, second=0, microsecond=0)
    last_month = (this_month - timedelta(days=3)).replace(hour=1)
    UsageInterval.objects.bulk_create(
        [
            UsageInterval(
                instance=i,
                organization_id=i.organization_id,
                instance_type=catalog.h100_1x,
                region=catalog.us_east,
                gpus=1,
                kind="on_demand",
                start=start,
                end=start + timedelta(hours=2),
                unit_price=Decimal("2.50"),
            )
            for i in instances
            if i.name == "run"
            for start in (this_month, last_month)
        ]
    )
    QuotaRequest.objects.bulk_create(
        [
            QuotaRequest(
                organization=o,
                region=catalog.us_east,
                gpu_model=catalog.h100,
                kind="on_demand",
                limit_at_submission=0,
                requested_limit=8,
                justification="x",
                created_at=now - timedelta(days=k % 10),
            )
            for k, o in enumerate(orgs)
        ]
    )
    for organization in orgs:  # usage written in bulk, not by metering: nothing kept of it
        usage_changed(organization.pk)
    kept.changed()  # nor of the instances and requests, written in bulk, not by the services
    Reservation.objects.create(
        organization=orgs[0],
        region=catalog.us_east,
        gpu_model=catalog.h100,
        gpus=16,
        start=now - timedelta(days=1),
        end=now + timedelta(days=30),
        price_per_gpu_hour=Decimal("1.50"),
    )
    return orgs


def test_the_numbers(catalog, fleet, team):
    now = timezone.now()
    populate(catalog, 3, now=now)
    o = operator_overview(now=now)
    us = next(r for r in o.rows if (r.region, r.gpu_model) == ("us-east-1", "h100"))
    # Org a0000 runs 1 on-demand GPU inside its 16 reserved: sold once, as reserved.
    assert (us.total, us.on_demand, us.preemptible, us.reserved, us.free) == (64, 2, 3, 16, 64)
    assert o.revenue_this_month == Decimal("15.00")  # 3 × 2 h × 2.50
    assert o.revenue_last_month == Decimal("15.00")
    assert o.failed_count == 3 and {i.name for i in o.failed} == {"broken"}
    assert sum(n for _label, n in o.quota_requests_by_age) == 3
    assert [s["spend"] for s in o.top_spenders] == [Decimal("5.00")] * 3
    assert o.reservations_this_month > 0


def _queries(client, staff):
    """The queries of a view with nothing kept (the revenue rated whole, the history's sums
    read), then of the next."""
    client.force_login(staff)
    history_changed()
    kept.changed()
    counts = []
    for _view in ("cold", "warm"):
        with CaptureQueriesContext(connection) as captured:
            response = client.get(reverse("operations_overview"))
        assert response.status_code == 200
        counts.append(len(captured))
    return counts, response


@pytest.mark.parametrize("big", [1000])
def test_the_same_queries_for_10_and_1000_organizations(catalog, fleet, staff, client, big):
    now = timezone.now()
    populate(catalog, 10, now=now)
    few, response = _queries(client, staff)
    assert "Org a0000" in response.content.decode()
    populate_more = big - 10
    orgs = populate(catalog, populate_more, now=now, prefix="b")
    assert Organization.objects.count() >= big
    many, response = _queries(client, staff)
    assert many == few, f"{few} queries for 10 organizations, {many} for {big}"
    assert len(orgs) == populate_more


def test_the_page_shows_money_in_the_portals_one_format(catalog, fleet, staff, client):
    populate(catalog, 3, now=timezone.now())
    client.force_login(staff)
    html = client.get(reverse("operations_overview")).content.decode()
    assert "$15.00" in html  # revenue this month, and last month
    assert "$5.00</td>" in html  # each top spender
    assert "USD" not in html


def test_only_staff_see_it(client, team):
    client.force_login(team.owner.user)
    response = client.get(reverse("operations_overview"))
    assert response.status_code == 302  # to the admin login
    assert "/admin/login/" in response["Location"]


def test_the_admin_index_links_to_it(client, staff):
    client.force_login(staff)
    page = client.get(reverse("admin:index")).content.decode()
    assert reverse("operations_overview") in page


def test_revenue_and_top_spenders_are_the_rated_sums_of_every_interval(catalog, fleet, team):
    """Summed per unit price (seconds, then × price once) and per organization in Python:
    exactly billing's rating summed interval by interval, with several prices, an open
    interval begun last month and one begun before it."""
    now = timezone.now().replace(microsecond=0)
    orgs = populate(catalog, 12, now=now)
    this_month = now.replace(day=1, hour=0, minute=0, second=0)
    prices = [Decimal("2.50"), Decimal("1.99"), Decimal("0.37")]
    run = list(Instance.objects.filter(name="run").order_by("pk"))
    UsageInterval.objects.bulk_create(
        [
            UsageInterval(
                instance=instance,
                organization_id=instance.organization_id,
                instance_type=catalog.h100_1x,
                region=catalog.us_east,
                gpus=1,
                kind="on_demand",
                start=start,
                end=None,
                unit_price=prices[n % 3],
            )
            for n, instance in enumerate(run)
            for start in [this_month - timedelta(days=1 + 40 * (n % 2), seconds=7 * n)]
        ]
    )
    UsageInterval.objects.filter(start__gte=this_month).update(unit_price=Decimal("3.13"))
    o = operator_overview(now=now, top=5)

    last_start = (this_month - timedelta(days=1)).replace(day=1)
    next_start = (this_month + timedelta(days=32)).replace(day=1)

    def month_total(start, end):  # billing's rating of the month, as an invoice rates it
        rows = rated(UsageInterval.objects.all(), start=start, end=end, now=now)
        return rows.aggregate(total=Sum("price_seconds"))["total"]

    # The open intervals begun last month count there up to its end, and here from the 1st.
    assert o.revenue_this_month == cents(month_total(this_month, next_start) / Decimal(3600))
    assert o.revenue_last_month == cents(month_total(last_start, this_month) / Decimal(3600))
    spenders = (
        rated(UsageInterval.objects.all(), start=this_month, end=next_start, now=now)
        .values("organization_id")
        .annotate(spend=Sum("price_seconds"))
        .order_by("-spend", "organization_id")[:5]
    )
    names = {org.pk: org.name for org in orgs}
    assert [(s["id"], s["name"], s["spend"]) for s in o.top_spenders] == [
        (s["organization_id"], names[s["organization_id"]], cents(s["spend"] / Decimal(3600)))
        for s in spenders
    ]


def test_gpus_sold_per_place_count_every_live_instance_once(catalog, fleet, team):
    now = timezone.now()
    populate(catalog, 4, now=now)
    common = {"image": catalog.ubuntu, "organization": team.organization, "gpus": 8}
    Instance.objects.bulk_create(
        [
            Instance(
                name="eu",
                instance_type=catalog.l40s_1x,
                region=catalog.eu_west,
                state=State.STOPPED,
                **common,
            ),
            Instance(
                name="eu-spot",
                instance_type=catalog.l40s_1x,
                region=catalog.eu_west,
                state=State.PROVISIONING,
                preemptible=True,
                **common,
            ),
            Instance(
                name="gone",
                instance_type=catalog.l40s_1x,
                region=catalog.eu_west,
                state=State.INTERRUPTED,
                preemptible=True,
                **common,
            ),
        ]
    )
    sold = {
        (r.region, r.gpu_model): (r.on_demand, r.preemptible, r.reserved)
        for r in operator_overview(now=now).rows
    }
    # 4 on-demand and 4 preemptible GPUs in us-east-1 (1 on-demand runs in the reservation).
    assert sold[("us-east-1", "h100")] == (3, 4, 16)
    assert sold[("eu-west-1", "l40s")] == (8, 8, 0)


def test_the_failed_rows_are_what_the_template_wrote(catalog, make_instance, staff, client):
    """The failed instances' rows are written in Python: the same markup as the template's
    loop (escaped names, the reason cut at 80 characters, the time of day, the admin link)."""
    from django.template import Context, Template
    from django.test.html import parse_html

    make_instance(State.FAILED, name="a<b&'c", state_reason="x" * 120)
    make_instance(State.FAILED, name="plain", state_reason="No capacity <here> & there.")
    failed = operator_overview().failed
    djangos = Template(
        "{% for i in o.failed %}<tr><td>"
        "<a href=\"{% url 'admin:instances_instance_change' i.pk %}\">{{ i.name }}</a></td>"
        "<td>{{ i.organization.name }}</td><td>{{ i.instance_type.name }}"
        " · {{ i.region.code }}</td><td>{{ i.state_reason|truncatechars:80 }}</td>"
        '<td class="num">{{ i.state_changed_at|date:"H:i" }}</td></tr>{% endfor %}'
    ).render(Context({"o": {"failed": failed}}))
    client.force_login(staff)
    page = client.get(reverse("operations_overview"))
    assert parse_html(str(page.context["failed_rows"])) == parse_html(djangos)
    assert "a&lt;b&amp;&#x27;c" in page.text and "x" * 79 + "…" in page.text


def test_the_tables_rows_are_what_the_template_wrote(catalog, fleet, staff, client):
    """The capacity, oldest quota requests and highest spenders tables are written in Python:
    the same markup as the template's loops (a place sold but not in the fleet report, names
    escaped, the sold bars' widths, the wait, the spend in the portal's money format)."""
    from django.template import Context, Template
    from django.test.html import parse_html

    now = timezone.now()
    orgs = populate(catalog, 12, now=now)
    Organization.objects.filter(pk=orgs[0].pk).update(name="<b>Acme & Co</b>")
    Instance.objects.create(  # sold in a place the fleet report does not list
        organization=orgs[1],
        name="elsewhere",
        instance_type=catalog.l40s_1x,
        region=catalog.us_east,
        image=catalog.ubuntu,
        state=State.RUNNING,
        gpus=1,
    )
    kept.changed()
    client.force_login(staff)
    page = client.get(reverse("operations_overview"))
    o = page.context["o"]
    djangos = Template(
        "{% load money %}"
        "{% for region, rows in regions.items %}{% for r in rows %}<tr>"
        "<td>{% if forloop.first %}<strong>{{ region }}</strong>{% endif %}</td>"
        "<td>{{ r.gpu_model_name }}</td>"
        '<td class="num">{{ r.total|default_if_none:"—" }}</td>'
        '<td class="num">{{ r.on_demand }}</td><td class="num">{{ r.preemptible }}</td>'
        '<td class="num">{{ r.reserved }}</td>'
        '<td class="num"><strong>{{ r.free|default_if_none:"—" }}</strong></td>'
        '<td>{% if r.total %}<div class="ov-bar" title="{{ r.sold }} of {{ r.total }} sold">'
        '<span class="ov-od" style="width:{% widthratio r.on_demand r.total 100 %}%"></span>'
        '<span class="ov-pre" style="width:{% widthratio r.preemptible r.total 100 %}%"></span>'
        '<span class="ov-res" style="width:{% widthratio r.reserved r.total 100 %}%"></span>'
        '</div>{% else %}<span class="ov-muted">{{ r.sold }} sold</span>{% endif %}</td>'
        "</tr>{% endfor %}{% endfor %}"
        "|{% for q in o.oldest_quota_requests %}<tr>"
        '<td><a href="{{ q.admin_url }}">#{{ q.pk }}</a> {{ q.gpu_model.name }}'
        " · {{ q.region.code }}</td><td>{{ q.organization.name }}</td>"
        '<td class="num">{{ q.requested_limit }}</td>'
        '<td class="num">{{ q.created_at|timesince:o.now }}</td></tr>{% endfor %}'
        "|{% for s in o.top_spenders %}<tr>"
        '<td><a href="{{ s.admin_url }}">{{ s.name }}</a></td>'
        '<td class="num">{{ s.spend|money:currency }}</td></tr>{% endfor %}'
    ).render(Context({"o": o, "regions": group_rows(o.rows), "currency": page.context["currency"]}))
    fleet_rows, quota_rows, spender_rows = djangos.split("|")

    assert any(r.total is None for r in o.rows) and any(r.total for r in o.rows)
    assert len(o.oldest_quota_requests) == 10 and len(o.top_spenders) == 10
    assert parse_html(str(page.context["fleet_rows"])) == parse_html(fleet_rows)
    assert parse_html(str(page.context["quota_rows"])) == parse_html(quota_rows)
    assert parse_html(str(page.context["spender_rows"])) == parse_html(spender_rows)
    assert "&lt;b&gt;Acme &amp; Co&lt;/b&gt;" in page.text
