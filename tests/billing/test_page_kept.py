"""The billing page kept for the minute it shows (portal/billing/page.py): the next view in that
minute reads it without rating the month again, and every write it shows appears at once."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.billing import services
from portal.billing.models import Invoice
from portal.billing.periods import Month
from tests.billing.conftest import sync, timeline

URL = reverse("billing:overview", args=["acme"])


@pytest.fixture
def running(team, make_instance, catalog, clock):
    """Acme's notebook, running since March 14 09:00 at 2.49/h; the clock at March 15, 12:00."""
    notebook = make_instance(team.organization, name="notebook", region=catalog.eu_west)
    timeline(notebook, ("2026-03-14 09:00:00", "running"))
    sync(notebook)
    return notebook


def main(response) -> str:
    """The page's content, without the layout (whose CSRF token differs at each view)."""
    page = response.content.decode()
    return page[page.index("<main") : page.index("</main>")]


def spend_shown(client) -> str:
    page = client.get(URL).content.decode()
    start = page.index('data-testid="spend"')
    value = page.index('class="value">', start) + len('class="value">')
    return page[value : page.index("<", value)]


def test_a_second_view_in_the_same_minute_is_the_same_page_without_rating_the_month(
    team, running, client_for
):
    client = client_for(team.owner.user)
    first = client.get(URL)
    with CaptureQueriesContext(connection) as captured:
        second = client.get(URL)
    assert main(second) == main(first)
    assert "notebook" in second.content.decode()
    read = " ".join(query["sql"] for query in captured.captured_queries)
    assert "billing_usageinterval" not in read
    assert "billing_invoice" not in read


def test_what_runs_is_counted_again_at_the_next_minute(team, running, client_for, clock):
    client = client_for(team.owner.user)
    assert spend_shown(client) == "$67.23"  # 27 h at 2.49
    clock.set("2026-03-15 12:00:50")  # the page shows 12:00: the figures of 12:00 stand
    assert spend_shown(client) == "$67.23"
    clock.set("2026-03-15 12:06:00")  # 27 h 6 min at 2.49 = 67.479
    assert spend_shown(client) == "$67.48"


def test_usage_metered_shows_at_once(team, running, make_instance, catalog, client_for):
    client = client_for(team.owner.user)
    assert "trainer" not in client.get(URL).content.decode()
    trainer = make_instance(team.organization, name="trainer", instance_type=catalog.h100_8x)
    timeline(trainer, ("2026-03-15 08:00:00", "running"))
    sync(trainer)
    page = client.get(URL).content.decode()
    assert "trainer" in page
    assert "$146.91" in page  # 67.23 + 4 h of the 8x H100 at 19.92


def test_a_budget_set_shows_at_once(team, running, client_for):
    client = client_for(team.owner.user)
    assert "Not set" in client.get(URL).content.decode()
    client.post(reverse("billing:budget", args=["acme"]), {"amount": "100"})
    page = client.get(URL).content.decode()
    assert "Not set" not in page
    assert "67 %" in page


def test_a_payment_recorded_by_staff_shows_at_once(team, running, client_for, clock, staff):
    clock.set("2026-04-01 02:00:00")
    invoice = services.invoice_issue(organization=team.organization, month=Month(2026, 3))
    client = client_for(team.owner.user)
    assert "1 open invoice" in client.get(URL).content.decode()
    services.invoice_mark_paid(invoice=invoice, by=staff)
    page = client.get(URL).content.decode()
    assert "open invoice" not in page
    assert Invoice.objects.get().paid_at is not None


def test_credit_granted_shows_at_once(team, running, client_for, staff):
    client = client_for(team.owner.user)
    assert "credit left $0.00" in client.get(URL).content.decode()
    services.credit_grant(
        organization=team.organization, amount="250", reason="Welcome credit", by=staff
    )
    assert "credit left $250.00" in client.get(URL).content.decode()


def test_an_instance_type_renamed_in_the_catalog_shows_at_once(team, running, client_for, catalog):
    client = client_for(team.owner.user)
    client.get(URL)
    catalog.h100_1x.name = "H100 SXM, one GPU"
    catalog.h100_1x.save()
    assert "H100 SXM, one GPU" in client.get(URL).content.decode()


def test_the_launch_hold_banner_shows_on_a_kept_page_too(team, running, client_for, clock):
    clock.set("2026-04-01 02:00:00")
    services.invoice_issue(organization=team.organization, month=Month(2026, 3))
    clock.set("2026-04-23 00:00:00")  # 8 days overdue: launches are paused
    client = client_for(team.owner.user)
    for _view in range(2):
        page = client.get(URL).content.decode()
        assert page.count("Launches are paused.</strong>") == 1


def test_a_billing_member_never_reads_the_page_kept_for_an_owner(team, running, client_for):
    link = reverse("instances:detail", args=["acme", running.pk])
    assert link in client_for(team.owner.user).get(URL).content.decode()
    page = client_for(team.billing.user).get(URL).content.decode()
    assert "notebook" in page
    assert link not in page


def test_a_past_month_is_kept_apart_from_this_one(team, running, client_for):
    client = client_for(team.owner.user)
    assert spend_shown(client) == "$67.23"
    past = client.get(URL, {"month": "2026-02"}).content.decode()
    assert "No usage in February 2026" in past
    assert spend_shown(client) == "$67.23"
