"""``market sweep``: a scenario x mechanism x seed grid on local processes or a Dask cluster."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from market.apps.commands import progress_bar, sweep_directory

NAME = "sweep"
HELP = "run a scenario x mechanism x seed grid (local processes or Dask)"
DESCRIPTION = ("Run every (scenario, mechanism, seed) of a sweep file on a local process pool or a Dask cluster. "
               "Finished runs are kept under OUT/runs and reused on a re-run (after re-checking their sha256); "
               "OUT/results.parquet and OUT/manifest.json are written at the end.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``market sweep``."""
    # light: the sweep module imports its heavy parts (runner, pandas, numba) when a sweep runs
    from market.studies.sweep import EXECUTORS

    p.add_argument("sweep", type=Path, help="sweep file (TOML)")
    p.add_argument("--out", required=True, type=sweep_directory,
                   help="sweep directory (resumable): a new name, an empty folder or an earlier sweep's")
    p.add_argument("--executor", choices=EXECUTORS, default="local", help="local process pool (default) or a Dask cluster")
    p.add_argument("--address", help="Dask scheduler, e.g. tcp://HOST:8786 (default: $DASK_SCHEDULER_ADDRESS)")
    p.add_argument("--workers", type=int, help="local processes (default: CPUs; 1 = in this process)")
    p.add_argument("--oracle", action=argparse.BooleanOptionalAction, default=None,
                   help="solve each round's market exactly, or not, in every scenario of the sweep "
                        "(default: each scenario's oracle key)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """``market sweep``: check the sweep file and every scenario's market, then run the grid."""
    from market.core.runner import check_markets
    from market.studies.sweep import Task, load_sweep, open_executor, run_sweep

    sweep = load_sweep(args.sweep, oracle=args.oracle)
    for scenario in sweep.scenarios:  # bad tables fail here, before the sweep directory or a bar
        check_markets(scenario)
    with contextlib.ExitStack() as stack:
        bars = []  # the bar starts once the tasks left to run are known

        def on_start(todo: int, reused: int) -> None:
            if reused and not args.quiet:
                print(f"reusing {reused} verified task(s) under {args.out}", file=sys.stderr)
            bars.append(stack.enter_context(
                progress_bar(total=todo, desc=sweep.name, unit="run", disable=args.quiet or not todo)))

        def progress(task: Task) -> None:
            bars[0].set_postfix_str(task.label, refresh=False)
            bars[0].update(1)

        with open_executor(args.executor, args.address, args.workers) as executor:
            manifest = run_sweep(sweep, args.out, executor, progress, on_start)
    tasks = manifest["tasks"]
    print(
        f"wrote {args.out / 'results.parquet'} ({manifest['runs']} runs; {tasks['executed']} task(s) executed, "
        f"{tasks['reused']} reused; results sha256 {manifest['sha256']['results'][:16]}, {manifest['wall_time_s']} s)"
    )
    return 0
