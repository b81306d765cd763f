"""``market scaling --out DIR``: time per round against market size, measured, with fitted slopes.

For each mechanism and each size on a log-spaced grid (requests from ``--min-requests``
to ``--max-requests``, ``--per-decade`` sizes per decade, resources = requests / 4) this
times whole rounds with :func:`market.studies.bench.bench` (every phase of a round, after an
untimed warm-up round; the median of the timed rounds). It writes:

- ``measurements.csv``: one row per (mechanism, size) measured;
- ``fits.csv``: per mechanism the least-squares slope and intercept of
  ``log10 round_s`` on ``log10 requests`` (:func:`market.studies.plots.fit_loglog`) over the
  rows it names (``fit_min_requests .. fit_max_requests``, censored rows excluded);
- ``scaling.png`` (log-log, measured points and fitted lines) and ``scaling.md``;
- ``run.json``: the parameters, machine and versions.

Sizes grow in order, and a mechanism moves to the next size only while the predicted
time of a round there (the last time extrapolated with the last local slope, at least
linear) fits its per-round budget. The exact reference ``optimal`` (a MILP whose time
grows much faster) has its own, finer grid from ``--optimal-min-requests`` and a smaller
budget; a measurement whose slowest round reached 95 % of the solver's time limit is
marked ``censored`` (it timed the limit, not the solve), kept out of the fit and ends
that mechanism's series.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from market.errors import MarketInputError

if TYPE_CHECKING:  # numpy, pandas, the plots and the engine load when a study runs (fast --help)
    import pandas as pd

#: the exact reference: its own grid and budget
EXACT = "optimal"
#: sizes per decade of the exact reference's grid
EXACT_PER_DECADE = 4
#: share of a solver's time limit from which a round counts as timed out
CENSOR_SHARE = 0.95
COLUMNS = ["mechanism", "requests", "resources", "candidates", "clusters", "rounds", "round_s",
           "round_s_min", "round_s_max", "allocated", "welfare", "peak_rss_mb", "censored"]


@dataclass(frozen=True)
class Plan:
    """What to measure."""

    mechanisms: tuple[str, ...]
    min_requests: int = 100
    max_requests: int = 1_000_000
    per_decade: int = 2
    max_round_s: float = 20.0
    optimal_min_requests: int = 10
    optimal_max_round_s: float = 5.0
    target_s: float = 2.0
    max_rounds: int = 5
    fit_from: int = 1000
    seed: int = 0


def size_grid(lo: int, hi: int, per_decade: int) -> list[int]:
    """``lo * 10**(j / per_decade)`` rounded, for j = 0, 1, ... while at most ``hi``."""
    if lo < 1 or hi < lo or per_decade < 1:
        raise MarketInputError(f"size grid needs 1 <= min <= max and per-decade >= 1 (got {lo}, {hi}, {per_decade})")
    sizes, j = [], 0
    while (n := round(lo * 10 ** (j / per_decade))) <= hi:
        if not sizes or n > sizes[-1]:
            sizes.append(n)
        j += 1
    return sizes


def _time_limit(mechanism: str) -> float | None:
    from mechanisms import create

    limit = getattr(create(mechanism), "time_limit", None)
    return float(limit) if limit else None


def measure(plan: Plan, log=None) -> tuple[pd.DataFrame, list[dict]]:
    """Time every mechanism along its grid until the grid ends or the next size does not fit.

    Args:
        plan: mechanisms, grid, budgets, rounds and seed.
        log: called with one line of progress per measurement (None: silent).

    Returns:
        ``(measurements, stops)``: one row per (mechanism, size) with :data:`COLUMNS`, and
        per mechanism why its series ended (``reason``, ``last_requests``, and for a
        budget stop ``next_requests`` and ``predicted_s``).
    """
    import pandas as pd

    from market.studies.bench import bench

    grids = {
        m: size_grid(plan.optimal_min_requests, plan.max_requests, EXACT_PER_DECADE) if m == EXACT
        else size_grid(plan.min_requests, plan.max_requests, plan.per_decade)
        for m in plan.mechanisms
    }
    limits = {m: _time_limit(m) for m in plan.mechanisms}
    history: dict[str, list[tuple[int, float]]] = {m: [] for m in plan.mechanisms}
    stopped: dict[str, dict] = {}
    rows = []
    for n in sorted({n for grid in grids.values() for n in grid}):  # RSS grows with the size, not the mechanism
        for m in plan.mechanisms:
            if m in stopped or n not in grids[m]:
                continue
            budget = plan.optimal_max_round_s if m == EXACT else plan.max_round_s
            predicted = _predict(history[m], n)
            if predicted is not None and predicted > budget:
                last = history[m][-1][0]
                stopped[m] = {"reason": "budget", "last_requests": last, "next_requests": n,
                              "predicted_s": predicted, "budget_s": budget}
                continue
            rounds = plan.max_rounds if predicted is None else int(min(plan.max_rounds, max(1, plan.target_s // predicted)))
            result = bench(requests=n, resources=max(1, n // 4), mechanism=m, rounds=rounds, seed=plan.seed)
            censored = limits[m] is not None and max(result["round_s_all"]) >= CENSOR_SHARE * limits[m]
            rows.append({
                "mechanism": m, "requests": n, "resources": result["resources"],
                "candidates": result["candidates"], "clusters": result["clusters"], "rounds": rounds,
                "round_s": result["round_s"], "round_s_min": min(result["round_s_all"]),
                "round_s_max": max(result["round_s_all"]), "allocated": result["allocated"],
                "welfare": result["welfare"], "peak_rss_mb": result["peak_rss_mb"], "censored": censored,
            })
            if log:
                log(f"{m:>13s} {n:>8d} requests: {result['round_s']:.4g} s/round ({rounds} rounds)"
                    + (" CENSORED (time limit)" if censored else ""))
            if censored:
                stopped[m] = {"reason": "time_limit", "last_requests": n, "time_limit_s": limits[m]}
            else:
                history[m].append((n, result["round_s"]))
    for m in plan.mechanisms:
        if m not in stopped:
            stopped[m] = {"reason": "grid_end", "last_requests": history[m][-1][0] if history[m] else None}
    stops = [{"mechanism": m, **stopped[m]} for m in plan.mechanisms]
    return pd.DataFrame(rows, columns=COLUMNS), stops


def _predict(history: list[tuple[int, float]], n: int) -> float | None:
    """Round time at ``n`` extrapolated from the last measurement with the last local slope (>= 1)."""
    if not history:
        return None
    n1, t1 = history[-1]
    slope = 1.0
    if len(history) >= 2:
        n0, t0 = history[-2]
        slope = max(1.0, math.log(t1 / t0) / math.log(n1 / n0))
    return t1 * (n / n1) ** slope


def fit_slopes(measurements: pd.DataFrame, fit_from: int) -> pd.DataFrame:
    """Per mechanism, the power-law fit of ``round_s`` on ``requests``.

    Uses the uncensored rows with ``requests >= fit_from`` (where fixed per-round costs
    no longer dominate); with fewer than three such rows, all uncensored rows. Needs two.

    Returns:
        ``mechanism, slope, intercept, r2, n_points, fit_min_requests, fit_max_requests``.
    """
    import numpy as np
    import pandas as pd

    from market.studies import plots

    out = []
    for m, rows in measurements[~measurements["censored"].astype(bool)].groupby("mechanism", sort=False):
        used = rows[rows["requests"] >= fit_from]
        if len(used) < 3:
            used = rows
        if len(used) < 2:
            continue
        x, y = used["requests"].to_numpy(float), used["round_s"].to_numpy(float)
        slope, intercept = plots.fit_loglog(x, y)
        residual = np.log10(y) - (slope * np.log10(x) + intercept)
        spread = np.log10(y) - np.log10(y).mean()
        r2 = 1.0 - float(residual @ residual) / float(spread @ spread) if spread @ spread > 0 else 1.0
        out.append({"mechanism": m, "slope": slope, "intercept": intercept, "r2": r2, "n_points": len(used),
                    "fit_min_requests": int(x.min()), "fit_max_requests": int(x.max())})
    return pd.DataFrame(out, columns=["mechanism", "slope", "intercept", "r2", "n_points",
                                      "fit_min_requests", "fit_max_requests"])


def _figure(measurements: pd.DataFrame, fits: pd.DataFrame, mechanisms: list[str], path: Path) -> Path:
    from market.studies import plots

    styles = plots.mechanism_styles(mechanisms)
    fig, axes = plots.figure(1, 2, width=5.8, height=4.6)
    time_ax, unit_ax = axes[0]
    fit = fits.set_index("mechanism")
    for m in mechanisms:
        rows = measurements[(measurements["mechanism"] == m) & ~measurements["censored"].astype(bool)]
        if rows.empty:
            continue
        line = None
        if m in fit.index:
            f = fit.loc[m]
            line = (f["slope"], f["intercept"], f["fit_min_requests"], f["fit_max_requests"])
        plots.loglog_fit(time_ax, m, rows["requests"].to_numpy(), rows["round_s"].to_numpy(), line, styles[m])
        colour, style = styles[m]
        unit_ax.plot(rows["requests"], 1e6 * rows["round_s"] / rows["requests"], marker="o", markersize=4,
                     color=colour, linestyle=style, label=m)
    time_ax.set_xlabel("requests per round (resources = requests / 4)")
    time_ax.set_ylabel("seconds per round (median)")
    time_ax.set_title("Time per round, fitted power laws")
    time_ax.legend(loc="lower right")
    unit_ax.set_xscale("log")
    unit_ax.set_yscale("log")
    unit_ax.set_xlabel("requests per round (resources = requests / 4)")
    unit_ax.set_ylabel("microseconds per request")
    unit_ax.set_title("Cost per request")
    return plots.save(fig, path)


def _seconds(s: float) -> str:
    return f"{1e3 * s:.3g} ms" if s < 1 else f"{s:.3g} s"


def _markdown(plan: Plan, measurements: pd.DataFrame, fits: pd.DataFrame, stops: list[dict], env: dict) -> str:
    import pandas as pd

    lines = [
        "# Scalability: time per round against market size",
        "",
        (f"Measured with `{env['command']}` in {env['wall_time_s']:.0f} s on {env['cpus']} CPU(s) "
        f"({env['machine']}; load average {env['load_before'][0]:.2f} before, {env['load_after'][0]:.2f} after: "
        "other work on the machine inflates the times). A round is what `market bench` times, "
        "`MarketModel.step()`: the users' bids, candidates and utilities, the planners' auctions and the "
        "spill-over, the feasibility check, settlement, pricing and metrics (the clustering is built once "
        f"with the model and not timed), on a seeded synthetic market (seed {plan.seed}) with resources = requests / 4; each point is the median "
        f"of up to {plan.max_rounds} timed rounds after an untimed warm-up round."),
        "",
        "## Fitted slopes",
        "",
        ("`round_s ≈ 10^intercept * requests^slope`, least squares on log10 values over the range shown "
        f"(sizes from {plan.fit_from} requests up, where fixed per-round costs stop dominating; all sizes where "
        "fewer than three are that large). Slope 1 is linear in the market size."),
        "",
        "| mechanism | slope | R² | fitted range (requests) | points | largest size | time per round there |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    fit = fits.set_index("mechanism")
    for m in plan.mechanisms:
        rows = measurements[(measurements["mechanism"] == m) & ~measurements["censored"].astype(bool)]
        if rows.empty:
            lines.append(f"| {m} | n/a | n/a | n/a | 0 | n/a | n/a |")
            continue
        top = rows.iloc[-1]
        if m in fit.index:
            f = fit.loc[m]
            lines.append(f"| {m} | {f['slope']:.2f} | {f['r2']:.3f} | {int(f['fit_min_requests']):,} to "
                         f"{int(f['fit_max_requests']):,} | {int(f['n_points'])} | {int(top['requests']):,} | "
                         f"{_seconds(top['round_s'])} |")
        else:
            lines.append(f"| {m} | n/a | n/a | n/a | {len(rows)} | {int(top['requests']):,} | {_seconds(top['round_s'])} |")
    lines += ["", "## Where each series stops", ""]
    for s in stops:
        m = s["mechanism"]
        if s["reason"] == "grid_end":
            lines.append(f"- {m}: measured up to {s['last_requests']:,} requests, the end of the grid (`--max-requests`)."
                         if s["last_requests"] else f"- {m}: no size on its grid.")
        elif s["reason"] == "budget":
            lines.append(f"- {m}: measured up to {s['last_requests']:,} requests; the next size, "
                         f"{s['next_requests']:,}, was predicted to take {_seconds(s['predicted_s'])} per round, "
                         f"over its budget of {_seconds(s['budget_s'])}.")
        else:
            lines.append(f"- {m}: at {s['last_requests']:,} requests a round reached its {s['time_limit_s']:.0f} s "
                         "solver time limit (censored: not fitted), so larger sizes were not tried.")
    if EXACT in plan.mechanisms:
        lines.append(f"- `{EXACT}` is the exact MILP reference: it runs on its own grid from "
                     f"{plan.optimal_min_requests} requests ({EXACT_PER_DECADE} sizes per decade) with a budget of "
                     f"{_seconds(plan.optimal_max_round_s)} per round; that is the cut-off for 'reasonable time'.")
    table = measurements.assign(cell=[_seconds(s) + (" (limit)" if c else "") for s, c in
                                      zip(measurements["round_s"], measurements["censored"].astype(bool))])
    pivot = table.pivot(index="requests", columns="mechanism", values="cell").reindex(
        columns=[m for m in plan.mechanisms if m in set(measurements["mechanism"])])
    shape = measurements.groupby("requests")[["resources", "clusters", "candidates"]].first()
    lines += ["", "## Measurements (median time per round)", "",
              "Clusters and K (candidates per request) are the automatic choices for the size.", "",
              "| requests | resources | clusters | K | " + " | ".join(pivot.columns) + " |",
              "|---:|---:|---:|---:|" + "---:|" * len(pivot.columns)]
    for n, row in pivot.iterrows():
        r = shape.loc[n]
        lines.append(f"| {n:,} | {r['resources']:,} | {r['clusters']} | {r['candidates']} | "
                     + " | ".join("" if pd.isna(v) else v for v in row) + " |")
    lines += ["", (f"Peak resident memory of the measuring process: {measurements['peak_rss_mb'].max():.0f} MB "
              "(sizes run in increasing order, so the peak comes from the largest)."), "",
              "Files: [measurements.csv](measurements.csv), [fits.csv](fits.csv), [run.json](run.json).", "",
              "![Time per round against market size](scaling.png)", ""]
    return "\n".join(lines)


def run_scaling(plan: Plan, out: Path, command: str = "market scaling", log=None) -> dict:
    """Measure, fit, and write ``out`` atomically (see the module docstring).

    Returns:
        The ``run.json`` contents (parameters, environment, stops).
    """
    from market.core.io import atomic_directory
    from market.core.runner import package_versions
    from market.studies import plots
    from mechanisms import mechanism_class

    for m in plan.mechanisms:
        mechanism_class(m)
    size_grid(plan.min_requests, plan.max_requests, plan.per_decade)  # validate before the long part
    load_before = os.getloadavg()
    start = time.perf_counter()
    measurements, stops = measure(plan, log)
    if measurements.empty:
        raise MarketInputError("nothing was measured: no mechanism has a size on its grid (check --min/--max-requests)")
    fits = fit_slopes(measurements, plan.fit_from)
    env = {"command": command, "wall_time_s": round(time.perf_counter() - start, 1), "cpus": os.cpu_count(),
           "machine": f"{platform.system()} {platform.machine()}", "load_before": [round(x, 2) for x in load_before],
           "load_after": [round(x, 2) for x in os.getloadavg()], "versions": package_versions()}
    meta = {"plan": asdict(plan), "environment": env, "stops": stops}
    with atomic_directory(Path(out), "scaling") as tmp, plots.report_style():
        measurements.to_csv(tmp / "measurements.csv", index=False, float_format="%.17g")
        fits.to_csv(tmp / "fits.csv", index=False, float_format="%.17g")
        _figure(measurements, fits, list(plan.mechanisms), tmp / "scaling.png")
        (tmp / "scaling.md").write_text(_markdown(plan, measurements, fits, stops, env))
        (tmp / "run.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return meta
