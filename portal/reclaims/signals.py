"""What the reclaims app announces, for apps above it (webhooks) to react to. Sent inside the
transaction that makes the change.

`instance_reclaim_risk(instance)`: the forecast says the operator's own work will likely need
this preemptible instance's GPUs within 15 minutes ("reclaim risk elevated"; not a notice).
"""

from django.dispatch import Signal

instance_reclaim_risk = Signal()
