"""``market bench``: time whole rounds on a seeded synthetic market."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable

from market.apps.commands import run_progress
from market.errors import MarketInputError

NAME = "bench"
HELP = "time whole rounds on a synthetic market"
DESCRIPTION = (
    "Generate a seeded synthetic market and time whole rounds, MarketModel.step() itself (bids, "
    "candidates and utilities, auctions, validation, settlement, pricing, metrics; the clustering "
    "is timed apart). Prints JSON."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``market bench``."""
    p.add_argument("--requests", type=int, default=3553)
    p.add_argument("--resources", type=int, default=888)
    p.add_argument("--mechanism", default="mohaf")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds (after one warm-up round)")
    p.add_argument("--candidates", type=int, default=0, help="K (0 = automatic)")
    p.add_argument("--clusters", type=int, default=0, help="clusters (0 = automatic)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="mechanism parameter (repeatable), e.g. rank=density",
    )
    p.add_argument(
        "--oracle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also measure the last round against the whole-market oracle with this time budget (best known, proven bound, status)",
    )
    p.add_argument(
        "--dimensions",
        type=int,
        default=2,
        metavar="D",
        help="resource dimensions of the synthetic market: cpu, mem, then gpu, disk, net, ... (default 2)",
    )
    p.add_argument(
        "--population",
        default=None,
        metavar="STRATEGY",
        help="the bidding strategy of every user (truthful, learning, pacing, ...; default: truthful, "
        "or with --scenario the scenario's mix)",
    )
    p.add_argument(
        "--owners",
        default=None,
        choices=("fixed", "learning"),
        help="the owners' reserve prices: fixed or learning (EXP3 over multipliers; default: fixed, or with "
        "--scenario the scenario's)",
    )
    p.add_argument(
        "--scenario",
        default=None,
        metavar="NAME",
        help="time the rounds of a scenario's market instead (its first seed, rounds in order)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="TABLE.KEY=VALUE",
        dest="settings",
        help="with --scenario: change a [market] or [llm] key or the horizon, e.g. market.rate=4 (repeatable)",
    )
    p.add_argument(
        "--authors",
        default=None,
        metavar="PYTHON",
        help="then run the authors' own MOHAF (PyPI mohaf 0.2.0) on the same market with this "
        "interpreter, which must import mohaf (make bench-authors creates .venv-authors), and "
        "report their execution_time and the speedup",
    )
    p.add_argument(
        "--authors-runs",
        type=int,
        default=1,
        metavar="N",
        help="with --authors: their auction's runs, a fresh process each (30-80 s each at 3553 x 888; "
        "the median is reported)",
    )
    p.add_argument("--json", action="store_true", help="print JSON only")


def params(pairs: list[str]) -> dict:
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


def run(args: argparse.Namespace) -> int:
    """``market bench``."""
    from market.studies.bench import bench, bench_rounds

    if args.scenario and args.authors:
        raise MarketInputError(
            "bench: --authors hands the synthetic bench market to the authors' package; "
            "it does not take --scenario"
        )
    if args.settings and not args.scenario:  # they change a scenario's market: without one, nothing
        raise MarketInputError(f"bench: --set changes a scenario's market and needs --scenario, got {args.settings[0]!r}")
    if args.scenario:
        result = bench_rounds(
            args.scenario,
            args.mechanism,
            args.rounds,
            args.seed,
            params(args.settings),
            args.population,
            args.owners,
        )
        print(
            json.dumps(result)
            if args.json
            else "\n".join(f"{k:22s} {v}" for k, v in result.items())
        )
        return 0
    with contextlib.ExitStack() as stack:  # the authors' progress bar, if any, closes here
        result = bench(
            requests=args.requests,
            resources=args.resources,
            mechanism=args.mechanism,
            rounds=args.rounds,
            candidates=args.candidates,
            clusters=args.clusters,
            seed=args.seed,
            oracle=args.oracle,
            params=params(args.param),
            dimensions=args.dimensions,
            population=args.population or "truthful",
            owners=args.owners or "fixed",
            authors=args.authors,
            authors_runs=args.authors_runs,
            progress=_lazy_progress(stack) if args.authors else None,
        )
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:22s} {v}")
    return 0


def _lazy_progress(stack: contextlib.ExitStack) -> Callable[[int, int], None]:
    """A progress bar of the authors' runs, opened on its first call (bad input: no bar)."""
    bar: list[Callable[[int, int], None]] = []

    def progress(done: int, total: int) -> None:
        if not bar:
            bar.append(stack.enter_context(run_progress("bench: the authors' mohaf")))
        bar[0](done, total)

    return progress
