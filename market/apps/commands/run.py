"""Core sub-commands: ``market run``, ``market scenarios``, ``market bench``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from market.errors import MarketInputError


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _name_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``run``, ``scenarios`` and ``bench``."""
    p = sub.add_parser("run", help="run a scenario and write its tables", description="Run every mechanism x seed of a scenario; write rounds, timings, allocations, requests, resources and manifest.json atomically.")
    p.add_argument("scenario", help="scenario file or shipped scenario name")
    p.add_argument("--out", required=True, type=Path, help="output directory (replaced atomically)")
    p.add_argument("--mechanisms", type=_name_list, help="comma-separated subset, e.g. mohaf,greedy")
    p.add_argument("--seeds", type=_int_list, help="comma-separated seeds")
    p.add_argument("--rounds", type=int, help="number of rounds")
    p.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    p.add_argument("--workers", type=int, default=1, help="local processes (results identical for any count)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("scenarios", help="list the shipped scenarios")
    p.set_defaults(func=cmd_scenarios)

    p = sub.add_parser("bench", help="time whole rounds on a synthetic market", description="Generate a seeded synthetic market and time whole rounds (candidates, clustering, utilities, allocation, validation, pricing, metrics). Prints JSON.")
    p.add_argument("--requests", type=int, default=3553)
    p.add_argument("--resources", type=int, default=888)
    p.add_argument("--mechanism", default="mohaf")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds (after one warm-up round)")
    p.add_argument("--candidates", type=int, default=0, help="K (0 = automatic)")
    p.add_argument("--clusters", type=int, default=0, help="clusters (0 = automatic)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="mechanism parameter (repeatable), e.g. rank=density")
    p.add_argument("--oracle", type=float, default=0.0, metavar="SECONDS",
                   help="also solve the last round exactly (MILP time limit) and report alg_opt")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.set_defaults(func=cmd_bench)


def resolve(args: argparse.Namespace):
    """Load the scenario and apply ``--mechanisms/--seeds/--rounds``."""
    from mechanisms import mechanism_class
    from scenarios.config import load

    scenario = load(args.scenario)
    changes = {}
    if args.mechanisms:
        for m in args.mechanisms:
            mechanism_class(m)
        changes["mechanisms"] = args.mechanisms
    if args.seeds:
        changes["seeds"] = args.seeds
    if args.rounds is not None:
        if args.rounds < 1:
            raise MarketInputError(f"--rounds must be >= 1, got {args.rounds}")
        changes["rounds"] = args.rounds
    return scenario.with_overrides(**changes)


def cmd_run(args: argparse.Namespace) -> int:
    """``market run``."""
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    from market.core.runner import run_scenario

    scenario = resolve(args)
    total = len(scenario.mechanisms) * len(scenario.seeds)
    bar = tqdm(total=total, desc=f"{scenario.name}", unit="run", disable=args.quiet, file=sys.stderr)

    def progress(done: int, _total: int) -> None:
        bar.update(done - bar.n)

    if args.workers > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("forkserver")) as pool:
            manifest = run_scenario(scenario, args.out, args.format, pool, progress)
    else:
        manifest = run_scenario(scenario, args.out, args.format, None, progress)
    bar.close()
    print(f"wrote {args.out} (results sha256 {manifest['sha256']['results'][:16]}, {manifest['wall_time_s']} s)")
    return 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    """``market scenarios``."""
    from scenarios.config import shipped

    for name, desc in shipped():
        print(f"{name:24s} {desc}")
    return 0


def _params(pairs: list[str]) -> dict:
    """``KEY=VALUE`` strings to a dict, values parsed as TOML scalars when they can be."""
    import tomllib

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise MarketInputError(f"--param expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = value
    return out


def cmd_bench(args: argparse.Namespace) -> int:
    """``market bench``."""
    from market.studies.bench import bench

    result = bench(
        requests=args.requests, resources=args.resources, mechanism=args.mechanism, rounds=args.rounds,
        candidates=args.candidates, clusters=args.clusters, seed=args.seed, oracle=args.oracle,
        params=_params(args.param),
    )
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:22s} {v}")
    return 0
