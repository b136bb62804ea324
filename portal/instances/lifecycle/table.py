"""The table of allowed transitions and the actions a customer may ask for in each state."""

from __future__ import annotations

from collections import deque

from portal.instances.models import (
    Instance,
    State,
)
from portal.lib.errors import ApplicationError

S = State
TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.PROVISIONING, S.FAILED, S.TERMINATING}),
    S.PROVISIONING: frozenset({S.RUNNING, S.FAILED, S.INTERRUPTED, S.TERMINATING}),
    S.RUNNING: frozenset({S.STOPPING, S.REBOOTING, S.TERMINATING, S.FAILED, S.INTERRUPTED}),
    S.STOPPING: frozenset({S.STOPPED, S.TERMINATING, S.FAILED, S.INTERRUPTED}),
    S.STOPPED: frozenset({S.STARTING, S.TERMINATING, S.FAILED}),
    # A start the backend cannot place (no capacity) falls back to stopped.
    S.STARTING: frozenset({S.RUNNING, S.STOPPED, S.TERMINATING, S.FAILED, S.INTERRUPTED}),
    S.REBOOTING: frozenset({S.RUNNING, S.TERMINATING, S.FAILED, S.INTERRUPTED}),
    S.TERMINATING: frozenset({S.TERMINATED}),
    S.TERMINATED: frozenset(),
    S.FAILED: frozenset(),
    S.INTERRUPTED: frozenset(),
}

# What a customer may ask for, and the state the request moves the instance to. Whether an
# action is allowed follows from TRANSITIONS alone.
ACTIONS: dict[str, str] = {
    "stop": S.STOPPING,
    "start": S.STARTING,
    "reboot": S.REBOOTING,
    "terminate": S.TERMINATING,
}


class IllegalTransition(ApplicationError):
    def __init__(self, message: str):
        super().__init__(message, code="illegal_transition")


def allowed_actions(state: str) -> list[str]:
    return [action for action, target in ACTIONS.items() if target in TRANSITIONS[state]]


def states_allowing(action: str) -> list[str]:
    target = ACTIONS[action]
    return [state for state, targets in TRANSITIONS.items() if target in targets]


def refusal(instance: Instance, action: str) -> str:
    """Why `action` is refused in the instance's current state, for the customer."""
    allowed = ", ".join(State(s).label.lower() for s in states_allowing(action))
    return (
        f"You cannot {action} {instance.name} while it is {State(instance.state).label.lower()}; "
        f"{action} works on {allowed} instances."
    )


def path(from_state: str, to_state: str) -> list[str]:
    """The shortest chain of allowed transitions from one state to another ([] if none)."""
    if from_state == to_state:
        return []
    previous: dict[str, str] = {}
    queue = deque([from_state])
    while queue:
        state = queue.popleft()
        for following in sorted(TRANSITIONS[state]):
            if following in previous or following == from_state:
                continue
            previous[following] = state
            if following == to_state:
                steps = [following]
                while previous[steps[-1]] != from_state:
                    steps.append(previous[steps[-1]])
                return steps[::-1]
            queue.append(following)
    return []
