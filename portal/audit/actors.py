"""Who did it, in words: a system actor is stored as the task (or rule) that acted; people read
"Backfill, reconciliation" rather than `portal.instances.tasks.instances_reconcile`."""

from __future__ import annotations

# The last part of a task's dotted name (or the short label a service passes) → what it does.
SYSTEM_ACTORS: dict[str, str] = {
    "backfill": "Backfill",
    "billing": "Backfill, billing",
    "instances_reconcile": "Backfill, reconciliation",
    "instance_poll": "Backfill, launch monitor",
    "instance_provision": "Backfill, launching",
    "instance_resync": "Backfill, state check",
    "instance_start": "Backfill, starting",
    "instance_stop": "Backfill, stopping",
    "instance_reboot": "Backfill, rebooting",
    "instance_terminate": "Backfill, terminating",
    "capacity_refresh": "Backfill, capacity check",
    "usage_sync_instance": "Backfill, metering",
    "usage_sync_pending": "Backfill, metering",
    "budgets_check": "Backfill, budget check",
    "invoices_issue_last_month": "Backfill, monthly invoicing",
    "invoices_issue_for_month": "Backfill, monthly invoicing",
    "quota_mirror": "Backfill, quota mirror",
    "quota defaults": "Backfill, quota defaults",
    "reservation_hold": "Backfill, reservation hold",
    "reservation_release": "Backfill, reservation release",
    "reservation_reminders": "Backfill, reservation reminders",
    "reservation_quotes_expire": "Backfill, quote expiry",
    "spot_prices_adjust": "Backfill, spot pricing",
    "after_capacity_snapshot": "Backfill, capacity check",
    "webhook_deliver": "Backfill, webhooks",
    "dunning": "Backfill, overdue invoices",
    "budget_hard_limit": "Backfill, budget hard limit",
}


def system_actor_words(label: str) -> str:
    """Words for a system actor's stored label; an unknown task is named from its last part."""
    label = (label or "").strip()
    if not label:
        return "Backfill"
    short = label.rsplit(".", 1)[-1] if label.startswith("portal.") else label
    if short in SYSTEM_ACTORS:
        return SYSTEM_ACTORS[short]
    if short.startswith("automatic rule"):
        return f"Backfill, {short}"
    if short.startswith("Backfill"):
        return short
    return "Backfill, " + short.replace("_", " ")
