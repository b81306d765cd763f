"""``market run``: every mechanism x seed of a scenario, written as tables."""

from __future__ import annotations

import argparse

from market.apps.commands import int_list, name_list, output_directory, progress_bar
from market.errors import MarketInputError

NAME = "run"
HELP = "run a scenario and write its tables"
DESCRIPTION = ("Run every mechanism x seed of a scenario; write rounds, timings, allocations, users, requests, "
               "resources and manifest.json atomically.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``market run``."""
    p.add_argument("scenario", help="scenario file or shipped scenario name")
    p.add_argument("--out", required=True, type=output_directory(NAME), help="output directory (replaced atomically)")
    p.add_argument("--mechanisms", type=name_list, help="comma-separated subset, e.g. mohaf,greedy")
    p.add_argument("--seeds", type=int_list, help="comma-separated seeds")
    p.add_argument("--rounds", type=int, help="number of rounds")
    p.add_argument("--oracle", action=argparse.BooleanOptionalAction, default=None,
                   help="solve each round's market exactly beside the mechanisms, or not "
                        "(default: the scenario's oracle key)")
    p.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    p.add_argument("--workers", type=int, default=1, help="local processes (results identical for any count)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def resolve(args: argparse.Namespace):
    """Check ``--workers``, load the scenario and apply ``--mechanisms/--seeds/--rounds/--oracle``."""
    from mechanisms import mechanism_class
    from scenarios.config import load

    if args.workers < 1:
        raise MarketInputError(f"--workers must be >= 1, got {args.workers}")
    scenario = load(args.scenario)
    changes = {}
    if args.mechanisms:
        for m in args.mechanisms:
            mechanism_class(m)
        changes["mechanisms"] = args.mechanisms
    if args.seeds:
        changes["seeds"] = args.seeds
    if args.rounds is not None:
        from scenarios.config import ROUNDS_MAX

        if not 1 <= args.rounds <= ROUNDS_MAX:
            raise MarketInputError(f"--rounds must be in [1, {ROUNDS_MAX}], got {args.rounds}")
        changes["rounds"] = args.rounds
    if args.oracle is not None:
        changes["oracle"] = args.oracle
    return scenario.replace(**changes)


def run(args: argparse.Namespace) -> int:
    """``market run``: check the scenario and every seed's market, then run with a progress bar."""
    from market.core.pool import local_pool
    from market.core.runner import market_tables, run_scenario

    scenario = resolve(args)
    markets = market_tables(scenario, scenario.seeds)  # bad tables fail here, before the bar
    total = len(scenario.mechanisms) * len(scenario.seeds)
    with progress_bar(total=total, desc=f"{scenario.name}", unit="run", disable=args.quiet) as bar:

        def progress(done: int, _total: int) -> None:
            bar.update(done - bar.n)

        if args.workers > 1:  # Ctrl-C or an error terminates the workers; no output is written
            with local_pool(args.workers) as pool:
                manifest = run_scenario(scenario, args.out, args.format, pool, progress, markets=markets)
        else:
            manifest = run_scenario(scenario, args.out, args.format, None, progress, markets=markets)
    print(f"wrote {args.out} (results sha256 {manifest['sha256']['results'][:16]}, {manifest['wall_time_s']} s)")
    return 0
