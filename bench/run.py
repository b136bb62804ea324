"""`make bench`: every benchmark, each figure with its ratio to a baseline of the same run.

    .venv/bin/python -m bench.run

Creates its own PostgreSQL database (BENCH_DB_NAME, default backfill_bench: dropped, created
and migrated on every run) and uses Redis database 3 (BENCH_REDIS_URL), gunicorn on port 8600
and the simulator on 8670, so it can run next to the tests and `make run`. Prints each figure
as it comes and prepends a table to bench/RESULTS.md. A missed target is a finding, printed
and written, never a failure; the exit status is non-zero only when a benchmark could not run.

BENCH_ONLY (comma-separated section names: reconciliation, queries, pages, provisioning,
rating, scale, market) runs just those sections, seeding only what they need, and prints
without writing bench/RESULTS.md: a partial run must not enter the results file.

Rating: bench/rating.py is billing's benchmark, run as it is (its own process and throw-away
database, backfill_bench_rating); the runner reads the figures it prints ("rating (…): N ms",
"baseline (…): N ms", "N intervals,") into the table.
"""

from __future__ import annotations

import os
import re
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def create_database(name: str) -> None:
    import psycopg

    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise SystemExit(f"bench: refusing the database name {name!r}")
    with psycopg.connect(
        host=os.environ.get("BENCH_DB_HOST", "127.0.0.1"),
        port=os.environ.get("BENCH_DB_PORT", "5432"),
        user=os.environ.get("BENCH_DB_USER", "postgres"),
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def section(title: str, failures: list[str], step: Callable[[], None]) -> None:
    print(f"\n== {title}", flush=True)
    started = time.perf_counter()
    try:
        step()
    except Exception as error:  # one broken benchmark must not hide the others' figures
        traceback.print_exc()
        failures.append(f"{title}: could not run ({type(error).__name__}: {error})")
    print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)


def rating(results) -> None:
    """Billing's benchmark (bench/rating.py) in its own process and its own throw-away database
    (backfill_bench_rating), run twice: at catalog prices, and with spot prices changing every
    5 minutes for every offer; its printed figures are read back into the table."""
    script = REPO / "bench" / "rating.py"
    if not script.exists():
        results.note("rating skipped: bench/rating.py (billing's benchmark) is not there")
        return
    for extra, label in [
        ([], "rating a month of {} intervals"),
        (["--spot-every-minutes", "5"], "rating a month of {} intervals, spot price every 5 min"),
    ]:
        rating_run(results, script, extra, label)


def rating_run(results, script: Path, extra: list[str], label: str) -> None:
    import subprocess

    from bench.results import Row

    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.setdefault("TEST_REDIS_URL", os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3"))
    out = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(script), *extra], cwd=REPO, env=env, capture_output=True, text=True
    )
    print(out.stdout, end="", flush=True)
    if out.returncode != 0:
        raise RuntimeError(f"bench/rating.py failed:\n{out.stderr[-2000:]}")
    figures = {
        name: re.search(pattern, out.stdout, re.MULTILINE)
        for name, pattern in {
            "rating": r"^rating \((.*?)\):\s*([\d.]+) ms",
            "baseline": r"^baseline \((.*?)\):\s*([\d.]+) ms",
            "intervals": r"([\d,]+) intervals,",
        }.items()
    }
    if not all(figures.values()):
        results.note("rating: bench/rating.py ran but printed no figures this runner can read")
        return
    rating_ms = float(figures["rating"].group(2))
    baseline_ms = float(figures["baseline"].group(2))
    ratio = rating_ms / baseline_ms
    results.add(
        Row(
            section="rating",
            name=label.format(figures["intervals"].group(1)),
            figure=f"{rating_ms:.1f} ms",
            baseline=f"one plain SQL SUM {baseline_ms:.1f} ms",
            ratio=ratio,
            target="≤ 3x",
            met=ratio <= 3,
        )
    )


SECTIONS = ("reconciliation", "queries", "pages", "provisioning", "rating", "scale", "market")


def chosen_sections() -> tuple[frozenset[str], bool]:
    """The sections to run (BENCH_ONLY, comma-separated; all when unset) and whether that is
    a partial run. An unknown name stops the run before anything is created."""
    raw = os.environ.get("BENCH_ONLY", "").strip()
    if not raw:
        return frozenset(SECTIONS), False
    names = frozenset(name.strip() for name in raw.split(",") if name.strip())
    unknown = sorted(names - set(SECTIONS))
    if unknown or not names:
        raise SystemExit(
            f"bench: BENCH_ONLY names unknown section(s) {', '.join(unknown) or repr(raw)}; "
            f"choose from {', '.join(SECTIONS)}"
        )
    return names, True


def load() -> str:
    """The machine's load average: other work on a shared machine moves every figure."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main() -> int:
    only, partial = chosen_sections()
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    sys.path.insert(0, str(REPO))
    started_at, started = datetime.now(UTC), time.perf_counter()
    load_at_start = load()
    name = os.environ.get("BENCH_DB_NAME", "backfill_bench")
    if partial:
        print(f"== BENCH_ONLY: {', '.join(s for s in SECTIONS if s in only)} (not written)")
    print(f"== database {name}: drop, create, migrate", flush=True)
    create_database(name)

    import django

    django.setup()

    import redis
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from bench import pages, provisioning, queries, reconcile, seed
    from bench.results import Results, write
    from portal.accounts.models import User

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    call_command("migrate", verbosity=0)
    work = Path(settings.VAR_DIR) / "bench"
    if name != "backfill_bench":  # a run on its own database keeps its logs and state apart
        work = work / name
    work.mkdir(parents=True, exist_ok=True)
    results = Results()
    failures: list[str] = []

    if only - {"rating"}:  # rating runs in its own process and database
        seed.seed_catalog()
        staff = User.objects.get(email="admin@backfill.localhost")
    # First, while the fleet's instances are the only ones with machines: reconciliation looks
    # at every instance, and the seeded organizations' machines exist in no simulator.
    if "reconciliation" in only:
        section("reconciliation", failures, lambda: reconcile.run(results, work=work))

    if only & {"queries", "pages"}:
        print("== seeding: 1,000-instance and 10-instance organizations", flush=True)
        seeding = time.perf_counter()
        large = seed.organization_of_size("Bench Load", 1000, staff=staff)
        small = seed.organization_of_size("Bench Small", 10, staff=staff)
        print(
            f"   {large.instances} instances, {large.keys} SSH keys, {large.usage_intervals:,} "
            f"usage intervals over 12 months, {large.invoices} invoices "
            f"({time.perf_counter() - seeding:.0f} s)",
            flush=True,
        )

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # planner statistics, as autovacuum would have them by now

    if "queries" in only:
        section(
            "queries per page", failures, lambda: queries.run(results, small=small, large=large)
        )
    if "pages" in only:
        section(
            "pages under load", failures, lambda: pages.run(results, seeded=large, log_dir=work)
        )
    if "provisioning" in only:
        section("provisioning", failures, lambda: provisioning.run(results, staff=staff, work=work))
    if "rating" in only:
        section("rating", failures, lambda: rating(results))
    if "scale" in only:  # the operator's pages on a fleet of 100,000 (bench/scale.py)
        from bench import scale

        section("operator scale", failures, lambda: scale.run(results, staff=staff, work=work))
    if "market" in only:  # a week of the spare-capacity market (bench/market.py)
        from bench import market

        section("market week", failures, lambda: market.run(results, work=work))

    results.note(f"load average (1, 5, 15 min) at the start {load_at_start}, at the end {load()}")
    for failure in failures:
        results.note(failure)
    missed = [row for row in results.rows if row.met is False]
    seconds = time.perf_counter() - started
    print(f"\n== {len(missed)} target(s) missed; {len(failures)} benchmark(s) could not run")
    for row in missed:
        ratio = "" if row.ratio is None else f", ratio {row.ratio:.2f}"
        print(f"   missed: {row.section}: {row.name} ({row.figure}{ratio})")
    if partial:
        print(f"== BENCH_ONLY run: not written to bench/RESULTS.md ({seconds:.0f} s)", flush=True)
    else:
        path = write(results, started=started_at, seconds=seconds)
        print(f"== written to {path.relative_to(REPO)} in {seconds:.0f} s", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
