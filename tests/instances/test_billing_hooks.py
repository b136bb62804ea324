"""The instance lifecycle and the billing app meet in two places: launches and metering."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from portal.billing.models import Budget, UsageInterval
from portal.instances import lifecycle
from portal.instances.models import Instance, State
from portal.lib.errors import ApplicationError

pytestmark = pytest.mark.django_db(transaction=True)


def _an_hour_of_h100_spent(make_instance) -> None:
    instance = make_instance(State.PROVISIONING, backend_id="m-spent")
    lifecycle.mark_running(instance.pk, at=timezone.now() - timedelta(hours=1))


def test_a_launch_is_refused_once_the_hard_budget_limit_is_reached(team, launch, make_instance):
    _an_hour_of_h100_spent(make_instance)
    Budget.objects.create(
        organization=team.organization,
        amount=Decimal("1.00"),
        hard_limit=True,
        updated_at=timezone.now(),
    )

    with pytest.raises(ApplicationError) as refused:
        launch("over-budget")

    assert refused.value.code == "billing_blocked"
    assert "hard budget limit" in refused.value.message
    assert not Instance.objects.filter(name="over-budget").exists()


def test_a_budget_without_a_hard_limit_does_not_stop_launches(team, launch, make_instance):
    _an_hour_of_h100_spent(make_instance)
    Budget.objects.create(
        organization=team.organization,
        amount=Decimal("1.00"),
        hard_limit=False,
        updated_at=timezone.now(),
    )

    assert launch("still-fine").state == State.PENDING


def test_usage_is_metered_as_soon_as_an_instance_changes_state(make_instance):
    instance = make_instance(State.PROVISIONING, backend_id="m-meter")
    started = timezone.now().replace(microsecond=0) - timedelta(minutes=10)

    lifecycle.mark_running(instance.pk, ip="203.0.113.9", at=started)

    [interval] = UsageInterval.objects.filter(instance=instance)
    assert interval.start == started
    assert interval.end is None
