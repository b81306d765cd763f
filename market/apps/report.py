"""``market report RUN_DIR --out DIR``: plots and a Markdown summary of a finished run.

Reads the tables ``market run`` writes (README, "Architecture", contract 3; Parquet or CSV) and draws, per
mechanism: round-by-round trajectories of efficiency, Jain's index (all requests and
served ones), utilisation and the mean price with a band across seeds; the price
convergence (largest price change per round); bars of each metric's mean with a 95 %
confidence interval; the distribution of ALG/OPT when the exact oracle ran; and the
time per round when timings are present. ``summary.md`` tabulates the means with their
intervals and links the figures; ``summary.csv`` holds the same numbers for machines.

Statistics: a seed is one independent replication. A metric's value for a seed is its
mean over that seed's rounds; the table reports the mean over seeds and the Student-t
95 % interval over seeds (n - 1 degrees of freedom; none with a single seed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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
    ("welfare", "welfare", True),
    ("satisfaction", "satisfaction (served share)", True),
    ("jain", "Jain, all requests", True),
    ("jain_winners", "Jain, served requests", True),
    ("gini", "Gini over users", False),
    ("utilization", "CPU utilisation", True),
    ("revenue", "revenue", True),
    ("energy", "energy", False),
    ("mean_price", "mean unit price", None),
    ("alg_opt", "ALG/OPT", True),
]
#: metrics of the comparison bar chart (those present are drawn)
COMPARISON = ["efficiency", "satisfaction", "jain", "jain_winners", "utilization", "revenue", "alg_opt"]
REQUIRED = [*KEYS, *(c for c, _ in TRAJECTORIES)]
#: the ALG/OPT axis stops here: a valid upper bound on OPT keeps ALG/OPT <= 1
ALG_OPT_TOP = 1.1


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


def load_run(run_dir: Path) -> Run:
    """Read and check a run directory written by ``market run``.

    Raises:
        MarketInputError: if the directory, its ``rounds`` table or a required column is
            missing, a table cannot be read, or a metric column is not numeric.
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
    rounds = rounds.copy()
    rounds["mechanism"] = rounds["mechanism"].astype(str)
    for column in [c for c in rounds.columns if c != "mechanism"]:
        if column == "opt_proven":
            continue
        converted = pd.to_numeric(rounds[column], errors="coerce")
        bad = converted.isna() & rounds[column].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise MarketInputError(f"row {row}: column {column!r} is not numeric ({rounds[column].iloc[row]!r})", source=str(path))
        rounds[column] = converted
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
    """A metric's mean over rounds for each (mechanism, seed)."""
    return rounds.groupby(["mechanism", "seed"], sort=False)[metric].mean().reset_index()


def summarize(run: Run, confidence: float = 0.95) -> pd.DataFrame:
    """Mean over seeds of each metric's per-seed mean, with a t-interval over seeds.

    Returns:
        One row per (mechanism, metric): ``mechanism, metric, n_seeds, mean, ci_low,
        ci_high`` (the bounds are NaN with a single seed).
    """
    rows = []
    for metric, _label, _better in SUMMARY:
        if metric not in run.rounds or run.rounds[metric].isna().all():
            continue
        seeds = per_seed(run.rounds, metric)
        for name in run.mechanisms:
            values = seeds.loc[seeds["mechanism"] == name, metric].dropna().to_numpy()
            mean, low, high = plots.mean_ci(values, confidence)
            rows.append({"mechanism": name, "metric": metric, "n_seeds": int(values.size),
                         "mean": mean, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=["mechanism", "metric", "n_seeds", "mean", "ci_low", "ci_high"])


# --- figures ------------------------------------------------------------------------------
def _legend(fig, ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(6, len(labels)))


def _trajectory_figure(run: Run, metric: str, label: str, band: str, path: Path) -> Path:
    fig, axes = plots.figure()
    ax = axes[0, 0]
    plots.trajectory(ax, run.rounds, metric, run.mechanisms, band)
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


def _comparison(run: Run, summary: pd.DataFrame, path: Path) -> Path:
    labels = {m: label for m, label, _ in SUMMARY}
    metrics = [m for m in COMPARISON if (summary["metric"] == m).any()]
    ncols = 2 if len(metrics) <= 4 else 3
    nrows = -(-len(metrics) // ncols)
    fig, axes = plots.figure(nrows, ncols, width=4.4, height=0.45 * len(run.mechanisms) + 1.4)
    for ax, metric in zip(axes.flat, metrics):
        s = summary[summary["metric"] == metric].set_index("mechanism").loc[run.mechanisms]
        plots.ci_bars(ax, run.mechanisms, s["mean"], s["ci_low"], s["ci_high"], "mean over seeds")
        ax.set_title(labels[metric])
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_axis_off()
    n = int(summary["n_seeds"].max())
    fig.suptitle(f"Mean over {n} seed(s) with 95 % t-interval", fontsize=10)
    return plots.save(fig, path)


def _alg_opt(run: Run, path: Path) -> Path:
    rounds = run.rounds.dropna(subset=["alg_opt"])
    groups = {m: rounds.loc[rounds["mechanism"] == m, "alg_opt"].to_numpy() for m in run.mechanisms}
    fig, axes = plots.figure(width=max(6.0, 1.1 * len(groups) + 1.5))
    plots.distribution(axes[0, 0], {m: v for m, v in groups.items() if v.size}, "ALG / OPT per round",
                       reference=1.0, top=ALG_OPT_TOP)
    axes[0, 0].set_title("Welfare relative to the exact optimum (every round and seed)")
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
        return f"{mean:.4g}"
    half = (high - low) / 2
    return f"{mean:.4g} ± {half:.2g}" if half > 1e-9 * max(abs(mean), 1.0) else f"{mean:.4g} ± 0"


def _markdown(run: Run, summary: pd.DataFrame, figures: dict[str, str], band: str) -> str:
    scenario = run.manifest.get("scenario", {}) if isinstance(run.manifest.get("scenario"), dict) else {}
    name = scenario.get("name") or run.path.name
    seeds = sorted(run.rounds["seed"].unique().tolist())
    n_rounds = run.rounds.groupby(["mechanism", "seed"])["round"].nunique()
    lines = [f"# Report: {name}", ""]
    if scenario.get("description"):
        lines += [f"{scenario['description']}.", ""]
    lines += [
        f"- run: `{run.path}`" + (f" (results sha256 `{run.manifest['sha256']['results'][:16]}`)"
                                   if isinstance(run.manifest.get("sha256"), dict) and "results" in run.manifest["sha256"] else ""),
        f"- mechanisms: {', '.join(run.mechanisms)}",
        f"- seeds: {', '.join(str(int(s)) for s in seeds)} ({len(seeds)}); rounds per run: "
        + (f"{int(n_rounds.iloc[0])}" if n_rounds.nunique() == 1 else f"{int(n_rounds.min())} to {int(n_rounds.max())}"),
        "",
        "## Means per mechanism",
        "",
        f"Each cell: mean over seeds of the per-seed mean over rounds, ± half-width of the 95 % Student-t "
        f"interval over seeds ({len(seeds) - 1} degree{'s' if len(seeds) > 2 else ''} of freedom)." if len(seeds) > 1 else
        "Each cell: the mean over rounds (one seed: no interval).",
        "The best mean of each row is in bold.",
        "",
        "| metric | " + " | ".join(run.mechanisms) + " |",
        "|---|" + "---:|" * len(run.mechanisms),
    ]
    for metric, label, better in SUMMARY:
        rows = summary[summary["metric"] == metric].set_index("mechanism")
        if rows.empty:
            continue
        cells = [_cell(rows.loc[m]) for m in run.mechanisms]
        if better is not None and rows["mean"].notna().any():
            best = rows["mean"].idxmax() if better else rows["mean"].idxmin()
            ties = rows.index[np.isclose(rows["mean"], rows.loc[best, "mean"], rtol=1e-12, atol=0)]
            cells = [f"**{c}**" if m in ties else c for m, c in zip(run.mechanisms, cells)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if run.has_oracle and "opt_proven" in run.rounds:
        proven = run.rounds.groupby("mechanism", sort=False)["opt_proven"].apply(lambda s: s.dropna().astype(bool).mean())
        lines += ["", "ALG/OPT divides each round's welfare by the exact oracle's value in the same market "
                  "state. Share of rounds where the oracle proved optimality (elsewhere OPT is an upper bound, "
                  "so ALG/OPT is a lower bound): "
                  + ", ".join(f"{m} {100 * proven.get(m, float('nan')):.0f} %" for m in run.mechanisms) + "."]
        over = run.rounds[run.rounds["alg_opt"] > 1 + 1e-9]
        if not over.empty:
            lines += ["", (f"**Warning:** in {len(over)} of {int(run.rounds['alg_opt'].notna().sum())} rounds "
                      f"ALG/OPT exceeds 1 (up to {over['alg_opt'].max():.4g}), which a valid upper bound on OPT "
                      "rules out: there the oracle returned no usable bound (it was not proven optimal in "
                      f"{int((~over['opt_proven'].astype(bool)).sum())} of them), so ALG/OPT is not reliable for "
                      "this run; its mean above includes those rounds.")]
    lines += ["", "Numbers for machines: [summary.csv](summary.csv).", "", "## Figures", ""]
    band_text = "range across seeds (min to max)" if band == "minmax" else "95 % t-interval across seeds"
    captions = {
        "comparison": ("Mechanism comparison", "Means with 95 % confidence intervals over seeds."),
        **{m: (f"{label} per round", f"Mean across seeds, shaded: {band_text}.") for m, label in TRAJECTORIES},
        "price_convergence": ("Price convergence", ("Left: each run's mean unit price relative to its first "
                              "round (removes the level that differs between seeds' markets). Right: the largest "
                              f"price change in each round (log scale). Mean across seeds, shaded: {band_text}.")),
        "alg_opt": ("ALG/OPT", ("Welfare over the exact optimum, every round and seed: box (quartiles, median) "
                    "and one dot per round.")),
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
    with atomic_directory(Path(out)) as tmp, plots.report_style():
        figures["comparison"] = _comparison(run, summary, tmp / "comparison.png").name
        for metric, label in TRAJECTORIES:
            figures[metric] = _trajectory_figure(run, metric, label, band, tmp / f"{metric}.png").name
        figures["price_convergence"] = _price_convergence(run, band, tmp / "price_convergence.png").name
        if run.has_oracle:
            figures["alg_opt"] = _alg_opt(run, tmp / "alg_opt.png").name
        if run.timings is not None:
            timing = _timing(run, tmp / "timing.png")
            if timing is not None:
                figures["timing"] = timing.name
        summary.to_csv(tmp / "summary.csv", index=False, float_format="%.17g")
        (tmp / "summary.md").write_text(_markdown(run, summary, figures, band))
    return figures
