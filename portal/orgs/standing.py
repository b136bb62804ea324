"""Holds: what stops an organization from launching now, with the reason its members read.

The orgs app knows one kind, a suspension by the operator. Apps above it register their own
kinds in their AppConfig.ready() (billing registers an overdue invoice and a hard budget
limit), which is how a lower layer asks a higher one without importing it:

    hold_register("billing", launch_block_reason_for, code="billing_blocked")

`organization_launch_hold()` is what a launch asks (every kind that blocks launches, in the
order registered); `organization_hold(organization, kind)` asks one kind (the quota rules ask
whether an invoice is overdue).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from portal.orgs.models import Organization
from portal.orgs.selectors import organization_suspension_reason

HoldCheck = Callable[[Organization], str | None]


@dataclass(frozen=True)
class Hold:
    kind: str
    code: str  # the error code a refused launch carries (API clients branch on it)
    reason: str

    @property
    def detail(self) -> str:
        """The reason under the banner's own heading ("Launches are paused."), not twice."""
        prefix = "Launches are paused: "
        if self.reason.startswith(prefix):
            rest = self.reason[len(prefix) :]
            return rest[:1].upper() + rest[1:]
        return self.reason


@dataclass(frozen=True)
class _Registered:
    check: HoldCheck
    code: str
    blocks_launch: bool


_HOLDS: dict[str, _Registered] = {}


def hold_register(kind: str, check: HoldCheck, *, code: str, blocks_launch: bool = True) -> None:
    _HOLDS[kind] = _Registered(check=check, code=code, blocks_launch=blocks_launch)


def organization_hold(organization: Organization, kind: str) -> str | None:
    """Why `kind` holds the organization now, or None (also for a kind nobody registered)."""
    registered = _HOLDS.get(kind)
    return registered.check(organization) if registered is not None else None


def organization_launch_hold(organization: Organization) -> Hold | None:
    """The first hold that stops launches now, or None."""
    for kind, registered in _HOLDS.items():
        if not registered.blocks_launch:
            continue
        reason = registered.check(organization)
        if reason:
            return Hold(kind=kind, code=registered.code, reason=reason)
    return None


def organization_launch_holds(
    organization: Organization, known: Mapping[str, str | None] | None = None
) -> list[Hold]:
    """Every hold that stops launches now (the console's banner names each). `known`: the
    reasons of some kinds as the caller has just read them (a page that showed them already),
    by kind; the others are asked."""
    holds = []
    for kind, registered in _HOLDS.items():
        if registered.blocks_launch:
            if known is not None and kind in known:
                reason = known[kind]
            else:
                reason = registered.check(organization)
            if reason:
                holds.append(Hold(kind=kind, code=registered.code, reason=reason))
    return holds


hold_register("suspended", organization_suspension_reason, code="suspended")
