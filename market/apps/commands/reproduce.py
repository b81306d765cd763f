"""``market reproduce``: reproduce a published result (:mod:`market.studies.reproduce`)."""

from __future__ import annotations

import argparse

from market.apps.commands import int_list, name_list, output_directory, progress_bar
from market.errors import MarketInputError

NAME = "reproduce"
HELP = "reproduce a published result (mohaf-table1)"
DESCRIPTION = ("mohaf-table1: MOHAF's Table 1 as published, replayed bug for bug (paper mode) and in the corrected "
               "model on the same Google 2011 instance (consistent mode, several seeds, 95 % CIs, LP upper bound). "
               "Writes DIR/table1.csv, table1_ci.csv, report.md, plots and manifest.json atomically.")
#: the results ``market reproduce`` knows
TARGETS = ("mohaf-table1",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``market reproduce``."""
    p.add_argument("target", choices=TARGETS)
    p.add_argument("--out", required=True, type=output_directory(NAME), help="output directory (replaced atomically)")
    p.add_argument("--seeds", type=int_list, help="consistent-mode seeds, e.g. 0,1,2")
    p.add_argument("--rounds", type=int, help="consistent-mode rounds")
    p.add_argument("--mechanisms", type=name_list, help="consistent-mode mechanisms")
    p.add_argument("--bounds", choices=["final", "first", "none"], default="final",
                   help="LP upper bounds: round 0 and every final round (default), round 0 only, or none")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """``market reproduce``: check the mechanisms, the scenario and its trace, then reproduce with a bar."""
    from market.core.runner import check_markets
    from market.studies.reproduce import HEURISTICS, SCENARIO, reproduce_table1
    from mechanisms import mechanism_class
    from scenarios.config import load

    for m in args.mechanisms or []:
        mechanism_class(m)
    if args.rounds is not None and args.rounds < 1:
        raise MarketInputError(f"--rounds must be >= 1, got {args.rounds}")
    scenario = load(SCENARIO)
    check_markets(scenario.replace(**({"seeds": args.seeds} if args.seeds else {})))  # the trace is there
    n_seeds = len(args.seeds or scenario.seeds)
    n_mechs = len([m for m in (args.mechanisms or HEURISTICS) if m != "optimal"] or HEURISTICS)
    with progress_bar(total=1 + n_seeds * max(1, n_mechs), desc="mohaf-table1", unit="run", disable=args.quiet) as bar:

        def progress(label: str) -> None:
            bar.set_postfix_str(label, refresh=False)
            bar.update(1)

        manifest = reproduce_table1(args.out, args.seeds, args.rounds, args.mechanisms, args.bounds, progress)
    print(f"wrote {args.out}/table1.csv and report.md ({manifest['wall_time_s']} s)")
    return 0
