"""``market ablation``: MOHAF's weight ablation and a weight sweep, all scored by one utility.

The MOHAF paper's Table 2 (Agrawal et al., arXiv:2508.14830, 2025) drops one term of the
utility at a time and reports each variant's efficiency under *its own* weights. That compares
different yardsticks: a variant that ignores cost is not charged for expensive matches.
Here every allocation is scored twice:

- **own**: the welfare ``F`` under the weights the mechanism ran with (what the run records);
- **common**: the welfare under the scenario's **Full** weights, for every configuration.

Configurations (:func:`configurations`), as the paper lists them: ``Full`` = the scenario's
weights ``(alpha, beta, gamma, delta)``; ``NoCost``, ``NoQoS``, ``NoEnergy``,
``NoFairness`` set one weight of Full to 0 and renormalise the rest to sum 1;
``CostOnly`` = ``(1, 0, 0, 0)``; ``FullRun`` = the weights the authors actually ran,
``(0.3, 0.3, 0.2, 0.2)`` (the paper's text lists other weights than its code runs, so
both are reported). With the listed
weights ``(0.4, 0.3, 0.1, 0.2)`` these are the variants of :func:`market.studies.paper.ablation`.

Rescoring needs each won pair's utility terms at the price of the round it was won in.
:func:`run_weights` drives :class:`~market.core.model.MarketModel` round by round and takes,
before each ``step()``, the order book, the resource matrix (with that round's prices)
and the users' carried priority mass; after the step it recomputes the won pairs' terms
with :func:`market.core.candidates.pair_terms`, the very arithmetic of the candidate kernel,
and the per-request welfare shares with :func:`market.core.engine.score`. Under the run's own
weights this must give back the recorded per-request utilities **bit for bit**; any
difference raises (it would mean the rescoring is not what the auction used).

The sweep runs MOHAF on every point of the simplex grid ``alpha + beta + gamma + delta =
1`` with a given step (plus the named configurations) and reports efficiency under the
common utility, revenue, satisfaction and Jain's index (all requests and winners); the
Pareto front of revenue against common efficiency is drawn with Full and FullRun marked.

Statistics: a seed is one replication; a run's value is its mean over rounds; tables give
the mean over seeds with a Student-t 95 % interval, and differences to Full are paired by
seed (mean difference, its interval and the paired t-test p-value).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from market.core.candidates import pair_terms, pair_utility
from market.core.engine import score
from market.core.io import atomic_directory, sha256_file, write_json, write_table
from market.core.metrics import jain
from market.core.model import MarketModel
from market.core.pool import each_result
from market.core.runner import package_versions
from market.errors import MarketInputError
from market.studies import plots
from scenarios.config import Scenario
from scenarios.sources import build_market

Weights = tuple[float, float, float, float]

#: the weights the authors' code runs (the text lists 0.4/0.3/0.1/0.2; :data:`market.studies.paper.RUN_WEIGHTS`)
RUN_WEIGHTS: Weights = (0.3, 0.3, 0.2, 0.2)
#: the weight each ``No<Term>`` configuration drops (index into ``(alpha, beta, gamma, delta)``)
DROPPED = {"NoCost": 0, "NoQoS": 1, "NoEnergy": 2, "NoFairness": 3}
TERMS = ("alpha", "beta", "gamma", "delta")
#: per-round columns of a run (besides the keys)
ROUND_COLUMNS = [
    "n_requests", "n_allocated", "satisfaction", "revenue", "mean_price",
    "welfare_own", "efficiency_own", "jain_own", "jain_winners_own",
    "welfare_common", "efficiency_common", "jain_common", "jain_winners_common", "fairness_common",
    "u_cost", "u_qos", "u_en",
]
#: metrics of the summary tables, with labels
SUMMARY = [
    ("efficiency_common", "efficiency, Full weights"),
    ("efficiency_own", "efficiency, own weights"),
    ("revenue", "revenue"),
    ("satisfaction", "satisfaction"),
    ("jain_common", "Jain all, Full weights"),
    ("jain_winners_common", "Jain winners, Full weights"),
    ("jain_own", "Jain all, own weights"),
    ("jain_winners_own", "Jain winners, own weights"),
    ("u_cost", "mean u_cost of won pairs"),
    ("u_qos", "mean u_qos of won pairs"),
    ("u_en", "mean u_en of won pairs"),
]
#: Table 2 as published (efficiency, satisfaction, Jain): a 40 x 25 synthetic instance, other weights
PUBLISHED_TABLE2 = {
    "CostOnly": (0.985, 1.0, 1.0), "NoQoS": (0.809, 0.96, 0.992), "NoEnergy": (0.798, 0.96, 0.993),
    "NoFairness": (0.797, 0.92, 0.998), "Full": (0.768, 0.96, 0.993), "NoCost": (0.710, 0.96, 0.990),
}


@dataclass(frozen=True)
class Configuration:
    """A named weight vector ``(alpha, beta, gamma, delta)``."""

    name: str
    weights: Weights


def configurations(full: Sequence[float]) -> list[Configuration]:
    """The paper's ablation configurations around ``full`` (plus the authors' run weights).

    Args:
        full: the Full weights ``(alpha, beta, gamma, delta)``.

    Returns:
        ``Full, NoCost, NoQoS, NoEnergy, NoFairness, CostOnly, FullRun`` in this order; a
        ``No<Term>`` whose remaining weights are all 0 is left out.
    """
    w = tuple(float(x) for x in full)
    out = [Configuration("Full", w)]  # type: ignore[arg-type]
    for name, k in DROPPED.items():
        rest = [0.0 if i == k else x for i, x in enumerate(w)]
        total = sum(rest)
        if total > 0:
            out.append(Configuration(name, tuple(x / total for x in rest)))  # type: ignore[arg-type]
    out.append(Configuration("CostOnly", (1.0, 0.0, 0.0, 0.0)))
    out.append(Configuration("FullRun", RUN_WEIGHTS))
    return out


def simplex_grid(step: float) -> np.ndarray:
    """``(P, 4)`` weight vectors on the simplex with spacing ``step``, lexicographic order.

    Each weight is ``k / n`` for a whole ``k`` with ``n = 1 / step``, so ``0.1`` gives the
    same floats as the literals ``0.1, 0.2, ...`` (``4 / 10 == 0.4``).

    Raises:
        MarketInputError: if ``step`` is not ``1 / n`` for a whole ``n >= 1``.
    """
    n = round(1.0 / step) if step > 0 else 0
    if not (0 < step <= 1) or abs(n * step - 1.0) > 1e-9:
        raise MarketInputError(f"--grid-step must be 1/n for a whole n >= 1 (0.5, 0.25, 0.2, 0.1, ...), got {step}")
    counts = [(a, b, g, n - a - b - g) for a in range(n + 1) for b in range(n + 1 - a) for g in range(n + 1 - a - b)]
    return np.array(counts, dtype=float) / n


def pareto_front(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Points not dominated when both ``x`` and ``y`` are maximised.

    A point is dominated if another has ``x`` and ``y`` at least as large and one of them
    strictly larger; equal points do not dominate each other (both stay on the front).

    Returns:
        ``(P,)`` bool, True on the front.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    geq = (x[:, None] >= x[None, :]) & (y[:, None] >= y[None, :])
    gt = (x[:, None] > x[None, :]) | (y[:, None] > y[None, :])
    return ~(geq & gt).any(axis=0)


def request_utilities(
    terms: np.ndarray, served: np.ndarray, n: int, priority: np.ndarray, user: np.ndarray,
    start_won: np.ndarray, won: np.ndarray, weights: Sequence[float],
) -> np.ndarray:
    """Per-request welfare shares ``x_i`` of an allocation under ``weights``.

    Args:
        terms: ``(S, 3)`` ``u_cost, u_qos, u_en`` of the won pairs (:func:`pair_terms`).
        served: ``(S,)`` order-book rows of those pairs.
        n: order-book size.
        priority: ``(n,)`` normalised priorities.
        user: ``(n,)`` user index of each row.
        start_won: ``(U,)`` priority mass users carried into the round.
        won: ``(U,)`` priority mass after the round (depends on the allocation only).
        weights: ``(alpha, beta, gamma, delta)``.

    Returns:
        ``(n,)`` utilities, 0 for the unserved; they sum to ``F``.
    """
    a, b, g, d = (float(w) for w in weights)
    base = np.zeros(n)
    base[served] = pair_utility(terms, a, b, g)
    mask = np.zeros(n, dtype=bool)
    mask[served] = True
    return score(base, mask, priority, user, start_won, won, d)


def run_weights(
    scenario: Scenario, weights: Sequence[float], common: Sequence[float], seed: int,
    market: Any = None, mechanism: str = "mohaf",
) -> list[dict[str, Any]]:
    """Run ``mechanism`` with ``weights`` for ``scenario.rounds`` rounds; score every round.

    Args:
        scenario: the scenario (its ``rounds`` are run; the exact oracle is off).
        weights: the weights the mechanism runs with.
        common: the weights every configuration is judged by (Full).
        seed: the run's seed.
        market: the seed's market if already built (else built here).
        mechanism: the allocation mechanism.

    Returns:
        One dict per round with :data:`ROUND_COLUMNS` and ``round``.

    Raises:
        RuntimeError: if rescoring under ``weights`` does not reproduce the recorded
            per-request utilities exactly.
    """
    w = tuple(float(x) for x in weights)
    run = scenario.replace(utility=scenario.utility.replace(weights=w), oracle=False, compare_flat=False)
    model = MarketModel(run, mechanism=mechanism, rng=seed, market=market)
    d_max = float(model.round_params.d_max)
    rows_out = []
    for t in range(scenario.rounds):
        model.step()
        # the round's record: its order book, the prices it cleared at, the carried mass X_u
        rec = model.record
        book, outcome, record = rec.book, rec.outcome, rec.metrics
        served = np.flatnonzero(outcome.resource >= 0)
        terms = pair_terms(book.request_matrix(), rec.resource_matrix, served, outcome.resource[served], d_max)
        args = (terms, served, book.size, book.columns["priority"], book.user, rec.start_won, outcome.won)
        own = request_utilities(*args, w)
        if not np.array_equal(own, outcome.utility):
            worst = float(np.max(np.abs(own - outcome.utility)))
            raise RuntimeError(f"rescoring under the run's weights differs from the recorded utilities by {worst:g} (round {t})")
        com = request_utilities(*args, common)
        base_common = pair_utility(terms, *(float(x) for x in common[:3]))
        n = book.size
        rows_out.append({
            "round": t,
            "n_requests": n,
            "n_allocated": int(served.size),
            "satisfaction": record["satisfaction"],
            "revenue": record["revenue"],
            "mean_price": record["mean_price"],
            "welfare_own": float(own.sum()),
            "efficiency_own": record["efficiency"],
            "jain_own": jain(own),
            "jain_winners_own": jain(own[served]),
            "welfare_common": float(com.sum()),
            "efficiency_common": float(com.sum()) / n if n else 0.0,
            "jain_common": jain(com),
            "jain_winners_common": jain(com[served]),
            "fairness_common": float(com.sum() - base_common.sum()),
            **{k: float(terms[:, c].mean()) if served.size else 0.0 for c, k in enumerate(["u_cost", "u_qos", "u_en"])},
        })
    return rows_out


def _run_batch(scenario: Scenario, seed: int, batch: list[Weights], common: Weights) -> list[list[dict[str, Any]]]:
    """Every weight vector of ``batch`` on one seed's market (built once)."""
    market = build_market(scenario, seed)
    return [run_weights(scenario, w, common, seed, market) for w in batch]


def evaluate(
    scenario: Scenario, keys: Sequence[tuple[Weights, int]], common: Weights,
    executor: Executor | None = None, progress: Callable[[int], None] | None = None, batch: int = 8,
) -> dict[tuple[Weights, int], list[dict[str, Any]]]:
    """Run every ``(weights, seed)`` of ``keys``; per-round rows keyed the same way.

    Runs are independent and deterministic, so the result does not depend on the
    executor; work goes out in batches of up to ``batch`` weight vectors of one seed (the
    seed's market is built once per batch).
    """
    by_seed: dict[int, list[Weights]] = {}
    for w, s in keys:
        by_seed.setdefault(s, []).append(w)
    jobs = [(s, ws[k : k + batch]) for s, ws in by_seed.items() for k in range(0, len(ws), batch)]
    results: dict[tuple[Weights, int], list[dict[str, Any]]] = {}

    def collect(seed: int, chunk: list[Weights], out: list[list[dict[str, Any]]]) -> None:
        for w, rows in zip(chunk, out):
            results[(w, seed)] = rows
        if progress:
            progress(len(chunk))

    batches = each_result(executor, [(_run_batch, (scenario, s, chunk, common)) for s, chunk in jobs])
    for (s, chunk), out in zip(jobs, batches):
        collect(s, chunk, out)
    return results


def round_table(results: dict[tuple[Weights, int], list[dict[str, Any]]], labels: dict[Weights, str],
                order: Sequence[Weights], seeds: Sequence[int]) -> pd.DataFrame:
    """Per-round rows of the given weight vectors, in ``order`` then seed then round."""
    frames = []
    for w in order:
        for s in seeds:
            df = pd.DataFrame(results[(w, s)])
            frames.append(df.assign(config=labels.get(w, ""), **dict(zip(TERMS, w)), seed=s))
    df = pd.concat(frames, ignore_index=True)
    return df[["config", *TERMS, "seed", "round", *ROUND_COLUMNS]]


def per_seed(rounds: pd.DataFrame) -> pd.DataFrame:
    """Mean over rounds of each ``(weights, seed)`` run."""
    keys = ["config", *TERMS, "seed"]
    return rounds.groupby(keys, sort=False)[ROUND_COLUMNS].mean().reset_index()


def summarize(runs: pd.DataFrame, reference: str = "Full") -> pd.DataFrame:
    """Mean and 95 % interval over seeds per configuration, and paired differences to ``reference``.

    Columns: ``config, alpha..delta, n_seeds``, then per metric ``m, m_low, m_high`` and
    ``d_m, d_m_low, d_m_high, p_m`` (difference to the reference, paired by seed).
    """
    keys = ["config", *TERMS]
    ref = runs[runs["config"] == reference].set_index("seed")
    rows = []
    for key, group in runs.groupby(keys, sort=False):
        row: dict[str, Any] = dict(zip(keys, key))
        row["n_seeds"] = int(group["seed"].nunique())
        g = group.set_index("seed")
        for metric, _ in SUMMARY:
            row[metric], row[f"{metric}_low"], row[f"{metric}_high"] = plots.mean_ci(g[metric])
            if ref.empty:
                continue
            both = g[[metric]].join(ref[[metric]], rsuffix="_ref", how="inner")
            diff = both[metric] - both[f"{metric}_ref"]
            row[f"d_{metric}"], row[f"d_{metric}_low"], row[f"d_{metric}_high"] = plots.mean_ci(diff)
            row[f"p_{metric}"] = _paired_p(both[metric].to_numpy(), both[f"{metric}_ref"].to_numpy())
        rows.append(row)
    return pd.DataFrame(rows)


def _paired_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired t-test p-value; NaN with fewer than two pairs or no variation."""
    d = a - b
    if d.size < 2:
        return float("nan")
    if np.all(d == d[0]):
        return 1.0 if d[0] == 0 else 0.0
    return float(stats.ttest_rel(a, b).pvalue)


def sweep_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per weight vector, with the Pareto flag (revenue vs common efficiency)."""
    keys = ["config", *TERMS]
    metrics = ["efficiency_common", "revenue", "satisfaction", "jain_common", "jain_winners_common",
               "efficiency_own", "jain_own", "jain_winners_own"]
    table = runs.groupby(keys, sort=False)[metrics].mean().reset_index()
    table.insert(len(keys), "n_seeds", runs.groupby(keys, sort=False)["seed"].nunique().to_numpy())
    table["pareto"] = pareto_front(table["efficiency_common"].to_numpy(), table["revenue"].to_numpy())
    return table


# --- figures ---------------------------------------------------------------------------


#: colours of the bar series: own weights, Full weights, a single series
_SERIES = ("#9ecae1", "#1f77b4", "#1f77b4")


def _grouped_bars(ax: Any, summary: pd.DataFrame, series: Sequence[tuple[str, str]], xlabel: str) -> None:
    """Horizontal bars per configuration, one bar per series, with 95 % whiskers."""
    names = summary["config"].tolist()
    y = np.arange(len(names))[::-1].astype(float)
    height = 0.8 / len(series)
    colours = _SERIES[:2] if len(series) == 2 else _SERIES[2:]
    for k, ((metric, label), colour) in enumerate(zip(series, colours)):
        m = summary[metric].to_numpy(dtype=float)
        err = np.nan_to_num(np.abs(np.vstack([m - summary[f"{metric}_low"], summary[f"{metric}_high"] - m])), nan=0.0)
        yk = y + 0.4 - height * (k + 0.5)
        ax.barh(yk, m, height=height * 0.92, color=colour, label=label)
        ax.errorbar(m, yk, xerr=err, fmt="none", ecolor="#222222", elinewidth=1.0, capsize=2)
        for yi, mi, end in zip(yk, m, m + err[1]):
            ax.text(end, yi, f"  {mi:.4g}", va="center", fontsize=7)
    ax.set_yticks(y, names)
    ax.set_xlabel(xlabel)
    ax.grid(axis="y", visible=False)
    # the whiskers' ends where there are any (one seed has no interval: NaN), else the bars'
    ends = summary[[*(f"{m}_high" for m, _ in series), *(m for m, _ in series)]].to_numpy(dtype=float)
    top = float(ends[np.isfinite(ends)].max()) if np.isfinite(ends).any() else 0.0
    ax.set_xlim(0, (1.25 if len(series) == 1 else 1.5) * top if top > 0 else 1.0)


def _ablation_figure(summary: pd.DataFrame, path: Path) -> Path:
    with plots.report_style():
        fig, axes = plots.figure(2, 2, width=5.6, height=3.6)
        _grouped_bars(axes[0, 0], summary, [("efficiency_own", "own weights"), ("efficiency_common", "Full weights")],
                      "efficiency (welfare / requests)")
        axes[0, 0].set_title("Efficiency: own weights vs Full weights")
        axes[0, 0].legend(loc="lower right")
        _grouped_bars(axes[0, 1], summary, [("jain_common", "all requests"), ("jain_winners_common", "winners")],
                      "Jain's index (Full-weight utilities)")
        axes[0, 1].set_title("Fairness")
        axes[0, 1].legend(loc="lower right")
        _grouped_bars(axes[1, 0], summary, [("revenue", "revenue")], "revenue per round")
        axes[1, 0].set_title("Revenue")
        _grouped_bars(axes[1, 1], summary, [("satisfaction", "satisfaction")], "served / requests")
        axes[1, 1].set_title("Satisfaction")
        fig.suptitle("MOHAF ablation (mean over seeds, 95 % t-interval)")
        return plots.save(fig, path)


def _pareto_figure(table: pd.DataFrame, path: Path, title: str) -> Path:
    x, y = table["efficiency_common"].to_numpy(), table["revenue"].to_numpy()
    front = table["pareto"].to_numpy()
    with plots.report_style():
        fig, axes = plots.figure(1, 1, width=7.5, height=5.2)
        ax = axes[0, 0]
        pts = ax.scatter(x, y, c=table["delta"], cmap="viridis", s=22, alpha=0.75, linewidths=0)
        fig.colorbar(pts, ax=ax, label="delta (fairness weight)")
        order = np.argsort(x[front])
        ax.plot(x[front][order], y[front][order], "-o", color="#d62728", markersize=6, markerfacecolor="none",
                linewidth=1.4, label="Pareto front")
        marks = {"Full": ("*", 16, "#000000"), "FullRun": ("D", 8, "#ff7f0e")}
        others = [c for c in table["config"].unique() if c and c not in marks]
        for name in [*marks, *others]:
            sel = table["config"] == name
            if not sel.any():
                continue
            marker, size, colour = marks.get(name, ("s", 6, "#555555"))
            ax.plot(x[sel], y[sel], marker, markersize=size, color=colour, linestyle="none",
                    label=name if name in marks else None)
            if name not in marks:  # the marked ones are in the legend
                ax.annotate(name, (x[sel][0], y[sel][0]), textcoords="offset points", xytext=(6, -10), fontsize=8)
        ax.set_xlabel("efficiency under the Full weights (welfare / requests)")
        ax.set_ylabel("revenue per round")
        ax.set_title(title)
        ax.legend(loc="best")
        return plots.save(fig, path)


# --- report ----------------------------------------------------------------------------


def _fmt(v: float, digits: int = 4) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}g}"


def _ci(row: pd.Series, metric: str, digits: int = 4) -> str:
    lo, hi = row[f"{metric}_low"], row[f"{metric}_high"]
    if math.isnan(lo):
        return _fmt(row[metric], digits)
    return f"{_fmt(row[metric], digits)} [{_fmt(lo, digits)}, {_fmt(hi, digits)}]"


def _weights(row: pd.Series) -> str:
    return "/".join(f"{row[t]:.3g}" for t in TERMS)


def _significant(summary: pd.DataFrame, level: float = 0.05) -> list[str]:
    """Sentences on configurations that differ from Full under the Full weights (paired test)."""
    if "p_efficiency_common" not in summary:
        return []
    if not summary["p_efficiency_common"].notna().any():  # one seed (or identical seeds): no test
        return ["No paired test of the differences: it needs two seeds or more with different results."]
    rest = summary[(summary["config"] != "Full") & (summary["p_efficiency_common"] < level)]
    out = []
    for sign, word in ((1, "higher"), (-1, "lower")):
        sel = rest[np.sign(rest["d_efficiency_common"]) == sign]
        if len(sel):
            items = ", ".join(f"{r['config']} ({r['d_efficiency_common']:+.4g})" for _, r in sel.iterrows())
            out.append(f"Under the Full weights, {word} efficiency than Full (paired p < {level}): {items}.")
    same = summary[(summary["config"] != "Full") & ~(summary["p_efficiency_common"] < level)]["config"].tolist()
    if same:
        out.append(f"Not distinguishable from Full at that level: {', '.join(same)}.")
    return out


def _markdown(info: dict[str, Any], summary: pd.DataFrame, sweep: pd.DataFrame | None) -> str:
    full = summary[summary["config"] == "Full"].iloc[0]
    lines = [
        f"# MOHAF ablation and weight sweep: `{info['scenario']}`",
        "",
        f"Scenario `{info['scenario']}` ({info['description']}). Mechanism `{info['mechanism']}`.",
        f"Ablation: seeds {info['seeds']}, {info['rounds']} rounds each. "
        + (f"Sweep: grid step {info['grid_step']} ({info['grid_points']} grid points plus the named "
           f"configurations), seeds {info['sweep_seeds']}, {info['sweep_rounds']} rounds each."
           if sweep is not None else "No sweep."),
        (f"Wall time {info['wall_time_s']:.0f} s with {info['workers']} worker(s) "
         f"({info['runs']} MOHAF runs, {info['cpus']} CPUs, shared with other jobs)."
         + (f" Command: `{info['command']}`." if info.get("command") else "")),
        "",
        ("Every configuration is scored twice: under **its own** weights (what the paper's Table 2 reports) "
        f"and under the **Full** weights {_weights(full)} (alpha cost, beta QoS, gamma energy, delta fairness), "
        "the one yardstick that makes the configurations comparable. Own-weight rescoring reproduces every "
        "recorded per-request utility bit for bit (checked in every round of every run). "
        "A run's value is its mean over rounds; cells are mean [95 % t-interval] over seeds; "
        "differences to Full are paired by seed."),
        "",
        "## Ablation",
        "",
        "| config | weights | eff. own | eff. Full weights | Δ vs Full (Full weights) | p | revenue | satisfaction | Jain all | Jain winners |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in summary.iterrows():
        d = "" if r["config"] == "Full" else _ci(r, "d_efficiency_common")
        p = "" if r["config"] == "Full" else _fmt(r.get("p_efficiency_common", float("nan")), 2)
        lines.append(
            f"| {r['config']} | {_weights(r)} | {_ci(r, 'efficiency_own')} | {_ci(r, 'efficiency_common')} | {d} | {p} | "
            f"{_ci(r, 'revenue')} | {_ci(r, 'satisfaction')} | {_ci(r, 'jain_common')} | {_ci(r, 'jain_winners_common')} |"
        )
    own_rank = summary.sort_values("efficiency_own", ascending=False, kind="stable")["config"].tolist()
    com_rank = summary.sort_values("efficiency_common", ascending=False, kind="stable")["config"].tolist()
    lines += [
        "",
        f"Ranking by own-weight efficiency (the paper's way): {' > '.join(own_rank)}.",
        f"Ranking under the Full weights: {' > '.join(com_rank)}.",
        *_significant(summary),
        "",
        ("Jain's index is over all requests (0 for the unserved) and over winners, both on the Full-weight "
        "utilities. Mean utility terms of the won pairs (u_cost, u_qos, u_en) show what each configuration trades:"),
        "",
        "| config | u_cost | u_qos | u_en | Jain all (own) | Jain winners (own) |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in summary.iterrows():
        lines.append(f"| {r['config']} | {_fmt(r['u_cost'])} | {_fmt(r['u_qos'])} | {_fmt(r['u_en'])} | "
                     f"{_fmt(r['jain_own'])} | {_fmt(r['jain_winners_own'])} |")
    lines += [
        "",
        "For context only (not comparable: a 40 x 25 synthetic instance, other weights, each variant scored by "
        "its own utility), the published Table 2 (efficiency / satisfaction / Jain): "
        + "; ".join(f"{k} {v[0]:.3f}/{v[1]:.2f}/{v[2]:.3f}" for k, v in PUBLISHED_TABLE2.items()) + ".",
        "",
        "![ablation](ablation.png)",
        "",
    ]
    if sweep is not None:
        front = sweep[sweep["pareto"]].sort_values("efficiency_common", ascending=False, kind="stable")
        best = sweep.loc[sweep["efficiency_common"].idxmax()]
        lines += [
            "## Weight sweep",
            "",
            (f"{len(sweep)} weight vectors. Highest efficiency under the Full weights: {_weights(best)} "
            f"({_fmt(best['efficiency_common'])}, revenue {_fmt(best['revenue'])}). "
            f"Pareto front (revenue vs Full-weight efficiency, both maximised): {len(front)} points."),
            "",
            "| weights | config | eff. Full weights | revenue | satisfaction | Jain all | Jain winners |",
            "|---|---|---|---|---|---|---|",
        ]
        for _, r in front.iterrows():
            lines.append(f"| {_weights(r)} | {r['config']} | {_fmt(r['efficiency_common'])} | {_fmt(r['revenue'])} | "
                         f"{_fmt(r['satisfaction'])} | {_fmt(r['jain_common'])} | {_fmt(r['jain_winners_common'])} |")
        lines.append("")
        for name in ("Full", "FullRun"):
            sel = sweep[sweep["config"] == name]
            if len(sel):
                r = sel.iloc[0]
                better = int(((sweep["efficiency_common"] > r["efficiency_common"])).sum())
                dominating = int(((sweep["efficiency_common"] >= r["efficiency_common"]) & (sweep["revenue"] >= r["revenue"])
                                  & ((sweep["efficiency_common"] > r["efficiency_common"]) | (sweep["revenue"] > r["revenue"]))).sum())
                lines.append(f"- {name} ({_weights(r)}): efficiency {_fmt(r['efficiency_common'])}, revenue "
                             f"{_fmt(r['revenue'])}; {better} of {len(sweep)} weight vectors score higher under the "
                             f"Full weights and {dominating} dominate it on both axes.")
        n = round(1 / info["grid_step"])
        w = sweep[list(TERMS)].to_numpy()
        on_grid = np.all(np.abs(w * n - np.round(w * n)) < 1e-9, axis=1)
        by_delta = sweep[on_grid].groupby("delta")["efficiency_common"].mean()
        lines += [
            "- Mean Full-weight efficiency over the grid points with fairness weight delta = "
            + ", ".join(f"{d:.3g}: {_fmt(v)}" for d, v in by_delta.items()) + ".",
            f"- Fairness weights on the front: {', '.join(f'{d:.3g}' for d in sorted(front['delta'].unique()))}.",
            "",
            ("Revenue is not independent of the weights: the posted price is reserve x (0.8 + 0.4 b) with b "
            "the configuration's *own* static utility, so weights that make b larger charge more for the same "
            "match (grid points that produce the same allocation differ in revenue only through this)."),
        ]
        lines += ["", "![pareto](pareto.png)", "", "The full table is `sweep.csv` (per seed: `sweep_runs.csv`).", ""]
    lines += [
        "## Files",
        "",
        "- `ablation.csv`: per configuration, mean and interval of every metric and paired differences to Full.",
        "- `ablation_runs.csv`: per configuration and seed (mean over rounds); `ablation_rounds.csv`: per round.",
        "- `sweep.csv`, `sweep_runs.csv`: the sweep, per weight vector and per (weights, seed).",
        "- `manifest.json`: arguments and the sha256 of every table (tables are byte-identical for the same arguments).",
        "",
    ]
    return "\n".join(lines)


# --- driver ----------------------------------------------------------------------------


def run_ablation(
    scenario: Scenario,
    out: Path,
    seeds: Sequence[int],
    grid_step: float | None = 0.1,
    sweep_seeds: Sequence[int] | None = None,
    sweep_rounds: int | None = None,
    executor: Executor | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Run the ablation (and the sweep unless ``grid_step`` is None); write ``out`` atomically.

    Args:
        scenario: the scenario, ``rounds`` as run by the ablation.
        out: the output directory (replaced atomically).
        seeds: seeds of the ablation.
        grid_step: spacing of the simplex grid; None skips the sweep.
        sweep_seeds: seeds of the sweep (default ``seeds``).
        sweep_rounds: rounds of the sweep (default ``scenario.rounds``).
        executor: where runs execute (None: here, one after another).
        workers: number of workers (recorded only).
        progress: called with (done, total) runs.
        command: the command line that reproduces the run (for the report).

    Returns:
        The manifest.
    """
    start = time.perf_counter()
    seeds = list(seeds)
    common: Weights = scenario.weights
    configs = configurations(common)
    labels: dict[Weights, str] = {}
    for c in configs:  # a configuration equal to an earlier one (e.g. NoFairness when delta = 0) runs once
        labels.setdefault(c.weights, c.name)
    named = list(dict.fromkeys(c.weights for c in configs))
    grid = [tuple(map(float, p)) for p in simplex_grid(grid_step)] if grid_step is not None else []
    sweep_seeds = list(sweep_seeds) if sweep_seeds is not None else seeds
    sweep_scenario = scenario.replace(rounds=sweep_rounds) if sweep_rounds else scenario
    points = list(dict.fromkeys([*named, *grid]))
    ablation_keys = [(w, s) for s in seeds for w in named]
    sweep_keys = [(w, s) for s in sweep_seeds for w in points] if grid else []
    # runs of the same weights, seed and rounds are the same run: do them once
    reuse = sweep_scenario.rounds == scenario.rounds
    done_keys = set(ablation_keys) if reuse else set()
    missing = [k for k in sweep_keys if k not in done_keys]
    total = len(ablation_keys) + len(missing)
    done = 0

    def tick(k: int) -> None:
        nonlocal done
        done += k
        if progress:
            progress(done, total)

    ablation_res = evaluate(scenario, ablation_keys, common, executor, tick)
    sweep_res = evaluate(sweep_scenario, missing, common, executor, tick) if missing else {}
    if reuse:
        wanted = set(sweep_keys)
        sweep_res.update({k: v for k, v in ablation_res.items() if k in wanted})
    tables: dict[str, pd.DataFrame] = {}
    tables["ablation_rounds"] = round_table(ablation_res, labels, named, seeds)
    tables["ablation_runs"] = per_seed(tables["ablation_rounds"])
    summary = summarize(tables["ablation_runs"])
    tables["ablation"] = summary
    sweep = None
    if grid:
        tables["sweep_runs"] = per_seed(round_table(sweep_res, labels, points, sweep_seeds))
        sweep = sweep_table(tables["sweep_runs"])
        tables["sweep"] = sweep
    info = {
        "scenario": scenario.name, "description": scenario.description, "mechanism": "mohaf",
        "seeds": seeds, "rounds": scenario.rounds, "grid_step": grid_step, "grid_points": len(grid),
        "sweep_seeds": sweep_seeds, "sweep_rounds": sweep_scenario.rounds, "workers": workers,
        "runs": total, "cpus": _cpus(), "command": command,
    }
    with atomic_directory(out, "ablation") as tmp:
        hashes = {}
        for name, df in tables.items():
            path = write_table(df, tmp / name, "csv")
            hashes[path.name] = sha256_file(path)
        _ablation_figure(summary, tmp / "ablation.png")
        if sweep is not None:
            _pareto_figure(sweep, tmp / "pareto.png",
                           f"{scenario.name}: revenue vs efficiency over the weight simplex (step {grid_step})")
        info["wall_time_s"] = time.perf_counter() - start
        (tmp / "report.md").write_text(_markdown(info, summary, sweep))
        manifest = {**info, "common_weights": list(common), "configurations": {c.name: list(c.weights) for c in configs},
                    "scenario_resolved": scenario.to_dict(), "versions": package_versions(), "sha256": hashes}
        write_json(manifest, tmp / "manifest.json")
    return manifest


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
