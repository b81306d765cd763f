"""The scenario runner: every (mechanism, seed) run of a scenario, then the tables.

A run is :func:`run_one` (pure: scenario, mechanism, seed in; tables out), so runs can be
farmed out to any ``concurrent.futures`` executor and give the same bytes wherever they
ran. :func:`run_scenario` writes the run outputs (README, "Architecture", contract 3)
atomically.
"""

from __future__ import annotations

import platform
import time
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from market import __version__
from market.core.io import atomic_directory, sha256_file, write_json, write_table
from market.core.model import MarketModel, check_population
from market.core.pool import each_result
from market.errors import MarketWarning
from scenarios.config import Scenario
from scenarios.sources import build_market, late_requests, market_notes

RESULT_TABLES = ["rounds", "allocations", "users", "requests", "resources"]
KEYS = ["mechanism", "seed", "round"]


@dataclass
class RunTables:
    """The tables of one (mechanism, seed) run."""

    rounds: pd.DataFrame
    timings: pd.DataFrame
    allocations: pd.DataFrame
    users: pd.DataFrame


def run_one(scenario: Scenario, mechanism: str, seed: int) -> RunTables:
    """Run one mechanism on one seed's market for ``scenario.rounds`` rounds.

    Raises:
        MarketInputError: if the mechanism returns a malformed allocation or one the shared
            feasibility check refuses (a plug-in breaking the rules), naming mechanism, seed
            and round (:class:`market.core.model.MarketModel`).
    """
    model = MarketModel(scenario, mechanism=mechanism, rng=seed)
    model.run_for(scenario.rounds)
    return RunTables(model.rounds_table(), model.timings_table(), model.allocations_table(), model.users_table())


def check_markets(scenario: Scenario, seeds: Iterable[int] | None = None) -> None:
    """Load and validate the market of each seed, before any run starts (or a progress bar).

    A market's files and source parameters are the same for every seed, so the default
    checks the first seed's market only.

    Args:
        scenario: the scenario.
        seeds: the seeds whose markets to build (default: the scenario's first seed).

    Raises:
        MarketInputError: on a bad or missing table, trace file or source parameter.
    """
    check_population(scenario)
    for seed in scenario.seeds[:1] if seeds is None else seeds:
        build_market(scenario, seed)


def market_tables(scenario: Scenario, seeds: Iterable[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``requests`` and ``resources`` of every seed's market, with a ``seed`` column.

    Raises:
        MarketInputError: on a bad table or source parameter (so this also checks the input).
    """
    check_population(scenario)
    reqs, ress = [], []
    late: dict[int, int] = {}  # seed -> requests arriving after the last round (one warning for all seeds)
    for seed in sorted(seeds):  # in seed order, as the other tables: --seeds 2,1 writes what 1,2 does
        market = build_market(scenario, seed)
        if n_late := len(late_requests(market, scenario)):
            late[seed] = n_late
        for line in getattr(market.extension, "warnings", list)():
            warnings.warn(f"{scenario.name} (seed {seed}): {line}", MarketWarning, stacklevel=2)
        count, types = market.unservable()
        if count:
            shown = ", ".join(repr(t) for t in types[:3]) + (", ..." if len(types) > 3 else "")
            warnings.warn(f"{scenario.name} (seed {seed}): {count} requests allow only resource types no resource has "
                          f"({shown}); nobody can serve them", MarketWarning, stacklevel=2)
        reqs.append(market.requests.assign(seed=seed))
        ress.append(market.resources.assign(seed=seed))
    if late:
        last = max(scenario.rounds, scenario.horizon) - 1
        counts = set(late.values())
        how_many = (f"{counts.pop()} requests" if len(counts) == 1 and len(late) == len(reqs) else
                    "requests (" + ", ".join(f"{n} in seed {seed}" for seed, n in late.items()) + ")")
        warnings.warn(f"{scenario.name}: {how_many} arrive after the last round ({last}) and are ignored",
                      MarketWarning, stacklevel=2)
    return _seed_first(pd.concat(reqs, ignore_index=True)), _seed_first(pd.concat(ress, ignore_index=True))


def _seed_first(df: pd.DataFrame) -> pd.DataFrame:
    return df[["seed", *[c for c in df.columns if c != "seed"]]]


def package_versions() -> dict[str, str]:
    """Versions of this package, Python and the libraries results depend on (for manifests)."""
    out = {"market-alloc": __version__, "python": platform.python_version()}
    for pkg in ("mesa", "numpy", "scipy", "numba", "pandas", "pyarrow", "networkx", "matplotlib"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


def combine(parts: list[RunTables], mechanisms: list[str]) -> dict[str, pd.DataFrame]:
    """Concatenate runs in a fixed order (mechanism as listed, then seed, round)."""
    rank = {m: i for i, m in enumerate(mechanisms)}

    def ordered(frames: list[pd.DataFrame], by: list[str]) -> pd.DataFrame:
        df = pd.concat(frames, ignore_index=True)
        df = df.assign(_m=df["mechanism"].map(rank)).sort_values(["_m", *by[1:]], kind="stable")
        return df.drop(columns="_m").reset_index(drop=True)

    rounds = ordered([p.rounds for p in parts], KEYS)
    cols = KEYS + [c for c in rounds.columns if c not in KEYS]
    return {
        "rounds": rounds[cols],
        "timings": ordered([p.timings for p in parts], KEYS),
        "allocations": ordered([p.allocations for p in parts], [*KEYS, "request_id"]),
        "users": ordered([p.users for p in parts], KEYS),
    }


def run_scenario(
    scenario: Scenario,
    out: Path,
    fmt: str = "parquet",
    executor: Executor | None = None,
    progress: Callable[[int, int], None] | None = None,
    markets: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> dict[str, Any]:
    """Run every (mechanism, seed) of ``scenario`` and write the outputs to ``out``.

    Args:
        scenario: the scenario (``rounds``, ``seeds`` and ``mechanisms`` as resolved).
        out: the output directory (replaced atomically).
        fmt: ``"parquet"`` or ``"csv"``.
        executor: where runs execute (None: in this process, one after another).
        progress: called with (done, total) after each run.
        markets: :func:`market_tables` of the scenario's seeds if the caller built them
            already (to check the input before showing progress); None builds them here,
            before the first run.

    Returns:
        The manifest.
    """
    start = time.perf_counter()
    if markets is None:
        markets = market_tables(scenario, scenario.seeds)  # bad tables fail before any run
    jobs = [(m, s) for m in scenario.mechanisms for s in scenario.seeds]
    parts: list[RunTables] = []
    for done, part in enumerate(each_result(executor, [(run_one, (scenario, m, s)) for m, s in jobs]), 1):
        parts.append(part)
        if progress:
            progress(done, len(jobs))
    tables = combine(parts, scenario.mechanisms)
    tables["requests"], tables["resources"] = markets
    with atomic_directory(out, "run") as tmp:
        hashes = {}
        for name, df in tables.items():
            path = write_table(df, tmp / name, fmt)
            if name in RESULT_TABLES:
                hashes[path.name] = sha256_file(path)
        combined = sha256_file_list([hashes[k] for k in sorted(hashes)])
        manifest = {
            "scenario": scenario.to_dict(),
            "mechanisms": scenario.mechanisms,
            "seeds": scenario.seeds,
            "rounds": scenario.rounds,
            "format": fmt,
            "metrics": [c for c in tables["rounds"].columns if c not in KEYS],
            "versions": package_versions(),
            "wall_time_s": round(time.perf_counter() - start, 3),
            "sha256": {"tables": hashes, "results": combined},
            **market_notes(scenario),
        }
        write_json(manifest, tmp / "manifest.json")
    return manifest


def sha256_file_list(hashes: list[str]) -> str:
    """One hash over several table hashes (in the given order)."""
    import hashlib

    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()
