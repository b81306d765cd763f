"""``market ablation``: MOHAF's weight ablation and simplex sweep (:mod:`market.studies.ablation`)."""

from __future__ import annotations

import argparse
from typing import Any

from market.apps.commands import int_list, output_directory, run_progress
from market.errors import MarketInputError

NAME = "ablation"
HELP = "MOHAF weight ablation and simplex sweep, scored by one common utility"
DESCRIPTION = ("Run MOHAF's ablation configurations (Full, NoCost, NoQoS, NoEnergy, NoFairness, CostOnly, FullRun) "
               "and a sweep over the weight simplex; score every allocation under its own weights and under the Full "
               "weights; write CSV tables, a Markdown report and plots atomically.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``market ablation``."""
    p.add_argument("scenario", nargs="?", default="google2011-mohaf", help="scenario file or shipped name (default google2011-mohaf)")
    p.add_argument("--out", required=True, type=output_directory(NAME), help="output directory (replaced atomically)")
    p.add_argument("--seeds", type=int_list, help="ablation seeds (default: the scenario's)")
    p.add_argument("--rounds", type=int, help="rounds per run (default: the scenario's)")
    p.add_argument("--grid-step", type=float, default=0.1, help="simplex grid spacing, 1/n (default 0.1)")
    p.add_argument("--no-sweep", action="store_true", help="ablation configurations only")
    p.add_argument("--sweep-seeds", type=int_list, help="sweep seeds (default: the ablation seeds)")
    p.add_argument("--sweep-rounds", type=int, help="rounds per sweep run (default: --rounds)")
    p.add_argument("--workers", type=int, default=1, help="local processes (results identical for any count)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def command_line(args: argparse.Namespace, scenario, step: float | None) -> str:
    """The resolved command line (every default spelled out) that reproduces the tables."""
    seeds = ",".join(map(str, scenario.seeds))
    parts = ["market ablation", str(args.scenario), f"--out {args.out}", f"--seeds {seeds}", f"--rounds {scenario.rounds}"]
    if step is None:
        parts.append("--no-sweep")
    else:
        sweep_seeds = ",".join(map(str, args.sweep_seeds)) if args.sweep_seeds else seeds
        parts += [f"--grid-step {step:g}", f"--sweep-seeds {sweep_seeds}",
                  f"--sweep-rounds {args.sweep_rounds or scenario.rounds}"]
    return " ".join([*parts, f"--workers {args.workers}"])


def run(args: argparse.Namespace) -> int:
    """``market ablation``: check the scenario, its market and the grid, then run with a bar."""
    from market.core.runner import check_markets
    from market.studies.ablation import run_ablation, simplex_grid
    from market.studies.sweep import open_executor
    from scenarios.config import load

    scenario = load(args.scenario)
    changes: dict[str, Any] = {}
    if args.rounds is not None:
        changes["rounds"] = args.rounds
    if args.seeds:
        changes["seeds"] = args.seeds
    scenario = scenario.replace(**changes)
    if args.sweep_rounds is not None and args.sweep_rounds < 1:
        raise MarketInputError(f"--sweep-rounds must be >= 1, got {args.sweep_rounds}")
    if args.sweep_seeds is not None:
        scenario.replace(seeds=args.sweep_seeds)  # validates
    step = None if args.no_sweep else args.grid_step
    if step is not None:
        simplex_grid(step)  # validates before any work
    check_markets(scenario)  # bad tables or a missing trace fail here, before the bar

    with (open_executor("local", workers=args.workers) as pool,  # checks --workers, before the bar
          run_progress(f"ablation {scenario.name}", args.quiet) as progress):
        manifest = run_ablation(scenario, args.out, scenario.seeds, grid_step=step, sweep_seeds=args.sweep_seeds,
                                sweep_rounds=args.sweep_rounds, executor=pool, workers=args.workers,
                                progress=progress, command=command_line(args, scenario, step))
    print(f"wrote {args.out} ({manifest['runs']} runs, {manifest['wall_time_s']:.1f} s)")
    return 0
