"""Errors every provisioning driver raises, whatever its transport.

Callers decide on the class alone: a `TransientError` is worth retrying later (the driver has
already retried a few times), a `PermanentError` is not.
"""


class ProvisioningError(Exception):
    """Base of every error a driver raises."""


class TransientError(ProvisioningError):
    """Time-out, connection refused, 5xx: the same call may succeed later."""


class InvalidResponse(TransientError):
    """The backend answered something we cannot read (not JSON, missing or wrong fields)."""


class PermanentError(ProvisioningError):
    """The backend refused the request; repeating it unchanged will not help."""


class AuthenticationError(PermanentError):
    """The backend rejected our credentials (wrong or missing token)."""


class NotFound(PermanentError):
    """The backend has no machine with this id."""


class CapacityError(PermanentError):
    """No room for this instance type in this region right now.

    `available`: how many of the machines asked for would fit now, when the backend says (a
    cluster that does not fit whole); None when it does not.
    """

    def __init__(self, *args: object, available: int | None = None) -> None:
        super().__init__(*args)
        self.available = available


class InvalidState(PermanentError):
    """The action does not apply to the machine's current state (e.g. start a terminated one)."""
