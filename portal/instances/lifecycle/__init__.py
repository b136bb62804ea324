"""The instance lifecycle: one table of allowed transitions and one function per transition.

    pending → provisioning → running ⇄ (stopping → stopped → starting) → terminating → terminated
    plus failed (never became usable, or lost) and interrupted (a preemptible machine reclaimed)

Every function here locks the instance row (`select_for_update`) and checks the current state
against `TRANSITIONS` before it writes, so two workers running the same step cannot both apply
it: the second finds the instance already in the target state and does nothing (returns None).
A transition the table forbids raises `IllegalTransition`, whose message is written for the
customer. Each applied transition records an `InstanceEvent` and an audit entry, queues its
e-mail (the outbox of portal.notifications) and sends `signals.instance_state_changed` in its
transaction (billing meters on commit, webhooks write their deliveries); quota is released
exactly once, in the transaction that reaches a final state.

Nothing here talks to the backend: services ask for a change, tasks report what the backend did.

The package: `table` (the transitions allowed and the actions a customer may ask for),
`apply` (how a transition is applied, to one instance or many), `transitions` (one function
per transition, and catching up with the backend) and `notices` (reclaim and stop notices).
"""

from portal.instances.lifecycle.apply import (
    RUNNING_MAIL_WAIT_SECONDS,
    Batch,
    Change,
    Email,
)
from portal.instances.lifecycle.notices import (
    cancel_reclaim,
    cancel_stop,
    clear_reclaim_risk,
    note_reclaim,
    note_reclaim_risk,
    note_reclaim_risk_many,
    note_stop,
)
from portal.instances.lifecycle.table import (
    ACTIONS,
    TRANSITIONS,
    IllegalTransition,
    allowed_actions,
    path,
    refusal,
    states_allowing,
)
from portal.instances.lifecycle.transitions import (
    STEPS,
    catch_up,
    catch_up_many,
    mark_failed,
    mark_failed_many,
    mark_interrupted,
    mark_interrupted_many,
    mark_provisioning,
    mark_provisioning_many,
    mark_running,
    mark_running_many,
    mark_stopped,
    mark_stopped_many,
    mark_terminated,
    mark_terminated_many,
    request_reboot,
    request_reboot_many,
    request_start,
    request_start_many,
    request_stop,
    request_stop_many,
    request_terminate,
    request_terminate_many,
)

__all__ = [
    "ACTIONS",
    "Batch",
    "Change",
    "Email",
    "IllegalTransition",
    "RUNNING_MAIL_WAIT_SECONDS",
    "STEPS",
    "TRANSITIONS",
    "allowed_actions",
    "cancel_reclaim",
    "cancel_stop",
    "catch_up",
    "catch_up_many",
    "clear_reclaim_risk",
    "mark_failed",
    "mark_failed_many",
    "mark_interrupted",
    "mark_interrupted_many",
    "mark_provisioning",
    "mark_provisioning_many",
    "mark_running",
    "mark_running_many",
    "mark_stopped",
    "mark_stopped_many",
    "mark_terminated",
    "mark_terminated_many",
    "note_reclaim",
    "note_reclaim_risk",
    "note_reclaim_risk_many",
    "note_stop",
    "path",
    "refusal",
    "request_reboot",
    "request_reboot_many",
    "request_start",
    "request_start_many",
    "request_stop",
    "request_stop_many",
    "request_terminate",
    "request_terminate_many",
    "states_allowing",
]
