"""The events webhooks deliver, one function each: the payload in one place per event.

`portal.webhooks.receivers` calls them from the other apps' signals, inside the transaction
that makes the change (see `webhook_emit`):

    instances.signals.instance_state_changed   -> instance_state_changed(instance, from_state)
    instances.signals.instance_reclaim_noticed -> instance_interruption_notice(instance)
    quotas.signals.quota_request_decided       -> quota_decided(quota_request, message)
    billing.signals.invoice_issued             -> invoice_issued(invoice)
    billing.signals.budget_threshold_reached   -> budget_threshold(alert)
"""

from __future__ import annotations

from portal.webhooks.models import EventType
from portal.webhooks.services import webhook_emit


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


def instance_state_changed(instance, from_state: str) -> list[int]:
    return webhook_emit(
        organization=instance.organization,
        event_type=EventType.INSTANCE_STATE_CHANGED,
        payload={
            "instance": _instance(instance),
            "from_state": from_state,
            "to_state": instance.state,
            "reason": instance.state_reason,
        },
    )


def instance_interruption_notice(instance) -> list[int]:
    return webhook_emit(
        organization=instance.organization,
        event_type=EventType.INSTANCE_INTERRUPTION_NOTICE,
        payload={"instance": _instance(instance), "reclaim_at": instance.reclaim_at},
    )


def quota_decided(quota_request, message: str = "") -> list[int]:
    return webhook_emit(
        organization=quota_request.organization,
        event_type=EventType.QUOTA_DECIDED,
        payload={
            "quota_request": {
                "id": quota_request.pk,
                "region": quota_request.region.code,
                "gpu_model": quota_request.gpu_model.code,
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
