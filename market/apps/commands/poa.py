"""``market poa``: the price of anarchy of a scenario's strategic population (:mod:`market.studies.poa`)."""

from __future__ import annotations

import argparse
from typing import Any

from market.apps.commands import int_list, name_list, output_directory, run_progress
from market.errors import MarketInputError

NAME = "poa"
HELP = "price of anarchy: welfare of the strategic population over all-truthful, per mechanism, with intervals"
DESCRIPTION = ("Run every mechanism and seed of a scenario twice, with its strategic population ([users] mix or "
               "shading_share) and with every user truthful, on the same markets; per mechanism the welfare ratio "
               "strategic / truthful paired by seed (mean and 95 % t-interval) and the ratio of means; revenue and "
               "Jain over users, strategic against truthful; the settled bid / value of all bids (last 10 rounds); the "
               "pacing users' spend over their run budgets; per-round trajectories of bids, prices, price gap and "
               "reserves; with --stationary, the price gap of tatonnement on a market that does not change. Writes "
               "CSV tables, the rounds tables, a Markdown report and plots atomically. A scenario whose users are "
               "all truthful is allowed: every ratio is 1.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``market poa``."""
    p.add_argument("scenario", help="scenario file or shipped name")
    p.add_argument("--out", required=True, type=output_directory(NAME), help="output directory (replaced atomically)")
    p.add_argument("--seeds", type=int_list, help="seeds (default: the scenario's)")
    p.add_argument("--rounds", type=int, help="rounds per run: the scenario's first R rounds (default: the scenario's)")
    p.add_argument("--mechanisms", type=name_list, help="mechanisms, comma-separated (default: the scenario's)")
    p.add_argument("--stationary", metavar="SCENARIO",
                   help=("also run this scenario (file or shipped name; its mechanisms and seeds, as given) and report "
                         "the price gap to the clearing prices per round: first and last 10 rounds; it needs "
                         "[pricing] clearing = true (the reports use: --stationary stationary)"))
    p.add_argument("--workers", type=int, default=1, help="local processes (results identical for any count)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def command_line(args: argparse.Namespace, scenario: Any) -> str:
    """The resolved command line (every default spelled out) that reproduces the tables.

    ``--workers`` is left out: the tables do not depend on it (the manifest records it).
    """
    return (f"market poa {args.scenario} --out {args.out} --seeds {','.join(map(str, scenario.seeds))} "
            f"--rounds {scenario.rounds} --mechanisms {','.join(scenario.mechanisms)}"
            + (f" --stationary {args.stationary}" if getattr(args, "stationary", None) else ""))


def run(args: argparse.Namespace) -> int:
    """``market poa``: check the scenario, its market, mechanisms and population, then run with a bar."""
    from market.studies.poa import check_inputs, check_stationary, is_truthful, run_poa
    from market.studies.sweep import open_executor
    from scenarios.config import load

    scenario = load(args.scenario)
    changes: dict[str, Any] = {}
    if args.rounds is not None:
        changes["rounds"] = args.rounds
    if args.seeds is not None:
        changes["seeds"] = args.seeds
    if args.mechanisms is not None:
        if not args.mechanisms:
            raise MarketInputError("--mechanisms: expected comma-separated mechanism names, got none")
        changes["mechanisms"] = args.mechanisms
    scenario = scenario.replace(**changes)  # validates rounds, seeds and mechanism names
    check_inputs(scenario)  # the market, mechanism parameters and strategies, before the bar
    stationary = None
    if args.stationary is not None:
        stationary = load(args.stationary)
        check_stationary(stationary)  # clearing on, its market and mechanisms, before the bar

    with (open_executor("local", workers=args.workers) as pool,  # checks --workers, before the bar
          run_progress(f"poa {scenario.name}", args.quiet) as progress):
        manifest = run_poa(scenario, args.out, executor=pool, workers=args.workers, progress=progress,
                           command=command_line(args, scenario), stationary=stationary)
    note = "; the population is all truthful: every ratio is 1" if is_truthful(scenario) else ""
    runs = 2 * len(scenario.mechanisms) * len(scenario.seeds)
    if stationary is not None:
        runs += len(stationary.mechanisms) * len(stationary.seeds)
    print(f"wrote {args.out} ({runs} runs, "
          f"{manifest['wall_time_s']:.1f} s{note})")
    return 0
