"""A suspended organization, or one whose hard budget limit is reached, sees a banner with the
reason on every page, and the launch page's button is disabled with the reason beside it."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from portal.billing.services import budget_set
from portal.instances import lifecycle
from portal.instances.models import State
from portal.orgs.services import organization_suspend, organization_unsuspend
from tests.factories import UserFactory
from tests.instances.conftest import catalog, make_instance, quota  # noqa: F401  fixtures

pytestmark = pytest.mark.django_db(transaction=True)

PAGES = ["/o/acme/", "/o/acme/instances/", "/o/acme/members/", "/o/acme/settings/"]


def _suspend(team):
    organization_suspend(
        organization=team.organization,
        reason="Payment card declined twice.",
        by=UserFactory(is_staff=True),
    )


@pytest.mark.parametrize("path", PAGES)
def test_a_suspended_organization_sees_the_banner_on_every_page(team, client_for, path):
    _suspend(team)
    body = client_for(team.member.user).get(path).content.decode()
    assert 'data-testid="hold-banner" data-hold="suspended"' in body
    assert "Acme AI is suspended." in body
    assert "Payment card declined twice." in body


def test_the_launch_button_is_disabled_with_the_reason(team, client_for, quota):  # noqa: F811
    _suspend(team)
    body = client_for(team.member.user).get("/o/acme/instances/launch/").content.decode()
    assert 'data-testid="launch" disabled aria-describedby="launch-blocked"' in body
    assert 'id="launch-blocked"' in body and "Payment card declined twice." in body


def test_no_banner_and_an_enabled_button_in_good_standing(team, client_for, quota):  # noqa: F811
    _suspend(team)
    organization_unsuspend(organization=team.organization, by=UserFactory(is_staff=True))
    client = client_for(team.member.user)
    assert "hold-banner" not in client.get("/o/acme/").content.decode()
    body = client.get("/o/acme/instances/launch/").content.decode()
    assert '<button class="btn block" type="submit" data-testid="launch">' in body


def test_a_reached_hard_budget_limit_shows_and_blocks_the_same_way(
    team,
    client_for,
    make_instance,  # noqa: F811
):
    instance = make_instance(State.PROVISIONING, backend_id="m-spent")
    lifecycle.mark_running(instance.pk, at=timezone.now() - timedelta(hours=1))
    budget_set(
        organization=team.organization, amount=Decimal("1.00"), hard_limit=True, by=team.owner.user
    )
    client = client_for(team.member.user)

    body = client.get("/o/acme/").content.decode()
    assert 'data-hold="billing"' in body
    assert "has reached the hard budget limit of $1.00" in body
    launch = client.get("/o/acme/instances/launch/").content.decode()
    assert 'data-testid="launch" disabled' in launch


def test_in_good_standing_every_hold_is_asked_in_one_query(team, client_for):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_for(team.member.user)
    client.get("/o/acme/")
    with CaptureQueriesContext(connection) as captured:
        body = client.get("/o/acme/").content.decode()
    assert 'data-testid="hold-banner"' not in body
    asking = [q["sql"] for q in captured if "orgs_suspension" in q["sql"]]
    assert len(asking) == 1
    assert "billing_invoice" in asking[0] and "billing_budget" in asking[0]
    assert not [q for q in captured if q["sql"].startswith('SELECT "orgs_suspension"')]
