"""What the instances app announces, for apps above it to react to. Sent inside the
transaction that makes the change: a receiver that writes (webhook deliveries) commits or
rolls back with it; one that must wait for the commit (metering) uses transaction.on_commit.

Receivers: portal.billing.receivers (metering), portal.webhooks.receivers (events).
"""

from django.dispatch import Signal

# Every applied transition: `instance` (saved), `from_state`, `event` (its InstanceEvent).
instance_state_changed = Signal()
# The operator announced a reclaim of a preemptible instance: `instance` (reclaim_at set).
instance_reclaim_noticed = Signal()
