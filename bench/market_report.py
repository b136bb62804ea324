"""Where the market's revenue is made and lost, per simulated hour of the day (issue 21).

    .venv/bin/python -m bench.market_report [--database backfill_bench] [--seed 21] [--days 2]
        [--spot <database>] [--fixed <database>]

Reads the databases a `bench.market --keep` run left (<database>_market_spot and
<database>_market_fixed) and prints, per hour of the day (over all simulated days), in each
mode: the mean preemptible price as a share of on-demand (time-weighted over the offers), the
mean sold share the market saw, GPUs sold (preemptible and on-demand, mean over the hour) and
revenue (usage intervals × the price in force: the spot history in the spot mode, the
catalog's price otherwise). Then the price reclaims: how many, when, and what their customers
would have paid had they run to the end they chose (the seeded customers of bench.market,
found by the instance's name), at the price of the moment they were reclaimed.

Not the benchmark's own figures (those come from the portal's fleet history): a breakdown to
see where the two modes differ.
"""

from __future__ import annotations

import argparse
import bisect
import os
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import psycopg

from bench.market import SIM_START, customers

HOUR = 3600


def connect(name: str):
    return psycopg.connect(
        host=os.environ.get("BENCH_DB_HOST", "127.0.0.1"),
        port=os.environ.get("BENCH_DB_PORT", "5432"),
        user=os.environ.get("BENCH_DB_USER", "postgres"),
        dbname=name,
    )


def ts(moment: datetime | None, default: float) -> float:
    return moment.timestamp() if moment is not None else default


class Mode:
    def __init__(self, name: str, database: str, start: float, end: float, seed: int) -> None:
        self.name, self.start, self.end = name, start, end
        with connect(database) as conn:
            self.on_demand = dict(
                conn.execute(
                    "SELECT DISTINCT ON (instance_type_id) instance_type_id, on_demand_hourly "
                    "FROM catalog_price ORDER BY instance_type_id, valid_from DESC"
                ).fetchall()
            )
            self.fixed = dict(
                conn.execute(
                    "SELECT DISTINCT ON (instance_type_id) instance_type_id, preemptible_hourly "
                    "FROM catalog_price ORDER BY instance_type_id, valid_from DESC"
                ).fetchall()
            )
            self.history: dict[tuple[int, int], list[tuple[float, float, Decimal]]] = defaultdict(
                list
            )
            self.shares: list[tuple[float, float, float]] = []
            for region, itype, price, since, until, share in conn.execute(
                "SELECT region_id, instance_type_id, price, valid_from, valid_until, sold_share "
                "FROM market_spotprice ORDER BY valid_from"
            ):
                row = (ts(since, end), ts(until, end), price)
                self.history[(region, itype)].append(row)
                if share is not None:
                    self.shares.append((row[0], float(share), 0.0))
            self.starts = {offer: [r[0] for r in rows] for offer, rows in self.history.items()}
            self.intervals = conn.execute(
                "SELECT u.region_id, u.instance_type_id, u.gpus, u.kind, u.start, u.end, "
                "u.unit_price FROM billing_usageinterval u"
            ).fetchall()
            self.reclaims = conn.execute(
                "SELECT i.name, i.region_id, i.instance_type_id, i.gpus, v.noticed_at, "
                "v.reclaim_at, v.ended_at FROM reclaims_reclaimvictim v "
                "JOIN reclaims_reclaimorder o ON o.id = v.order_id "
                "JOIN instances_instance i ON i.id = v.instance_id WHERE o.source = 'price'"
            ).fetchall()
            self.backend_victims = conn.execute(
                "SELECT count(*) FROM reclaims_reclaimvictim v JOIN reclaims_reclaimorder o "
                "ON o.id = v.order_id WHERE o.source = 'backend'"
            ).fetchone()[0]
        self.people = {c.n: c for c in customers(seed, start, (end - start) / 86400)}

    def price_at(self, offer: tuple[int, int], at: float) -> Decimal | None:
        rows = self.history.get(offer)
        if not rows:
            return None
        i = bisect.bisect_right(self.starts[offer], at) - 1
        return rows[i][2] if i >= 0 else None

    def pieces(self, offer, start: float, end: float, fallback: Decimal):
        """(from, to, price) over [start, end): the spot history where there is one."""
        rows = self.history.get(offer)
        if not rows:
            yield start, end, fallback
            return
        i = max(0, bisect.bisect_right(self.starts[offer], start) - 1)
        while i < len(rows) and rows[i][0] < end:
            lo, hi = max(start, rows[i][0]), min(end, rows[i][1])
            if hi > lo:
                yield lo, hi, rows[i][2]
            i += 1

    def by_hour(self):
        gpu_s: dict[tuple[int, str], float] = defaultdict(float)
        revenue: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
        for region, itype, gpus, kind, start, end, unit in self.intervals:
            lo, hi = max(ts(start, self.end), self.start), min(ts(end, self.end), self.end)
            if hi <= lo:
                continue
            offer = (region, itype)
            pieces = self.pieces(offer, lo, hi, unit) if kind == "preemptible" else [(lo, hi, unit)]
            for a, b, price in pieces:
                t = a
                while t < b:
                    edge = min(b, (int((t - self.start) // HOUR) + 1) * HOUR + self.start)
                    hour = int(((t - self.start) % 86400) // HOUR)
                    gpu_s[(hour, kind)] += gpus * (edge - t)
                    revenue[(hour, kind)] += price * Decimal(str(round(edge - t, 3))) / HOUR
                    t = edge
        return gpu_s, revenue

    def price_share_by_hour(self) -> dict[int, float]:
        weighted: dict[int, float] = defaultdict(float)
        seconds: dict[int, float] = defaultdict(float)
        for (_region, itype), rows in self.history.items():
            od = float(self.on_demand[itype])
            for since, until, price in rows:
                t, until = max(since, self.start), min(until, self.end)
                while t < until:
                    edge = min(until, (int((t - self.start) // HOUR) + 1) * HOUR + self.start)
                    hour = int(((t - self.start) % 86400) // HOUR)
                    weighted[hour] += float(price) / od * (edge - t)
                    seconds[hour] += edge - t
                    t = edge
        return {h: weighted[h] / seconds[h] for h in seconds if seconds[h]}

    def reclaim_losses(self):
        """Per hour of notice: (count, GPUs, what they would have paid to their own end)."""
        out: dict[int, list] = defaultdict(lambda: [0, 0, Decimal(0)])
        for name, region, itype, gpus, noticed, reclaim_at, ended in self.reclaims:
            parts = name.split("-")
            customer = self.people.get(int(parts[1])) if len(parts) >= 3 else None
            stop = ts(ended or reclaim_at, self.end)
            hour = int(((ts(noticed, self.end) - self.start) % 86400) // HOUR)
            row = out[hour]
            row[0] += 1
            row[1] += gpus
            if customer is None:
                continue
            # Its own end: it launched at some attempt; the runs last `hours` from the launch.
            # The launch is not stored by name here: take the interval's start via the notice
            # less nothing known, so estimate from the arrival's retry hour (attempt n).
            attempt = int(parts[2])
            launched = customer.arrives + (attempt - 1) * HOUR
            own_end = min(self.end, launched + customer.hours * HOUR)
            if own_end > stop:
                price = self.price_at((region, itype), ts(noticed, self.end)) or Decimal(0)
                row[2] += price * Decimal(str(round(own_end - stop, 1))) / HOUR
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=os.environ.get("BENCH_DB_NAME", "backfill_bench"))
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--days", type=float, default=2.0)
    parser.add_argument("--spot", help="the spot run's database (default <database>_market_spot)")
    parser.add_argument("--fixed", help="the fixed run's database (<database>_market_fixed)")
    args = parser.parse_args(argv)
    start = SIM_START.astimezone(UTC).timestamp()
    end = start + args.days * 86400
    names = {"spot": args.spot, "fixed": args.fixed}
    modes = {
        name: Mode(name, names[name] or f"{args.database}_market_{name}", start, end, args.seed)
        for name in ("spot", "fixed")
    }
    tables = {name: mode.by_hour() for name, mode in modes.items()}
    share = modes["spot"].price_share_by_hour()
    days = args.days
    print(
        "hour | spot price | spot: pre GPUs  od GPUs  revenue | fixed: pre GPUs  od GPUs  "
        "revenue | spot-fixed"
    )
    totals = defaultdict(Decimal)
    for hour in range(24):
        cells = []
        for name in ("spot", "fixed"):
            gpu_s, revenue = tables[name]
            pre = gpu_s[(hour, "preemptible")] / HOUR / days
            od = gpu_s[(hour, "on_demand")] / HOUR / days
            rev = sum((v for (h, _k), v in revenue.items() if h == hour), Decimal(0))
            totals[name] += rev
            od_rev = revenue[(hour, "on_demand")] / Decimal(str(days))
            cells.append((pre, od, rev / Decimal(str(days)), od_rev))
        (sp, so, sr, sor), (fp, fo, fr, f_or) = cells
        print(
            f"{hour:4d} | {share.get(hour, 0) * 100:9.1f}% | {sp:13.0f} {so:8.0f} "
            f"{sr:9.0f} | {fp:14.0f} {fo:8.0f} {fr:9.0f} | {sr - fr:+9.0f} "
            f"(on-demand {sor - f_or:+6.0f})"
        )
    print(f"total revenue: spot {totals['spot']:.0f}, fixed {totals['fixed']:.0f}")
    for name, mode in modes.items():
        losses = mode.reclaim_losses()
        n = sum(r[0] for r in losses.values())
        lost = sum((r[2] for r in losses.values()), Decimal(0))
        print(
            f"{name}: {n} price reclaims ({sum(r[1] for r in losses.values())} GPUs), "
            f"their customers would have paid ~{lost:.0f} more to their own end; "
            f"backend victims {mode.backend_victims}"
        )
        if n:
            print(
                "   by hour of notice: "
                + ", ".join(f"{h}h:{losses[h][0]}/{losses[h][2]:.0f}" for h in sorted(losses))
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
