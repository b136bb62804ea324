"""Benchmark: rate one month of a 2,000-instance fleet (~200,000 usage intervals) on PostgreSQL.

Not a test. It builds a throw-away database (`backfill_bench_rating` by default, created and
migrated with Django's test-database utilities, dropped at the end), loads a month of usage
with realistic start/stop churn, then times, in the same run:

  rating     the set-based rating of the month for every organization: one GROUP BY query
             (portal.billing.rating.all_organizations: intervals clipped to the month, seconds ×
             unit price summed per organization, instance type, region, kind and price), plus
             rounding each line to cents in Python;
  baseline   one plain SQL aggregate over the same rows:
             SELECT SUM(EXTRACT(EPOCH FROM ("end" - start)) * unit_price) ...

and prints both (median of several runs after a warm-up) and their ratio, and checks that they
agree to the cent.

    make bench                          # or: .venv/bin/python bench/rating.py
    .venv/bin/python bench/rating.py --instances 2000 --runs 7 --keep

Needs the PostgreSQL of the test settings (TEST_DB_HOST/PORT/USER, trust auth locally).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--organizations", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--database", default=os.environ.get("BENCH_RATING_DB_NAME", "backfill_bench_rating")
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--spot-every-minutes",
        type=int,
        default=0,
        help="also price preemptible usage on a spot market whose price changes this often "
        "for every offer (0: catalog prices only)",
    )
    args = parser.parse_args()

    os.environ["TEST_DB_TEST_NAME"] = args.database
    import django

    django.setup()
    from django.db import connection

    old_name = connection.settings_dict["NAME"]
    print(f"creating database {args.database} (migrations) …", flush=True)
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        run(args)
    finally:
        if args.keep:
            print(f"kept database {args.database}")
        else:
            connection.creation.destroy_test_db(old_name, verbosity=0)


def run(args) -> None:
    from django.conf import settings
    from django.db import connection

    from portal.billing import metering, rating, sealing
    from portal.billing.models import UsageInterval
    from portal.billing.money import SECONDS_PER_HOUR, cents
    from portal.billing.periods import Month
    from portal.catalog.models import GpuModel, Image, InstanceType, Price, Region
    from portal.instances.models import Instance
    from portal.orgs.models import Organization

    randomness = random.Random(args.seed)
    month = Month(2026, 3)
    now = month.end + timedelta(hours=2)  # rated after the month, as the invoice run does

    # The catalog: two regions, four types, a price cut for one of them mid-month.
    regions = [
        Region.objects.create(code="us-east-1", name="US East"),
        Region.objects.create(code="eu-west-1", name="EU West"),
    ]
    h100 = GpuModel.objects.create(code="h100", name="H100", memory_gb=80)
    catalog = [
        ("gpu_1x_h100", 1, "2.49", "1.29", "0.02"),
        ("gpu_8x_h100", 8, "19.92", "10.32", "0.16"),
        ("gpu_8x_a100", 8, "14.32", "7.20", "0.14"),
        ("gpu_1x_l40s", 1, "0.99", "0.49", "0.01"),
    ]
    types, prices = [], {}
    for code, count, od, pre, stopped in catalog:
        itype = InstanceType.objects.create(
            code=code,
            name=code,
            gpu_model=h100,
            gpu_count=count,
            vcpus=8,
            memory_gb=64,
            local_disk_gb=500,
        )
        types.append(itype)
        points = [(month.start - timedelta(days=60), od, pre, stopped)]
        if code == "gpu_8x_h100":
            points.append((month.start + timedelta(days=14, hours=12), "18.40", "9.60", stopped))
        prices[itype.pk] = [
            metering.PricePoint(
                id=Price.objects.create(
                    instance_type=itype,
                    valid_from=valid_from,
                    on_demand_hourly=Decimal(a),
                    preemptible_hourly=Decimal(b),
                    stopped_hourly=Decimal(c),
                ).pk,
                valid_from=valid_from,
                on_demand=Decimal(a),
                preemptible=Decimal(b),
                stopped=Decimal(c),
                currency=settings.CURRENCY,
            )
            for valid_from, a, b, c in points
        ]
    image = Image.objects.create(code="ubuntu", name="Ubuntu")
    spot_changes = 0
    if args.spot_every_minutes > 0:
        spot_changes = spot_prices_load(
            randomness,
            types=types,
            regions=regions,
            on_demand={code: Decimal(od) for code, _count, od, _pre, _stopped in catalog},
            start=month.start - timedelta(days=3),
            end=month.end + timedelta(days=1),
            every=timedelta(minutes=args.spot_every_minutes),
        )
    organizations = Organization.objects.bulk_create(
        [Organization(name=f"Org {n}", slug=f"org-{n}") for n in range(args.organizations)]
    )
    instances = Instance.objects.bulk_create(
        [
            Instance(
                organization=organizations[n % len(organizations)],
                name=f"node-{n}",
                instance_type=(itype := randomness.choice(types)),
                region=randomness.choice(regions),
                image=image,
                preemptible=randomness.random() < 0.2,
                gpus=itype.gpu_count,
                state="terminated",
            )
            for n in range(args.instances)
        ]
    )

    # Each instance: launched some time before or in the month, then runs for 2–20 hours and
    # stops for 1–10 hours, again and again; some are terminated before the month ends.
    print("generating the month's usage …", flush=True)
    started = time.perf_counter()
    buffer = io.StringIO()
    rows = 0
    for instance in instances:
        moment = month.start - timedelta(hours=randomness.uniform(0, 48))
        if randomness.random() < 0.3:
            moment = month.start + timedelta(days=randomness.uniform(0, 20))
        timeline = []
        end_of_life = month.end + timedelta(days=2)
        if randomness.random() < 0.25:
            end_of_life = moment + timedelta(days=randomness.uniform(2, 25))
        while moment < end_of_life:
            timeline.append(metering.Transition(moment, "running"))
            moment += timedelta(hours=randomness.uniform(2, 20), seconds=randomness.randint(0, 59))
            timeline.append(metering.Transition(moment, "stopping"))
            moment += timedelta(seconds=randomness.randint(5, 40))
            timeline.append(metering.Transition(moment, "stopped"))
            moment += timedelta(hours=randomness.uniform(1, 10), seconds=randomness.randint(0, 59))
        timeline.append(metering.Transition(moment, "terminated"))
        pieces = metering.pieces(
            timeline,
            preemptible=instance.preemptible,
            prices=prices[instance.instance_type_id],
            now=now,
            default_currency=settings.CURRENCY,
        )
        for piece in pieces:
            if piece.start >= month.end or (piece.end and piece.end <= month.start):
                continue
            buffer.write(
                "\t".join(
                    [
                        str(instance.pk),
                        str(instance.organization_id),
                        str(instance.instance_type_id),
                        str(instance.region_id),
                        str(instance.gpus),
                        piece.kind,
                        piece.start.isoformat(),
                        piece.end.isoformat() if piece.end else "\\N",
                        str(piece.price_id),
                        str(piece.unit_price),
                        piece.currency,
                        "f",  # not a cluster node
                    ]
                )
                + "\n"
            )
            rows += 1
    columns = (
        'instance_id, organization_id, instance_type_id, region_id, gpus, kind, start, "end", '
        "price_id, unit_price, currency, cluster"
    )
    with (
        connection.cursor() as cursor,
        cursor.connection.cursor().copy(
            f"COPY billing_usageinterval ({columns}) FROM STDIN"
        ) as copy,
    ):
        copy.write(buffer.getvalue())
    print(
        f"loaded {rows:,} intervals of {len(instances):,} instances "
        f"in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    if spot_changes:
        # Metering seals a preemptible interval's spot prices into it when it closes; the
        # load above wrote the rows directly, so seal them here the same way (one UPDATE).
        sealing_started = time.perf_counter()
        sealed = sealing.spot_seal(UsageInterval.objects.all())
        print(
            f"sealed the spot prices of {sealed:,} closed preemptible intervals "
            f"in {time.perf_counter() - sealing_started:.1f} s (metering does it as each closes)",
            flush=True,
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE billing_usageinterval")  # as autovacuum would by now
        cursor.execute("ANALYZE market_spotprice")

    def rate() -> tuple[int, Decimal]:
        lines = list(rating.all_organizations(start=month.start, end=month.end, now=now))
        total = sum(
            (cents(row["total_price_seconds"] / SECONDS_PER_HOUR) for row in lines), Decimal(0)
        )
        exact = sum((row["total_price_seconds"] for row in lines), Decimal(0))
        return len(lines), exact, total

    baseline_sql = (
        'SELECT SUM(EXTRACT(EPOCH FROM ("end" - start)) * unit_price) '
        "FROM billing_usageinterval WHERE start >= %s AND start < %s"
    )

    def baseline() -> Decimal:
        with connection.cursor() as cursor:
            cursor.execute(baseline_sql, [month.start, month.end])
            return cursor.fetchone()[0]

    def timed(function, runs):
        function()  # warm-up: caches, plans
        durations = []
        for _ in range(runs):
            started = time.perf_counter()
            result = function()
            durations.append(time.perf_counter() - started)
        return statistics.median(durations), result

    rating_time, (line_count, exact, rounded) = timed(rate, args.runs)
    baseline_time, plain = timed(baseline, args.runs)
    if not spot_changes:
        # The generated month has no open interval (every piece ends by `now`), and pieces
        # never cross the month's bounds, so the plain sum and the rating sum must be equal.
        assert exact == plain, (exact, plain)
    else:  # preemptible seconds at the spot prices: the rating must differ from catalog prices
        assert exact != plain, (exact, plain)

    print()
    print(
        f"PostgreSQL {connection.cursor().connection.info.server_version}, "
        f"{rows:,} intervals, {len(instances):,} instances, "
        f"{len(organizations):,} organizations, month {month.key}"
    )
    print(
        f"rating (GROUP BY org, type, region, kind, price → {line_count:,} lines, "
        f"rounded per line): {rating_time * 1000:8.1f} ms  (median of {args.runs})"
    )
    print(
        f"baseline (one plain SUM over the same rows):                  "
        f"{baseline_time * 1000:8.1f} ms  (median of {args.runs})"
    )
    if spot_changes:
        print(
            f"spot prices: {spot_changes:,} price periods, a change every "
            f"{args.spot_every_minutes} minutes for each of the {len(types) * len(regions)} offers"
        )
    print(f"ratio rating / baseline: {rating_time / baseline_time:.2f}")
    print(
        f"month total: exact {exact / SECONDS_PER_HOUR:,.6f}, "
        f"sum of rounded lines {rounded:,.2f} {settings.CURRENCY}"
    )


def spot_prices_load(randomness, *, types, regions, on_demand, start, end, every) -> int:
    """A spot price for every offer from `start`, changed every `every` until `end` (the last
    one still in force): between 20 % and 100 % of the on-demand price, as the market moves it.
    Written as a loaded history (`spot_price_history_add`: each row with its history's sums)."""
    from portal.market.models import PriceReason, SpotPrice
    from portal.market.services import spot_price_history_add

    rows = []
    for itype in types:
        for region in regions:
            moment = start
            while moment < end:
                following = moment + every
                factor = Decimal(str(round(randomness.uniform(0.2, 1.0), 3)))
                rows.append(
                    SpotPrice(
                        region=region,
                        instance_type=itype,
                        price=(on_demand[itype.code] * factor).quantize(Decimal("0.0001")),
                        valid_from=moment,
                        valid_until=following if following < end else None,
                        reason=PriceReason.MARKET,
                    )
                )
                moment = following
    return len(spot_price_history_add(rows=rows))


if __name__ == "__main__":
    main()
