"""The events webhooks deliver, taken from the signals of the apps below (connected in
WebhooksConfig.ready()). Each receiver runs inside the transaction of the change, so a
delivery row exists exactly when the change committed."""

from django.dispatch import receiver

from portal.billing.signals import budget_threshold_reached, invoice_issued
from portal.clusters.signals import cluster_reclaim_noticed, cluster_state_changed
from portal.instances.signals import (
    instance_reclaim_noticed,
    instance_state_changed,
    instances_state_changed,
)
from portal.market.signals import capacity_alert_fired
from portal.quotas.signals import quota_request_decided
from portal.reclaims.signals import instance_reclaim_risk, instances_reclaim_risk
from portal.volumes.signals import volume_changed
from portal.webhooks import events


@receiver(instance_state_changed, dispatch_uid="webhooks-instance-state-changed")
def on_instance_state_changed(sender, instance, from_state: str, **kwargs) -> None:
    events.instance_state_changed(instance, from_state)


@receiver(instances_state_changed, dispatch_uid="webhooks-instances-state-changed")
def on_instances_state_changed(sender, changes, **kwargs) -> None:
    events.instances_state_changed(changes)


@receiver(instance_reclaim_noticed, dispatch_uid="webhooks-instance-reclaim-noticed")
def on_instance_reclaim_noticed(sender, instance, **kwargs) -> None:
    events.instance_interruption_notice(instance)


@receiver(cluster_reclaim_noticed, dispatch_uid="webhooks-cluster-reclaim-noticed")
def on_cluster_reclaim_noticed(sender, cluster, **kwargs) -> None:
    events.cluster_interruption_notice(cluster)


@receiver(cluster_state_changed, dispatch_uid="webhooks-cluster-state-changed")
def on_cluster_state_changed(sender, cluster, from_state: str, **kwargs) -> None:
    events.cluster_state_changed(cluster, from_state)


@receiver(instance_reclaim_risk, dispatch_uid="webhooks-instance-reclaim-risk")
def on_instance_reclaim_risk(sender, instance, **kwargs) -> None:
    events.instance_reclaim_risk(instance)


@receiver(instances_reclaim_risk, dispatch_uid="webhooks-instances-reclaim-risk")
def on_instances_reclaim_risk(sender, instances, **kwargs) -> None:
    events.instances_reclaim_risk(instances)


@receiver(quota_request_decided, dispatch_uid="webhooks-quota-request-decided")
def on_quota_request_decided(sender, quota_request, message: str = "", **kwargs) -> None:
    events.quota_decided(quota_request, message)


@receiver(invoice_issued, dispatch_uid="webhooks-invoice-issued")
def on_invoice_issued(sender, invoice, **kwargs) -> None:
    events.invoice_issued(invoice)


@receiver(budget_threshold_reached, dispatch_uid="webhooks-budget-threshold")
def on_budget_threshold_reached(sender, alert, **kwargs) -> None:
    events.budget_threshold(alert)


@receiver(capacity_alert_fired, dispatch_uid="webhooks-capacity-available")
def on_capacity_alert_fired(sender, alert, free_instances: int, price, **kwargs) -> None:
    events.capacity_available(alert, free_instances, price)


@receiver(volume_changed, dispatch_uid="webhooks-volume-changed")
def on_volume_changed(sender, volume, event: str, **kwargs) -> None:
    events.volume_changed(volume, event)
