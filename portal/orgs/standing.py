"""Holds: what stops an organization from launching now, with the reason its members read.

The orgs app knows one kind, a suspension by the operator. Apps above it register their own
kinds in their AppConfig.ready() (billing registers an overdue invoice and a hard budget
limit), which is how a lower layer asks a higher one without importing it:

    hold_register("billing", launch_block_reason_for, code="billing_blocked")

`organization_launch_hold()` is what a launch asks (every kind that blocks launches, in the
order registered); `organization_hold(organization, kind)` asks one kind (the quota rules ask
whether an invoice is overdue).

A kind may also register `may_hold`: for an organization's id, a boolean SQL expression and
its parameters, false whenever its check would find no reason (a suspension not lifted; an
unpaid invoice past its date or a hard budget limit). A launch then reads every kind's
`may_hold` in one query (`launch_hold_flags`, with whatever else the launch reads there) and
asks only the kinds that may hold; almost every organization has none. Plain SQL: Django
takes longer to build the ORM's Exists than PostgreSQL to answer them (about 2 ms against
0.1 per launch).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import connection

from portal.orgs.models import Organization, Suspension
from portal.orgs.selectors import organization_suspension_reason
from portal.web.sql import column, table

HoldCheck = Callable[[Organization], str | None]
# An organization's id -> a boolean SQL expression and its parameters.
MayHold = Callable[[int], tuple[str, list[Any]]]


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
    may_hold: MayHold | None


_HOLDS: dict[str, _Registered] = {}


def hold_register(
    kind: str,
    check: HoldCheck,
    *,
    code: str,
    blocks_launch: bool = True,
    may_hold: MayHold | None = None,
) -> None:
    _HOLDS[kind] = _Registered(
        check=check, code=code, blocks_launch=blocks_launch, may_hold=may_hold
    )


def launch_hold_flags(organization_id: int) -> dict[str, tuple[str, list[Any]]]:
    """For each kind that blocks launches, its `may_hold` SQL and parameters for the
    organization (always true for a kind that registered none): to be read with the launch's
    other reads and given back to `organization_launch_hold`."""
    return {
        kind: (
            registered.may_hold(organization_id)
            if registered.may_hold is not None
            else ("TRUE", [])
        )
        for kind, registered in _HOLDS.items()
        if registered.blocks_launch
    }


def organization_hold(organization: Organization, kind: str) -> str | None:
    """Why `kind` holds the organization now, or None (also for a kind nobody registered)."""
    registered = _HOLDS.get(kind)
    return registered.check(organization) if registered is not None else None


def organization_launch_hold(
    organization: Organization, may_hold: Mapping[str, bool] | None = None
) -> Hold | None:
    """The first hold that stops launches now, or None. `may_hold`: the values of
    `launch_hold_flags` as the caller read them; a kind read as false is not asked. Without
    it, they are read here (one query) when any kind registered one."""
    if may_hold is None:
        may_hold = _read_flags(launch_hold_flags(organization.pk))
    for kind, registered in _HOLDS.items():
        if not registered.blocks_launch:
            continue
        if may_hold is not None and may_hold.get(kind) is False:
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
    known = known or {}
    flags = {
        kind: flag for kind, flag in launch_hold_flags(organization.pk).items() if kind not in known
    }
    # Every page of the console asks: one query of the kinds' `may_hold` answers for almost
    # every organization, which no kind holds, before any kind's own reads.
    may_hold = _read_flags(flags)
    holds = []
    for kind, registered in _HOLDS.items():
        if registered.blocks_launch:
            if kind in known:
                reason = known[kind]
            elif may_hold is not None and may_hold.get(kind) is False:
                continue
            else:
                reason = registered.check(organization)
            if reason:
                holds.append(Hold(kind=kind, code=registered.code, reason=reason))
    return holds


def _read_flags(flags: Mapping[str, tuple[str, list[Any]]]) -> dict[str, bool] | None:
    """The values of `launch_hold_flags` (some of them), in one query; None when no kind among
    them registered a `may_hold` (nothing to read: each kind is asked)."""
    if not any(sql != "TRUE" for sql, _ in flags.values()):
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT " + ", ".join(f"({sql})" for sql, _ in flags.values()),
            [param for _, params in flags.values() for param in params],
        )
        row = cursor.fetchone()
    return dict(zip(flags, row, strict=True))


def _may_be_suspended(organization_id: int) -> tuple[str, list[Any]]:
    return (
        f"EXISTS (SELECT 1 FROM {table(Suspension)}"  # noqa: S608 - the model's names
        f" WHERE {column(Suspension, 'organization')} = %s"
        f" AND {column(Suspension, 'lifted_at')} IS NULL)",
        [organization_id],
    )


hold_register(
    "suspended",
    organization_suspension_reason,
    code="suspended",
    may_hold=_may_be_suspended,
)
