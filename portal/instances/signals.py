"""What the instances app announces, for apps above it to react to. Sent inside the
transaction that makes the change: a receiver that writes (webhook deliveries) commits or
rolls back with it; one that must wait for the commit (metering) uses transaction.on_commit.

Receivers: portal.billing.receivers (metering), portal.webhooks.receivers (events),
portal.reclaims.receivers (reclaim victims that ended).
"""

from django.dispatch import Signal

# Every applied transition: `instance` (saved), `from_state`, `event` (its InstanceEvent).
instance_state_changed = Signal()
# The same for many instances moved at once (`lifecycle.apply.transition_many`: a cluster's nodes):
# `changes`, a list of `lifecycle.Change` (instance, from_state, event), sent INSTEAD of one
# instance_state_changed each. A receiver of the one receives this one too.
instances_state_changed = Signal()
# The operator announced a reclaim of a preemptible instance: `instance` (reclaim_at set).
instance_reclaim_noticed = Signal()
# The customer changed a preemptible instance's max price per hour: `instance` (saved),
# `previous` (Decimal or None: the on-demand price). Sent on commit. Receivers:
# portal.reclaims.receivers (a bid raised to the spot price cancels its price reclaim).
instance_bid_changed = Signal()
# A reconciliation run ended: `report` (sync.ReconcileReport), `redrive` (whether stale work was
# enqueued again). The clusters app re-drives its stale clusters here.
instances_reconciled = Signal()
