"""Faults the simulator injects into its provisioning API (never into /control or /healthz).

Each fault fires for the next `<kind>_next` calls, then at random for a `<kind>_rate` fraction of
calls; `_next` makes tests deterministic, `_rate` makes demos realistic.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from typing import Any

GARBAGE_KINDS = ("html", "truncated", "missing_fields")


class FaultError(ValueError):
    pass


@dataclass
class Faults:
    # Answer 5xx without doing anything.
    error_rate: float = 0.0
    error_next: int = 0
    error_status: int = 503
    # Sleep `slow_seconds`, before doing the work, or after it when `slow_after` (the call took
    # effect but the answer comes too late: a retry must not do it twice).
    slow_rate: float = 0.0
    slow_next: int = 0
    slow_seconds: float = 5.0
    slow_after: bool = False
    # Answer 200 with something that is not a valid answer.
    garbage_rate: float = 0.0
    garbage_next: int = 0
    garbage_kind: str = "html"
    # Fraction of new machines that end `failed` instead of `running`.
    boot_failure_rate: float = 0.0

    def update(self, changes: dict[str, Any]) -> None:
        types = {f.name: f.type for f in fields(self)}
        for key, value in changes.items():
            if key not in types:
                raise FaultError(f"unknown fault setting {key!r}; known: {sorted(types)}")
            _check(key, value)
        for key, value in changes.items():
            setattr(self, key, value)

    def fires(self, kind: str, rng: random.Random) -> bool:
        pending = getattr(self, f"{kind}_next")
        if pending > 0:
            setattr(self, f"{kind}_next", pending - 1)
            return True
        rate = getattr(self, f"{kind}_rate")
        return rate > 0 and rng.random() < rate

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(key: str, value: Any) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if key.endswith("_rate") and not (number and 0 <= value <= 1):
        raise FaultError(f"{key} must be a fraction between 0 and 1")
    if key.endswith("_next") and not (isinstance(value, int) and number and value >= 0):
        raise FaultError(f"{key} must be a count >= 0")
    if key == "error_status" and not (isinstance(value, int) and 500 <= value <= 599):
        raise FaultError("error_status must be a 5xx status")
    if key == "slow_seconds" and not (number and 0 <= value <= 600):
        raise FaultError("slow_seconds must be between 0 and 600")
    if key == "slow_after" and not isinstance(value, bool):
        raise FaultError("slow_after must be true or false")
    if key == "garbage_kind" and value not in GARBAGE_KINDS:
        raise FaultError(f"garbage_kind must be one of {GARBAGE_KINDS}")
