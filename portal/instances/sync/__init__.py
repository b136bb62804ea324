"""Driving instances through the provisioning backend: the services the Celery tasks call.

Every function takes ids, may run any number of times (a retried or redelivered task), and
returns whether the instance is still in transition, in which case its task polls again.
Transient backend errors propagate to the task, which retries with backoff; permanent ones end
here with a clear state. The backend is only ever called from here, never in a web request.

The package: `machines` (a machine's report applied to its instance), `steps` (one step per
task), `batch` (the single launches waiting at one moment, provisioned together) and
`reconcile` (drift against the backend's list, and the capacity snapshot).
"""

from portal.instances.sync.batch import Outcome, provision_pending
from portal.instances.sync.machines import (
    SYNCED_AT_RESOLUTION,
    apply_machine,
    apply_machines,
    machine_lost,
)
from portal.instances.sync.reconcile import (
    ReconcileReport,
    capacity_refresh,
    reconcile,
)
from portal.instances.sync.steps import (
    give_up,
    poll,
    provision,
    reboot,
    resync,
    start,
    stop,
    terminate,
)

__all__ = [
    "Outcome",
    "ReconcileReport",
    "SYNCED_AT_RESOLUTION",
    "apply_machine",
    "apply_machines",
    "capacity_refresh",
    "give_up",
    "machine_lost",
    "poll",
    "provision",
    "provision_pending",
    "reboot",
    "reconcile",
    "resync",
    "start",
    "stop",
    "terminate",
]
