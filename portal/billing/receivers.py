"""Billing's reactions to other apps, connected in BillingConfig.ready().

- Every instance transition is metered once its transaction commits (a failure is logged:
  metering must not undo a transition, and the periodic usage sync repairs it).
- Writes of usage outside metering (the admin, data fixes, deleted instances) also retire the
  organization's kept usage sums (`portal.billing.usage`); metering retires them itself.
- Launches are held while an invoice is overdue or a hard budget limit is reached
  (portal.orgs.standing).
"""

import logging

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from portal.billing import services
from portal.billing.models import UsageInterval
from portal.billing.selectors import launch_block_reason, organization_overdue_reason
from portal.billing.usage import usage_changed
from portal.instances.models import Instance, InstanceEvent
from portal.instances.signals import instance_state_changed
from portal.orgs.models import Organization
from portal.orgs.standing import hold_register

logger = logging.getLogger(__name__)


@receiver(instance_state_changed, dispatch_uid="billing-meter-transition")
def meter_transition(sender, instance: Instance, event: InstanceEvent, **kwargs) -> None:
    instance_id = instance.pk
    transaction.on_commit(lambda: _meter(instance_id))


def _meter(instance_id: int) -> None:
    try:
        services.usage_sync_instance(instance_id=instance_id)
    except Exception:  # metering must not undo a transition; the periodic sync repairs it
        logger.exception("metering of instance %s failed", instance_id)


def _launch_block_reason(organization: Organization) -> str | None:
    return launch_block_reason(organization=organization)


hold_register("billing", _launch_block_reason, code="billing_blocked")
# Asked by the quota rules (good standing); launches are already held by "billing" above.
hold_register(
    "invoice_overdue", organization_overdue_reason, code="billing_blocked", blocks_launch=False
)


@receiver(post_save, sender=UsageInterval, dispatch_uid="billing-usage-saved")
def usage_saved(sender, instance: UsageInterval, **kwargs) -> None:
    usage_changed(instance.organization_id)


@receiver(post_delete, sender=Instance, dispatch_uid="billing-instance-deleted")
def instance_deleted(sender, instance: Instance, **kwargs) -> None:
    usage_changed(instance.organization_id)
