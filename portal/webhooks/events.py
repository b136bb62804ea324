"""The events webhooks deliver, one function each: the payload in one place per event.

`portal.webhooks.receivers` calls them from the other apps' signals, inside the transaction
that makes the change (see `webhook_emit`):

    instances.signals.instance_state_changed   -> instance_state_changed(instance, from_state)
    instances.signals.instances_state_changed  -> instances_state_changed(changes)
    instances.signals.instance_reclaim_noticed -> instance_interruption_notice(instance)
    clusters.signals.cluster_state_changed     -> cluster_state_changed(cluster, from_state)
    clusters.signals.cluster_reclaim_noticed   -> cluster_interruption_notice(cluster)
    reclaims.signals.instance_reclaim_risk     -> instance_reclaim_risk(instance)
    reclaims.signals.instances_reclaim_risk    -> instances_reclaim_risk(instances)
    quotas.signals.quota_request_decided       -> quota_decided(quota_request, message)
    billing.signals.invoice_issued             -> invoice_issued(invoice)
    billing.signals.budget_threshold_reached   -> budget_threshold(alert)
    market.signals.capacity_alert_fired        -> capacity_available(alert, free, price)
    volumes.signals.volume_changed             -> volume_changed(volume, event)
"""

from __future__ import annotations

from portal.webhooks.models import EventType
from portal.webhooks.services import webhook_emit, webhook_emit_each, webhook_emit_many


def _instance(instance) -> dict:
    return {
        "id": instance.pk,
        "name": instance.name,
        "state": instance.state,
        "region": instance.region.code,
        "instance_type": instance.instance_type.code,
        "preemptible": instance.preemptible,
        "ip": instance.ip,
    }


def _state_changed(instance, from_state: str) -> dict:
    return {
        "instance": _instance(instance),
        "from_state": from_state,
        "to_state": instance.state,
        "reason": instance.state_reason,
    }


def instance_state_changed(instance, from_state: str) -> list[int]:
    return webhook_emit(
        organization=instance.organization,
        event_type=EventType.INSTANCE_STATE_CHANGED,
        payload=_state_changed(instance, from_state),
    )


def instances_state_changed(changes) -> list[int]:
    """The same event for each of many instances changed at once (`lifecycle.Change`s)."""
    by_organization: dict[int, list] = {}
    for change in changes:
        by_organization.setdefault(change.instance.organization_id, []).append(change)
    ids: list[int] = []
    for same in by_organization.values():
        ids += webhook_emit_many(
            organization=same[0].instance.organization,
            event_type=EventType.INSTANCE_STATE_CHANGED,
            payloads=[_state_changed(c.instance, c.from_state) for c in same],
        )
    return ids


def instance_interruption_notice(instance) -> list[int]:
    return webhook_emit(
        organization=instance.organization,
        event_type=EventType.INSTANCE_INTERRUPTION_NOTICE,
        payload={"instance": _instance(instance), "reclaim_at": instance.reclaim_at},
    )


def cluster_interruption_notice(cluster) -> list[int]:
    return webhook_emit(
        organization=cluster.organization,
        event_type=EventType.CLUSTER_INTERRUPTION_NOTICE,
        payload={
            "cluster": {
                "id": cluster.pk,
                "name": cluster.name,
                "region": cluster.region.code,
                "instance_type": cluster.instance_type.code,
                "nodes": cluster.node_count,
            },
            "reclaim_at": cluster.reclaim_at,
        },
    )


def cluster_state_changed(cluster, from_state: str) -> list[int]:
    """Launched, running, stopped, failed, interrupted (reclaimed whole), terminated: the
    cluster as one. Each node also sends its own instance.state_changed."""
    nodes = list(cluster.nodes.values("id", "name", "state", "ip", "private_ip", "node_index"))
    return webhook_emit(
        organization=cluster.organization,
        event_type=EventType.CLUSTER_STATE_CHANGED,
        payload={
            "cluster": {
                "id": cluster.pk,
                "name": cluster.name,
                "state": cluster.state,
                "region": cluster.region.code,
                "instance_type": cluster.instance_type.code,
                "nodes": cluster.node_count,
                "preemptible": cluster.preemptible,
                "head_ip": next((n["ip"] for n in nodes if n["node_index"] == 0), None),
            },
            "nodes": [
                {k: n[k] for k in ("id", "name", "state", "ip", "private_ip")} for n in nodes
            ],
            "from_state": from_state,
            "to_state": cluster.state,
            "reason": cluster.state_reason,
        },
    )


def _reclaim_risk(instance) -> dict:
    return {
        "instance": _instance(instance),
        "risk_since": instance.reclaim_risk_at,
        "horizon_minutes": 15,
        "message": "The operator's own work is forecast to need this capacity within 15 "
        "minutes. This is not a notice: a reclaim, if it comes, comes with its notice.",
    }


def instance_reclaim_risk(instance) -> list[int]:
    return webhook_emit(
        organization=instance.organization,
        event_type=EventType.INSTANCE_RECLAIM_RISK,
        payload=_reclaim_risk(instance),
    )


def instances_reclaim_risk(instances) -> list[int]:
    """The same event for each of several instances warned at once, of any organizations."""
    return webhook_emit_each(
        event_type=EventType.INSTANCE_RECLAIM_RISK,
        events=[(instance.organization, _reclaim_risk(instance)) for instance in instances],
    )


def quota_decided(quota_request, message: str = "") -> list[int]:
    return webhook_emit(
        organization=quota_request.organization,
        event_type=EventType.QUOTA_DECIDED,
        payload={
            "quota_request": {
                "id": quota_request.pk,
                "region": quota_request.region.code,
                "gpu_model": quota_request.gpu_model.code if quota_request.gpu_model else None,
                "kind": quota_request.kind,
                "state": quota_request.state,
                "requested_limit": quota_request.requested_limit,
                "granted_limit": quota_request.granted_limit,
            },
            "message": message,
        },
    )


def invoice_issued(invoice) -> list[int]:
    return webhook_emit(
        organization=invoice.organization,
        event_type=EventType.INVOICE_ISSUED,
        payload={
            "invoice": {
                "id": invoice.pk,
                "number": invoice.number,
                "period_start": invoice.period_start,
                "period_end": invoice.period_end,
                "currency": invoice.currency,
                "total": invoice.total,
                "amount_due": invoice.amount_due,
                "due_at": invoice.due_at,
            }
        },
    )


def budget_threshold(alert) -> list[int]:
    return webhook_emit(
        organization=alert.organization,
        event_type=EventType.BUDGET_THRESHOLD,
        payload={
            "threshold_percent": alert.threshold,
            "month": alert.month,
            "spend": alert.spend,
            "budget": alert.budget_amount,
        },
    )


def capacity_available(alert, free_instances: int, price) -> list[int]:
    return webhook_emit(
        organization=alert.organization,
        event_type=EventType.CAPACITY_AVAILABLE,
        payload={
            "alert_id": alert.pk,
            "instance_type": alert.instance_type.code,
            "region": alert.region.code,
            "count": alert.count,
            "free_instances": free_instances,
            "max_price": alert.max_price,
            "spot_price": price,
            "asked_by": alert.created_by.email,
        },
    )


def volume_changed(volume, event: str) -> list[int]:
    """Created, resized, deleted, available, failed, lost: `change` says which."""
    return webhook_emit(
        organization=volume.organization,
        event_type=EventType.VOLUME_CHANGED,
        payload={
            "volume": {
                "id": volume.pk,
                "name": volume.name,
                "region": volume.region.code,
                "size_gb": volume.size_gb,
                "state": volume.state,
                "mount_path": volume.mount_path,
            },
            "change": event.removeprefix("volume."),
        },
    )
