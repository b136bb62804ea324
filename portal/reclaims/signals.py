"""What the reclaims app announces, for apps above it (webhooks) to react to. Sent inside the
transaction that makes the change.

`instance_reclaim_risk(instance)`: the forecast says the operator's own work will likely need
this preemptible instance's GPUs within 15 minutes ("reclaim risk elevated"; not a notice).
`instances_reclaim_risk(instances)`: the same of several instances at once (the warnings of
one place in one report, in the policy's order); the risk check sends this one.
"""

from django.dispatch import Signal

instance_reclaim_risk = Signal()
instances_reclaim_risk = Signal()
