"""``market llm-report``: shared against disaggregated serving pools on the Azure LLM market.

For each pool mode (``[llm] pools = "shared"`` and ``"disaggregated"``), each replay rate
(``[market] rate``: the trace replayed that many times faster, the same requests), each
mechanism and each seed, one :class:`~market.core.model.MarketModel` plays ``rounds``
rounds of the LLM-serving market (:mod:`scenarios.azure_llm`) over a market that spans
those rounds (``horizon = rounds``). The run's values are computed once, at its end, from
the model's serving ledger (``model.state.serving``: each request's TTFT, TPOT and finish
round, :mod:`market.core.serving`) and the market's
:class:`~scenarios.azure_llm.LLMServing` (SLOs, GPUs), by :func:`run_metrics`:

- ``arrived``: trace requests that arrive within the run (all the market's requests);
- ``finished``: requests whose decode ends within the run (finish round ``< rounds``);
- ``good``: finished requests whose TTFT and TPOT both meet their service's SLO;
- ``goodput``: ``good / (GPUs x rounds x round_seconds)``, requests within both SLOs per
  physical GPU per second over the whole run (the mean of the rounds' ``goodput``);
- ``throughput``: the same with every finished request;
- ``slo_attainment``: ``good / finished`` (weighted by finished requests, not a mean of
  round shares); ``ttft_attainment``, ``tpot_attainment`` each SLO alone;
  ``slo_attainment_dropped``: ``good / (finished + dropped)``, a dropped request counted
  as a miss (DistServe counts every request);
- ``ttft_p90``, ``tpot_p90``: 90th percentiles over the finished requests (recomputed from
  the ledger; a mean of round percentiles is not a percentile);
- ``dropped_share``: arrived requests one of whose phases gave up (the patience ran out
  or, for a prefill, its TTFT deadline passed) over arrived requests.

The undefined values of a run without finished requests (attainment, percentiles) are
NaN. Per ``(mode, rate, mechanism)`` the table gives the mean over seeds with a Student-t
95 % interval (:func:`market.studies.plots.mean_ci`; one seed: no interval); the
disaggregated/shared goodput ratio is paired by seed. A seed changes the tenants' split
and budgets and the mechanisms' draws, not the trace.
"""

from __future__ import annotations

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
from market.core.pool import each_result
from market.core.runner import package_versions
from market.errors import MarketInputError
from market.studies import plots
from scenarios.config import Scenario
from scenarios.sources import build_market

POOLS = ("shared", "disaggregated")
#: run-level counts and metrics (columns of ``runs.csv``, after the keys)
RUN_COLUMNS = [
    "arrived", "finished", "good", "dropped",
    "goodput", "throughput", "slo_attainment", "slo_attainment_dropped", "ttft_attainment", "tpot_attainment",
    "ttft_p90", "tpot_p90", "dropped_share",
]
#: metrics summarised over seeds, with labels
SUMMARY = [
    ("goodput", "goodput (req/GPU/s)"),
    ("slo_attainment", "SLO attainment"),
    ("slo_attainment_dropped", "SLO attainment, dropped = miss"),
    ("ttft_p90", "TTFT p90 (s)"),
    ("tpot_p90", "TPOT p90 (s)"),
    ("throughput", "throughput (req/GPU/s)"),
    ("dropped_share", "dropped share"),
    ("finished", "finished"),
    ("arrived", "arrived"),
]
KEYS = ["pools", "rate", "mechanism"]
#: the published claims the report compares with
DISTSERVE_GOODPUT = 7.4
SPLITWISE_THROUGHPUT, SPLITWISE_COST = 1.4, 0.20


# --- one run ----------------------------------------------------------------------------


def run_metrics(spec: Any, ledger: Mapping[str, np.ndarray], status: np.ndarray, rounds: int) -> dict[str, float]:
    """The run-level serving values of a played run (module docstring).

    Args:
        spec: the market's :class:`~scenarios.azure_llm.LLMServing` (uses ``n``,
            ``round_seconds``, ``arrival_s``, ``ttft_slo``, ``tpot_slo``, ``gpus``).
        ledger: ``ttft``, ``tpot`` (s, NaN until known) and ``finish`` (round, -1) per request.
        status: ``(2n,)`` market rows' status (0 waiting, 1 served, 2 gave up): prefills
            ``0..n-1``, decodes ``n..2n-1``.
        rounds: rounds played.

    Returns:
        :data:`RUN_COLUMNS` by name.
    """
    n, R = int(spec.n), float(spec.round_seconds)
    finish = np.asarray(ledger["finish"])
    ttft, tpot = np.asarray(ledger["ttft"], dtype=float), np.asarray(ledger["tpot"], dtype=float)
    status = np.asarray(status)
    arrived = np.asarray(spec.arrival_s) < rounds * R
    done = (finish >= 0) & (finish < rounds)
    ttft_ok = done & (ttft <= spec.ttft_slo)
    tpot_ok = done & (tpot <= spec.tpot_slo)
    good = ttft_ok & tpot_ok
    dropped = arrived & ((status[:n] == 2) | (status[n:] == 2))
    n_done, n_good, n_arrived, n_dropped = int(done.sum()), int(good.sum()), int(arrived.sum()), int(dropped.sum())
    gpu_seconds = float(spec.gpus) * rounds * R
    nan = float("nan")
    return {
        "arrived": n_arrived,
        "finished": n_done,
        "good": n_good,
        "dropped": n_dropped,
        "goodput": n_good / gpu_seconds,
        "throughput": n_done / gpu_seconds,
        "slo_attainment": n_good / n_done if n_done else nan,
        "slo_attainment_dropped": n_good / (n_done + n_dropped) if n_done + n_dropped else nan,
        "ttft_attainment": int(ttft_ok.sum()) / n_done if n_done else nan,
        "tpot_attainment": int(tpot_ok.sum()) / n_done if n_done else nan,
        "ttft_p90": float(np.percentile(ttft[done], 90)) if n_done else nan,
        "tpot_p90": float(np.percentile(tpot[done], 90)) if n_done else nan,
        "dropped_share": n_dropped / n_arrived if n_arrived else nan,
    }


def variant(scenario: Scenario, pools: str, rate: float, rounds: int) -> Scenario:
    """``scenario`` with ``[llm] pools``, ``[market] rate`` and a market spanning ``rounds``."""
    return scenario.replace(rounds=rounds, horizon=rounds, oracle=False, compare_flat=False,
                            market={**scenario.market, "rate": float(rate)}, llm={**scenario.llm, "pools": pools})


def run_cell(scenario: Scenario, pools: str, rate: float, seed: int, mechanisms: Sequence[str],
             rounds: int) -> list[dict[str, Any]]:
    """Every mechanism on one ``(pools, rate, seed)`` market (built once); one row each."""
    sc = variant(scenario, pools, rate, rounds)
    market = build_market(sc, seed)
    out = []
    for mech in mechanisms:
        start = time.perf_counter()
        model = MarketModel(sc, mechanism=mech, rng=seed, market=market)
        for _ in range(rounds):
            model.step()
        if model.serving is None:
            raise MarketInputError(f"scenario {scenario.name!r} is not an LLM-serving market (source 'azure_llm')")
        row = {"pools": pools, "rate": float(rate), "mechanism": mech, "seed": int(seed),
               **run_metrics(model.serving, model.state.serving, model.state.status, rounds)}
        row["_seconds"] = time.perf_counter() - start
        out.append(row)
    return out


def evaluate(scenario: Scenario, rates: Sequence[float], seeds: Sequence[int], mechanisms: Sequence[str],
             rounds: int, executor: Executor | None = None,
             progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Every ``(pools, rate, mechanism, seed)`` run; rows in that order (any executor: same rows)."""
    cells = [(p, float(r), int(s)) for p in POOLS for r in rates for s in seeds]
    total, done = len(cells) * len(mechanisms), 0
    results: dict[tuple[str, float, int], list[dict[str, Any]]] = {}
    for cell, result in zip(cells, each_result(executor, [(run_cell, (scenario, *cell, mechanisms, rounds)) for cell in cells])):
        results[cell] = result
        done += len(mechanisms)
        if progress:
            progress(done, total)
    rows = [row for p in POOLS for r in rates for m in mechanisms for s in seeds
            for row in results[(p, float(r), int(s))] if row["mechanism"] == m]
    return pd.DataFrame(rows, columns=["pools", "rate", "mechanism", "seed", *RUN_COLUMNS, "_seconds"])


# --- tables -----------------------------------------------------------------------------


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95 % t-interval over seeds per ``(pools, rate, mechanism)``, in run order.

    Columns ``pools, rate, mechanism, n_seeds`` then per metric ``m, m_low, m_high``.
    """
    rows = []
    for key, group in runs.groupby(KEYS, sort=False):
        row: dict[str, Any] = dict(zip(KEYS, key))
        row["n_seeds"] = int(group["seed"].nunique())
        for metric, _ in SUMMARY:
            row[metric], row[f"{metric}_low"], row[f"{metric}_high"] = plots.mean_ci(group[metric])
        rows.append(row)
    return pd.DataFrame(rows)


def ratios(runs: pd.DataFrame) -> pd.DataFrame:
    """Disaggregated over shared, paired by seed, per ``(rate, mechanism)``.

    Columns ``rate, mechanism, n_seeds`` and for goodput and throughput the mean ratio with
    its 95 % interval (a seed whose shared value is 0 is left out), plus the difference in
    SLO attainment (disaggregated minus shared).
    """
    shared = runs[runs["pools"] == "shared"].set_index(["rate", "mechanism", "seed"])
    dis = runs[runs["pools"] == "disaggregated"].set_index(["rate", "mechanism", "seed"])
    both = dis.join(shared, lsuffix="_dis", rsuffix="_shared", how="inner").reset_index()
    rows = []
    for (rate, mech), g in both.groupby(["rate", "mechanism"], sort=False):
        row: dict[str, Any] = {"rate": rate, "mechanism": mech, "n_seeds": len(g)}
        for metric in ("goodput", "throughput"):
            base = g[f"{metric}_shared"].to_numpy(dtype=float)
            r = np.where(base > 0, g[f"{metric}_dis"].to_numpy(dtype=float) / np.where(base > 0, base, 1.0), np.nan)
            row[f"{metric}_ratio"], row[f"{metric}_ratio_low"], row[f"{metric}_ratio_high"] = plots.mean_ci(r)
        d = g["slo_attainment_dis"].to_numpy(dtype=float) - g["slo_attainment_shared"].to_numpy(dtype=float)
        row["d_slo_attainment"], row["d_slo_attainment_low"], row["d_slo_attainment_high"] = plots.mean_ci(d)
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.{digits}g}"


def _cell(row: Mapping[str, Any], metric: str, digits: int = 3) -> str:
    lo, hi = row[f"{metric}_low"], row[f"{metric}_high"]
    if isinstance(lo, float) and math.isnan(lo):
        return _fmt(row[metric], digits)
    return f"{_fmt(row[metric], digits)} [{_fmt(lo, digits)}, {_fmt(hi, digits)}]"


def markdown_table(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table: mean [95 % interval] over seeds."""
    header = ("| pools | rate | mechanism | goodput (req/GPU/s) | SLO attainment | SLO att., dropped = miss "
              "| TTFT p90 (s) | TPOT p90 (s) | dropped share | finished / arrived |")
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in summary.iterrows():
        lines.append(f"| {r['pools']} | {r['rate']:g} | {r['mechanism']} | {_cell(r, 'goodput')} | "
                     f"{_cell(r, 'slo_attainment')} | {_cell(r, 'slo_attainment_dropped')} | {_cell(r, 'ttft_p90')} | {_cell(r, 'tpot_p90')} | "
                     f"{_cell(r, 'dropped_share')} | {r['finished']:.1f} / {r['arrived']:.1f} |")
    return "\n".join(lines) + "\n"


# --- figures ----------------------------------------------------------------------------


def rate_figure(summary: pd.DataFrame, metric: str, label: str, title: str, path: Path) -> Path:
    """``metric`` against the rate: a line per mechanism, shared solid, disaggregated dashed, 95 % bars."""
    from matplotlib.lines import Line2D

    mechanisms = list(dict.fromkeys(summary["mechanism"]))
    styles = plots.mechanism_styles(mechanisms)
    rates = sorted(summary["rate"].unique())
    # a small horizontal offset per line (log axis: a factor) keeps the bars apart
    lines = [(p, m) for p in POOLS for m in mechanisms]
    spread = 0.012 * (len(lines) - 1) / 2
    with plots.report_style():
        fig, axes = plots.figure(1, 1, width=7.5, height=4.6)
        ax = axes[0, 0]
        for k, (pool, mech) in enumerate(lines):
            rows = summary[(summary["pools"] == pool) & (summary["mechanism"] == mech)].sort_values("rate")
            if rows.empty:
                continue
            x = rows["rate"].to_numpy(dtype=float) * 2 ** (0.012 * k - spread)
            m = rows[metric].to_numpy(dtype=float)
            err = np.nan_to_num(np.abs(np.vstack([m - rows[f"{metric}_low"].to_numpy(dtype=float),
                                                  rows[f"{metric}_high"].to_numpy(dtype=float) - m])), nan=0.0)
            ax.errorbar(x, m, yerr=err, color=styles[mech][0], linestyle="-" if pool == "shared" else "--",
                        marker="o" if pool == "shared" else "s", markersize=3.5, capsize=2, elinewidth=0.9)
        ax.set_xscale("log", base=2)
        ax.set_xticks(rates, [f"{r:g}" for r in rates])
        ax.minorticks_off()
        ax.set_xlabel("replay rate (x the trace's request rate)")
        ax.set_ylabel(label)
        ax.set_title(title)
        handles = [Line2D([], [], color=styles[m][0], label=m) for m in mechanisms]
        handles += [Line2D([], [], color="#444444", linestyle="-", marker="o", markersize=3.5, label="shared"),
                    Line2D([], [], color="#444444", linestyle="--", marker="s", markersize=3.5, label="disaggregated")]
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5))
        return plots.save(fig, path)


# --- report -----------------------------------------------------------------------------


def _comparison(summary: pd.DataFrame, ratio: pd.DataFrame, info: Mapping[str, Any]) -> list[str]:
    """The measured comparison with DistServe and Splitwise, in sentences from the numbers."""
    out = []
    g = ratio["goodput_ratio"].to_numpy(dtype=float)
    t = ratio["throughput_ratio"].to_numpy(dtype=float)
    if np.isfinite(g).any():
        best = ratio.loc[ratio["goodput_ratio"].idxmax()]
        worst = ratio.loc[ratio["goodput_ratio"].idxmin()]
        out.append(
            f"- **Goodput ratio disaggregated / shared** (same instances, paired by seed): from "
            f"{_fmt(worst['goodput_ratio'])} ({worst['mechanism']}, rate {worst['rate']:g}) to "
            f"{_fmt(best['goodput_ratio'])} ({best['mechanism']}, rate {best['rate']:g}); "
            f"{int((g > 1).sum())} of {int(np.isfinite(g).sum())} (rate, mechanism) cells above 1.")
        by_rate = ratio.groupby("rate", sort=True)["goodput_ratio"].agg(["min", "median", "max"])
        out.append("- Per rate (min / median / max over mechanisms): "
                   + "; ".join(f"rate {r:g}: {_fmt(v['min'])} / {_fmt(v['median'])} / {_fmt(v['max'])}"
                               for r, v in by_rate.iterrows()) + ".")
    if np.isfinite(t).any():
        out.append(f"- **Throughput ratio** (finished requests, SLOs ignored): median {_fmt(float(np.nanmedian(t)))}, "
                   f"range {_fmt(float(np.nanmin(t)))} to {_fmt(float(np.nanmax(t)))}.")
    d = ratio["d_slo_attainment"].to_numpy(dtype=float)
    if np.isfinite(d).any():
        out.append(f"- **SLO attainment difference** (disaggregated minus shared): median {_fmt(float(np.nanmedian(d)), 2)}, "
                   f"range {_fmt(float(np.nanmin(d)), 2)} to {_fmt(float(np.nanmax(d)), 2)}.")
    for pool in POOLS:
        s = summary[summary["pools"] == pool]
        out.append(f"- {pool}: SLO attainment {_fmt(s['slo_attainment'].min(), 2)} to {_fmt(s['slo_attainment'].max(), 2)}, "
                   f"TTFT p90 {_fmt(s['ttft_p90'].min())} to {_fmt(s['ttft_p90'].max())} s, TPOT p90 "
                   f"{_fmt(s['tpot_p90'].min())} to {_fmt(s['tpot_p90'].max())} s, dropped share "
                   f"{_fmt(s['dropped_share'].min(), 2)} to {_fmt(s['dropped_share'].max(), 2)}.")
    gmax = float(np.nanmax(g)) if np.isfinite(g).any() else float("nan")
    gmed = float(np.nanmedian(g)) if np.isfinite(g).any() else float("nan")
    tmed = float(np.nanmedian(t)) if np.isfinite(t).any() else float("nan")
    if gmax >= DISTSERVE_GOODPUT / 2:
        verdict = "the size is of the published order."
    elif gmed > 1:
        verdict = "the direction is reproduced in most cells, the size is not."
    elif gmax > 1:
        verdict = "the direction is reproduced only in some cells, the size is not."
    else:
        verdict = "not reproduced: disaggregation does not raise goodput here."
    cap = info.get("capacity", {})
    if set(POOLS) <= set(cap):
        sh, di = cap["shared"], cap["disaggregated"]
        out.append(
            f"- The fixed split changes both phases' capacity: disaggregated has "
            f"{di['prefill_tokens_per_s'] / sh['prefill_tokens_per_s']:.2f}x the shared prefill rate and "
            f"{di['decode_slots'] / max(sh['decode_slots'], 1e-12):.2f}x its decode slots (time slicing gives prefill only "
            "its share of every instance and, to keep TPOT within the SLO in the rest of the time, shrinks the batch far "
            "more). The comparison is one of provisioning as much as of interference.")
    out += [
        "",
        (f"DistServe (Zhong et al., OSDI 2024) reports up to {DISTSERVE_GOODPUT}x more requests served within both "
         f"the TTFT and the TPOT SLO with disaggregation; here the goodput ratio is at most {_fmt(gmax)}x (median "
         f"{_fmt(gmed)}x): {verdict}"),
        (f"Splitwise (Patel et al., ISCA 2024) reports {SPLITWISE_THROUGHPUT}x throughput at "
         f"{SPLITWISE_COST:.0%} lower cost with separate prefill and decode pools. Both modes here run the same "
         f"instances (the same cost), so the cost side is not tested; the median throughput ratio is {_fmt(tmed)}x."),
    ]
    return out


#: why this model cannot give the published sizes (structural, independent of the numbers)
LIMITS = [
    ("- **Shared mode is time slicing at a fixed share** (`shared_prefill_share`, 0.5 by default): every shared "
     "instance gives half of each round to prefill and decodes at `tpot / (1 - share)`, whether or not prefill work "
     "is waiting. Real co-located serving (vLLM, the baseline DistServe and Splitwise beat) batches prefills into "
     "running decodes, so decode steps stall behind long prefills: that prefill-decode interference is what "
     "disaggregation removes, and it is absent here. A fixed slice instead halves both phases' capacity "
     "uniformly, which favours neither mode in a load-dependent way."),
    ("- **No chunked prefill** and a constant prefill rate per GPU type (`scenarios/llm_perf.py`): no "
     "piggy-backing of prefill chunks on decode batches, no quadratic attention cost."),
    ("- **Linear TPOT in the batch size** without a context-length term: long-context decodes are not slower, so "
     "the KV-heavy decode pool Splitwise provisions separately has no extra cost to avoid."),
    ("- **Round-based batching delay**: a request waits for its round to clear (up to one round, 0.25 s) before "
     "prefill and again before its decode is sold; the TTFT SLO is therefore 1 s here (the DistServe SLOs of "
     "0.125-0.4 s are below the market's batching delay), which hides most of the TTFT effects DistServe "
     "measures at tighter SLOs."),
    ("- **Disaggregated pools are a fixed split** (`prefill_share` of each type's instances), not the "
     "per-workload search DistServe does over parallelism and placement; the KV transfer costs whole rounds."),
    ("- **Only requests finishing within the run count** toward goodput and attainment; requests with long "
     "outputs that are still decoding at the end are left out (both modes alike), and a request dropped before "
     "finishing is not counted in attainment (see the dropped share)."),
]


def report_markdown(info: Mapping[str, Any], summary: pd.DataFrame, ratio: pd.DataFrame) -> str:
    """``summary.md``: how it was run, the table, the plots, the comparison with the claims."""
    lines = [
        f"# LLM serving: shared vs disaggregated pools on `{info['scenario']}`",
        "",
        f"Scenario `{info['scenario']}` ({info['description']}).",
        "",
        f"- Command: `{info['command']}`" if info.get("command") else "- Command: (library call)",
        (f"- Pool modes {', '.join(POOLS)}; replay rates {', '.join(f'{r:g}' for r in info['rates'])}; mechanisms "
         f"{', '.join(info['mechanisms'])}; seeds {', '.join(map(str, info['seeds']))}; {info['rounds']} rounds of "
         f"{info['round_seconds']:g} s ({info['rounds'] * info['round_seconds']:g} s of market time: trace seconds "
         f"{info['start_seconds']:g} to {info['start_seconds']:g} + {info['rounds'] * info['round_seconds']:g} x rate, "
         "counted from the first request of either service)."),
        (f"- Instances {info['instances']} ({info['gpus']} GPUs); disaggregated: prefill share "
         f"{info['prefill_share']:g} of each type's instances; shared: {info['shared_prefill_share']:g} of each round to "
         f"prefill. SLOs (TTFT / TPOT, s): {info['slo']}."),
        "- Capacity of the market (all instances; a shared instance's prefill rate is its share of the round, its "
        "decode batch the largest whose TPOT meets the tightest TPOT SLO at `1 - share` of the time): "
        + "; ".join(f"{p}: {c['prefill_tokens_per_s']:,.0f} prefill tokens/s, {c['decode_slots']:,.0f} decode slots, "
                    f"{c['kv_gb']:,.0f} GB KV" for p, c in info["capacity"].items()) + ".",
        (f"- {info['runs']} runs, wall time {info['wall_time_s']:.0f} s with {info['workers']} worker(s) on "
         f"{info['cpus']} CPUs (shared with other jobs); code `{info.get('code', 'unknown')}`."),
        "",
        ("A run's values are computed from its serving ledger at the end (TTFT, TPOT and finish round of every "
         "request): **goodput** = requests finished within both SLOs per GPU per second over the run; **SLO "
         "attainment** = within-both-SLOs / finished; **TTFT / TPOT p90** over the finished requests; **dropped "
         "share** = requests one of whose phases gave up / arrived; **SLO attainment, dropped = miss** = "
         "within-both-SLOs / (finished + dropped). Cells: mean [95 % Student-t interval] over "
         "seeds (one seed: the mean alone)."),
        "",
        "## Results",
        "",
        markdown_table(summary),
        "![goodput](goodput.png)",
        "",
        "![SLO attainment](slo_attainment.png)",
        "",
        "## Disaggregated vs shared",
        "",
        "| rate | mechanism | goodput ratio | throughput ratio | Δ SLO attainment |",
        "|---|---|---|---|---|",
    ]
    for _, r in ratio.iterrows():
        lines.append(f"| {r['rate']:g} | {r['mechanism']} | {_cell(r, 'goodput_ratio')} | {_cell(r, 'throughput_ratio')} "
                     f"| {_cell(r, 'd_slo_attainment', 2)} |")
    lines += ["", "## Comparison with the published claims", "", *_comparison(summary, ratio, info), "",
              "What this model leaves out, and why the published sizes are not expected:", "", *LIMITS, "",
              "## Files", "",
              "- `table.csv` / `table.md`: per (pools, rate, mechanism), mean and 95 % interval over seeds.",
              "- `runs.csv`: per run (pools, rate, mechanism, seed): counts and run-level metrics.",
              "- `ratios.csv`: disaggregated / shared per (rate, mechanism), paired by seed.",
              "- `goodput.png`, `slo_attainment.png`; `manifest.json`: arguments, versions, sha256 of the tables.", ""]
    return "\n".join(lines)


def capacity(scenario: Scenario, seed: int) -> dict[str, float]:
    """The market's serving capacity: prefill tokens/s, decode batch slots, KV GB (all instances)."""
    market = build_market(scenario, seed)
    res, R = market.resources, float(scenario.market.get("round_seconds", 1.0))
    return {"prefill_tokens_per_s": float(res["prefill"].sum()) / R, "decode_slots": float(res["batch"].sum()),
            "kv_gb": float(res["kv"].sum())}


def code_version() -> str:
    """``git describe --always --dirty`` of the source tree, or ``"unknown"``."""
    import subprocess

    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_report(
    scenario: Scenario, out: Path, rates: Sequence[float], seeds: Sequence[int], rounds: int,
    mechanisms: Sequence[str], executor: Executor | None = None, workers: int = 1,
    progress: Callable[[int, int], None] | None = None, command: str | None = None,
) -> dict[str, Any]:
    """Run every variant and write ``out`` atomically (tables, plots, ``summary.md``, manifest).

    Returns:
        The manifest.
    """
    from scenarios import azure_llm, llm_perf

    start = time.perf_counter()
    runs = evaluate(scenario, rates, seeds, mechanisms, rounds, executor, progress)
    seconds = runs.pop("_seconds")
    summary = summarize(runs)
    ratio = ratios(runs)
    opt = azure_llm.options(variant(scenario, "shared", 1.0, rounds).source_params(), scenario.llm, scenario.path)
    lo = opt["llm"]
    services = opt["services"]
    info: dict[str, Any] = {
        "scenario": scenario.name, "description": scenario.description, "rates": [float(r) for r in rates],
        "seeds": [int(s) for s in seeds], "rounds": int(rounds), "round_seconds": float(opt["round_seconds"]),
        "start_seconds": float(opt["start_seconds"]),
        "mechanisms": list(mechanisms), "workers": int(workers), "cpus": _cpus(), "runs": len(runs),
        "command": command, "instances": dict(lo["instances"]),
        "gpus": int(sum(lo["instances"].values())) * llm_perf.GPUS_PER_INSTANCE,
        "prefill_share": float(lo["prefill_share"]), "shared_prefill_share": float(lo["shared_prefill_share"]),
        "slo": ", ".join(f"{s} {lo['slo'][s].ttft_s:g} / {lo['slo'][s].tpot_s:g}" for s in services),
        "run_seconds_total": float(seconds.sum()), "code": code_version(),
        "capacity": {p: capacity(variant(scenario, p, 1.0, rounds), int(seeds[0])) for p in POOLS},
    }
    with atomic_directory(out, "llm-report") as tmp:
        hashes = {}
        for name, df in (("runs", runs), ("table", summary), ("ratios", ratio)):
            path = write_table(df, tmp / name, "csv")
            hashes[path.name] = sha256_file(path)
        (tmp / "table.md").write_text(markdown_table(summary))
        rate_figure(summary, "goodput", "goodput (requests within both SLOs / GPU / s)",
                    f"{scenario.name}: goodput vs replay rate (mean, 95 % t-interval)", tmp / "goodput.png")
        rate_figure(summary, "slo_attainment", "SLO attainment (finished requests within both SLOs)",
                    f"{scenario.name}: SLO attainment vs replay rate", tmp / "slo_attainment.png")
        info["wall_time_s"] = time.perf_counter() - start
        (tmp / "summary.md").write_text(report_markdown(info, summary, ratio))
        manifest = {**info, "scenario_resolved": scenario.to_dict(), "versions": package_versions(), "sha256": hashes}
        write_json(manifest, tmp / "manifest.json")
    return manifest
