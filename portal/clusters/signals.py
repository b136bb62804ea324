"""What the clusters app announces, for apps above it (webhooks) to react to. Sent inside the
transaction of the change.

`cluster_state_changed`: every applied transition: `cluster` (saved), `from_state`, `event`.
`cluster_reclaim_noticed`: the operator will reclaim the preemptible cluster (`cluster`, with
`reclaim_at`), whole.
"""

from django.dispatch import Signal

cluster_state_changed = Signal()
cluster_reclaim_noticed = Signal()
