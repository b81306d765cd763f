"""``market llm-report``: shared vs disaggregated serving pools over replay rates (:mod:`market.studies.llm_serving`)."""

from __future__ import annotations

import argparse
import math

from market.apps.commands import int_list, name_list, output_directory, run_progress
from market.errors import MarketInputError

NAME = "llm-report"
HELP = "LLM serving: shared vs disaggregated pools over replay rates (goodput, SLO attainment)"
DESCRIPTION = ("Run an LLM-serving scenario (default azure-llm) with shared and with disaggregated prefill/decode pools "
               "at several trace replay rates, for each mechanism and seed; compute run-level goodput, SLO attainment "
               "and TTFT/TPOT p90 from each run's serving ledger; write CSV and Markdown tables, plots and a summary "
               "atomically.")

#: defaults: 2 modes x 4 rates x 4 mechanisms x 3 seeds = 96 runs of 120 rounds (a few minutes on 2 cores)
DEFAULT_RATES = [0.5, 1.0, 2.0, 4.0]
DEFAULT_ROUNDS = 120
DEFAULT_MECHANISMS = ["mohaf", "greedy", "first_price", "drf"]


def rate_list(text: str) -> list[float]:
    """``"0.5,1,2"`` to ``[0.5, 1.0, 2.0]``: finite numbers > 0, at least one (an argparse ``type``)."""
    parts = [x.strip() for x in text.split(",") if x.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected comma-separated rates > 0, got {text!r}")
    out = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"rate {part!r} is not a number") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"rate {part!r} must be a finite number > 0")
        out.append(value)
    if len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"rates must be distinct, got {text!r}")
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``market llm-report``."""
    p.add_argument("scenario", nargs="?", default="azure-llm", help="LLM-serving scenario file or shipped name (default azure-llm)")
    p.add_argument("--out", required=True, type=output_directory(NAME), help="output directory (replaced atomically)")
    p.add_argument("--rates", type=rate_list, default=DEFAULT_RATES,
                   help="trace replay rates, comma-separated, each > 0 (default 0.5,1,2,4)")
    p.add_argument("--seeds", type=int_list, help="seeds (default: the scenario's)")
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                   help=f"rounds per run; the market spans them (default {DEFAULT_ROUNDS})")
    p.add_argument("--mechanisms", type=name_list, default=DEFAULT_MECHANISMS,
                   help=f"mechanisms, comma-separated (default {','.join(DEFAULT_MECHANISMS)})")
    p.add_argument("--start-seconds", type=float,
                   help="replay the trace from this many seconds after its first request (default: the scenario's "
                        "[market] start_seconds)")
    p.add_argument("--workers", type=int, default=1, help="local processes (results identical for any count)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """``market llm-report``: check the scenario and its market, then run every variant with a bar."""
    from market.core.runner import check_markets
    from market.studies.llm_serving import POOLS, run_report, variant
    from market.studies.sweep import open_executor
    from scenarios.config import load

    scenario = load(args.scenario)
    if scenario.market.get("source") != "azure_llm":
        raise MarketInputError(f'scenario {scenario.name!r} is not an LLM-serving market (needs [market] source = "azure_llm")')
    if args.rounds < 1:
        raise MarketInputError(f"--rounds must be >= 1, got {args.rounds}")
    scenario = scenario.replace(mechanisms=args.mechanisms, **({"seeds": args.seeds} if args.seeds else {}))
    if args.start_seconds is not None:
        scenario = scenario.replace(market={**scenario.market, "start_seconds": args.start_seconds})
    for pools in POOLS:  # bad [llm]/[market] keys or a missing trace fail here, before the bar
        check_markets(variant(scenario, pools, args.rates[0], args.rounds))
    rates = ",".join(f"{r:g}" for r in args.rates)
    command = (f"market llm-report {args.scenario} --out {args.out} --rates {rates} "
               f"--seeds {','.join(map(str, scenario.seeds))} --rounds {args.rounds} "
               f"--mechanisms {','.join(scenario.mechanisms)} "
               + (f"--start-seconds {args.start_seconds:g} " if args.start_seconds is not None else "")
               + f"--workers {args.workers}")

    with (open_executor("local", workers=args.workers) as pool,  # checks --workers, before the bar
          run_progress(f"llm-report {scenario.name}", args.quiet) as progress):
        manifest = run_report(scenario, args.out, args.rates, scenario.seeds, args.rounds, scenario.mechanisms,
                              executor=pool, workers=args.workers, progress=progress, command=command)
    print(f"wrote {args.out} ({manifest['runs']} runs, {manifest['wall_time_s']:.1f} s)")
    return 0
