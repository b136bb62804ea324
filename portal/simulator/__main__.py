"""`python -m portal.simulator --port 8070 --state state.json --token SECRET [--catalog FILE]`."""

from __future__ import annotations

import argparse
import logging
import logging.config
import os
import signal
import sys
from pathlib import Path

from .catalog import CatalogError, load_catalog
from .engine import Simulator
from .records import Conflict, Timings
from .server import SimulatorServer
from .store import load_state


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m portal.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8070, help="0 picks a free port")
    parser.add_argument("--state", type=Path, help="JSON file that keeps the state across restarts")
    parser.add_argument(
        "--token",
        default=os.environ.get("SIMULATOR_TOKEN"),
        help="bearer token clients must send (default: $SIMULATOR_TOKEN)",
    )
    parser.add_argument(
        "--catalog",
        default="default",
        help="fleet JSON file, or 'default'; a file replaces the fleet of a saved state",
    )
    parser.add_argument("--zero-delays", action="store_true", help="every transition is instant")
    parser.add_argument("--reclaim-notice", type=float, help="seconds of notice before a reclaim")
    parser.add_argument(
        "--flush-interval",
        type=float,
        default=0.5,
        help="seconds between background writes of the state file (0: on every change); "
        "a change is written and fsynced before it is answered either way",
    )
    parser.add_argument("--seed", type=int, help="seed of the fault and jitter randomness")
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("a token is required (--token or $SIMULATOR_TOKEN)")
    return args


def build(args: argparse.Namespace) -> SimulatorServer:
    catalog = load_catalog(args.catalog)
    timings = Timings.zero() if args.zero_delays else Timings()
    if args.reclaim_notice is not None:
        timings.reclaim_notice = args.reclaim_notice
    simulator = Simulator(
        catalog, timings, state_path=args.state, flush_interval=args.flush_interval
    )
    saved = load_state(args.state) if args.state else None
    if saved is not None:
        simulator.load(saved)
        if args.catalog != "default":
            simulator.set_catalog(catalog)
        if args.zero_delays or args.reclaim_notice is not None:
            simulator.timings = timings
    return SimulatorServer(
        (args.host, args.port),
        simulator,
        token=args.token,
        initial_catalog=catalog,
        initial_timings=timings,
        seed=args.seed,
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # The portal's log format (LOG_FORMAT: json or console), secrets masked.
    from portal.lib.logs import configure, default_format, logging_config

    level = "WARNING" if args.quiet else os.environ.get("LOG_LEVEL", "INFO")
    configure()
    logging.config.dictConfig(logging_config(default_format(), level))
    try:
        server = build(args)
    except (CatalogError, Conflict, ValueError, OSError) as exc:
        sys.exit(f"simulator: {exc}")
    # SystemExit from the handler unwinds serve_forever; every change is written before it is
    # answered, and what reads caught up with is written on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"simulator listening on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.simulator.close()


if __name__ == "__main__":
    main()
