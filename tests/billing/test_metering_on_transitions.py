"""Metering follows the instance's transitions, on their commit: every one that may change what
is billed, and none that cannot."""

import pytest

from portal.billing.models import InstanceMeter, UsageInterval
from portal.instances import lifecycle

pytestmark = pytest.mark.django_db


def test_pending_to_provisioning_is_not_metered_and_running_is(
    team, make_instance, django_capture_on_commit_callbacks
):
    instance = make_instance(team.organization)

    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.mark_provisioning(instance.pk)

    assert not InstanceMeter.objects.filter(instance=instance).exists()
    assert not UsageInterval.objects.filter(instance=instance).exists()

    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.mark_running(instance.pk, ip="203.0.113.9")

    (interval,) = UsageInterval.objects.filter(instance=instance)
    assert interval.end is None and interval.kind == "on_demand"
    last = instance.events.exclude(to_state="").order_by("id").last()
    assert InstanceMeter.objects.get(instance=instance).last_event_id == last.pk


def test_a_final_state_after_an_unbilled_one_is_metered(
    team, make_instance, django_capture_on_commit_callbacks
):
    """A final state may be dated back into an earlier billed stretch: always metered."""
    instance = make_instance(team.organization)
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.mark_provisioning(instance.pk)
        lifecycle.mark_failed(instance.pk, reason="The machine did not boot.")

    last = instance.events.exclude(to_state="").order_by("id").last()
    assert last.to_state == "failed"
    assert InstanceMeter.objects.get(instance=instance).last_event_id == last.pk
    assert not UsageInterval.objects.filter(instance=instance).exists()
