"""What fill rate and revenue any pricing could reach with a seed's customers (issue 21).

    .venv/bin/python -m bench.market_bound [--seed 21] [--days 2]

No portal, no database: bench.market's customers (`customers`), its operator's own work (the
simulator's demand curve with the seeded bursts) and its fleet, minute by minute, per region
and GPU model. The fill rate is the portal's (fleet history): GPU-hours sold (on-demand,
preemptible, reserved) over the GPU-hours not used by the operator's own work.

- The upper bound (`window_bound`): a customer can run only between its arrival and its last
  attempt (6 hours later) plus the time it runs; count every customer's GPUs as in use over
  the whole of that window, all at once, capped by the spare GPUs of each minute. Any pricing,
  any placement, any reclaims sell less (each customer runs inside its window, with no more
  GPUs than its machine has, never beyond the spare). One way past it: GPUs customers keep
  while the operator's own work wants them (not reclaimed) count as sold and as idle.
- No refusals (`flat_price`): every customer who arrives and would pay a flat price launches
  at once, is never refused (no capacity, no packing of 8-GPU machines onto nodes) and never
  reclaimed; capped by the spare GPUs of each minute; fill and revenue (on-demand and
  reserved GPUs first, the preemptible ones in what spare is left, at the flat price), for
  every flat price from 20 % to 70 % of on-demand.
- A price set by the clock (`daily_prices`): one share of on-demand by day, another at night,
  the same every day; customers launch at the first attempt the price meets their willingness
  to pay, pay the price in force, are interrupted when it passes it, and are never refused.
  Optimistic as `flat_price` is (no packing, no notice), it asks whether the fill target and
  the revenue target can hold at once: the dearest schedules at 90 % fill or more are printed.
- Greedy: at the floor, each customer launches when its GPUs fit in what is spare at that
  minute (else back every hour for up to 6 hours, as bench.market's customers), never
  reclaimed: a schedule a market could nearly reach if it packed perfectly.

Revenue here is usage × price, as billing rates it; the reserved GPUs are billed whether used
or not (as the bench's reservations are used, all the time).
"""

from __future__ import annotations

import argparse
import heapq
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from bench.market import (
    BURST_HOURS,
    BURST_SIZE,
    FIXED,
    FLOOR,
    MODELS,
    PEAK,
    PEAK_HOUR,
    REGIONS,
    RESERVATIONS,
    RETRY_EVERY,
    RETRY_FOR,
    SIM_START,
    TROUGH,
    TROUGH_HOUR,
    Customer,
    burst_times,
    customers,
)
from portal.simulator.demand import Curve

MINUTE = 60
# The demo catalog's on-demand prices (portal/demo seed_demo, which bench.market seeds): per
# GPU-hour, the same for the 1x and 8x machines of a model.
ON_DEMAND_PER_GPU = {"h100": Decimal("2.49"), "a100": Decimal("1.79"), "l40s": Decimal("0.99")}
TYPE_GPUS = {
    "gpu_1x_h100": ("h100", 1),
    "gpu_8x_h100": ("h100", 8),
    "gpu_8x_a100": ("a100", 8),
    "gpu_1x_l40s": ("l40s", 1),
}
RESERVED_SHARE = Decimal("0.6")  # bench.market's reservations: 60 % of on-demand
KINDS = ("on_demand", "reserved", "spot")  # in the spare: the dearer and the unreclaimable first


@dataclass
class Place:
    region: str
    model: str  # the GPU model's code
    fleet: int
    spare: list[int]  # per minute: the fleet less the operator's own work (what it wants)


@dataclass
class Outcome:
    fill: float
    sold_gpu_hours: float
    spare_gpu_hours: float
    revenue: Decimal


def places(seed: int, days: float) -> list[Place]:
    start = SIM_START.timestamp()
    bursts = burst_times(seed, start, days)
    minutes = int(days * 86400 // MINUTE)
    result = []
    for region in REGIONS:
        for name, code, nodes in MODELS:
            curve = Curve(
                region=region,
                gpu_model=name,
                trough=TROUGH,
                peak=PEAK,
                peak_hour=PEAK_HOUR,
                trough_hour=TROUGH_HOUR,
                burst_size=BURST_SIZE,
                burst_minutes=BURST_HOURS * 60,
                bursts_at=bursts,
            )
            fleet = nodes * 8
            spare = [
                fleet - round(curve.fraction(seed, start + m * MINUTE) * fleet)
                for m in range(minutes)
            ]
            result.append(Place(region, code, fleet, spare))
    return result


def _add(series: list[int], begin: float, end: float, gpus: int) -> None:
    """Add `gpus` to the minutes from `begin` to `end` (seconds into the run)."""
    first, last = max(0, int(begin // MINUTE)), min(len(series), int(end // MINUTE))
    for m in range(first, last):
        series[m] += gpus


def window_bound(seed: int, days: float, *, the_places=None) -> Outcome:
    """The most any pricing could sell: every customer's GPUs in use over its whole window
    (arrival to last attempt, plus its running time), capped by the spare of each minute."""
    start = SIM_START.timestamp()
    the_places = the_places or places(seed, days)
    minutes = len(the_places[0].spare)
    present = {(p.region, p.model): [0] * minutes for p in the_places}
    for c in customers(seed, start, days):
        model, gpus = TYPE_GPUS[c.itype]
        begin = c.arrives - start
        last = begin + RETRY_FOR.total_seconds() + c.hours * 3600
        _add(present[(c.region, model)], begin, last, gpus)
    for region, model, _itype, gpus, at_hour, hours in RESERVATIONS:
        _add(present[(region, model)], at_hour * 3600, (at_hour + hours) * 3600, gpus)
    sold = spare_total = 0
    for p in the_places:
        for m, spare in enumerate(p.spare):
            sold += min(max(0, spare), present[(p.region, p.model)][m])
            spare_total += max(0, spare)
    return Outcome(
        fill=sold / spare_total if spare_total else 0.0,
        sold_gpu_hours=sold / 60,
        spare_gpu_hours=spare_total / 60,
        revenue=Decimal(0),  # not a schedule: no price
    )


def flat_price(seed: int, days: float, share: Decimal, *, the_places=None) -> Outcome:
    """The upper bound at one flat preemptible price (`share` of on-demand): every customer
    willing to pay it launches on arrival, never refused nor reclaimed, capped by the spare."""
    start = SIM_START.timestamp()
    the_places = the_places or places(seed, days)
    minutes = len(the_places[0].spare)
    running = {(p.region, p.model): {k: [0] * minutes for k in KINDS} for p in the_places}
    for c in customers(seed, start, days):
        if c.kind == "spot" and (c.wtp_share or 0) < share:
            continue
        model, gpus = TYPE_GPUS[c.itype]
        begin = c.arrives - start
        _add(running[(c.region, model)][c.kind], begin, begin + c.hours * 3600, gpus)
    for region, model, _itype, gpus, at_hour, hours in RESERVATIONS:
        _add(running[(region, model)]["reserved"], at_hour * 3600, (at_hour + hours) * 3600, gpus)
    return _capped(the_places, running, lambda _minute: share)


def _capped(
    the_places: list[Place],
    running: dict[tuple[str, str], dict[str, list[int]]],
    spot_share: Callable[[int], Decimal],
) -> Outcome:
    """Fill and revenue of the GPUs each kind runs per place and minute (`running`), capped by
    the spare of each minute, the kinds taken in KINDS' order: on-demand at list price, reserved
    at RESERVED_SHARE, preemptible at `spot_share(minute)` of on-demand."""
    sold = spare_total = 0
    revenue = Decimal(0)
    for p in the_places:
        series = running[(p.region, p.model)]
        counted = {kind: 0 for kind in KINDS}
        spot_paid = Decimal(0)  # share of on-demand × preemptible GPU-minutes
        for m, spare in enumerate(p.spare):
            room = max(0, spare)
            spare_total += room
            for kind in KINDS:
                taken = min(room, series[kind][m])
                counted[kind] += taken
                room -= taken
                if kind == "spot" and taken:
                    spot_paid += spot_share(m) * taken
        sold += sum(counted.values())
        revenue += (
            ON_DEMAND_PER_GPU[p.model]
            * (counted["on_demand"] + RESERVED_SHARE * counted["reserved"] + spot_paid)
            / 60
        )
    return Outcome(
        fill=sold / spare_total if spare_total else 0.0,
        sold_gpu_hours=sold / 60,
        spare_gpu_hours=spare_total / 60,
        revenue=revenue.quantize(Decimal("0.01")),
    )


def greedy(seed: int, days: float, share: Decimal = FLOOR, *, the_places=None) -> Outcome:
    """Each customer willing to pay `share` launches at the first attempt its GPUs fit in the
    spare GPUs not in use (attempts: on arrival, then hourly for up to 6 hours), is never
    reclaimed; sold GPUs capped by the spare of each minute."""
    start = SIM_START.timestamp()
    the_places = the_places or places(seed, days)
    minutes = len(the_places[0].spare)
    by_place = {(p.region, p.model): p for p in the_places}
    used = {key: [0] * minutes for key in by_place}
    paid = {key: [Decimal(0)] * minutes for key in by_place}  # share of on-demand × GPUs
    for region, model, _itype, gpus, at_hour, hours in RESERVATIONS:
        _add(used[(region, model)], at_hour * 3600, (at_hour + hours) * 3600, gpus)
        first, last = at_hour * 60, min(minutes, (at_hour + hours) * 60)
        for m in range(first, last):
            paid[(region, model)][m] += RESERVED_SHARE * gpus
    attempts: list[tuple[float, int, Customer]] = []
    for c in customers(seed, start, days):
        if c.kind == "spot" and (c.wtp_share or 0) < share:
            continue
        attempts.append((c.arrives - start, c.n, c))
    heapq.heapify(attempts)
    while attempts:
        at, n, c = heapq.heappop(attempts)
        model, gpus = TYPE_GPUS[c.itype]
        key = (c.region, model)
        m = int(at // MINUTE)
        if m >= minutes:
            continue
        if used[key][m] + gpus <= by_place[key].spare[m]:
            end = at + c.hours * 3600
            _add(used[key], at, end, gpus)
            rate = Decimal(1) if c.kind == "on_demand" else share
            for minute in range(m, min(minutes, int(end // MINUTE))):
                paid[key][minute] += rate * gpus
        elif at + RETRY_EVERY.total_seconds() <= (c.arrives - start) + RETRY_FOR.total_seconds():
            heapq.heappush(attempts, (at + RETRY_EVERY.total_seconds(), n, c))
    sold = spare_total = 0
    revenue = Decimal(0)
    for key, p in by_place.items():
        for m, spare in enumerate(p.spare):
            room = max(0, spare)
            taken = min(room, used[key][m])
            sold += taken
            spare_total += room
            if used[key][m]:
                revenue += ON_DEMAND_PER_GPU[p.model] * paid[key][m] * taken / used[key][m] / 60
    return Outcome(
        fill=sold / spare_total if spare_total else 0.0,
        sold_gpu_hours=sold / 60,
        spare_gpu_hours=spare_total / 60,
        revenue=revenue.quantize(Decimal("0.01")),
    )


def daily_prices(
    seed: int,
    days: float,
    *,
    day: Decimal,
    night: Decimal,
    hours: tuple[int, int],
    the_places=None,
) -> Outcome:
    """A price set by the clock, the same every day: `day` (a share of on-demand) from
    hours[0] to hours[1] o'clock, `night` otherwise. Each preemptible customer launches at the
    first attempt (on arrival, then hourly for up to 6 hours) where the price is at or below
    its willingness to pay, pays the price in force each minute, and is interrupted at the
    first minute the price passes it (never back); never refused for capacity, on-demand and
    reserved GPUs first in the spare of each minute (as `flat_price`)."""
    start = SIM_START.timestamp()
    the_places = the_places or places(seed, days)
    minutes = len(the_places[0].spare)
    first, last = hours
    price = [day if first <= (m // 60) % 24 < last else night for m in range(minutes)]
    running = {(p.region, p.model): {k: [0] * minutes for k in KINDS} for p in the_places}
    for region, model, _itype, gpus, at_hour, length in RESERVATIONS:
        _add(running[(region, model)]["reserved"], at_hour * 3600, (at_hour + length) * 3600, gpus)
    retry = int(RETRY_EVERY.total_seconds()) // MINUTE
    tries = int(RETRY_FOR / RETRY_EVERY)
    for c in customers(seed, start, days):
        model, gpus = TYPE_GPUS[c.itype]
        series = running[(c.region, model)][c.kind]
        begin = int((c.arrives - start) // MINUTE)
        if c.kind != "spot":
            _add(series, begin * MINUTE, begin * MINUTE + c.hours * 3600, gpus)
            continue
        wtp = c.wtp_share or Decimal(0)
        attempts = (begin + k * retry for k in range(tries + 1))
        launched = next((m for m in attempts if m < minutes and price[m] <= wtp), None)
        if launched is None:
            continue
        for m in range(launched, min(minutes, launched + int(c.hours * 60))):
            if price[m] > wtp:
                break  # interrupted for the price
            series[m] += gpus
    return _capped(the_places, running, price.__getitem__)


def hourly(seed: int, days: float, share: Decimal, *, the_places=None) -> list[tuple[int, float]]:
    """Per hour of the day: the fill at a flat price, launched on arrival, never refused."""
    start = SIM_START.timestamp()
    the_places = the_places or places(seed, days)
    minutes = len(the_places[0].spare)
    running = {(p.region, p.model): [0] * minutes for p in the_places}
    for c in customers(seed, start, days):
        if c.kind == "spot" and (c.wtp_share or 0) < share:
            continue
        model, gpus = TYPE_GPUS[c.itype]
        begin = c.arrives - start
        _add(running[(c.region, model)], begin, begin + c.hours * 3600, gpus)
    for region, model, _itype, gpus, at_hour, hours in RESERVATIONS:
        _add(running[(region, model)], at_hour * 3600, (at_hour + hours) * 3600, gpus)
    sold: dict[int, int] = defaultdict(int)
    spare_by_hour: dict[int, int] = defaultdict(int)
    for p in the_places:
        for m, spare in enumerate(p.spare):
            hour = (m // 60) % 24
            sold[hour] += min(max(0, spare), running[(p.region, p.model)][m])
            spare_by_hour[hour] += max(0, spare)
    return [(h, sold[h] / spare_by_hour[h] if spare_by_hour[h] else 0.0) for h in range(24)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--days", type=float, default=2.0)
    args = parser.parse_args(argv)
    the_places = places(args.seed, args.days)
    print(f"seed {args.seed}, {args.days:g} days")
    top = window_bound(args.seed, args.days, the_places=the_places)
    print(
        f"upper bound (every customer in use over its whole window, arrival to last attempt "
        f"plus its running time): fill {top.fill:.1%} ({top.sold_gpu_hours:,.0f} of "
        f"{top.spare_gpu_hours:,.0f} spare GPU-hours)"
    )
    print("flat price (share of on-demand): fill, revenue (launched on arrival, never refused)")
    for cents in range(20, 75, 5):
        share = Decimal(cents) / 100
        o = flat_price(args.seed, args.days, share, the_places=the_places)
        mark = "  <- the fixed mode's price" if share == FIXED else ""
        print(f"  {share:.0%}: fill {o.fill:.1%}, revenue {o.revenue:,}{mark}")
    for share in (FLOOR, FIXED):
        g = greedy(args.seed, args.days, share, the_places=the_places)
        print(
            f"greedy at {share:.0%} (launched when it fits, hourly retries, never reclaimed): "
            f"fill {g.fill:.1%}, revenue {g.revenue:,}"
        )
    fixed = daily_prices(
        args.seed, args.days, day=FIXED, night=FIXED, hours=(0, 24), the_places=the_places
    )
    print(
        "a price set by the clock (day and night shares of on-demand; launched at the first "
        "attempt it is at or under the willingness to pay, interrupted when it passes it, never "
        f"refused): at {FIXED:.0%} all day, fill {fixed.fill:.1%}, revenue {fixed.revenue:,}; "
        "the dearest at 90 % fill or more, for a day from 08 or 10 to 20, 22 or 24 h:"
    )
    found = []
    for day_cents, night_cents in ((d, n) for d in range(50, 75, 5) for n in range(20, 45, 5)):
        for hours in ((8, 20), (8, 22), (8, 24), (10, 20), (10, 22), (10, 24)):
            day, night = Decimal(day_cents) / 100, Decimal(night_cents) / 100
            o = daily_prices(
                args.seed, args.days, day=day, night=night, hours=hours, the_places=the_places
            )
            if o.fill >= 0.9:
                found.append((o.revenue, o.fill, day, night, hours))
    for revenue, fill, day, night, (first, last) in sorted(found, reverse=True)[:5]:
        print(
            f"  {day:.0%} from {first:02d} to {last:02d} h, {night:.0%} otherwise: fill "
            f"{fill:.1%}, revenue {revenue:,} ({revenue / fixed.revenue:.3f}x {FIXED:.0%} all day)"
        )
    if not found:
        print("  none")
    print("fill per hour of the day (at the floor, launched on arrival, never refused):")
    print("  " + " ".join(f"{h:02d}:{f:.0%}" for h, f in hourly(args.seed, args.days, FLOOR)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
