"""The overview keeps what changes only with writes between views (portal.operations.kept):
every change an operator would look for is on the next view, made through the services that
make it in the portal, and what moves with the clock moves without a write."""

from datetime import timedelta
from decimal import Decimal

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from portal.clusters import services as clusters
from portal.instances import lifecycle
from portal.instances.lifecycle.apply import transition
from portal.instances.models import State
from portal.operations.selectors import operator_overview
from portal.orgs import services as orgs
from portal.quotas import services as quotas
from portal.quotas.models import Kind
from portal.quotas.services import Decision
from portal.reservations import services as reservations


def us_h100(overview):
    return next(r for r in overview.rows if (r.region, r.gpu_model) == ("us-east-1", "h100"))


def quota_requests(overview) -> int:
    return sum(n for _label, n in overview.quota_requests_by_age)


def test_a_second_view_reads_what_the_first_kept(catalog, fleet, staff, client, launch):
    launch("web-1")
    client.force_login(staff)
    client.get(reverse("operations_overview"))
    with CaptureQueriesContext(connection) as warm:
        client.get(reverse("operations_overview"))
    sql = "\n".join(q["sql"] for q in warm.captured_queries)
    assert '"quotas_quotarequest"' not in sql  # the requests kept
    assert 'FROM "instances_instance"' not in sql.replace('"instances_instance" U0', "")


def test_a_launch_is_sold_at_once(catalog, fleet, launch):
    launch("web-1")
    before = us_h100(operator_overview())
    launch("web-2", preemptible=True)
    launch("web-3")
    after = us_h100(operator_overview())
    assert (after.on_demand, after.preemptible) == (before.on_demand + 1, before.preemptible + 1)


def test_a_cluster_launched_is_sold_at_once(catalog, fleet, team, quota, ssh_key):
    before = us_h100(operator_overview())
    clusters.cluster_launch(
        membership=team.member,
        name="train",
        instance_type=catalog.h100_1x.code,
        region=catalog.us_east.code,
        image=catalog.ubuntu.code,
        nodes=2,
        ssh_key_ids=[ssh_key.pk],
    )
    assert us_h100(operator_overview()).on_demand == before.on_demand + 2


def test_an_instance_failing_is_on_the_overview_at_once(catalog, fleet, launch):
    instance = launch("web-1")
    before = operator_overview()
    assert (before.failed_count, before.failed) == (0, [])
    assert us_h100(before).on_demand == 1

    lifecycle.mark_failed(instance.pk, reason="No capacity left in us-east-1.")
    after = operator_overview()
    assert after.failed_count == 1
    assert [(i.name, i.state_reason) for i in after.failed] == [
        ("web-1", "No capacity left in us-east-1.")
    ]
    assert us_h100(after).on_demand == 0


def test_a_failure_leaves_the_24_hours_with_the_clock(catalog, fleet, launch):
    instance = launch("web-1")
    lifecycle.mark_failed(instance.pk, reason="Broken.")
    now = timezone.now()
    assert operator_overview(now=now).failed_count == 1
    later = operator_overview(now=now + timedelta(hours=24, seconds=1))  # no write between
    assert (later.failed_count, later.failed) == (0, [])
    # And an earlier clock than the one kept still sees it.
    assert operator_overview(now=now).failed_count == 1


def test_an_instance_terminated_is_no_longer_sold(catalog, fleet, launch):
    instance = launch("web-1")
    transition(instance.pk, State.PROVISIONING)
    transition(instance.pk, State.RUNNING)
    assert us_h100(operator_overview()).on_demand == 1
    transition(instance.pk, State.TERMINATING)
    transition(instance.pk, State.TERMINATED)
    assert us_h100(operator_overview()).on_demand == 0


def test_a_renamed_organization_shows_its_new_name(catalog, fleet, team, launch):
    instance = launch("web-1")
    lifecycle.mark_failed(instance.pk, reason="Broken.")
    assert operator_overview().failed[0].organization.name == team.organization.name
    orgs.organization_rename(actor=team.owner, organization=team.organization, name="Renamed Co")
    assert operator_overview().failed[0].organization.name == "Renamed Co"


def _submit(team, catalog, limit=32):
    return quotas.quota_request_submit(
        membership=team.owner,
        region=catalog.us_east,
        gpu_model=catalog.h100,
        kind=Kind.ON_DEMAND,
        requested_limit=limit,
        justification="Training runs.",
    )


def test_a_quota_request_and_its_decision_are_on_the_overview_at_once(catalog, fleet, team, staff):
    assert quota_requests(operator_overview()) == 0
    request = _submit(team, catalog)
    seen = operator_overview()
    assert quota_requests(seen) == 1
    assert [q.pk for q in seen.oldest_quota_requests] == [request.pk]

    quotas.quota_request_decide(quota_request=request, decision=Decision.DENY, decided_by=staff)
    decided = operator_overview()
    assert quota_requests(decided) == 0 and decided.oldest_quota_requests == []


def test_a_quota_requests_age_moves_with_the_clock(catalog, fleet, team):
    _submit(team, catalog)
    now = timezone.now()
    ages = dict(operator_overview(now=now).quota_requests_by_age)
    assert ages["under a day"] == 1
    later = dict(operator_overview(now=now + timedelta(days=4)).quota_requests_by_age)
    assert (later["under a day"], later["3–7 days"]) == (0, 1)


def test_a_suspension_and_its_lifting_are_on_the_overview_at_once(fleet, team, staff):
    assert operator_overview().suspended == []
    orgs.organization_suspend(organization=team.organization, reason="Unpaid.", by=staff)
    assert [s.organization.name for s in operator_overview().suspended] == [team.organization.name]
    orgs.organization_unsuspend(organization=team.organization, by=staff)
    assert operator_overview().suspended == []


def test_a_reservation_request_is_counted_at_once(catalog, fleet, team):
    assert operator_overview().open_reservation_requests == 0
    start = (timezone.now() + timedelta(days=40)).date().replace(day=1)
    reservations.reservation_request_submit(
        membership=team.owner,
        region=catalog.us_east,
        gpu_model=catalog.h100,
        gpus=8,
        start_date=start,
        months=1,
        note="",
    )
    assert operator_overview().open_reservation_requests == 1


def test_the_page_shows_a_failure_at_once(catalog, fleet, staff, client, launch):
    instance = launch("web-1")
    client.force_login(staff)
    assert "web-1" not in client.get(reverse("operations_overview")).content.decode()
    lifecycle.mark_failed(instance.pk, reason="No capacity left.")
    page = client.get(reverse("operations_overview")).content.decode()
    assert "web-1" in page and "No capacity left." in page


def _database_amount(start, until):
    """The committed amount as the database rated it before it was kept (the same SQL)."""
    from django.db.models import DecimalField, ExpressionWrapper, F, Sum, Value
    from django.db.models.functions import Cast, Greatest, Least

    from portal.billing.rating import EXACT, EpochSeconds
    from portal.reservations.models import Reservation

    total = (
        Reservation.objects.overlapping(start, until)
        .annotate(
            seconds=EpochSeconds(Greatest(F("start"), Value(start)), Least(F("end"), Value(until)))
        )
        .annotate(
            amount=ExpressionWrapper(
                Cast(F("seconds"), EXACT) * F("gpus") * F("price_per_gpu_hour"),
                output_field=DecimalField(max_digits=30, decimal_places=6),
            )
        )
        .aggregate(total=Sum("amount"))["total"]
    )
    return ((total or Decimal(0)) / Decimal(3600)).quantize(Decimal("0.01"))


def test_reservations_made_and_cancelled_are_on_the_overview_at_once(
    catalog, fleet, team, staff, launch
):
    launch("web-1")  # 1 on-demand GPU of the organization, inside what it will reserve
    now = timezone.now()
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert us_h100(operator_overview(now=now)).reserved == 0
    made = reservations.reservation_create(
        organization=team.organization,
        region=catalog.us_east,
        gpu_model=catalog.h100,
        gpus=4,
        start=now - timedelta(hours=5, seconds=0.4),
        end=now + timedelta(days=3),
        price_per_gpu_hour="1.37",
        by=staff,
    )
    reservations.reservation_create(  # begins tomorrow: not sold yet, nothing committed yet
        organization=team.organization,
        region=catalog.us_east,
        gpu_model=catalog.h100,
        gpus=2,
        start=now + timedelta(days=1),
        end=now + timedelta(days=2),
        price_per_gpu_hour="2.00",
        by=staff,
    )
    seen = operator_overview(now=now)
    assert (us_h100(seen).reserved, us_h100(seen).on_demand) == (4, 0)
    assert seen.reservations_this_month == _database_amount(month, now) > 0

    later = now + timedelta(days=1, hours=1)  # no write between: the second one has begun
    assert us_h100(operator_overview(now=later)).reserved == 6

    reservations.reservation_cancel(reservation=made, by=staff)
    cancelled = operator_overview(now=now)
    assert (us_h100(cancelled).reserved, us_h100(cancelled).on_demand) == (0, 1)
    assert cancelled.reservations_this_month == _database_amount(month, now) == Decimal("0.00")
