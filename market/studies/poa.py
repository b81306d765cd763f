"""``market poa``: the price of anarchy of a strategic population, per mechanism.

A scenario's users bid by the strategies of ``[users] mix`` (or the older
``shading_share``; :mod:`agents.strategies`): truthful, shading, EXP3 learners, pacing.
For every mechanism and seed this study plays the scenario twice on the same market:

- **strategic**: the scenario's own population;
- **truthful**: the same scenario with every user truthful (:func:`truthful_population`).

Same seed, same market and same mechanism draws: the model draws the users' strategies
from a random stream of their own (``market.core.model.user_population``), so the two runs of a
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

**Learning, pacing, prices.** Beside the welfare ratios, per mechanism: the settled bid /
value of all the round's bids (learners, pacers and truthful users alike: ``bid_to_value``
over the last :data:`WINDOW` rounds, 95 % interval
over seeds), revenue and Jain's index over users for both populations with their paired
ratios (:func:`poa_table`); the pacing users' spend over their run budgets
(:func:`pacing_table`, from the per-run user totals of :func:`user_summary`); per-round
trajectories of bid / value, mean price, price gap and reserve level
(:func:`trajectories_figure`); and, with a ``stationary`` scenario (``[pricing] clearing =
true``), the price gap of its runs at the start and at the end (:func:`stationary_table`).

Outputs (:func:`run_poa`, atomically): ``poa.csv`` (one row per mechanism),
``poa_runs.csv`` (one row per mechanism and seed), ``poa.md``, ``poa.png`` (the ratios
with their intervals), ``welfare.png`` (welfare per round, strategic against truthful,
per mechanism), ``rounds_strategic.parquet`` and ``rounds_truthful.parquet`` (the two
populations' ``rounds`` tables, Contract 3), ``users_strategic.parquet``, ``pacing.csv``,
``learning.png``, ``trajectories.png`` and with a stationary scenario ``stationary.csv``,
``stationary.png`` and ``rounds_stationary.parquet``; :func:`regenerate` rebuilds every
other file from the parquet tables and ``manifest.json``. Every file but the manifest (wall time, workers) has
the same bytes for any number of workers.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from market.core.io import atomic_directory, sha256_file, write_json, write_table
from market.core.model import MarketModel
from market.core.pool import each_result
from market.core.runner import package_versions, run_one
from market.errors import MarketInputError
from market.studies import plots
from market.studies.llm_serving import code_version
from scenarios.config import Scenario
from scenarios.sources import build_market

POPULATIONS = ("strategic", "truthful")
#: per-run values taken from the ``rounds`` table: column -> how rounds are combined
RUN_VALUES = {"welfare": "sum", "value_welfare": "sum", "revenue": "sum", "jain": "mean", "bid_to_value": "mean",
              "jain_users": "mean"}
#: rounds at the start and at the end of a run over which the settled values are averaged
WINDOW = 10
#: rounds in the centred moving average of ``trajectories.png``
SMOOTH = 5
#: columns of ``poa.csv``
TABLE_COLUMNS = [
    "mechanism", "seeds", "welfare_strategic", "welfare_truthful", "poa", "poa_low", "poa_high", "poa_of_means",
    "value_welfare_strategic", "value_welfare_truthful", "value_poa", "value_poa_low", "value_poa_high",
    "value_poa_of_means", "revenue_strategic", "revenue_truthful", "jain_strategic", "jain_truthful",
    "bid_to_value_strategic", "zero_truthful_seeds",
    "revenue_strategic_low", "revenue_strategic_high", "revenue_truthful_low", "revenue_truthful_high",
    "revenue_ratio", "revenue_ratio_low", "revenue_ratio_high", "jain_users_strategic", "jain_users_truthful",
    "jain_users_ratio", "jain_users_ratio_low", "jain_users_ratio_high",
    "bid_to_value_last10", "bid_to_value_last10_low", "bid_to_value_last10_high",
]
#: columns of ``pacing.csv`` (one row per mechanism and seed of the strategic runs)
PACING_COLUMNS = ["mechanism", "seed", "pacing_users", "spend_share_min", "spend_share_aggregate", "spend_share_max",
                  "over_budget_users", "over_budget"]
#: columns of ``stationary.csv`` (one row per mechanism of the stationary scenario)
STATIONARY_COLUMNS = ["mechanism", "seeds", "rounds", "window", "price_gap_first", "price_gap_last", "ratio",
                      "ratio_low", "ratio_high", "halved", "price_gap_min", "min_round"]
#: rounds columns drawn per round in ``trajectories.png`` (column, axis label, log scale)
TRAJECTORIES = (("bid_to_value", "bid / value", False), ("mean_price", "mean posted unit price", False),
                ("price_gap", "price gap to clearing prices (log)", True), ("reserve_level", "owners' reserve level", False))


# --- the two populations ----------------------------------------------------------------


def truthful_population(scenario: Scenario) -> Scenario:
    """``scenario`` with every user truthful: ``[users] mix = {truthful = 1}``, ``shading_share = 0``.

    The one place the truthful counterpart of a population is defined; nothing else of the
    scenario changes (the market, the seeds, the built-in strategies' parameters, which
    then go unused) but the plug-in strategies' ``[users.params.<name>]``, which name
    strategies no longer in the mix (and would be refused as a typo).

    Sellers: once scenarios have an ``[owners]`` table (resource owners with reserve
    prices, ``strategy = "fixed" | "learning"``) the truthful market also has fixed
    reserves, ``owners.strategy = "fixed"``; this is done here when the scenario has one.
    """
    changes: dict[str, Any] = {"users": scenario.users.replace(mix={"truthful": 1.0}, shading_share=0.0, params=None)}
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


@dataclass
class Evaluation:
    """Every run of a study, as tables (what :func:`write_outputs` writes and :func:`regenerate` reads back).

    Attributes:
        rounds: ``{"strategic": rounds, "truthful": rounds}`` (Contract 3 ``rounds`` tables),
            each ordered by mechanism (as listed), seed (as listed), round.
        users: the strategic runs' users, one row per ``(mechanism, seed, user)``
            (:func:`user_summary`), in the same order.
        stationary: the ``rounds`` table of the stationary scenario's runs (``--stationary``),
            or None.
    """

    rounds: dict[str, pd.DataFrame]
    users: pd.DataFrame
    stationary: pd.DataFrame | None = None


def user_summary(users: pd.DataFrame) -> pd.DataFrame:
    """Per ``(mechanism, seed, user_id)`` of a ``users`` table (one row per round and user): the run's totals.

    Columns ``mechanism, seed, user_id, strategy`` (its first round's), ``requests``,
    ``wins``, ``spend``, ``utility`` (summed over rounds), ``spend_total`` (the largest,
    i.e. the last, running total), ``run_budget`` (null unless pacing) and ``over_budget``
    (whether ``spend_total > run_budget`` in any round; False without a run budget).
    Small (a few hundred rows per study), so a worker sends this instead of the table.
    """
    keys = ["mechanism", "seed", "user_id"]
    frame = users.assign(_over=(users["spend_total"] > users["run_budget"]).fillna(False).astype(bool))
    out = frame.groupby(keys, sort=False).agg(
        strategy=("strategy", "first"), requests=("requests", "sum"), wins=("wins", "sum"), spend=("spend", "sum"),
        utility=("utility", "sum"), spend_total=("spend_total", "max"), run_budget=("run_budget", "first"),
        over_budget=("_over", "any"),
    ).reset_index()
    out["run_budget"] = out["run_budget"].astype("Float64")
    out["over_budget"] = out["over_budget"].astype(bool)
    return out


def run_rounds(scenario: Scenario, mechanism: str, seed: int) -> pd.DataFrame:
    """The ``rounds`` table of one run (:func:`market.core.runner.run_one`)."""
    return run_one(scenario, mechanism, seed).rounds


def run_job(scenario: Scenario, mechanism: str, seed: int, users: bool) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """What a worker sends back for one run: its ``rounds`` table and, if ``users``, its :func:`user_summary`."""
    tables = run_one(scenario, mechanism, seed)
    return tables.rounds, (user_summary(tables.users) if users else None)


def evaluate(
    scenario: Scenario, executor: Executor | None = None, progress: Callable[[int, int], None] | None = None,
    stationary: Scenario | None = None,
) -> Evaluation:
    """Every ``(population, mechanism, seed)`` run of ``scenario`` (as given: call :func:`study_scenario` first).

    Args:
        scenario: the strategic scenario (``seeds``, ``rounds``, ``mechanisms`` as resolved).
        executor: where runs execute (None: here, one after another); any executor gives
            the same tables.
        progress: called with ``(done, total)`` runs.
        stationary: a scenario with ``[pricing] clearing = true`` whose every
            ``(mechanism, seed)`` is run once as given (its own population), for the price
            dynamics on a market that does not change (:func:`stationary_table`).

    Returns:
        The :class:`Evaluation`; its tables have the same bytes for any executor.
    """
    populations = {"strategic": scenario, "truthful": truthful_population(scenario)}
    jobs: list[tuple[str, Scenario, str, int]] = [
        (p, populations[p], m, s) for m in scenario.mechanisms for s in scenario.seeds for p in POPULATIONS]
    if stationary is not None:
        jobs += [("stationary", stationary, m, s) for m in stationary.mechanisms for s in stationary.seeds]
    results: dict[tuple[str, str, int], tuple[pd.DataFrame, pd.DataFrame | None]] = {}
    calls = [(run_job, (sc, m, s, p == "strategic")) for p, sc, m, s in jobs]
    for done, ((p, _sc, m, s), result) in enumerate(zip(jobs, each_result(executor, calls)), 1):
        results[(p, m, s)] = result
        if progress:
            progress(done, len(jobs))
    order = [(m, s) for m in scenario.mechanisms for s in scenario.seeds]
    rounds = {p: pd.concat([results[(p, m, s)][0] for m, s in order], ignore_index=True) for p in POPULATIONS}
    users = pd.concat([results[("strategic", m, s)][1] for m, s in order], ignore_index=True)
    still = None
    if stationary is not None:
        still = pd.concat([results[("stationary", m, s)][0] for m in stationary.mechanisms for s in stationary.seeds],
                          ignore_index=True)
    return Evaluation(rounds, users, still)


# --- tables -----------------------------------------------------------------------------


def paired_ratios(strategic: Sequence[float] | np.ndarray, truthful: Sequence[float] | np.ndarray) -> np.ndarray:
    """``strategic / truthful`` element by element; 1 where ``truthful`` is 0 (Contract 4's convention)."""
    s, t = np.asarray(strategic, dtype=float), np.asarray(truthful, dtype=float)
    return np.where(t != 0, s / np.where(t != 0, t, 1.0), 1.0)


def ratio_of_means(strategic: Sequence[float] | np.ndarray, truthful: Sequence[float] | np.ndarray) -> float:
    """``sum strategic / sum truthful`` (the ratio of the means); 1 when ``sum truthful`` is 0."""
    return float(paired_ratios([math.fsum(np.asarray(strategic, dtype=float))],
                               [math.fsum(np.asarray(truthful, dtype=float))])[0])


def window_mean(rounds: pd.DataFrame, column: str, end: str = "last", n: int = WINDOW) -> pd.Series:
    """Per ``(mechanism, seed)`` run: the mean of ``column`` over its first or last ``n`` rounds (NaNs left out).

    A run of fewer than ``n`` rounds averages all of them. Indexed by ``(mechanism, seed)``
    in run order.
    """
    ordered = rounds.sort_values(["round"], kind="stable")
    groups = ordered.groupby(["mechanism", "seed"], sort=False)
    part = groups.head(n) if end == "first" else groups.tail(n)
    means = part.groupby(["mechanism", "seed"], sort=False)[column].mean()
    return means.reindex(rounds.groupby(["mechanism", "seed"], sort=False).size().index)


def run_values(rounds: pd.DataFrame) -> pd.DataFrame:
    """Per ``(mechanism, seed)`` run: the :data:`RUN_VALUES` (welfare summed over rounds, Jain averaged, ...).

    Also ``bid_to_value_last10``: the mean ``bid_to_value`` of the run's last :data:`WINDOW`
    rounds (where learners have settled; :func:`window_mean`).
    """
    out = rounds.groupby(["mechanism", "seed"], sort=False).agg(RUN_VALUES)
    out["bid_to_value_last10"] = window_mean(rounds, "bid_to_value", "last")
    return out.reset_index()


def runs_table(rounds: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Both populations' runs side by side, paired by ``(mechanism, seed)``, with the paired ratios.

    Columns ``mechanism, seed``, each :data:`RUN_VALUES` column with a ``_strategic`` and
    a ``_truthful`` suffix, then ``poa`` and ``value_poa`` (the seed's ratios) and the
    seed's ratios of revenue and of Jain's index over users, ``revenue_ratio`` and
    ``jain_users_ratio`` (the same convention: 1 when the truthful value is 0).
    """
    s, t = run_values(rounds["strategic"]), run_values(rounds["truthful"])
    both = s.merge(t, on=["mechanism", "seed"], suffixes=("_strategic", "_truthful"), how="inner", validate="1:1", sort=False)
    if len(both) != len(s) or len(both) != len(t):
        raise ValueError("the strategic and truthful runs do not pair up by (mechanism, seed)")
    both["poa"] = paired_ratios(both["welfare_strategic"], both["welfare_truthful"])
    both["value_poa"] = paired_ratios(both["value_welfare_strategic"], both["value_welfare_truthful"])
    both["revenue_ratio"] = paired_ratios(both["revenue_strategic"], both["revenue_truthful"])
    both["jain_users_ratio"] = paired_ratios(both["jain_users_strategic"], both["jain_users_truthful"])
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
        for pop in POPULATIONS:
            _, row[f"revenue_{pop}_low"], row[f"revenue_{pop}_high"] = plots.mean_ci(g[f"revenue_{pop}"])
            row[f"jain_users_{pop}"] = float(g[f"jain_users_{pop}"].mean())
        for key in ("revenue_ratio", "jain_users_ratio"):
            row[key], row[f"{key}_low"], row[f"{key}_high"] = plots.mean_ci(g[key])
        last = g["bid_to_value_last10_strategic"]
        row["bid_to_value_last10"], row["bid_to_value_last10_low"], row["bid_to_value_last10_high"] = plots.mean_ci(last)
        rows.append(row)
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def pacing_table(users: pd.DataFrame) -> pd.DataFrame:
    """Per ``(mechanism, seed)`` strategic run: how much of their run budgets the pacing users spent.

    A pacing user (Balseiro and Gur, "Learning in repeated auctions with budgets: regret
    minimization and equilibrium", Management Science 65(9), 2019) has a run budget
    ``B`` (``run_budget``, non-null only for pacers) and spends ``S`` (``spend_total`` at
    the end of the run). Over a run's pacers: ``spend_share_min = min S / B`` (the pacer
    that spent least of its budget; users with ``B = 0`` left out), ``spend_share_aggregate
    = sum S / sum B``, ``spend_share_max = max S / B``, ``over_budget_users`` (pacers whose
    running total ever exceeded ``B``: :func:`user_summary`'s ``over_budget``) and
    ``over_budget`` (whether there was any). Runs without pacers are left out.

    Args:
        users: :func:`user_summary` rows.

    Returns:
        The :data:`PACING_COLUMNS`, in run order.
    """
    rows = []
    pacers = users[users["run_budget"].notna()]
    for (mech, seed), g in pacers.groupby(["mechanism", "seed"], sort=False):
        spend = g["spend_total"].to_numpy(dtype=float)
        budget = g["run_budget"].to_numpy(dtype=float)
        share = spend[budget > 0] / budget[budget > 0]
        total = math.fsum(budget)
        rows.append({
            "mechanism": mech, "seed": int(seed), "pacing_users": len(g),
            "spend_share_min": float(share.min()) if share.size else float("nan"),
            "spend_share_aggregate": math.fsum(spend) / total if total > 0 else float("nan"),
            "spend_share_max": float(share.max()) if share.size else float("nan"),
            "over_budget_users": int(g["over_budget"].sum()), "over_budget": bool(g["over_budget"].any()),
        })
    return pd.DataFrame(rows, columns=PACING_COLUMNS)


def stationary_table(rounds: pd.DataFrame, window: int = WINDOW) -> pd.DataFrame:
    """Per mechanism of a stationary market: the price gap at the start and at the end of the runs.

    The price gap of a round (``price_gap``, ``[pricing] clearing = true``) is the mean
    relative distance of the posted prices from that round's market-clearing prices
    (README, ``[pricing]``; ``market/core/clearing.py``). With the same book every round the
    clearing prices do not move, and a price rule that finds them (tatonnement, Arrow and
    Hurwicz, Econometrica 26(4), 1958; Cheung, Cole and Devanur, STOC 2013) makes the gap
    fall. Per seed, ``first`` and ``last`` are the mean gap of the first and the last
    ``w`` rounds, ``w = min(window, rounds // 2)`` (two windows that never overlap); the
    table gives ``price_gap_first`` and ``price_gap_last`` (means over seeds), ``ratio``
    (the mean over seeds of ``last / first``, 1 when ``first`` is 0) with its 95 %
    t-interval (no interval with one seed) and ``halved`` (``ratio <= 0.5``); also the
    smallest gap of the mean over seeds per round, ``price_gap_min``, and its round
    ``min_round`` (the first such): last rounds well above the minimum mean prices that
    moved on past the clearing level instead of settling at it.

    Args:
        rounds: the stationary runs' ``rounds`` table (with ``price_gap``).
        window: the number of rounds at each end.

    Returns:
        The :data:`STATIONARY_COLUMNS`, mechanisms in run order.
    """
    rows = []
    for mech, g in rounds.groupby("mechanism", sort=False):
        n = int(g.groupby("seed")["round"].nunique().min())
        w = max(1, min(window, n // 2))
        first = window_mean(g, "price_gap", "first", w).to_numpy(dtype=float)
        last = window_mean(g, "price_gap", "last", w).to_numpy(dtype=float)
        ratio, low, high = plots.mean_ci(paired_ratios(last, first))
        per_round = g.groupby("round", sort=True)["price_gap"].mean()
        rows.append({"mechanism": mech, "seeds": int(g["seed"].nunique()), "rounds": n, "window": w,
                     "price_gap_first": float(np.nanmean(first)), "price_gap_last": float(np.nanmean(last)),
                     "ratio": ratio, "ratio_low": low, "ratio_high": high, "halved": bool(ratio <= 0.5),
                     "price_gap_min": float(per_round.min()), "min_round": int(per_round.idxmin())})
    return pd.DataFrame(rows, columns=STATIONARY_COLUMNS)


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


def _legend_below(fig: Any, axes: np.ndarray, ncols: int = 4) -> None:
    """One legend for the whole figure, below the panels (the lines of the first axes that has any)."""
    for ax in axes.flat:
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside lower center", ncols=ncols)
            return


def _quiet_bands(ax: Any, lines: int) -> None:
    """Fainter seed bands when many lines share the axes (overlapping bands would hide the lines)."""
    if lines > 3:
        for band in ax.collections:
            band.set_alpha(0.05)


def trajectories_figure(rounds: pd.DataFrame, mechanisms: Sequence[str], path: Path, title: str) -> Path:
    """The strategic runs per round, one line per mechanism (mean over seeds, min-max band over seeds).

    Lines and bands are smoothed by a centred moving average over :data:`SMOOTH` rounds
    (geometric for the price gap; :func:`market.studies.plots.trajectory` with a window): with
    eight mechanisms the raw per-round series cross each other every round.
    Panels: the :data:`TRAJECTORIES` columns (bid / value, mean posted price, price gap to
    the clearing prices on a log scale, owners' reserve level). A column the rounds table
    does not have (``price_gap`` without ``[pricing] clearing = true``) leaves its panel
    with a note.
    """
    from matplotlib.ticker import MaxNLocator

    with plots.report_style():
        fig, axes = plots.figure(2, 2, width=6.0, height=3.6)
        for ax, (column, label, logy) in zip(axes.flat, TRAJECTORIES):
            if column in rounds.columns:
                plots.trajectory(ax, rounds, column, list(mechanisms), window=SMOOTH, logy=logy,
                                          band_alpha=0.12 if len(mechanisms) <= 3 else 0.05)
                if logy:
                    plots.plain_log_axis(ax)
            else:
                ax.text(0.5, 0.5, f"no {column} column\n([pricing] clearing = false)", ha="center", va="center",
                        transform=ax.transAxes, color="#555555")
                ax.set_xlabel("round")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(label)
            ax.set_title(label[0].upper() + label[1:].replace(" (log)", ""))
        _legend_below(fig, axes)
        fig.suptitle(title)
        return plots.save(fig, path)


def learning_figure(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Per mechanism: settled bid / value, revenue and Jain over users, strategic / truthful (95 % whiskers)."""
    names = table["mechanism"].tolist()
    with plots.report_style():
        fig, axes = plots.figure(1, 3, width=4.2, height=0.45 * len(names) + 1.9)
        panels = (("bid_to_value_last10", f"bid / value, last {WINDOW} rounds", "Settled bid / value"),
                  ("revenue_ratio", "revenue, strategic / truthful", "Revenue ratio"),
                  ("jain_users_ratio", "Jain over users, strategic / truthful", "Fairness ratio"))
        for ax, (key, label, heading) in zip(axes.flat, panels):
            plots.ci_bars(ax, names, table[key], table[f"{key}_low"], table[f"{key}_high"], label, fmt="{:.3g}")
            ax.axvline(1.0, color="#444444", linestyle=":", linewidth=1)
            left, right = ax.get_xlim()
            ax.set_xlim(left, max(right, 1.15))
            ax.set_title(heading)
        fig.suptitle(title)
        return plots.save(fig, path)


def stationary_figure(rounds: pd.DataFrame, mechanisms: Sequence[str], path: Path, title: str) -> Path:
    """The stationary market per round: price gap to the clearing prices (log scale) and the mean posted price."""
    from matplotlib.ticker import MaxNLocator

    with plots.report_style():
        fig, axes = plots.figure(1, 2, width=6.0, height=3.8)
        for ax, (column, label, logy) in zip(axes.flat, (("price_gap", "price gap to clearing prices (log)", True),
                                                         ("mean_price", "mean posted unit price", False))):
            plots.trajectory(ax, rounds, column, list(mechanisms), band="minmax", logy=logy)
            _quiet_bands(ax, len(mechanisms))
            if logy:
                plots.plain_log_axis(ax)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(label)
            ax.set_title(label[0].upper() + label[1:].replace(" (log)", ""))
        _legend_below(fig, axes)
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


def report_markdown(info: Mapping[str, Any], table: pd.DataFrame, pacing: pd.DataFrame | None = None,
                    stationary: pd.DataFrame | None = None) -> str:
    """``poa.md``: how it was run, the table, the plots, how to read it (no wall-clock figures).

    Args:
        info: what :func:`write_outputs` states.
        table: :func:`poa_table`.
        pacing: :func:`pacing_table` (None: the users were not kept, an older study).
        stationary: :func:`stationary_table` (None: no ``--stationary`` scenario).
    """
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
    ]
    lines += _learning_section(table)
    lines += _pacing_section(pacing)
    lines += _stationary_section(info.get("stationary"), stationary)
    lines += [
        "## Files",
        "",
        ("- `poa.csv`: the tables above per mechanism, with the interval bounds of the ratios, of revenue and of the "
         "settled bid / value, and `zero_truthful_seeds`."),
        "- `poa_runs.csv`: per (mechanism, seed): both runs' values and the seed's ratios.",
        ("- `rounds_strategic.parquet`, `rounds_truthful.parquet`: the two populations' `rounds` tables "
        "(Contract 3); `market.studies.poa.regenerate` rebuilds every other file from them, `users_strategic.parquet` "
        "(and `rounds_stationary.parquet`) and the manifest."),
        ("- `users_strategic.parquet`: per strategic run and user, the run's totals (`user_summary`: strategy, "
         "requests, wins, spend, utility, final `spend_total`, `run_budget`, `over_budget`)."),
        "- `pacing.csv`: per strategic (mechanism, seed) run with pacing users, their spend over run budget.",
    ]
    if info.get("stationary"):
        lines += ["- `stationary.csv`, `rounds_stationary.parquet`: the stationary market's table and `rounds` table."]
    lines += ["- `manifest.json`: arguments, the resolved scenarios, versions, wall time, sha256 of the tables.", ""]
    return "\n".join(lines)


def _learning_section(table: pd.DataFrame) -> list[str]:
    """The report's section on learning: settled bids, revenue and fairness, strategic against truthful."""
    lines = [
        "## Learning: bids, revenue and fairness",
        "",
        (f"Per mechanism, means over seeds with 95 % Student-t intervals. **Bid / value, last {WINDOW}**: the "
         f"strategic runs' `bid_to_value` averaged over their last {WINDOW} rounds (where the learners have "
         "settled; 1 = truthful bids). **Revenue**: payments summed over the run's rounds. **Jain over users**: "
         "`jain_users` (Jain's index of the users' totals, Jain, Chiu and Hawe, DEC-TR-301, 1984) averaged over "
         "rounds. The ratios strategic / truthful are paired by seed like the PoA."),
        "",
        ("| mechanism | bid / value, last 10 [95 % CI] | revenue strategic [95 % CI] | revenue truthful [95 % CI] "
         "| revenue ratio [95 % CI] | Jain users strategic / truthful | Jain ratio [95 % CI] |"),
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        lines.append(
            f"| {r['mechanism']} | {_ci(r, 'bid_to_value_last10', 3)} | {_ci(r, 'revenue_strategic')} | "
            f"{_ci(r, 'revenue_truthful')} | {_ci(r, 'revenue_ratio', 3)} | "
            f"{_fmt(r['jain_users_strategic'], 3)} / {_fmt(r['jain_users_truthful'], 3)} | "
            f"{_ci(r, 'jain_users_ratio', 3)} |")
    by = table.set_index("mechanism")
    if {"first_price", "second_price"} <= set(by.index):
        second, first = by.loc["second_price", "bid_to_value_last10"], by.loc["first_price", "bid_to_value_last10"]
        lines += ["", (f"Truthful bidding where it is a dominant strategy, shading where it pays: under second_price "
                       f"the bids (every user's) settle at bid / value {_fmt(second, 3)} "
                       f"({'at least' if second >= 0.90 else 'below'} 0.90); under first_price (pay your bid) at "
                       f"{_fmt(first, 3)}, {_fmt(second - first, 3)} below second_price "
                       f"({'at least' if second - first >= 0.05 else 'less than'} 0.05).")]
    lines += ["", "![settled bids, revenue and fairness](learning.png)", "",
              "### Trajectories of the strategic runs", "",
              (f"Per round, mean over seeds with the range over seeds shaded, both smoothed by a centred {SMOOTH}-round "
               "moving average (geometric for the price gap): the users' bid / value, the mean posted price, the "
               "price gap to the round's market-clearing prices (`price_gap`, mean relative distance; log scale) and "
               "the owners' mean reserve level (`reserve_level`). The raw values are in `rounds_strategic.parquet`."),
              "", "![trajectories](trajectories.png)", ""]
    return lines


def _pacing_section(pacing: pd.DataFrame | None) -> list[str]:
    """The report's pacing section: per mechanism, the pacers' spend over their run budgets."""
    lines = ["## Pacing", ""]
    if pacing is None:
        return [*lines, "The users of the strategic runs were not kept (a study written before `users_strategic`).", ""]
    if pacing.empty:
        return [*lines, "The strategic population has no pacing users.", ""]
    lines += [
        ("Pacing users (Balseiro and Gur, Management Science 2019) spread a run budget `B` over the rounds. Per "
         "(mechanism, seed) run, `S / B` is a pacer's spend over the run (`spend_total` at its end) over its run "
         "budget; the table gives, over the mechanism's runs, the smallest `S / B` of any pacer, the aggregate "
         "`sum S / sum B` (mean over seeds, with its range), the largest `S / B` and the runs in which some pacer's "
         "running spend ever exceeded its budget."),
        "",
        ("| mechanism | runs | pacers per run | min S / B | aggregate S / B (mean [min, max] over seeds) | max S / B "
        "| runs over budget |"),
        "|---|---|---|---|---|---|---|",
    ]
    for mech, g in pacing.groupby("mechanism", sort=False):
        agg = g["spend_share_aggregate"]
        lines.append(f"| {mech} | {len(g)} | {_fmt(float(g['pacing_users'].mean()), 3)} | "
                     f"{_fmt(float(g['spend_share_min'].min()), 3)} | {_fmt(float(agg.mean()), 3)} "
                     f"[{_fmt(float(agg.min()), 3)}, {_fmt(float(agg.max()), 3)}] | "
                     f"{_fmt(float(g['spend_share_max'].max()), 3)} | {int(g['over_budget'].sum())} |")
    over = int(pacing["over_budget"].sum())
    lines += ["", ("No pacing user exceeded its run budget in any run." if over == 0 else
                   f"Pacers over budget in {over} of {len(pacing)} runs (`pacing.csv`, `over_budget_users`)."), ""]
    return lines


def _stationary_section(info: Mapping[str, Any] | None, table: pd.DataFrame | None) -> list[str]:
    """The report's section on tatonnement on the stationary market (nothing without ``--stationary``)."""
    if not info or table is None:
        return []
    lines = [
        "## Tatonnement on a stationary market",
        "",
        (f"Scenario `{info['scenario']}`" + (f" ({info['description']})" if info.get("description") else "")
         + f": mechanisms {', '.join(info['mechanisms'])}; seeds {', '.join(map(str, info['seeds']))}; "
         f"{info['rounds']} rounds, its own population. The same book every round, so the market-clearing prices "
         "do not move; `price_gap` is the posted prices' mean relative distance from them. First and last: the mean "
         "gap over the first and the last rounds (window below), mean over seeds; ratio last / first (a paired mean "
         "with its 95 % t-interval when there are several seeds); the acceptance is a ratio of at most 0.5."),
        "",
        ("| mechanism | seeds | window | price gap, first rounds | price gap, last rounds | last / first | <= 0.5 "
         "| smallest gap (round) |"),
        "|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        lines.append(f"| {r['mechanism']} | {r['seeds']} | {r['window']} | {_fmt(r['price_gap_first'], 3)} | "
                     f"{_fmt(r['price_gap_last'], 3)} | {_ci(r, 'ratio', 3)} | {'yes' if r['halved'] else 'no'} | "
                     f"{_fmt(r['price_gap_min'], 3)} ({r['min_round']}) |")
    back = table[table["price_gap_last"] > 2 * table["price_gap_min"]]
    if len(back):
        lines += ["", (f"Under {', '.join(back['mechanism'])} the last rounds' gap is more than twice the smallest "
                       "one: the gap reached its minimum and grew again while the mean posted price kept rising "
                       "(right panel of the figure), prices moving on past the clearing level rather than settling "
                       "at it (a constant step `eta`).")]
    lines += ["", "![price gap on the stationary market](stationary.png)", ""]
    return lines


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
                  extra: Mapping[str, Any] | None = None, users: pd.DataFrame | None = None,
                  stationary: pd.DataFrame | None = None) -> dict[str, Any]:
    """Write every output of the study to ``out`` atomically, from its tables.

    Args:
        out: the output directory (replaced atomically).
        rounds: ``{"strategic": ..., "truthful": ...}`` rounds tables (Contract 3 columns).
        info: what the report states (``scenario``, ``description``, ``command``,
            ``mechanisms``, ``seeds``, ``rounds``, ``strategic_mix`` (``[name, share]``
            pairs), ``shading_factor``, ``all_truthful``, ``owners``, ``stationary`` (the
            stationary scenario's ``scenario, description, mechanisms, seeds, rounds``, or
            None)).
        extra: more manifest entries (resolved scenarios, wall time, workers).
        users: the strategic runs' :func:`user_summary` rows (None: not kept; no pacing
            table).
        stationary: the stationary scenario's ``rounds`` table (None: none run).

    Returns:
        The manifest.
    """
    runs = runs_table(rounds)
    table = poa_table(runs)
    pacing = pacing_table(users) if users is not None else None
    still = stationary_table(stationary) if stationary is not None else None
    mechanisms = list(info["mechanisms"])
    tables: list[tuple[str, pd.DataFrame, str]] = [
        ("poa", table, "csv"), ("poa_runs", runs, "csv"),
        ("rounds_strategic", rounds["strategic"], "parquet"), ("rounds_truthful", rounds["truthful"], "parquet")]
    if users is not None:
        tables += [("users_strategic", users, "parquet"), ("pacing", pacing, "csv")]
    if stationary is not None:
        tables += [("stationary", still, "csv"), ("rounds_stationary", stationary, "parquet")]
    with atomic_directory(out, "poa") as tmp:
        hashes = {}
        for name, df, fmt in tables:
            path = write_table(df, tmp / name, fmt)
            hashes[path.name] = sha256_file(path)
        poa_figure(table, tmp / "poa.png", f"{info['scenario']}: strategic / truthful (mean, 95 % t-interval)")
        welfare_figure(rounds, mechanisms, tmp / "welfare.png",
                       f"{info['scenario']}: welfare per round (mean over seeds, 95 % band)")
        learning_figure(table, tmp / "learning.png",
                        f"{info['scenario']}: settled bids, revenue and fairness (mean over seeds, 95 % t-interval)")
        trajectories_figure(rounds["strategic"], mechanisms, tmp / "trajectories.png",
                            f"{info['scenario']}, strategic population: per round (mean over seeds, range shaded; "
                            f"{SMOOTH}-round moving average)")
        if stationary is not None:
            st = info["stationary"]
            stationary_figure(stationary, list(st["mechanisms"]), tmp / "stationary.png",
                              f"{st['scenario']}: tatonnement on the same book every round")
        (tmp / "poa.md").write_text(report_markdown(info, table, pacing, still))
        manifest = {**info, **(extra or {}), "versions": package_versions(), "sha256": hashes}
        write_json(manifest, tmp / "manifest.json")
    return manifest


def check_stationary(scenario: Scenario) -> None:
    """Check a ``--stationary`` scenario before any run: clearing prices on, its market and mechanisms.

    Raises:
        MarketInputError: one line: the scenario has ``[pricing] clearing = false`` (no
            ``price_gap`` to follow), or its market or a mechanism is bad.
    """
    if not scenario.pricing.clearing:
        raise MarketInputError(f"--stationary {scenario.name}: [pricing] clearing = false; the price-gap study needs "
                               "clearing = true (the round's market-clearing prices)")
    seed = scenario.seeds[0]
    market = build_market(scenario, seed)
    for mechanism in scenario.mechanisms:
        MarketModel(scenario, mechanism=mechanism, rng=seed, market=market)


def _stationary_info(scenario: Scenario) -> dict[str, Any]:
    return {"scenario": scenario.name, "description": scenario.description, "mechanisms": list(scenario.mechanisms),
            "seeds": [int(s) for s in scenario.seeds], "rounds": int(scenario.rounds)}


def run_poa(
    scenario: Scenario, out: Path, executor: Executor | None = None, workers: int = 1,
    progress: Callable[[int, int], None] | None = None, command: str | None = None,
    stationary: Scenario | None = None,
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
        stationary: a scenario with ``[pricing] clearing = true`` run as given (its
            mechanisms, seeds and population; oracle off) for the price gap on a market
            that does not change (:func:`stationary_table`); None: no such section.

    Returns:
        The manifest.

    Raises:
        MarketInputError: ``stationary`` has clearing off (before any run).
    """
    start = time.perf_counter()
    scenario = study_scenario(scenario)
    if stationary is not None:
        stationary = study_scenario(stationary)
        if not stationary.pricing.clearing:
            check_stationary(stationary)  # raises: no price gap to follow
    evaluation = evaluate(scenario, executor, progress, stationary)
    info = {
        "scenario": scenario.name, "description": scenario.description, "command": command,
        "mechanisms": list(scenario.mechanisms), "seeds": [int(s) for s in scenario.seeds],
        "rounds": int(scenario.rounds),
        "strategic_mix": [[name, share] for name, share in population_mix(scenario).items()],  # pairs: order kept in JSON
        "shading_factor": float(scenario.users.shading_factor), "all_truthful": is_truthful(scenario),
        "owners": _owners(scenario),
        "stationary": _stationary_info(stationary) if stationary is not None else None,
    }
    extra = {
        "scenario_resolved": scenario.to_dict(), "truthful_scenario": truthful_population(scenario).to_dict(),
        "stationary_resolved": stationary.to_dict() if stationary is not None else None,
        "workers": int(workers), "cpus": _cpus(), "code": code_version(),
        "wall_time_s": round(time.perf_counter() - start, 3),
    }
    return write_outputs(out, evaluation.rounds, info, extra, evaluation.users, evaluation.stationary)


#: manifest entries that :func:`write_outputs` takes as ``info``
INFO_KEYS = ("scenario", "description", "command", "mechanisms", "seeds", "rounds", "strategic_mix", "shading_factor",
             "all_truthful", "owners", "stationary")


def regenerate(source: Path, out: Path) -> dict[str, Any]:
    """Rebuild the tables, plots and report of a written study from its saved tables and manifest.

    Reads ``rounds_strategic.parquet``, ``rounds_truthful.parquet`` and, when present,
    ``users_strategic.parquet`` and ``rounds_stationary.parquet``. ``out`` may be
    ``source`` itself (everything is read first). The files have the same bytes as the
    original's (the manifest keeps its recorded entries).

    Returns:
        The new manifest.
    """
    source = Path(source)
    manifest = json.loads((source / "manifest.json").read_text())
    rounds = {p: pd.read_parquet(source / f"rounds_{p}.parquet") for p in POPULATIONS}
    users = pd.read_parquet(source / "users_strategic.parquet") if (source / "users_strategic.parquet").exists() else None
    still = (pd.read_parquet(source / "rounds_stationary.parquet") if (source / "rounds_stationary.parquet").exists()
             else None)
    info = {k: manifest.get(k) for k in INFO_KEYS}
    extra = {k: v for k, v in manifest.items() if k not in (*INFO_KEYS, "versions", "sha256")}
    return write_outputs(out, rounds, info, extra, users, still)
