"""Billing's reactions to other apps, connected in BillingConfig.ready().

- Every instance transition is metered once its transaction commits, the transitions of many
  instances made at once (a cluster's nodes) together (a failure is logged: metering must not
  undo a transition, and the periodic usage sync repairs it), and the organization's budget
  thresholds are checked at once (the periodic check remains for spend that grows while
  instances run between transitions).
- Writes of usage outside metering (the admin, data fixes, deleted instances) also retire the
  organization's kept usage sums (`portal.billing.usage`); metering retires them itself.
- Launches are held while an invoice is overdue or a hard budget limit is reached
  (portal.orgs.standing).
- A change to an offer's spot price history re-seals the usage it reaches
  (`portal.billing.sealing`), in the transaction that made it.
- Writes of what the billing page shows besides usage retire the page kept
  (`portal.billing.page`).
"""

import logging
from collections.abc import Callable
from datetime import datetime

from django.db import transaction
from django.db.models import F, Model
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from portal.billing import metering, sealing, services
from portal.billing.models import (
    Budget,
    CreditApplication,
    CreditGrant,
    CreditNote,
    Invoice,
    Payment,
    UsageInterval,
)
from portal.billing.page import page_changed
from portal.billing.selectors import (
    BILLING_HOLD,
    launch_block_possible,
    launch_block_reason,
    organization_overdue_reason,
)
from portal.billing.usage import usage_changed
from portal.catalog.models import GpuModel, InstanceType, Price, Region, StoragePrice
from portal.instances.models import Instance, InstanceEvent
from portal.instances.signals import instance_state_changed, instances_state_changed
from portal.market.signals import spot_history_rewritten
from portal.orgs.models import Organization
from portal.orgs.standing import hold_register
from portal.reservations.models import Reservation
from portal.volumes.models import Volume, VolumeSize
from portal.web.sql import Among, ReadBuiltOnce

logger = logging.getLogger(__name__)


@receiver(instance_state_changed, dispatch_uid="billing-meter-transition")
def meter_transition(
    sender, instance: Instance, event: InstanceEvent, from_state: str = "", **kwargs
) -> None:
    if _bills_nothing(from_state, event.to_state):
        return
    instance_id = instance.pk
    transaction.on_commit(lambda: _meter(instance_id))


@receiver(instances_state_changed, dispatch_uid="billing-meter-transitions")
def meter_transitions(sender, changes, **kwargs) -> None:
    """Many instances moved at once (a cluster's nodes): metered together on commit."""
    instance_ids = [
        c.instance.pk for c in changes if not _bills_nothing(c.from_state, c.event.to_state)
    ]
    if instance_ids:
        transaction.on_commit(lambda: _meter_many(instance_ids))


@receiver(spot_history_rewritten, dispatch_uid="billing-spot-reseal")
def reseal_spot_usage(
    sender, region_id: int, instance_type_id: int, since: datetime, **kwargs
) -> None:
    sealing.spot_reseal(region_id=region_id, instance_type_id=instance_type_id, since=since)


def _bills_nothing(from_state: str, to_state: str) -> bool:
    """A move between two states billed nothing (pending to provisioning), recorded now: no
    billed stretch ends or starts, so metering would write nothing (the periodic usage sync
    still reads the event). A final state is metered always: it may be dated back."""
    return (
        bool(from_state)
        and metering.billed_kind(from_state, preemptible=False) is None
        and metering.billed_kind(to_state, preemptible=False) is None
        and to_state not in metering.FINAL_STATES
    )


# Read after every metered transition: built once.
_BUDGET_OF_INSTANCE = ReadBuiltOnce(
    lambda instance: (
        Budget.objects.filter(organization__instances__pk=instance)
        .select_related("organization")
        .order_by("pk")[:1]
    ),
    instance=int,
)
_BUDGETS_OF_INSTANCES = ReadBuiltOnce(
    lambda ids: Budget.objects.filter(
        organization__in=Instance.objects.filter(Among(F("pk"), ids)).values("organization_id")
    ).select_related("organization"),
    ids=list,
)


def _meter(instance_id: int) -> None:
    try:
        services.usage_sync_instance(instance_id=instance_id)
    except Exception:  # metering must not undo a transition; the periodic sync repairs it
        logger.exception("metering of instance %s failed", instance_id)
        return
    # The spend just moved: tell of a budget threshold now, not at the next periodic check.
    budget = _BUDGET_OF_INSTANCE.first(instance=instance_id)
    if budget is not None:  # one query, and nothing more for an organization without a budget
        try:
            services.budget_check(organization=budget.organization)
        except Exception:  # the periodic check tries again
            logger.exception("budget check after metering %s failed", instance_id)


def _meter_many(instance_ids: list[int]) -> None:
    try:
        services.usage_sync_instances(instance_ids=instance_ids)
    except Exception:  # as _meter: the periodic sync repairs it
        logger.exception("metering of %s instances failed", len(instance_ids))
        return
    for budget in _BUDGETS_OF_INSTANCES.objects(ids=instance_ids):
        try:
            services.budget_check(organization=budget.organization)
        except Exception:  # the periodic check tries again
            logger.exception("budget check after metering failed for %s", budget.organization_id)


def _launch_block_reason(organization: Organization) -> str | None:
    return launch_block_reason(organization=organization)


hold_register(
    BILLING_HOLD, _launch_block_reason, code="billing_blocked", may_hold=launch_block_possible
)
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


# What the billing page shows besides usage (portal/billing/page.py): once written, the page is
# rendered again at the next view. An instance's state and name need nothing here: no instance
# is renamed, and the transitions that change what it bills are metered (its usage version).
def _organization_page_changed(sender, instance, **kwargs) -> None:
    page_changed(instance.pk if sender is Organization else instance.organization_id)


def _portal_page_changed(sender, **kwargs) -> None:
    page_changed(None)


_ORGANIZATION_WRITES: tuple[type[Model], ...] = (
    Organization,
    Invoice,
    Budget,
    CreditGrant,
    Reservation,
    Volume,
)
# Rare writes that reach an organization only through another row: any organization's page.
_PORTAL_WRITES: tuple[type[Model], ...] = (
    CreditNote,
    CreditApplication,
    Payment,
    VolumeSize,
    Region,
    GpuModel,
    InstanceType,
    Price,
    StoragePrice,
)
_PAGE_WRITES: list[tuple[tuple[type[Model], ...], Callable[..., None]]] = [
    (_ORGANIZATION_WRITES, _organization_page_changed),
    (_PORTAL_WRITES, _portal_page_changed),
]
for _models, _receiver in _PAGE_WRITES:
    for _model in _models:
        for _signal in (post_save, post_delete):
            _signal.connect(
                _receiver,
                sender=_model,
                dispatch_uid=f"billing-page-{_model._meta.label_lower}-{_signal is post_save}",
            )
