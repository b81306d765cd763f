"""``market audit``: can a user gain by misreporting? (:mod:`market.studies.audit`)."""

from __future__ import annotations

import argparse
import math

from market.apps.commands import output_directory, run_progress
from market.errors import MarketInputError

NAME = "audit"
HELP = "truthfulness audit: can a user gain by misreporting?"
DESCRIPTION = ("Each user in turn misreports (bids or budget scaled by each factor; everything else fixed, same seed); "
               "report every user's gain in true utility and the largest one.")


def _floats(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"factors must be positive finite numbers, got {text!r}")
    return values


def _kinds(text: str) -> list[str]:
    from market.studies.audit import KINDS

    kinds = [x.strip() for x in text.split(",") if x.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if not kinds or bad:
        raise argparse.ArgumentTypeError(f"kinds must be among {', '.join(KINDS)}, got {text!r}")
    return kinds


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``market audit`` (defaults from :mod:`market.studies.audit`)."""
    from market.studies.audit import DEFAULT_FACTORS, KINDS

    p.add_argument("scenario", help="scenario file or shipped scenario name")
    p.add_argument("--mechanism", required=True, help="mechanism to audit, e.g. second_price")
    p.add_argument("--out", type=output_directory(NAME), help="write audit.csv, summary.csv, audit.md here (atomically)")
    p.add_argument("--seed", type=int, help="seed (default: the scenario's first)")
    p.add_argument("--rounds", type=int, help="number of rounds (default: the scenario's)")
    p.add_argument("--factors", type=_floats, default=list(DEFAULT_FACTORS),
                   help=f"comma-separated misreport factors (default {','.join(map(str, DEFAULT_FACTORS))})")
    p.add_argument("--kinds", type=_kinds, default=list(KINDS), help="bid, budget or both (default)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """``market audit``: load the scenario and the seed's market (the auditor), then audit with a bar."""
    from market.studies.audit import Auditor, markdown, summarize, write
    from scenarios.config import load

    scenario = load(args.scenario)
    if args.rounds is not None:
        scenario = scenario.replace(rounds=args.rounds)
    seed = scenario.seeds[0] if args.seed is None else args.seed
    if seed < 0:
        raise MarketInputError(f"--seed must be >= 0, got {seed}")
    auditor = Auditor(scenario, args.mechanism, seed)  # builds and checks the market, before the bar
    with run_progress(f"audit {scenario.name}/{args.mechanism}", args.quiet) as progress:
        table = auditor.audit(args.factors, args.kinds, progress=progress)
    summary = summarize(table)
    text = markdown(table, summary, f"{scenario.name}, {args.mechanism}, seed {seed}")
    if args.out is None:
        print(text)
    else:
        write(table, summary, text, args.out)
        print(f"wrote {args.out} ({len(table)} misreports, {int(summary['profitable'].sum())} profitable)")
    return 0
