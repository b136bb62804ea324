"""Internal demand: the GPUs the operator's own work wants, per region and GPU model, over time.

A curve per (region, GPU model) gives the wanted GPUs as a fraction of that fleet, by the time
of day: a daily cosine between `trough` and `peak` (highest at `peak_hour`, lowest 12 hours
later or at `trough_hour`: then it rises and falls over days of unequal halves), plus random
bursts: the day is cut into slots of `burst_minutes`, and each slot bursts (adds `burst_size`
of the fleet) with a probability that makes `bursts_per_day` bursts a day on average; and
bursts at given moments (`bursts_at`, simulated epoch seconds, each `burst_minutes` long). Bursts
come from `seed`, the place and the slot alone, so the same seed gives the same day, and the
demand at any moment is a pure function of the clock (the simulator evaluates it lazily, like
everything else). A curve may instead fix `gpus` (a flat demand, for tests and demos).

The clock of the curve runs `86400 / day_seconds` times faster than real time, from
`start_hour` when the demand was set (a simulated day in a few minutes, for tests); with the
default `day_seconds` of 86400 and no `start_hour` it is the real time of day (UTC).

The forecast (`forecast`) is the curve without bursts 15 (simulated) minutes ahead: what the
operator's planners know of their own day; bursts are by nature not forecast.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .records import BadRequest

DAY = 86400.0
FORECAST_SECONDS = 15 * 60.0


@dataclass
class Curve:
    region: str
    gpu_model: str
    trough: float = 0.2
    peak: float = 0.7
    peak_hour: float = 15.0
    bursts_per_day: float = 0.0
    burst_size: float = 0.2
    burst_minutes: float = 30.0
    # A flat demand of this many GPUs instead of the curve.
    gpus: int | None = None
    # The lowest hour of the day, if not 12 hours after the peak.
    trough_hour: float | None = None
    # Bursts at these simulated moments (epoch seconds), each `burst_minutes` long.
    bursts_at: list[float] = field(default_factory=list)

    def wave(self, tod: float) -> float:
        """0 at the trough, 1 at the peak, by the (simulated) second of the day."""
        since_peak = (tod - self.peak_hour * 3600) % DAY
        if self.trough_hour is None:
            return (1 + math.cos(2 * math.pi * since_peak / DAY)) / 2
        falling = (self.trough_hour - self.peak_hour) * 3600 % DAY or DAY
        if since_peak < falling:  # from the peak down to the trough
            return (1 + math.cos(math.pi * since_peak / falling)) / 2
        rising = DAY - falling  # from the trough up to the peak
        return (1 - math.cos(math.pi * (since_peak - falling) / rising)) / 2

    def fraction(self, seed: int, sim_time: float, *, bursts: bool = True) -> float:
        value = self.trough + (self.peak - self.trough) * self.wave(sim_time % DAY)
        if bursts and self.bursts_per_day > 0 and self.burst_minutes > 0:
            slot_length = self.burst_minutes * 60
            slot = math.floor(sim_time / slot_length)
            chance = self.bursts_per_day * slot_length / DAY
            roll = random.Random(f"{seed}|{self.region}|{self.gpu_model}|{slot}").random()
            if roll < chance:
                value += self.burst_size
        if bursts:
            length = self.burst_minutes * 60
            value += self.burst_size * sum(
                1 for at in self.bursts_at if at <= sim_time < at + length
            )
        return max(0.0, min(1.0, value))


@dataclass
class Demand:
    seed: int = 0
    day_seconds: float = DAY
    start_hour: float | None = None
    # The real clock when the demand was set; the curve's clock starts there.
    origin: float = 0.0
    curves: list[Curve] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Demand:
        return cls(
            seed=data.get("seed", 0),
            day_seconds=data.get("day_seconds", DAY),
            start_hour=data.get("start_hour"),
            origin=data.get("origin", 0.0),
            curves=[Curve(**c) for c in data.get("curves", [])],
        )

    def sim_time(self, now: float) -> float:
        speed = DAY / self.day_seconds
        if self.start_hour is None:
            return self.origin + (now - self.origin) * speed  # speed 1: the real time
        start = math.floor(self.origin / DAY) * DAY + self.start_hour * 3600
        return start + (now - self.origin) * speed

    def curve(self, region: str, gpu_model: str) -> Curve | None:
        return next(
            (c for c in self.curves if (c.region, c.gpu_model) == (region, gpu_model)), None
        )

    def wanted(self, region: str, gpu_model: str, fleet: int, now: float) -> int:
        """GPUs the operator's own work wants now (a fixed demand may exceed the fleet)."""
        curve = self.curve(region, gpu_model)
        if curve is None:
            return 0
        if curve.gpus is not None:
            return curve.gpus
        return round(curve.fraction(self.seed, self.sim_time(now)) * fleet)

    def forecast(self, region: str, gpu_model: str, fleet: int, now: float) -> int | None:
        """The curve (without bursts) 15 simulated minutes ahead; None without a curve."""
        curve = self.curve(region, gpu_model)
        if curve is None:
            return None
        if curve.gpus is not None:
            return curve.gpus
        ahead = self.sim_time(now) + FORECAST_SECONDS
        return round(curve.fraction(self.seed, ahead, bursts=False) * fleet)


def _number(data: dict[str, Any], key: str, low: float, high: float | None = None) -> None:
    if key not in data:
        return
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{key} must be a number")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise BadRequest(f"{key} must be {bound}")


def parse_demand(body: Any, *, now: float, known_places: set[tuple[str, str]]) -> Demand:
    """The control endpoint's body, checked: every curve names a region and GPU model of the
    fleet, fractions lie in [0, 1], trough <= peak."""
    if not isinstance(body, dict):
        raise BadRequest("demand must be an object")
    allowed = {"seed", "day_seconds", "start_hour", "curves"}
    if unknown := set(body) - allowed:
        raise BadRequest(f"unknown fields {sorted(unknown)}; known: {sorted(allowed)}")
    seed = body.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise BadRequest("seed must be an integer")
    _number(body, "day_seconds", 1)
    if body.get("start_hour") is not None:
        _number(body, "start_hour", 0, 24)
    raw_curves = body.get("curves", [])
    if not isinstance(raw_curves, list):
        raise BadRequest("curves must be a list")
    curve_fields = {f.name for f in fields(Curve)}
    curves = []
    for raw in raw_curves:
        if not isinstance(raw, dict):
            raise BadRequest("each curve must be an object")
        if unknown := set(raw) - curve_fields:
            known = sorted(curve_fields)
            raise BadRequest(f"unknown curve fields {sorted(unknown)}; known: {known}")
        place = (raw.get("region"), raw.get("gpu_model"))
        if place not in known_places:
            raise BadRequest(f"no {place[1]!r} nodes in region {place[0]!r}")
        for key in ("trough", "peak", "burst_size"):
            _number(raw, key, 0, 1)
        _number(raw, "peak_hour", 0, 24)
        if raw.get("trough_hour") is not None:
            _number(raw, "trough_hour", 0, 24)
        bursts_at = raw.get("bursts_at", [])
        if not isinstance(bursts_at, list) or not all(
            isinstance(at, int | float) and not isinstance(at, bool) for at in bursts_at
        ):
            raise BadRequest("bursts_at must be a list of times (epoch seconds)")
        _number(raw, "bursts_per_day", 0)
        _number(raw, "burst_minutes", 1)
        gpus = raw.get("gpus")
        if gpus is not None and (isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0):
            raise BadRequest("gpus must be a whole number >= 0")
        curve = Curve(**raw)
        if curve.trough > curve.peak:
            raise BadRequest("trough must not be above peak")
        curves.append(curve)
    if len({(c.region, c.gpu_model) for c in curves}) != len(curves):
        raise BadRequest("one curve per region and GPU model")
    return Demand(
        seed=seed,
        day_seconds=float(body.get("day_seconds", DAY)),
        start_hour=body.get("start_hour"),
        origin=now,
        curves=curves,
    )
