"""``market poa``: the price of anarchy of a strategic population, per mechanism.

A scenario's users bid by the strategies of ``[users] mix`` (or the older
``shading_share``; :mod:`agents.strategies`): truthful, shading, EXP3 learners, pacing.
For every mechanism and seed this study plays the scenario twice on the same market:

- **strategic**: the scenario's own population;
- **truthful**: the same scenario with every user truthful (:func:`truthful_population`).

Same seed, same market and same mechanism draws: the model draws the users' strategies
from a random stream of their own (``MarketModel._strategy_mix``), so the two runs of a
seed differ only in how the users bid. Both runs are :func:`market.core.runner.run_one`,
the runs of ``market run``; the whole-market oracle is switched off (it only adds
yardstick columns, never changes an allocation).

A run's **welfare** is ``W = sum_t welfare_t`` over its rounds (Contract 4: the common
utility of the served requests, computed from the *true* values, whatever was bid). Per
mechanism and seed ``s`` the paired ratio is

    r_s = W_strategic(s) / W_truthful(s)

and the table gives

- ``poa``: the **mean of the paired ratios** over seeds, with ``poa_low, poa_high`` its
  95 % Student-t interval (:func:`market.studies.plots.mean_ci`; Student, Biometrika 6,
  1908). This is the main column because the interval is an interval *for it*: pairing
  by seed removes the seed-to-seed variation of the market (some seeds' markets are
  richer than others), which is most of the variation of either population's welfare,
  and the point estimate always lies inside its own interval;
- ``poa_of_means``: the **ratio of means** ``sum_s W_strategic(s) / sum_s W_truthful(s)``,
  which weighs seeds by their truthful welfare. The two differ only when the seeds'
  ratios and welfare levels vary together; with a handful of similar markets they agree
  to a few digits.

The same for the social welfare in money (``value_welfare``, the winners' summed values
``budget * b_ij``): ``value_poa`` (paired mean, interval) and ``value_poa_of_means``.

**Reading it.** The classical price of anarchy (Koutsoupias and Papadimitriou, "Worst-case
equilibria", STACS 1999; Roughgarden, "Intrinsic robustness of the price of anarchy",
J. ACM 62(5), 2015) compares the worst equilibrium with the optimum. Here the yardstick
is not the optimum but the same mechanism played truthfully, and the strategic
population is whatever the scenario says (fixed shading, learners still learning), not
necessarily an equilibrium: an *empirical* welfare ratio of strategic to truthful play.
Below 1: strategic bidding costs welfare under that mechanism; 1: it does not
(a posted-price mechanism whose allocation ignores the bids); above 1 is possible
(truthful play is not the optimum).

**Zero welfare.** A seed whose truthful welfare is 0 (nobody served) has ``r_s = 1``, the
convention of Contract 4 for a ratio whose denominator is 0 (``alg_opt``); such seeds
are counted in ``zero_truthful_seeds`` so they are never hidden. ``poa_of_means`` is 1
when the truthful welfare of every seed is 0. No column is NaN except the interval
bounds with a single seed (no interval, as in every study).

**An all-truthful scenario** is allowed: both populations are the same, the runs are
identical (the model is deterministic for a seed) and every ratio is exactly 1; the
report says so. That is the check that the pairing is right.

Outputs (:func:`run_poa`, atomically): ``poa.csv`` (one row per mechanism),
``poa_runs.csv`` (one row per mechanism and seed), ``poa.md``, ``poa.png`` (the ratios
with their intervals), ``welfare.png`` (welfare per round, strategic against truthful,
per mechanism), ``rounds_strategic.parquet`` and ``rounds_truthful.parquet`` (the two
populations' ``rounds`` tables, Contract 3) from which :func:`regenerate` rebuilds every
other file, and ``manifest.json``. Every file but the manifest (wall time, workers) has
the same bytes for any number of workers.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from market.core.io import atomic_directory, sha256_file, write_json, write_table
from market.core.model import MarketModel
from market.core.runner import package_versions, run_one
from market.studies import plots
from market.studies.llm_serving import code_version
from scenarios.config import Scenario
from scenarios.sources import build_market

POPULATIONS = ("strategic", "truthful")
#: per-run values taken from the ``rounds`` table: column -> how rounds are combined
RUN_VALUES = {"welfare": "sum", "value_welfare": "sum", "revenue": "sum", "jain": "mean", "bid_to_value": "mean"}
#: columns of ``poa.csv``
TABLE_COLUMNS = [
    "mechanism", "seeds", "welfare_strategic", "welfare_truthful", "poa", "poa_low", "poa_high", "poa_of_means",
    "value_welfare_strategic", "value_welfare_truthful", "value_poa", "value_poa_low", "value_poa_high",
    "value_poa_of_means", "revenue_strategic", "revenue_truthful", "jain_strategic", "jain_truthful",
    "bid_to_value_strategic", "zero_truthful_seeds",
]


# --- the two populations ----------------------------------------------------------------


def truthful_population(scenario: Scenario) -> Scenario:
    """``scenario`` with every user truthful: ``[users] mix = {truthful = 1}``, ``shading_share = 0``.

    The one place the truthful counterpart of a population is defined; nothing else of the
    scenario changes (the market, the seeds, the strategies' parameters, which then go
    unused).

    Sellers: once scenarios have an ``[owners]`` table (resource owners with reserve
    prices, ``strategy = "fixed" | "learning"``) the truthful market also has fixed
    reserves, ``owners.strategy = "fixed"``; this is done here when the scenario has one.
    """
    changes: dict[str, Any] = {"users": scenario.users.replace(mix={"truthful": 1.0}, shading_share=0.0)}
    owners = getattr(scenario, "owners", None)
    if owners is not None:
        changes["owners"] = owners.replace(strategy="fixed")
    return scenario.replace(**changes)


def population_mix(scenario: Scenario) -> dict[str, float]:
    """The users' strategy shares as the model reads them (``mix``, else ``shading_share``), zero shares left out."""
    users = scenario.users
    share = float(users.shading_share)
    mix = dict(users.mix) if users.mix is not None else {"shading": share, "truthful": 1.0 - share}
    return {str(name): float(s) for name, s in mix.items() if float(s) > 0}


def is_truthful(scenario: Scenario) -> bool:
    """Whether every user of ``scenario`` is truthful (and every owner, if it has owners, fixed)."""
    owners = getattr(scenario, "owners", None)
    if owners is not None and getattr(owners, "strategy", "fixed") != "fixed":
        return False
    return set(population_mix(scenario)) <= {"truthful"}


def study_scenario(scenario: Scenario) -> Scenario:
    """``scenario`` as the study runs it: no whole-market oracle, no flat comparison (they change no allocation)."""
    return scenario.replace(oracle=False, compare_flat=False)


def check_inputs(scenario: Scenario) -> None:
    """Build the first seed's market and a model of every mechanism for both populations.

    Checks, before any run: the market's tables or trace, every mechanism and its
    parameters, the strategy names of ``[users] mix`` and their parameters.

    Raises:
        MarketInputError: one line naming what is wrong.
    """
    seed = scenario.seeds[0]
    market = build_market(scenario, seed)
    for sc in (scenario, truthful_population(scenario)):
        for mechanism in scenario.mechanisms:
            MarketModel(sc, mechanism=mechanism, rng=seed, market=market)


# --- runs -------------------------------------------------------------------------------


def run_rounds(scenario: Scenario, mechanism: str, seed: int) -> pd.DataFrame:
    """The ``rounds`` table of one run (:func:`market.core.runner.run_one`); what a worker sends back."""
    return run_one(scenario, mechanism, seed).rounds


def evaluate(
    scenario: Scenario, executor: Executor | None = None, progress: Callable[[int, int], None] | None = None,
) -> dict[str, pd.DataFrame]:
    """Every ``(population, mechanism, seed)`` run of ``scenario`` (as given: call :func:`study_scenario` first).

    Args:
        scenario: the strategic scenario (``seeds``, ``rounds``, ``mechanisms`` as resolved).
        executor: where runs execute (None: here, one after another); any executor gives
            the same tables.
        progress: called with ``(done, total)`` runs.

    Returns:
        ``{"strategic": rounds, "truthful": rounds}``, each ordered by mechanism (as
        listed), seed (as listed), round.
    """
    populations = {"strategic": scenario, "truthful": truthful_population(scenario)}
    jobs = [(p, m, s) for m in scenario.mechanisms for s in scenario.seeds for p in POPULATIONS]
    results: dict[tuple[str, str, int], pd.DataFrame] = {}
    if executor is None:
        for done, (p, m, s) in enumerate(jobs, 1):
            results[(p, m, s)] = run_rounds(populations[p], m, s)
            if progress:
                progress(done, len(jobs))
    else:
        futures = [(job, executor.submit(run_rounds, populations[job[0]], job[1], job[2])) for job in jobs]
        for done, (job, fut) in enumerate(futures, 1):
            results[job] = fut.result()
            if progress:
                progress(done, len(jobs))
    return {p: pd.concat([results[(p, m, s)] for m in scenario.mechanisms for s in scenario.seeds], ignore_index=True)
            for p in POPULATIONS}


# --- tables -----------------------------------------------------------------------------


def paired_ratios(strategic: Sequence[float] | np.ndarray, truthful: Sequence[float] | np.ndarray) -> np.ndarray:
    """``strategic / truthful`` element by element; 1 where ``truthful`` is 0 (Contract 4's convention)."""
    s, t = np.asarray(strategic, dtype=float), np.asarray(truthful, dtype=float)
    return np.where(t != 0, s / np.where(t != 0, t, 1.0), 1.0)


def ratio_of_means(strategic: Sequence[float] | np.ndarray, truthful: Sequence[float] | np.ndarray) -> float:
    """``sum strategic / sum truthful`` (the ratio of the means); 1 when ``sum truthful`` is 0."""
    return float(paired_ratios([math.fsum(np.asarray(strategic, dtype=float))],
                               [math.fsum(np.asarray(truthful, dtype=float))])[0])


def run_values(rounds: pd.DataFrame) -> pd.DataFrame:
    """Per ``(mechanism, seed)`` run: the :data:`RUN_VALUES` (welfare summed over rounds, Jain averaged, ...)."""
    return rounds.groupby(["mechanism", "seed"], sort=False).agg(RUN_VALUES).reset_index()


def runs_table(rounds: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Both populations' runs side by side, paired by ``(mechanism, seed)``, with the paired ratios.

    Columns ``mechanism, seed``, each :data:`RUN_VALUES` column with a ``_strategic`` and
    a ``_truthful`` suffix, then ``poa`` and ``value_poa`` (the seed's ratios).
    """
    s, t = run_values(rounds["strategic"]), run_values(rounds["truthful"])
    both = s.merge(t, on=["mechanism", "seed"], suffixes=("_strategic", "_truthful"), how="inner", validate="1:1", sort=False)
    if len(both) != len(s) or len(both) != len(t):
        raise ValueError("the strategic and truthful runs do not pair up by (mechanism, seed)")
    both["poa"] = paired_ratios(both["welfare_strategic"], both["welfare_truthful"])
    both["value_poa"] = paired_ratios(both["value_welfare_strategic"], both["value_welfare_truthful"])
    return both


def poa_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per mechanism (in run order) from :func:`runs_table`: the :data:`TABLE_COLUMNS` (module docstring)."""
    rows = []
    for mech, g in runs.groupby("mechanism", sort=False):
        row: dict[str, Any] = {"mechanism": mech, "seeds": int(g["seed"].nunique())}
        for metric in ("welfare", "value_welfare", "revenue", "jain"):
            for pop in POPULATIONS:
                row[f"{metric}_{pop}"] = float(g[f"{metric}_{pop}"].mean())
        row["poa"], row["poa_low"], row["poa_high"] = plots.mean_ci(g["poa"])
        row["poa_of_means"] = ratio_of_means(g["welfare_strategic"], g["welfare_truthful"])
        row["value_poa"], row["value_poa_low"], row["value_poa_high"] = plots.mean_ci(g["value_poa"])
        row["value_poa_of_means"] = ratio_of_means(g["value_welfare_strategic"], g["value_welfare_truthful"])
        row["bid_to_value_strategic"] = float(g["bid_to_value_strategic"].mean())
        row["zero_truthful_seeds"] = int((g["welfare_truthful"] == 0).sum())
        rows.append(row)
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


# --- figures ----------------------------------------------------------------------------


def poa_figure(table: pd.DataFrame, path: Path, title: str) -> Path:
    """The two ratios per mechanism (welfare, value welfare) as bars with 95 % whiskers, a line at 1."""
    names = table["mechanism"].tolist()
    with plots.report_style():
        fig, axes = plots.figure(1, 2, width=5.2, height=0.5 * len(names) + 1.8)
        for ax, key, label in ((axes[0, 0], "poa", "welfare, strategic / truthful"),
                               (axes[0, 1], "value_poa", "value welfare, strategic / truthful")):
            plots.ci_bars(ax, names, table[key], table[f"{key}_low"], table[f"{key}_high"], label, fmt="{:.4g}")
            ax.axvline(1.0, color="#444444", linestyle=":", linewidth=1)
            left, right = ax.get_xlim()
            ax.set_xlim(left, max(right, 1.12))
        axes[0, 0].set_title("Welfare ratio (mean of seeds' ratios)")
        axes[0, 1].set_title("Value-welfare ratio")
        fig.suptitle(title)
        return plots.save(fig, path)


def welfare_figure(rounds: Mapping[str, pd.DataFrame], mechanisms: Sequence[str], path: Path, title: str) -> Path:
    """Welfare per round, strategic against truthful (mean over seeds, 95 % band), one panel per mechanism."""
    from matplotlib.ticker import MaxNLocator

    ncols = min(3, len(mechanisms))
    nrows = math.ceil(len(mechanisms) / ncols)
    with plots.report_style():
        fig, axes = plots.figure(nrows, ncols, width=4.4, height=3.2)
        for k, mech in enumerate(mechanisms):
            ax = axes[k // ncols, k % ncols]
            frame = pd.concat([rounds[p][rounds[p]["mechanism"] == mech].assign(mechanism=p) for p in POPULATIONS],
                              ignore_index=True)
            plots.trajectory(ax, frame, "welfare", list(POPULATIONS), band="ci")
            for line in ax.get_lines():  # truthful dashed on top: equal lines stay visible
                if line.get_label() == "truthful":
                    line.set_linestyle("--")
                    line.set_zorder(3)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(mech)
            ax.set_ylabel("welfare")
            if k == 0:
                ax.legend(loc="best")
        for k in range(len(mechanisms), nrows * ncols):
            axes[k // ncols, k % ncols].set_visible(False)
        fig.suptitle(title)
        return plots.save(fig, path)


# --- report -----------------------------------------------------------------------------


def _fmt(v: Any, digits: int = 4) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}g}"


def _ci(row: Mapping[str, Any], key: str, digits: int = 4) -> str:
    lo, hi = row[f"{key}_low"], row[f"{key}_high"]
    if isinstance(lo, float) and math.isnan(lo):
        return _fmt(row[key], digits)
    return f"{_fmt(row[key], digits)} [{_fmt(lo, digits)}, {_fmt(hi, digits)}]"


def _mix_text(mix: Sequence[Sequence[Any]]) -> str:
    return ", ".join(f"{name} {share:g}" for name, share in mix)


def report_markdown(info: Mapping[str, Any], table: pd.DataFrame) -> str:
    """``poa.md``: how it was run, the table, the plots, how to read it (no wall-clock figures)."""
    lines = [
        f"# Price of anarchy: `{info['scenario']}`",
        "",
        f"Scenario `{info['scenario']}`" + (f" ({info['description']})." if info.get("description") else "."),
        "",
        f"- Command: `{info['command']}`" if info.get("command") else "- Command: (library call)",
        (f"- Mechanisms {', '.join(info['mechanisms'])}; seeds {', '.join(map(str, info['seeds']))}; "
         f"{info['rounds']} rounds per run; {2 * len(info['mechanisms']) * len(info['seeds'])} runs "
         "(the whole-market oracle off: it changes no allocation)."),
        f"- Strategic population: {_mix_text(info['strategic_mix'])}" + (
            f" (shading factor {info['shading_factor']:g})." if any(n == "shading" for n, _ in info["strategic_mix"])
            else "."),
        ("- Truthful population: the same scenario with `[users] mix = {truthful = 1}` (`truthful_population`); "
        "same seed: same market, same mechanism draws."),
    ]
    if info.get("owners"):
        lines.append(f'- Owners (sellers): {info['owners']}; in the truthful population `[owners] strategy = "fixed"` '
                     "at the same reserve multiplier.")
    lines.append("")
    if info.get("all_truthful"):
        lines += [("**The scenario's population is already all truthful**: both populations are the same, so every "
                  "ratio is 1 by construction (a check of the pairing, not a finding)."), ""]
    lines += [
        ("A run's welfare is the sum over its rounds of `welfare` (the common utility of the served requests, "
         "from true values; value welfare: the winners' summed values `budget x b_ij`). Per seed, the ratio "
         "strategic / truthful of the two runs on the same market; **PoA** is the mean of those paired ratios over "
         "seeds with its 95 % Student-t interval (one seed: no interval), the **ratio of means** is total strategic "
         "over total truthful welfare. Below 1: strategic bidding costs welfare under that mechanism. The "
         "yardstick is truthful play of the same mechanism, not the optimum, and the strategic population need "
         "not be at an equilibrium: an empirical price of anarchy (after Koutsoupias and Papadimitriou, STACS "
         "1999). A seed with truthful welfare 0 counts as ratio 1."),
        "",
        ("| mechanism | seeds | welfare strategic | welfare truthful | PoA [95 % CI] | ratio of means "
        "| value PoA [95 % CI] | revenue strategic / truthful | Jain strategic / truthful | bid / value |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        lines.append(
            f"| {r['mechanism']} | {r['seeds']} | {_fmt(r['welfare_strategic'])} | {_fmt(r['welfare_truthful'])} | "
            f"{_ci(r, 'poa')} | {_fmt(r['poa_of_means'])} | {_ci(r, 'value_poa')} | "
            f"{_fmt(r['revenue_strategic'])} / {_fmt(r['revenue_truthful'])} | "
            f"{_fmt(r['jain_strategic'], 3)} / {_fmt(r['jain_truthful'], 3)} | {_fmt(r['bid_to_value_strategic'], 3)} |")
    zero = table[table["zero_truthful_seeds"] > 0]
    if len(zero):
        lines += ["", "Seeds with truthful welfare 0 (counted as ratio 1): "
                  + ", ".join(f"{r['mechanism']} {r['zero_truthful_seeds']}" for _, r in zero.iterrows()) + "."]
    ordered = table.sort_values("poa", kind="stable")
    if not info.get("all_truthful") and len(ordered):
        worst, best = ordered.iloc[0], ordered.iloc[-1]
        lines += ["", (f"Lowest ratio: {worst['mechanism']} ({_ci(worst, 'poa')}); highest: {best['mechanism']} "
                       f"({_ci(best, 'poa')}).")]
    lines += [
        "",
        ("Welfare totals, revenue (summed over rounds), Jain's index over all requests (mean over rounds) and bid / "
        "value (`bid_to_value`, mean over rounds, strategic runs) are means over seeds."),
        "",
        "![price of anarchy](poa.png)",
        "",
        "![welfare per round](welfare.png)",
        "",
        "## Files",
        "",
        "- `poa.csv`: this table, with the interval bounds of both ratios and `zero_truthful_seeds`.",
        "- `poa_runs.csv`: per (mechanism, seed): both runs' values and the seed's ratios.",
        ("- `rounds_strategic.parquet`, `rounds_truthful.parquet`: the two populations' `rounds` tables "
        "(Contract 3); `market.studies.poa.regenerate` rebuilds every other file from them and the manifest."),
        "- `manifest.json`: arguments, both resolved scenarios, versions, wall time, sha256 of the tables.",
        "",
    ]
    return "\n".join(lines)


# --- writing ----------------------------------------------------------------------------


def _owners(scenario: Scenario) -> str | None:
    """The sellers' strategy as the report states it (None: the scenario has no ``[owners]`` table)."""
    owners = getattr(scenario, "owners", None)
    if owners is None:
        return None
    return f"{owners.strategy}, reserve multiplier {float(owners.reserve):g}"


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def write_outputs(out: Path, rounds: Mapping[str, pd.DataFrame], info: Mapping[str, Any],
                  extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write every output of the study to ``out`` atomically, from the two ``rounds`` tables.

    Args:
        out: the output directory (replaced atomically).
        rounds: ``{"strategic": ..., "truthful": ...}`` rounds tables (Contract 3 columns).
        info: what the report states (``scenario``, ``description``, ``command``,
            ``mechanisms``, ``seeds``, ``rounds``, ``strategic_mix`` (``[name, share]``
            pairs), ``shading_factor``, ``all_truthful``, ``owners``).
        extra: more manifest entries (resolved scenarios, wall time, workers).

    Returns:
        The manifest.
    """
    runs = runs_table(rounds)
    table = poa_table(runs)
    mechanisms = list(info["mechanisms"])
    with atomic_directory(out) as tmp:
        hashes = {}
        for name, df, fmt in (("poa", table, "csv"), ("poa_runs", runs, "csv"),
                              ("rounds_strategic", rounds["strategic"], "parquet"),
                              ("rounds_truthful", rounds["truthful"], "parquet")):
            path = write_table(df, tmp / name, fmt)
            hashes[path.name] = sha256_file(path)
        poa_figure(table, tmp / "poa.png", f"{info['scenario']}: strategic / truthful (mean, 95 % t-interval)")
        welfare_figure(rounds, mechanisms, tmp / "welfare.png",
                       f"{info['scenario']}: welfare per round (mean over seeds, 95 % band)")
        (tmp / "poa.md").write_text(report_markdown(info, table))
        manifest = {**info, **(extra or {}), "versions": package_versions(), "sha256": hashes}
        write_json(manifest, tmp / "manifest.json")
    return manifest


def run_poa(
    scenario: Scenario, out: Path, executor: Executor | None = None, workers: int = 1,
    progress: Callable[[int, int], None] | None = None, command: str | None = None,
) -> dict[str, Any]:
    """Run both populations of ``scenario`` for every mechanism and seed; write ``out`` atomically.

    Args:
        scenario: the strategic scenario (``seeds``, ``rounds``, ``mechanisms`` as resolved;
            the oracle is switched off here).
        out: the output directory (replaced atomically).
        executor: where runs execute (None: here, one after another).
        workers: number of workers (recorded in the manifest only).
        progress: called with ``(done, total)`` runs.
        command: the command line that reproduces the tables (for the report).

    Returns:
        The manifest.
    """
    start = time.perf_counter()
    scenario = study_scenario(scenario)
    rounds = evaluate(scenario, executor, progress)
    info = {
        "scenario": scenario.name, "description": scenario.description, "command": command,
        "mechanisms": list(scenario.mechanisms), "seeds": [int(s) for s in scenario.seeds],
        "rounds": int(scenario.rounds),
        "strategic_mix": [[name, share] for name, share in population_mix(scenario).items()],  # pairs: order kept in JSON
        "shading_factor": float(scenario.users.shading_factor), "all_truthful": is_truthful(scenario),
        "owners": _owners(scenario),
    }
    extra = {
        "scenario_resolved": scenario.to_dict(), "truthful_scenario": truthful_population(scenario).to_dict(),
        "workers": int(workers), "cpus": _cpus(), "code": code_version(),
        "wall_time_s": round(time.perf_counter() - start, 3),
    }
    return write_outputs(out, rounds, info, extra)


def regenerate(source: Path, out: Path) -> dict[str, Any]:
    """Rebuild the tables, plots and report of a written study from its rounds tables and manifest.

    ``out`` may be ``source`` itself (everything is read first). The files have the same
    bytes as the original's (the manifest keeps its recorded entries).

    Returns:
        The new manifest.
    """
    source = Path(source)
    manifest = json.loads((source / "manifest.json").read_text())
    rounds = {p: pd.read_parquet(source / f"rounds_{p}.parquet") for p in POPULATIONS}
    keys = ("scenario", "description", "command", "mechanisms", "seeds", "rounds", "strategic_mix", "shading_factor",
            "all_truthful", "owners")
    info = {k: manifest.get(k) for k in keys}
    extra = {k: v for k, v in manifest.items() if k not in (*keys, "versions", "sha256")}
    return write_outputs(out, rounds, info, extra)
