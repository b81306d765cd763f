"""``market report``: plots and a Markdown summary of a run directory (:mod:`market.apps.report`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from market.apps.commands import output_directory

NAME = "report"
HELP = "plots and a Markdown summary of a run"
DESCRIPTION = ("Read a run directory written by 'market run' (Parquet or CSV) and write PNG figures (trajectories "
               "with seed bands, mechanism comparison with 95 % confidence intervals, ALG/OPT, price convergence, "
               "time per round), summary.md and summary.csv to OUT, atomically.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``market report``."""
    from market.studies.plots import BANDS

    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="directory written by 'market run'")
    p.add_argument("--out", required=True, type=output_directory(NAME), help="report directory (replaced atomically)")
    p.add_argument("--band", choices=BANDS, default="minmax",
                   help="seed band of the trajectories: min-max range (default) or 95%% t-interval")


def run(args: argparse.Namespace) -> int:
    """``market report``."""
    from market.apps.report import write_report
    from market.errors import MarketInputError

    run_dir, out = args.run_dir.resolve(), args.out.resolve()
    if out == run_dir or out in run_dir.parents:
        raise MarketInputError(f"--out {args.out} would replace the run it reports on ({args.run_dir}); name another folder")
    figures = write_report(args.run_dir, args.out, args.band)
    print(f"wrote {args.out}/summary.md and {len(figures)} figures")
    return 0
