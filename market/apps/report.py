"""``market report RUN_DIR --out DIR``: plots and a Markdown summary of a finished run.

Reads the tables ``market run`` writes (README, "Architecture", contract 3; Parquet or CSV) and draws, per
mechanism: round-by-round trajectories of efficiency, Jain's index (all requests and
served ones), utilisation and the mean price with a band across seeds; the price
convergence (largest price change per round); bars of each metric's mean with a 95 %
confidence interval; the distribution of ALG/OPT and ALG/bound when the exact oracle ran;
and the time per round when timings are present. ``summary.md`` tabulates the means with
their intervals, ranks the mechanisms by both yardsticks (welfare as the utility sum and
as money), counts the oracle's status per mechanism, shows what the candidate restriction
and the cluster hierarchy cost where the run has those columns, and links the figures;
``summary.csv`` holds the same means for machines. A run whose rounds have the
multi-resource columns (``dominant_share_jain``, ``envy_share``; in a market with a gpu
dimension also ``unallocated_gpu``, ``gpu_fragmentation``, ``utilization_gpu``) gets a
"Multi-resource market" section: those means per mechanism beside welfare, money welfare
and satisfaction, in ``multiresource.csv`` and the bars of ``multiresource.png``.

Which rounds count: a round with no requests (``n_requests == 0``: nothing to allocate) is
left out of every per-seed mean, of every metric (utilisation, energy and price
included), so that a mean describes only rounds that had a market. A round in which a
mechanism failed (``mechanism_failed``: its exact solver found no allocation within its
limits, so its row shows nothing served) is left out of that mechanism's means, and
summary.md says how many. The trajectories leave the same rounds out (a gap in the line).

Never a false winner: the best mean of a row is bolded only among mechanisms with no
failed round whose mean covers every counted round (a metric missing, NaN, in some
rounds of an older run makes a mean over fewer rounds; it is marked and never bolded).
A mechanism that served no request in any counted round is not bolded on the rows an
empty allocation wins by convention (Jain's index of nothing is 1, its Gini 0, its
energy 0) nor on any row where lower is better. Means equal within a relative 1e-12 tie:
all are bolded, and they share a rank (standard competition ranking, 1, 1, 3).

A run in which no round had requests has nothing to compare: summary.md says so and
holds no tables of means, ranks or oracle counts (summary.csv has the rows, every mean
NaN over 0 rounds).

Statistics: a seed is one independent replication. A metric's value for a seed is its
mean over that seed's counted rounds; the table reports the mean over seeds and the
Student-t 95 % interval over seeds (n - 1 degrees of freedom; none with a single seed).

Older runs (before the oracle gave both a best known solution and a proven bound) have
``alg_opt, opt_welfare, opt_proven`` only, where ``opt_welfare`` was the proven optimum
or else an upper bound (so ``alg_opt`` was a lower bound); they are read and described
as such. Runs without ``mechanism_failed`` had no failed rounds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from market.core.io import atomic_directory
from market.errors import MarketInputError
from market.studies import plots

KEYS = ["mechanism", "seed", "round"]

#: (column, label) of the per-round trajectory figures
TRAJECTORIES = [
    ("efficiency", "Efficiency (utility per request)"),
    ("jain", "Jain's index, all requests"),
    ("jain_winners", "Jain's index, served requests"),
    ("utilization", "CPU utilisation"),
    ("mean_price", "Mean unit price"),
]
#: (column, label, higher is better) of the summary table, in order
SUMMARY = [
    ("efficiency", "efficiency", True),
    ("welfare", "welfare (utility sum)", True),
    ("value_welfare", "welfare in money (sum of values)", True),
    ("satisfaction", "satisfaction (served share)", True),
    ("jain", "Jain, all requests", True),
    ("jain_winners", "Jain, served requests", True),
    ("gini", "Gini over users", False),
    ("utilization", "CPU utilisation", True),
    ("revenue", "revenue", True),
    ("energy", "energy", False),
    ("mean_price", "mean unit price", None),
    ("alg_opt", "ALG/OPT", True),
    ("alg_bound", "ALG/bound", True),
    ("alg_value_bound", "ALG/bound, money", True),
]
#: (column, label, higher is better) of the multi-resource section, in order (those present are shown):
#: the GPU columns exist only in a market with a gpu dimension (market.core.multiresource)
MULTIRESOURCE = [
    ("unallocated_gpu", "unallocated GPU share", False),
    ("gpu_fragmentation", "GPU fragmentation", False),
    ("welfare", "welfare (utility sum)", True),
    ("value_welfare", "welfare in money", True),
    ("satisfaction", "satisfaction", True),
    ("dominant_share_jain", "Jain, dominant shares", True),
    ("envy_share", "envy share", False),
    ("utilization_gpu", "GPU utilisation", True),
]
#: the columns whose presence makes a run a multi-resource market (every market since issue 12 has them)
MULTIRESOURCE_MARKERS = ["dominant_share_jain", "envy_share"]
#: (column, label) of the cost of restrictions, in summary.csv and its own section
RESTRICTIONS = [("cluster_loss", "cluster loss (hierarchy against flat)")]
#: the welfare ratios against the oracle's yardsticks, in the order they are drawn
RATIOS = ["alg_opt", "alg_bound", "alg_value_bound"]
#: metrics of the comparison bar chart (those present are drawn)
COMPARISON = ["efficiency", "satisfaction", "jain", "jain_winners", "utilization", "revenue", *RATIOS]
REQUIRED = [*KEYS, "n_requests", *(c for c, _ in TRAJECTORIES)]
#: true/false columns (True/False, 1/0 or empty cells in a CSV)
FLAGS = ["mechanism_failed", "mechanism_time_limited", "opt_proven"]
#: text columns and the values the oracle writes, in the order they are counted
STATUS = {"opt_status": ["optimal", "feasible", "bound_only", "failed"], "opt_scope": ["all", "candidates"]}
#: numeric columns the report reads (others are left as they are)
NUMERIC = [*dict.fromkeys(["seed", "round", "n_requests", "n_allocated", "price_change", "flat_welfare",
                           "opt_welfare", "bound_welfare", "bound_value_welfare",
                           *(c for c, _ in TRAJECTORIES), *(c for c, _, _ in SUMMARY), *(c for c, _, _ in MULTIRESOURCE),
                           *(c for c, _ in RESTRICTIONS)])]
#: the exact mechanism whose welfare shows the cost of the candidate restriction
EXACT = "optimal"
#: the ALG/OPT axis stops here: a valid yardstick keeps every ratio <= 1
ALG_OPT_TOP = 1.1
#: rounding slack when checking a ratio against 1
SLACK = 1e-9
#: rows an empty allocation wins by its metric's convention (Jain of nothing is 1, Gini 0, no energy):
#: a mechanism that served nobody is never bolded there, nor on any row where lower is better
CONVENTION = {"jain", "jain_winners", "jain_users", "gini", "gini_requests", "energy", "dominant_share_jain"}
#: relative tolerance within which two means are equal (one bold, one shared rank)
TIE_RTOL = 1e-12
#: the column order of summary.csv
CSV_COLUMNS = ["mechanism", "metric", "n_seeds", "n_rounds", "n_missing", "n_failed", "mean", "ci_low", "ci_high",
               "best"]


@dataclass
class Run:
    """The tables of a run directory that the report needs."""

    path: Path
    rounds: pd.DataFrame
    timings: pd.DataFrame | None
    manifest: dict
    mechanisms: list[str]

    @property
    def has_oracle(self) -> bool:
        """Whether the exact oracle's columns are present (and not all empty)."""
        return "alg_opt" in self.rounds and bool(self.rounds["alg_opt"].notna().any())

    @property
    def has_bounds(self) -> bool:
        """Whether the oracle gave a best known solution and a proven bound apart (newer runs).

        In older runs ``opt_welfare`` is the proven optimum or an upper bound, and
        ``alg_opt`` is a lower bound on the true ratio.
        """
        return any(c in self.rounds and bool(self.rounds[c].notna().any()) for c in ("alg_bound", "bound_welfare"))

    def present(self, column: str) -> bool:
        """Whether the rounds table has the column with at least one value."""
        return column in self.rounds and bool(self.rounds[column].notna().any())

    @cached_property
    def no_requests(self) -> pd.Series:
        """Rounds with no requests (no market: left out of every mean)."""
        return self.rounds["n_requests"] == 0

    @cached_property
    def failed(self) -> pd.Series:
        """Rounds where the mechanism produced no allocation (left out of its means)."""
        return self.rounds["mechanism_failed"].astype(bool)

    @property
    def time_limited(self) -> pd.Series:
        """Rounds where the mechanism's wall-clock limit stopped it (counted; not reproducible elsewhere)."""
        if "mechanism_time_limited" not in self.rounds:  # a run of an older version
            return pd.Series(False, index=self.rounds.index)
        return self.rounds["mechanism_time_limited"].fillna(0.0) > 0

    @cached_property
    def counted(self) -> pd.Series:
        """The rounds every mean is taken over: a market, and an allocation."""
        return ~self.no_requests & ~self.failed

    @property
    def multiresource(self) -> bool:
        """Whether the rounds have the multi-resource columns (dominant-share Jain or envy)."""
        return any(self.present(c) for c in MULTIRESOURCE_MARKERS)

    @property
    def no_market(self) -> bool:
        """Whether no round had requests (nothing to compare)."""
        return bool(self.no_requests.all())

    @cached_property
    def idle(self) -> list[str]:
        """Mechanisms that served no request in any of their counted rounds (and had some).

        Served is ``n_allocated`` (else the served share ``satisfaction``); a mechanism with
        that value missing in a counted round is not called idle.
        """
        column = "n_allocated" if self.present("n_allocated") else "satisfaction" if self.present("satisfaction") else None
        if column is None:
            return []
        counted = self.rounds[self.counted]
        out = []
        for name in self.mechanisms:
            served = counted.loc[counted["mechanism"] == name, column]
            if served.size and served.notna().all() and bool((served == 0).all()):
                out.append(name)
        return out

    def left_out(self, mask: pd.Series) -> dict[str, tuple[int, int]]:
        """Per mechanism ``(rounds in mask, rounds in all)``, for the mechanisms with any."""
        out = {}
        for name in self.mechanisms:
            mine = self.rounds["mechanism"] == name
            if int((mask & mine).sum()):
                out[name] = (int((mask & mine).sum()), int(mine.sum()))
        return out


def _table(run_dir: Path, name: str, fmt: str | None) -> Path | None:
    order = ["csv", "parquet"] if fmt == "csv" else ["parquet", "csv"]  # the manifest's format first
    for ext in order:
        path = run_dir / f"{name}.{ext}"
        if path.is_file():
            return path
    return None


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:  # pyarrow, csv and OS errors all mean "not a readable table"
        raise MarketInputError(f"cannot read table ({type(exc).__name__}: {exc})", source=str(path)) from None


_TRUE = {"true", "1", "1.0", "yes"}
_FALSE = {"false", "0", "0.0", "no"}


def _flag(column: pd.Series, name: str, path: Path) -> pd.Series:
    """A true/false column as floats 1.0 / 0.0, NaN for an empty cell."""
    def one(value: object) -> float:
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
            return float("nan")
        text = str(value).strip().lower()
        if text in _TRUE:
            return 1.0
        if text in _FALSE:
            return 0.0
        raise ValueError(value)

    out = np.empty(len(column))
    for row, value in enumerate(column.tolist()):
        try:
            out[row] = one(value)
        except ValueError:
            raise MarketInputError(f"row {row}: column {name!r} is not true or false ({value!r})", source=str(path)) from None
    return pd.Series(out, index=column.index, name=name)


def load_run(run_dir: Path) -> Run:
    """Read and check a run directory written by ``market run``.

    A run without ``mechanism_failed`` (older) gets it, all false.

    Raises:
        MarketInputError: if the directory, its ``rounds`` table or a required column is
            missing, a table cannot be read, or a column the report reads is not numeric
            (or, for ``mechanism_failed`` and ``opt_proven``, not true or false).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MarketInputError("not a run directory (does not exist)" if not run_dir.exists() else "not a directory", source=str(run_dir))
    manifest: dict = {}
    if (run_dir / "manifest.json").is_file():
        try:
            manifest = json.loads((run_dir / "manifest.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise MarketInputError(f"unreadable manifest ({exc})", source=str(run_dir / "manifest.json")) from None
        if not isinstance(manifest, dict):
            raise MarketInputError("manifest is not a JSON object", source=str(run_dir / "manifest.json"))
    fmt = manifest.get("format")
    path = _table(run_dir, "rounds", fmt)
    if path is None:
        raise MarketInputError("no rounds.parquet or rounds.csv: not a run directory written by 'market run'", source=str(run_dir))
    rounds = _read(path)
    missing = [c for c in REQUIRED if c not in rounds.columns]
    if missing:
        raise MarketInputError(f"missing column(s) {', '.join(missing)}", source=str(path))
    if rounds.empty:
        raise MarketInputError("the rounds table has no rows", source=str(path))
    rounds = rounds.reset_index(drop=True)
    rounds["mechanism"] = rounds["mechanism"].astype(str)
    for column in [c for c in NUMERIC if c in rounds.columns]:
        converted = pd.to_numeric(rounds[column], errors="coerce")
        bad = converted.isna() & rounds[column].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise MarketInputError(f"row {row}: column {column!r} is not numeric ({rounds[column].iloc[row]!r})", source=str(path))
        rounds[column] = converted.astype(float) if converted.dtype == bool else converted
    for column in [c for c in FLAGS if c in rounds.columns]:
        rounds[column] = _flag(rounds[column], column, path)
    rounds["mechanism_failed"] = (rounds["mechanism_failed"].fillna(0.0) > 0) if "mechanism_failed" in rounds else False
    for column in [c for c in STATUS if c in rounds.columns]:
        rounds[column] = rounds[column].where(rounds[column].isna(), rounds[column].astype(str).str.strip())
    timings = None
    tpath = _table(run_dir, "timings", fmt)
    if tpath is not None:
        timings = _read(tpath)
        if not set(KEYS) <= set(timings.columns):
            raise MarketInputError(f"missing column(s) {', '.join(sorted(set(KEYS) - set(timings.columns)))}", source=str(tpath))
        timings["mechanism"] = timings["mechanism"].astype(str)
    present = list(dict.fromkeys(rounds["mechanism"]))
    listed = [m for m in manifest.get("mechanisms", []) if m in present]
    mechanisms = listed + [m for m in present if m not in listed]
    return Run(run_dir, rounds, timings, manifest, mechanisms)


def per_seed(rounds: pd.DataFrame, metric: str) -> pd.DataFrame:
    """A metric's mean over the given rounds for each (mechanism, seed), NaN cells left out."""
    return rounds.groupby(["mechanism", "seed"], sort=False)[metric].mean().reset_index()


def _convention(metric: str, better: bool | None) -> bool:
    """Whether an empty allocation wins the metric's row by convention (or lower is better)."""
    return metric in CONVENTION or better is False


def _best(rows: pd.DataFrame, better: bool | None, idle: frozenset[str] = frozenset()) -> pd.Series:
    """Which rows hold the best mean (ties included), among those allowed to win.

    A row may win only with a finite mean, no failed round and no missing value among
    its counted rounds; a mechanism in ``idle`` (it served nobody) may not win either:
    the caller passes it only for rows an empty allocation wins by convention.
    """
    best = pd.Series(False, index=rows.index)
    if better is None:
        return best
    eligible = (rows["mean"].notna() & (rows["n_failed"] == 0) & (rows["n_missing"] == 0) & (rows["n_rounds"] > 0)
                & ~rows["mechanism"].isin(idle))
    if not eligible.any():
        return best
    means = rows.loc[eligible, "mean"]
    top = means.max() if better else means.min()
    return eligible & np.isclose(rows["mean"], top, rtol=TIE_RTOL, atol=0).astype(bool)


def summarize(run: Run, confidence: float = 0.95) -> pd.DataFrame:
    """Mean over seeds of each metric's per-seed mean over counted rounds, with a t-interval over seeds.

    Counted rounds: the round had requests and the mechanism did not fail in it. The
    metrics: :data:`SUMMARY`, then those of :data:`MULTIRESOURCE` not in it, then
    :data:`RESTRICTIONS`, each where the run has the column.

    Returns:
        One row per (mechanism, metric): ``mechanism, metric, n_seeds`` (seeds with a
        value), ``n_rounds`` (rounds averaged), ``n_missing`` (counted rounds where the
        metric is NaN), ``n_failed`` (the mechanism's failed rounds, left out), ``mean,
        ci_low, ci_high`` (the bounds are NaN with a single seed) and ``best`` (the best
        mean of its metric among the mechanisms allowed to win; see :func:`_best`).
    """
    rows = []
    counted = run.rounds[run.counted]
    failed = run.rounds[run.failed].groupby("mechanism").size()
    listed = {c for c, _, _ in SUMMARY}
    extra = [m for m in MULTIRESOURCE if m[0] not in listed]
    for metric, _label, better in [*SUMMARY, *extra, *((c, label, None) for c, label in RESTRICTIONS)]:
        if not run.present(metric):
            continue
        seeds = per_seed(counted, metric)
        block = []
        for name in run.mechanisms:
            values = seeds.loc[seeds["mechanism"] == name, metric].dropna().to_numpy()
            mine = counted.loc[counted["mechanism"] == name, metric]
            mean, low, high = plots.mean_ci(values, confidence)
            block.append({"mechanism": name, "metric": metric, "n_seeds": int(values.size),
                          "n_rounds": int(mine.notna().sum()), "n_missing": int(mine.isna().sum()),
                          "n_failed": int(failed.get(name, 0)), "mean": mean, "ci_low": low, "ci_high": high})
        frame = pd.DataFrame(block)
        frame["best"] = _best(frame, better, frozenset(run.idle) if _convention(metric, better) else frozenset())
        rows += frame.to_dict("records")
    return pd.DataFrame(rows, columns=CSV_COLUMNS)


# --- figures ------------------------------------------------------------------------------
def _legend(fig, ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(6, len(labels)))


def _masked(run: Run) -> pd.DataFrame:
    """The rounds table with the rounds left out of the means set to NaN (gaps in a trajectory)."""
    frame = run.rounds.copy()
    metrics = [c for c, _ in TRAJECTORIES]
    frame.loc[~run.counted, metrics] = np.nan
    return frame


def _trajectory_figure(run: Run, frame: pd.DataFrame, metric: str, label: str, band: str, path: Path) -> Path:
    fig, axes = plots.figure()
    ax = axes[0, 0]
    plots.trajectory(ax, frame, metric, run.mechanisms, band)
    ax.set_ylabel(label)
    ax.set_title(f"{label} per round")
    _legend(fig, ax)
    return plots.save(fig, path)


def _price_convergence(run: Run, band: str, path: Path) -> Path:
    fig, axes = plots.figure(1, 2, width=5.6)
    ordered = run.rounds.sort_values(KEYS, kind="stable")
    start = ordered.groupby(["mechanism", "seed"], sort=False)["mean_price"].transform("first")
    relative = ordered.assign(price_relative=100.0 * (ordered["mean_price"] / start.where(start != 0) - 1.0))
    plots.trajectory(axes[0, 0], relative, "price_relative", run.mechanisms, band)
    axes[0, 0].set_ylabel("mean unit price, % change since the first round")
    axes[0, 0].set_title("Price drift")
    moving = ordered[ordered["price_change"] > 0] if "price_change" in ordered else ordered.iloc[:0]
    if not moving.empty:
        plots.trajectory(axes[0, 1], moving, "price_change", run.mechanisms, band, logy=True)
        axes[0, 1].set_ylabel("largest |price change| in the round")
        axes[0, 1].set_title("Price convergence")
    else:
        axes[0, 1].set_axis_off()
    _legend(fig, axes[0, 0])
    return plots.save(fig, path)


def _labels(run: Run) -> list[str]:
    """Mechanism names, with the count of failed rounds where there are any."""
    failed = run.left_out(run.failed)
    return [f"{m} ({failed[m][0]} failed)" if m in failed else m for m in run.mechanisms]


def _comparison(run: Run, summary: pd.DataFrame, path: Path) -> Path:
    return _bars(run, summary, COMPARISON, {m: label for m, label, _ in SUMMARY}, path)


def _multiresource_figure(run: Run, summary: pd.DataFrame, path: Path) -> Path:
    labels = {m: label + ("" if better else " (lower is better)") for m, label, better in MULTIRESOURCE}
    return _bars(run, summary, [m for m, _, _ in MULTIRESOURCE], labels, path)


def _bars(run: Run, summary: pd.DataFrame, wanted: list[str], labels: dict[str, str], path: Path) -> Path:
    """One panel of bars with 95 % t-intervals per metric of ``wanted`` that the summary has."""
    metrics = [m for m in wanted if (summary["metric"] == m).any()]
    ncols = 2 if len(metrics) <= 4 else 3
    nrows = -(-len(metrics) // ncols)
    fig, axes = plots.figure(nrows, ncols, width=4.4, height=0.45 * len(run.mechanisms) + 1.4)
    for ax, metric in zip(axes.flat, metrics):
        s = summary[summary["metric"] == metric].set_index("mechanism").loc[run.mechanisms]
        plots.ci_bars(ax, run.mechanisms, s["mean"], s["ci_low"], s["ci_high"], "mean over seeds", labels=_labels(run))
        ax.set_title(labels[metric])
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_axis_off()
    n = int(summary["n_seeds"].max())
    note = "; failed rounds left out" if run.left_out(run.failed) else ""
    fig.suptitle(f"Mean over {n} seed(s) with 95 % t-interval{note}", fontsize=10)
    return plots.save(fig, path)


RATIO_TITLES = {
    "alg_opt": "ALG/OPT: against the best known solution",
    "alg_bound": "ALG/bound: against a proven upper bound",
    "alg_value_bound": "ALG/bound in money (value welfare)",
}


def _alg_opt(run: Run, path: Path) -> Path:
    counted = run.rounds[run.counted]
    panels = {}
    for ratio in [r for r in RATIOS if run.present(r)] if run.has_bounds else ["alg_opt"]:
        rows = counted.dropna(subset=[ratio])
        groups = {m: rows.loc[rows["mechanism"] == m, ratio].to_numpy() for m in run.mechanisms}
        groups = {m: v for m, v in groups.items() if v.size}
        if groups:
            panels[ratio] = groups
    # one panel per ratio, stacked: a mechanism's boxes line up from one yardstick to the next
    fig, axes = plots.figure(max(1, len(panels)), 1, width=max(6.0, 1.1 * len(run.mechanisms) + 1.5),
                             height=4.2 if len(panels) <= 1 else 3.0, sharey=True)
    for ax, (ratio, groups) in zip(axes.flat, panels.items()):
        plots.distribution(ax, groups, f"{ratio} per round", reference=1.0, top=ALG_OPT_TOP)
        ax.set_title(RATIO_TITLES[ratio] if run.has_bounds else
                     "Welfare relative to the exact optimum (every round and seed)")
    return plots.save(fig, path)


def _phases(timings: pd.DataFrame | None) -> list[str]:
    """The timing columns that add up to a round's time (all phases but the oracle's)."""
    return [] if timings is None else [c for c in timings.columns if c.endswith("_ms") and c != "oracle_ms"]


def _timing(run: Run, path: Path) -> Path | None:
    t = run.timings
    phases = _phases(t)
    if not phases or t.empty:
        return None
    total = t.assign(round_ms=t[phases].sum(axis=1))
    fig, axes = plots.figure(width=6.5, height=0.45 * len(run.mechanisms) + 1.4)
    names = [m for m in run.mechanisms if (total["mechanism"] == m).any()]
    med = [float(total.loc[total["mechanism"] == m, "round_ms"].median()) for m in names]
    q1 = [float(total.loc[total["mechanism"] == m, "round_ms"].quantile(0.25)) for m in names]
    q3 = [float(total.loc[total["mechanism"] == m, "round_ms"].quantile(0.75)) for m in names]
    ax = axes[0, 0]
    plots.ci_bars(ax, names, med, q1, q3, "ms per round: median, whiskers quartiles", fmt="{:.1f}")
    if max(med) / max(min(med), 1e-9) > 50:
        ax.set_xscale("log")
        ax.set_xlim(min(q1) / 2, max(q3) * 4)
    ax.set_title("Time per round")
    return plots.save(fig, path)


# --- summary ------------------------------------------------------------------------------
def _cell(row: pd.Series) -> str:
    mean, low, high = row["mean"], row["ci_low"], row["ci_high"]
    if np.isnan(mean):
        return "n/a"
    if np.isnan(low):
        text = f"{mean:.4g}"
    else:
        half = (high - low) / 2
        text = f"{mean:.4g} ± {half:.2g}" if half > 1e-9 * max(abs(mean), 1.0) else f"{mean:.4g} ± 0"
    return text + (" †" if row["n_missing"] else "")


def _metric(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    return summary[summary["metric"] == metric].set_index("mechanism")


def _rounds_text(left: dict[str, tuple[int, int]], run: Run) -> str:
    """``2 of 3 rounds in every run`` when all mechanisms agree, else per mechanism."""
    if len(left) == len(run.mechanisms) and len(set(left.values())) == 1:
        n, total = next(iter(left.values()))
        return f"{n} of {total} rounds of every mechanism"
    return ", ".join(f"{m} {n} of {total}" for m, (n, total) in left.items())


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _tiers(means: pd.Series) -> list[list[str]]:
    """Mechanisms from the highest mean down, those with equal means (within TIE_RTOL of the tier's first) together."""
    tiers: list[list[str]] = []
    lead = np.nan
    for name, mean in means.sort_values(ascending=False, kind="stable").items():
        if tiers and np.isclose(mean, lead, rtol=TIE_RTOL, atol=0):
            tiers[-1].append(name)
        else:
            tiers.append([name])
            lead = mean
    position = {name: i for i, name in enumerate(means.index)}
    return [sorted(tier, key=position.__getitem__) for tier in tiers]  # a tie in the given (the run's) order


def _competition(tiers: list[list[str]]) -> dict[str, int]:
    """Standard competition ranks (1, 1, 3): a tier's rank is one more than the mechanisms above it."""
    ranks, above = {}, 0
    for tier in tiers:
        ranks.update(dict.fromkeys(tier, above + 1))
        above += len(tier)
    return ranks


def _order(tiers: list[list[str]]) -> str:
    """``mohaf = greedy > random``."""
    return " > ".join(" = ".join(tier) for tier in tiers)


def _compare(utility: list[list[str]], money: list[list[str]]) -> str:
    """The sentence comparing the two yardsticks' orders (ties shown, only strict reversals change place)."""
    if not utility or not money:
        return ""
    ru, rm = _competition(utility), _competition(money)
    if ru == rm:
        if len(utility) == 1 and len(ru) > 1:
            return "Both yardsticks rank the mechanisms alike: all tie (" + _order(utility) + ")."
        return "Both yardsticks rank the mechanisms in the same order: " + _order(utility) + "."
    common = [m for m in ru if m in rm]
    moved, retied = [], []
    for m in common:
        others = [n for n in common if n != m]
        if any((ru[m] - ru[n]) * (rm[m] - rm[n]) < 0 for n in others):
            moved.append(m)
        elif any((ru[m] == ru[n]) != (rm[m] == rm[n]) for n in others):
            retied.append(m)
    notes = []
    if moved:
        notes.append(f"{', '.join(moved)} change place")
    if retied:
        notes.append(f"{', '.join(retied)} tie by one yardstick only")
    if not moved and not retied:
        notes.append("they rank different mechanisms")
    return ("The rankings differ: by utility " + _order(utility) + "; in money " + _order(money)
            + " (" + "; ".join(notes) + ").")


def _ranking(run: Run, summary: pd.DataFrame) -> list[str]:
    """The two yardsticks side by side: welfare (utility) and value welfare (money), ranked."""
    columns = [("welfare", "welfare (utility sum)", True), ("alg_opt", "ALG/OPT", False),
               ("alg_bound", "ALG/bound", False), ("value_welfare", "welfare in money", True),
               ("alg_value_bound", "ALG/bound, money", False)]
    if not run.has_bounds:
        columns = [c for c in columns if c[0] not in ("alg_opt", "alg_bound")]
    columns = [c for c in columns if (summary["metric"] == c[0]).any()]
    if not any(c[0] == "value_welfare" for c in columns) and not run.has_bounds:
        return []
    lines = ["## Two yardsticks", ""]
    orders: dict[str, list[list[str]]] = {}
    header, ranks = [], {}
    for metric, label, ranked in columns:
        header.append(label)
        if ranked:
            rows = _metric(summary, metric)
            allowed = rows[rows["mean"].notna() & (rows["n_failed"] == 0) & (rows["n_missing"] == 0)]
            orders[metric] = _tiers(allowed["mean"])
            ranks[metric] = _competition(orders[metric])
            header.append("rank")
    lines += [
        ("Welfare is scored two ways: `welfare`, the utility sum F the mechanisms optimise (the paper's "
        "yardstick), and `value_welfare`, the winners' values `budget * b_ij` in money. Each is ranked "
        "(1 = highest mean; equal means, within a relative 1e-12 as for the bold, share a rank: standard "
        "competition ranking, 1, 1, 3, and `=` in the orders below; a mechanism with failed rounds or missing "
        "values is not ranked: -)."),
        "",
    ]
    if run.has_bounds:
        lines += [
            ("ALG/OPT (`alg_opt`) divides a round's welfare by the best feasible welfare known for the whole "
            "market (`opt_welfare`): an upper estimate of the true ratio. ALG/bound (`alg_bound`) divides it "
            "by a proven upper bound on the optimum over every feasible pair (`bound_welfare`): a proven lower "
            "bound. The true ratio lies between the two. ALG/bound in money (`alg_value_bound`) divides "
            "`value_welfare` by a proven upper bound on it over the whole market (`bound_value_welfare`)."),
            "",
        ]
    lines += ["| mechanism | " + " | ".join(header) + " |", "|---|" + "---:|" * len(header)]
    for name in run.mechanisms:
        cells = []
        for metric, _label, ranked in columns:
            cells.append(_cell(_metric(summary, metric).loc[name]))
            if ranked:
                cells.append(str(ranks[metric][name]) if name in ranks[metric] else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if "welfare" in orders and "value_welfare" in orders:
        sentence = _compare(orders["welfare"], orders["value_welfare"])
        if sentence:
            lines += ["", sentence]
    return [*lines, ""]


def _status(run: Run) -> list[str]:
    """Per mechanism, the rounds by the oracle's status and scope (rounds with requests; none: no table)."""
    market = run.rounds[~run.no_requests]
    columns = [c for c in STATUS if c in market and bool(market[c].notna().any())]
    if market.empty or (not columns and not (run.has_oracle and "opt_proven" in run.rounds)):
        return []
    header: list[tuple[str, str, str | None]] = []  # (label, column, value)
    for column in columns:
        seen = market[column].dropna().unique().tolist()
        values = [v for v in STATUS[column] if v in seen] + sorted(v for v in seen if v not in STATUS[column])
        prefix = "" if column == "opt_status" else "scope "
        header += [(f"{prefix}{v}", column, v) for v in values]
        if market[column].isna().any():
            header.append((f"{prefix}n/a", column, None))
    proven = "opt_proven" in market and bool(market["opt_proven"].notna().any())
    lines = ["### The oracle per mechanism", ""]
    if columns:
        lines += [
            ("Rounds with requests, by the oracle's status (`opt_status`: `optimal` = the whole market's optimum "
             "is proven, `feasible` = a solution without proof, `bound_only` = the solver found no solution, the "
             "best known is the mechanism's own, `failed` = not even the LP solved, the bound is the trivial one) "
             "and by its scope (`opt_scope`: `all` = the exact search covered every feasible request-resource pair, "
             "`candidates` = only a restricted set of candidate pairs, the bound still covering every pair)")
            + ("; `proven`: share of rounds with `opt_proven`." if proven else "."),
            "",
        ]
    else:
        lines += [("Share of rounds with requests where the oracle proved the optimum (`opt_proven`; elsewhere "
                  "`opt_welfare` is an upper bound, so ALG/OPT is a lower bound on the true ratio)."), ""]
    labels = [h[0] for h in header] + (["proven"] if proven else [])
    if not labels:  # neither a status nor a proof flag in any round with requests
        return []
    lines += ["| mechanism | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for name in run.mechanisms:
        mine = market[market["mechanism"] == name]
        cells = [str(int((mine[c].isna() if v is None else (mine[c] == v)).sum())) for _, c, v in header]
        if proven:
            share = mine["opt_proven"].dropna()
            cells.append(f"{100 * share.mean():.0f} %" if share.size else "n/a")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _restrictions(run: Run, summary: pd.DataFrame) -> list[str]:
    """The cost of the candidate restriction (the exact mechanism) and of the hierarchy."""
    lines: list[str] = []
    exact = EXACT in run.mechanisms and run.has_bounds and all((summary["metric"] == r).any() for r in ("alg_opt", "alg_bound"))
    if exact:
        opt, bound = _metric(summary, "alg_opt").loc[EXACT], _metric(summary, "alg_bound").loc[EXACT]
        exact = bool(np.isfinite(opt["mean"]) and np.isfinite(bound["mean"]))
    if exact:
        mine = run.rounds[(run.rounds["mechanism"] == EXACT) & run.counted]
        low, high = _pct(1 - opt["mean"]), _pct(1 - bound["mean"])
        cost = low if low == high else f"between {low} and {high} (the true share lies in that range)"
        text = (f"`{EXACT}` solves each round exactly, but only over the candidate pairs (each request's K best "
                "feasible resources in its clusters); the oracle's yardsticks cover the whole market. Over its "
                f"{len(mine)} counted rounds it reaches ALG/OPT {_cell(opt)} and ALG/bound {_cell(bound)}: the "
                f"restriction (with the solver's own limits) costs {cost} of the whole market's optimal welfare, "
                "mean over seeds.")
        if (summary["metric"] == "alg_value_bound").any():
            money = _metric(summary, "alg_value_bound").loc[EXACT]
            if np.isfinite(money["mean"]):
                text += (f" In money, which it does not optimise, it reaches ALG/bound {_cell(money)} "
                         "of the whole market's bound.")
        if "opt_scope" in mine and mine["opt_scope"].notna().any():
            scope_all = int((mine["opt_scope"] == "all").sum())
            if scope_all < len(mine):
                text += (f" The oracle's exact search covered every feasible pair in {scope_all} of these rounds; in "
                         f"the other {len(mine) - scope_all} only candidate pairs, so there the best known solution "
                         "may miss better pairs and the lower end understates the cost.")
        failed = run.left_out(run.failed).get(EXACT)
        if failed:
            text += (f" In {failed[0]} of {failed[1]} rounds its solver found no allocation within its limits "
                     "(left out above): it served nothing there.")
        lines += ["### The candidate restriction", "", text, ""]
    if (summary["metric"] == "cluster_loss").any():
        rows = _metric(summary, "cluster_loss")
        lines += ["### The cluster hierarchy", "",
                  ("`cluster_loss = 1 - welfare / flat_welfare`: the share of welfare a mechanism loses by clearing "
                  "each round in clusters (with spill-over) instead of as one flat market, same mechanism and same "
                  "state (negative: the clusters did better)."),
                  "",
                  "| | " + " | ".join(run.mechanisms) + " |", "|---|" + "---:|" * len(run.mechanisms),
                  "| cluster loss | " + " | ".join(_cell(rows.loc[m]) for m in run.mechanisms) + " |", ""]
    return ["## The cost of restrictions", "", *lines] if lines else []


def _warnings(run: Run) -> list[str]:
    """A ratio above 1 is ruled out by a valid yardstick: say where it happened."""
    lines = []
    counted = run.rounds[run.counted]
    for ratio in [r for r in RATIOS if run.present(r)]:
        values = counted[ratio]
        over = counted[values > 1 + SLACK]
        if over.empty:
            continue
        why = ""
        if not run.has_bounds and "opt_proven" in over:
            why = (" there the oracle returned no usable bound (it was not proven optimal in "
                   f"{int((over['opt_proven'] != 1).sum())} of them), so")
        lines += ["", (f"**Warning:** in {len(over)} of {int(values.notna().sum())} counted rounds {ratio} exceeds 1 "
                  f"(up to {over[ratio].max():.4g}), which a valid yardstick rules out;{why} {ratio} is not "
                  "reliable for this run; its mean above includes those rounds.")]
    return lines


def _nothing(run: Run) -> list[str]:
    """A run with no requests in any round: nothing to compare, so no tables of means, ranks or oracle counts."""
    return ["", "## Nothing to compare", "",
            (f"No round of this run had requests (`n_requests = 0` in all {len(run.rounds)} rows of the rounds "
             "table: every round of every mechanism and seed), so there was no market to allocate and there is "
             "nothing to compare: no means, rankings, oracle counts, costs of restrictions or per-round figures "
             "of the metrics. summary.csv lists every metric with no counted round (mean empty)."),
            ""]


def _comparison_text(run: Run, summary: pd.DataFrame, n_seeds: int, failed: dict[str, tuple[int, int]]) -> list[str]:
    """The means table, its notes, the two yardsticks, the oracle's counts and the cost of restrictions."""
    lines: list[str] = []
    lines += [
        "",
        "## Means per mechanism",
        "",
        ("Which rounds count: a round with no requests (`n_requests = 0`) is left out of every per-seed mean "
        "(all metrics, utilisation, energy and price included): a mean describes only rounds that had a market. "
        "A round in which a mechanism failed (`mechanism_failed`: its exact solver found no allocation within "
        "its limits, so nothing was served) is left out of that mechanism's means."),
        "",
        f"Each cell: mean over seeds of the per-seed mean over those rounds, ± half-width of the 95 % Student-t "
        f"interval over seeds ({n_seeds - 1} degree{'s' if n_seeds > 2 else ''} of freedom)." if n_seeds > 1 else
        "Each cell: the mean over those rounds (one seed: no interval).",
        ("The best mean of each row is in bold (equal means, within a relative 1e-12, all of them), among the "
        "mechanisms with no failed round and a value in every counted round; a mechanism that served no request "
        "in any counted round is not bolded on the rows an empty allocation wins by convention (Jain's index of "
        "nothing is 1, its Gini 0, its energy 0: the Jain, Gini and energy rows) nor on any row where lower "
        "is better."),
        "",
        "| metric | " + " | ".join(run.mechanisms) + " |",
        "|---|" + "---:|" * len(run.mechanisms),
    ]
    for metric, label, _better in SUMMARY:
        rows = _metric(summary, metric)
        if rows.empty:
            continue
        cells = [f"**{_cell(rows.loc[m])}**" if rows.loc[m, "best"] else _cell(rows.loc[m]) for m in run.mechanisms]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if failed:
        lines += ["", "Never bolded: " + ", ".join(failed) + " (failed rounds; " +
                  ("its" if len(failed) == 1 else "their") + " means are over the other rounds)."]
    idle = [m for m in run.idle if m not in failed]
    if idle:
        rows_text = "; ".join(label for metric, label, better in SUMMARY
                              if _convention(metric, better) and (summary["metric"] == metric).any())
        lines += ["", "Not bolded where an empty allocation wins by convention (" + rows_text + "): "
                  + ", ".join(idle) + " (served no request in any counted round)."]
    if (summary["n_missing"] > 0).any():
        lines += ["", ("† mean over fewer rounds: the metric is missing (NaN) in some counted rounds of this "
                  "mechanism (older runs); never bolded.")]
    lines += _warnings(run)
    lines += ["", "Numbers for machines: [summary.csv](summary.csv).", ""]
    lines += _ranking(run, summary)
    if not run.has_bounds and run.has_oracle:
        lines += [("ALG/OPT divides each round's welfare by the exact oracle's value in the same market state: the "
                  "proven optimum, or where the oracle did not prove it an upper bound, so ALG/OPT is a lower "
                  "bound on the true ratio (a run from before the oracle gave a best known solution and a proven "
                  "bound apart)."), ""]
    lines += _status(run)
    lines += _restrictions(run, summary)
    lines += _multiresource(run, summary, failed)
    return lines


def _multiresource(run: Run, summary: pd.DataFrame, failed: dict[str, tuple[int, int]]) -> list[str]:
    """The multi-resource metrics per mechanism (a run with the columns; the GPU ones where present)."""
    columns = [(m, label, better) for m, label, better in MULTIRESOURCE if (summary["metric"] == m).any()]
    if not run.multiresource or not columns:
        return []
    arrows = {True: " ↑", False: " ↓", None: ""}
    gpu = any(m in ("unallocated_gpu", "gpu_fragmentation") for m, _, _ in columns)
    lines = [
        "## Multi-resource market",
        "",
        ("The market's resources have several dimensions" + (", a GPU among them" if gpu else "") + ". "
         "Per mechanism, the same means over seeds as above (± half-width of the 95 % t-interval, none with one "
         "seed; counted rounds only), ↑ higher is better, ↓ lower is better; the best of each column in bold "
         "with the same rules as above (ties all bold, never a mechanism with failed rounds or missing values, "
         "nor one that served nobody where an empty allocation wins by convention or lower is better)."),
        "",
    ]
    notes = []
    if gpu:
        notes += ["`unallocated_gpu`: share of the GPU capacity free after the round (running requests included)",
                  ("`gpu_fragmentation`: share of the GPU capacity free on nodes that cannot host the typical "
                   "(median) request still waiting for a GPU (after Weng et al., USENIX ATC 2023)")]
    notes += [("`dominant_share_jain`: Jain's index over the users' dominant shares of the market (DRF, Ghodsi "
               "et al., NSDI 2011), among the users with a request in the round"),
              ("`envy_share`: share of ordered pairs of those users where one could run more of its tasks with "
               "the other's bundle")]
    if any(m == "utilization_gpu" for m, _, _ in columns):
        notes.append("`utilization_gpu`: GPUs in use over GPU capacity")
    lines += [f"- {note}" for note in notes]
    lines += ["", "| mechanism | " + " | ".join(label + arrows[better] for _, label, better in columns) + " |",
              "|---|" + "---:|" * len(columns)]
    for name in run.mechanisms:
        cells = []
        for metric, _label, _better in columns:
            row = _metric(summary, metric).loc[name]
            cells.append(f"**{_cell(row)}**" if row["best"] else _cell(row))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if failed:
        lines += ["", "Never bolded: " + ", ".join(failed) + " (failed rounds)."]
    lines += ["", "Numbers for machines: [multiresource.csv](multiresource.csv).", ""]
    return lines


def multiresource_table(run: Run, summary: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``summary`` the multi-resource section shows, in its column order (empty without the columns)."""
    if not run.multiresource:
        return summary.iloc[:0]
    order = {m: i for i, (m, _, _) in enumerate(MULTIRESOURCE)}
    rows = summary[summary["metric"].isin(order)]
    return rows.sort_values("metric", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def _markdown(run: Run, summary: pd.DataFrame, figures: dict[str, str], band: str) -> str:
    scenario = run.manifest.get("scenario", {}) if isinstance(run.manifest.get("scenario"), dict) else {}
    name = scenario.get("name") or run.path.name
    seeds = sorted(run.rounds["seed"].unique().tolist())
    n_rounds = run.rounds.groupby(["mechanism", "seed"])["round"].nunique()
    empty, failed = run.left_out(run.no_requests), run.left_out(run.failed)
    lines = [f"# Report: {name}", ""]
    if scenario.get("description"):
        lines += [f"{scenario['description']}.", ""]
    lines += [
        f"- run: `{run.path}`" + (f" (results sha256 `{run.manifest['sha256']['results'][:16]}`)"
                                   if isinstance(run.manifest.get("sha256"), dict) and "results" in run.manifest["sha256"] else ""),
        f"- mechanisms: {', '.join(run.mechanisms)}",
        f"- seeds: {', '.join(str(int(s)) for s in seeds)} ({len(seeds)}); rounds per run: "
        + (f"{int(n_rounds.iloc[0])}" if n_rounds.nunique() == 1 else f"{int(n_rounds.min())} to {int(n_rounds.max())}"),
        "- rounds with no requests, left out of every mean: " + (_rounds_text(empty, run) if empty else "none"),
    ]
    lines += [f"- {m}: {n} of {total} rounds failed: the solver found no allocation; left out" for m, (n, total) in failed.items()]
    lines += [f"- {m}: {n} of {total} rounds stopped by its time limit: those rounds and the later ones of their "
              "runs depend on the machine's speed" for m, (n, total) in run.left_out(run.time_limited).items()]
    lines += _nothing(run) if run.no_market else _comparison_text(run, summary, len(seeds), failed)
    lines += ["## Figures", ""]
    band_text = "range across seeds (min to max)" if band == "minmax" else "95 % t-interval across seeds"
    gaps = " Rounds left out of the means are not drawn." if empty or failed else ""
    ratio_caption = (("Every counted round and seed: box (quartiles, median) and one dot per round. ALG/OPT is "
                      "against the best known solution (an upper estimate of the true ratio), ALG/bound against a "
                      "proven upper bound (a lower bound); the true ratio lies between them.")
                     if run.has_bounds else
                     "Welfare over the exact optimum, every round and seed: box (quartiles, median) and one dot per round.")
    captions = {
        "comparison": ("Mechanism comparison", "Means with 95 % confidence intervals over seeds."),
        "multiresource": ("Multi-resource comparison", ("Means with 95 % confidence intervals over seeds of the "
                          "multi-resource metrics (counted rounds only).")),
        **{m: (f"{label} per round", f"Mean across seeds, shaded: {band_text}.{gaps}") for m, label in TRAJECTORIES},
        "price_convergence": ("Price convergence", ("Left: each run's mean unit price relative to its first "
                              "round (removes the level that differs between seeds' markets). Right: the largest "
                              f"price change in each round (log scale). Mean across seeds, shaded: {band_text}; "
                              "every round (prices move in rounds without requests too).")),
        "alg_opt": ("ALG/OPT" + (" and ALG/bound" if run.has_bounds else ""), ratio_caption),
        "timing": ("Time per round", ("Wall-clock time per round (" + ", ".join(_phases(run.timings)) + "; not "
                   "the oracle), median with quartile whiskers; it varies between machines and runs.")),
    }
    for key, file in figures.items():
        heading, caption = captions[key]
        lines += [f"### {heading}", "", caption, "", f"![{heading}]({file})", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_report(run_dir: Path, out: Path, band: str = "minmax") -> dict[str, str]:
    """Read a run and write its figures, ``summary.md`` and ``summary.csv`` to ``out`` atomically.

    Args:
        run_dir: a directory written by ``market run``.
        out: the report directory (replaced as a whole).
        band: seed band of the trajectories, ``"minmax"`` or ``"ci"``.

    Returns:
        Figure key -> file name (relative to ``out``).

    Raises:
        MarketInputError: if ``run_dir`` is not a readable run (nothing is written).
    """
    run = load_run(run_dir)
    summary = summarize(run)
    figures: dict[str, str] = {}
    masked = _masked(run)
    multi = multiresource_table(run, summary) if not run.no_market else summary.iloc[:0]
    with atomic_directory(Path(out), "report") as tmp, plots.report_style():
        if not run.no_market:  # with no market every mean and every drawn round would be empty
            figures["comparison"] = _comparison(run, summary, tmp / "comparison.png").name
            if not multi.empty:
                figures["multiresource"] = _multiresource_figure(run, summary, tmp / "multiresource.png").name
            for metric, label in TRAJECTORIES:
                figures[metric] = _trajectory_figure(run, masked, metric, label, band, tmp / f"{metric}.png").name
        figures["price_convergence"] = _price_convergence(run, band, tmp / "price_convergence.png").name
        if run.has_oracle and run.rounds.loc[run.counted, "alg_opt"].notna().any():
            figures["alg_opt"] = _alg_opt(run, tmp / "alg_opt.png").name
        if run.timings is not None:
            timing = _timing(run, tmp / "timing.png")
            if timing is not None:
                figures["timing"] = timing.name
        summary.to_csv(tmp / "summary.csv", index=False, float_format="%.17g")
        if not multi.empty:
            multi.to_csv(tmp / "multiresource.csv", index=False, float_format="%.17g")
        (tmp / "summary.md").write_text(_markdown(run, summary, figures, band))
    return figures
