"""The interruption rate of preemptible offers (last 30 days) and the median run before a
reclaim, on the launch page and the catalog, like a spot advisor."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from portal.instances.interruptions import interruption_rates
from portal.instances.models import State


def history(make_instance, catalog):
    """Ten preemptible H100 instances in us-east-1: eight alive for 2 days, one interrupted
    after 3 hours and one after 5: 2 interruptions in about 16.3 instance-days, 12 % a day."""
    now = timezone.now()
    for n in range(10):
        launched = now - timedelta(days=2)
        fields = {"preemptible": True, "launched_at": launched}
        if n < 2:
            ran = timedelta(hours=3 if n == 0 else 5)
            fields["launched_at"] = now - timedelta(days=1) - ran
            fields["terminated_at"] = fields["launched_at"] + ran
            make_instance(State.INTERRUPTED, **fields)
        else:
            make_instance(State.RUNNING, **fields)
    make_instance(State.RUNNING, launched_at=now - timedelta(days=2))  # on-demand: not counted


def test_the_rate_is_interruptions_per_day_of_running_and_the_median_run(catalog, make_instance):
    history(make_instance, catalog)
    stats = interruption_rates()[(catalog.h100_1x.pk, catalog.us_east.pk)]
    assert (stats.instances, stats.interrupted) == (10, 2)
    assert 16 < stats.instance_days < 17  # 8 × 2 days and 2 × a few hours
    assert stats.bucket == "10–15 %"
    assert stats.median_run == timedelta(hours=4)
    assert stats.median_run_text == "4 h"


def test_the_launch_page_and_the_catalog_show_it_for_preemptible_offers(
    catalog, make_instance, team, client_for
):
    history(make_instance, catalog)
    client = client_for(team.member.user)
    launch = client.get(reverse("instances:launch", args=["acme"])).content.decode()
    assert "spot: interrupted 10–15 %/day · median 4 h" in launch
    page = client.get("/o/acme/catalog/").content.decode()
    assert "Interrupted 10–15 %/day (30 d); median run before a reclaim 4 h." in page


def test_without_history_nothing_is_claimed(catalog, team, client_for):
    client = client_for(team.member.user)
    assert 'data-testid="interruptions"' not in client.get("/o/acme/catalog/").content.decode()
