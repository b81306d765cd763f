"""``market scaling``: time per round against market size, with fitted slopes (:mod:`market.studies.scaling`)."""

from __future__ import annotations

import argparse
import sys

from market.apps.commands import name_list, output_directory
from market.errors import MarketInputError

NAME = "scaling"
HELP = "time per round against market size, with fitted slopes"
DESCRIPTION = ("Time whole rounds (as 'market bench') on log-spaced market sizes for each mechanism; write "
               "measurements.csv, fits.csv (log-log slopes), scaling.png and scaling.md to OUT, atomically.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``market scaling`` (defaults from :class:`market.studies.scaling.Plan`)."""
    from market.studies.scaling import Plan

    p.add_argument("--out", required=True, type=output_directory(NAME), help="output directory (replaced atomically)")
    p.add_argument("--mechanisms", type=name_list, help="comma-separated (default: every registered mechanism)")
    p.add_argument("--min-requests", type=int, default=Plan.min_requests, help="smallest size (default %(default)s)")
    p.add_argument("--max-requests", type=int, default=Plan.max_requests, help="largest size (default %(default)s)")
    p.add_argument("--per-decade", type=int, default=Plan.per_decade, help="sizes per decade (default %(default)s)")
    p.add_argument("--max-round-s", type=float, default=Plan.max_round_s,
                   help="a mechanism stops before a size whose predicted round exceeds this (default %(default)s s)")
    p.add_argument("--optimal-min-requests", type=int, default=Plan.optimal_min_requests,
                   help="smallest size of the exact reference (default %(default)s)")
    p.add_argument("--optimal-max-round-s", type=float, default=Plan.optimal_max_round_s,
                   help="per-round budget of the exact reference (default %(default)s s)")
    p.add_argument("--target-s", type=float, default=Plan.target_s,
                   help="timed seconds aimed for per point: sets the rounds (default %(default)s)")
    p.add_argument("--max-rounds", type=int, default=Plan.max_rounds, help="timed rounds per point at most (default %(default)s)")
    p.add_argument("--fit-from", type=int, default=Plan.fit_from, help="fit slopes from this size up (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    """``market scaling``."""
    from market.studies.scaling import Plan, run_scaling
    from mechanisms import available

    if args.max_rounds < 1:
        raise MarketInputError(f"--max-rounds must be >= 1, got {args.max_rounds}")
    plan = Plan(
        mechanisms=tuple(args.mechanisms or available()), min_requests=args.min_requests,
        max_requests=args.max_requests, per_decade=args.per_decade, max_round_s=args.max_round_s,
        optimal_min_requests=args.optimal_min_requests, optimal_max_round_s=args.optimal_max_round_s,
        target_s=args.target_s, max_rounds=args.max_rounds, fit_from=args.fit_from, seed=args.seed,
    )
    command = "market scaling " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["scaling"] else "market scaling"
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    run_scaling(plan, args.out, command, log)
    print(f"wrote {args.out}/scaling.md")
    return 0
