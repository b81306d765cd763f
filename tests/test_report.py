"""``market report`` and ``market scaling``: files, numbers, intervals, bad input.

Which rounds count (rounds without requests, failed rounds) and who may win a row are
checked on real runs (the small scenario; a tabular market of two requests) and on
written rounds tables where a mechanism fails (the new oracle columns) or an older run
has gaps (NaN).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from market.apps.cli import main
from market.apps.report import MULTIRESOURCE, RESTRICTIONS, SUMMARY, TRAJECTORIES, write_report
from tests.conftest import read_run

PNG = b"\x89PNG\r\n\x1a\n"
#: the small scenario is a cpu/mem market: it has the multi-resource section (dominant shares, envy)
FIGURES = {"comparison.png", "multiresource.png", "price_convergence.png", "alg_opt.png", "timing.png",
           *(f"{metric}.png" for metric, _ in TRAJECTORIES)}


@pytest.fixture(scope="module")
def report(small_run, tmp_path_factory) -> tuple[Path, dict[str, pd.DataFrame]]:
    out = tmp_path_factory.mktemp("report") / "report"
    assert main(["report", str(small_run[0]), "--out", str(out)]) == 0
    return out, read_run(small_run[0])


def test_report_writes_figures_and_summary(report):
    out, _ = report
    files = {p.name for p in out.iterdir()}
    assert files == FIGURES | {"summary.md", "summary.csv", "multiresource.csv", ".market-output"}  # no temporaries
    for name in FIGURES:
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, name
    md = (out / "summary.md").read_text()
    linked = set(re.findall(r"\]\(([^)]+\.png)\)", md))
    assert linked == FIGURES  # every figure is linked, every link resolves


def counted(rounds: pd.DataFrame) -> pd.DataFrame:
    """The rounds the report's means are over: with requests, and not failed."""
    failed = rounds["mechanism_failed"].astype(bool) if "mechanism_failed" in rounds else False
    return rounds[(rounds["n_requests"] > 0) & ~failed]


def md_row(md: str, label: str) -> list[str]:
    """The cells of the summary.md table row whose first cell is ``label``."""
    line = next(line for line in md.splitlines() if line.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")][1:]


def test_summary_means_equal_rounds_table(report):
    out, tables = report
    rounds = tables["rounds"]
    summary = pd.read_csv(out / "summary.csv")
    metrics = [m for m, _, _ in SUMMARY] + [m for m, _, _ in MULTIRESOURCE] + [m for m, _ in RESTRICTIONS]
    present = [m for m in dict.fromkeys(metrics) if m in rounds and rounds[m].notna().any()]
    assert set(summary["metric"]) == set(present)
    assert {"efficiency", "welfare", "jain", "gini", "alg_opt"} <= set(present)  # the small run has the oracle on
    kept = counted(rounds)
    for mechanism, group in kept.groupby("mechanism"):
        for metric in present:
            row = summary[(summary["mechanism"] == mechanism) & (summary["metric"] == metric)].iloc[0]
            per_seed = group.groupby("seed")[metric].mean()
            assert row["mean"] == pytest.approx(per_seed.mean(), rel=1e-12, abs=1e-12)
            assert row["n_seeds"] == per_seed.size == 2
            assert row["n_rounds"] == group[metric].notna().sum() and row["n_missing"] == 0
            if per_seed.std() > 0:  # identical seeds (e.g. a ratio of 1 in every round): no spread
                low, high = stats.t.interval(0.95, per_seed.size - 1, loc=per_seed.mean(), scale=stats.sem(per_seed))
                assert row["ci_low"] == pytest.approx(low, rel=1e-9)
                assert row["ci_high"] == pytest.approx(high, rel=1e-9)
            assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    # the Markdown table shows the same means: one row per metric, one column per mechanism
    md = (out / "summary.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| metric |"))
    mechanisms = [c.strip() for c in header.strip("|").split("|")][1:]
    assert mechanisms == list(dict.fromkeys(rounds["mechanism"]))
    cells = [c.strip("*") for c in md_row(md, "efficiency")]
    for mechanism, cell in zip(mechanisms, cells):
        per_seed = kept[kept["mechanism"] == mechanism].groupby("seed")["efficiency"].mean()
        assert cell.split(" ± ")[0] == f"{per_seed.mean():.4g}"
    # the bold cell of a row is its best mean, and summary.csv says the same
    efficiency = summary[summary["metric"] == "efficiency"].set_index("mechanism")
    best = efficiency.loc[efficiency["n_failed"] == 0, "mean"].idxmax()
    assert efficiency["n_failed"].tolist() == [
        int(rounds.loc[rounds["mechanism"] == m, "mechanism_failed"].sum()) if "mechanism_failed" in rounds else 0
        for m in efficiency.index]
    assert efficiency["best"].tolist() == [m == best for m in efficiency.index]
    assert [c.startswith("**") for c in md_row(md, "efficiency")] == [m == best for m in mechanisms]
    # the ALG/OPT figure and the oracle's own table are there
    assert "![ALG/OPT" in md and "### The oracle per mechanism" in md


def test_csv_run_gives_the_same_report(report, small_run, tmp_path):
    """The same tables as CSV give the same numbers and byte-identical figures."""
    out, tables = report
    run = tmp_path / "csv_run"
    run.mkdir()
    for name in ("rounds", "timings"):
        tables[name].to_csv(run / f"{name}.csv", index=False, float_format="%.17g")
    manifest = json.loads((small_run[0] / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "format": "csv"}))
    figures = write_report(run, tmp_path / "report")
    assert {f"{f}" for f in figures.values()} == FIGURES
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "report" / "summary.csv"), pd.read_csv(out / "summary.csv"))
    for name in FIGURES:
        assert (tmp_path / "report" / name).read_bytes() == (out / name).read_bytes(), name


def test_single_seed_has_no_interval(report, tmp_path):
    _, tables = report
    run = tmp_path / "one_seed"
    run.mkdir()
    rounds = tables["rounds"]
    rounds[(rounds["seed"] == rounds["seed"].min()) & rounds["mechanism"].isin(["mohaf", "random"])].to_csv(
        run / "rounds.csv", index=False)
    figures = write_report(run, tmp_path / "report")
    assert "timing" not in figures and "alg_opt" in figures  # no timings table; the oracle ran
    summary = pd.read_csv(tmp_path / "report" / "summary.csv")
    assert set(summary["mechanism"]) == {"mohaf", "random"} and (summary["n_seeds"] == 1).all()
    assert summary["ci_low"].isna().all() and summary["ci_high"].isna().all()
    assert "one seed: no interval" in (tmp_path / "report" / "summary.md").read_text()


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    return err


def test_bad_run_dir_is_one_line_exit_2(tmp_path, capsys, report):
    out = tmp_path / "out"
    missing = tmp_path / "nope"
    assert str(missing) in _error(capsys, ["report", str(missing), "--out", str(out)])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "rounds" in _error(capsys, ["report", str(empty), "--out", str(out)])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "rounds.parquet").write_bytes(b"not parquet")
    assert "rounds.parquet" in _error(capsys, ["report", str(broken), "--out", str(out)])
    cut = tmp_path / "cut"
    cut.mkdir()
    read_run_rounds = pd.read_csv(report[0] / "summary.csv")  # any table without the run columns
    read_run_rounds.to_csv(cut / "rounds.csv", index=False)
    err = _error(capsys, ["report", str(cut), "--out", str(out)])
    assert "rounds.csv" in err and "missing column" in err and "seed" in err
    assert not out.exists() and not list(tmp_path.glob(".out*"))  # no partial output


def test_bad_cell_names_row_and_column(report, small_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(small_run[0], run)
    rounds = pd.read_parquet(run / "rounds.parquet")
    rounds["jain"] = rounds["jain"].astype(object)
    rounds.loc[5, "jain"] = "high"
    (run / "rounds.parquet").unlink()
    rounds.to_csv(run / "rounds.csv", index=False)
    err = _error(capsys, ["report", str(run), "--out", str(tmp_path / "out")])
    assert "rounds.csv" in err and "row 5" in err and "'jain'" in err


TWO_REQUESTS = textwrap.dedent(
    """
    name = "two-requests"
    rounds = 3
    seeds = [1]
    mechanisms = ["greedy", "mohaf"]
    oracle = true

    [market]
    source = "tabular"
    requests = "requests.csv"
    resources = "resources.csv"
    """
)


def test_rounds_without_requests_are_left_out(tmp_path):
    """Two requests arrive in round 0 of a 3-round run and both are served: the means are round 0's."""
    pd.DataFrame({
        "request_id": [10, 11], "user_id": [1, 1], "round": [0, 0], "cpu": [1.0, 2.0], "mem": [1.0, 1.0],
        "budget": [10.0, 12.0], "priority": [1, 5], "x": [0.0, 1.0], "y": [0.0, 0.0],
    }).to_csv(tmp_path / "requests.csv", index=False)
    pd.DataFrame({
        "resource_id": [100, 101, 102], "cpu": [4.0, 2.0, 8.0], "mem": [4.0, 4.0, 8.0],
        "unit_cost": [1.0, 0.5, 2.0], "reliability": [0.9, 0.95, 0.99], "availability": [0.9, 0.99, 0.999],
        "energy_efficiency": [0.5, 0.7, 0.9], "x": [0.0, 1.0, 5.0], "y": [0.0, 1.0, 5.0],
    }).to_csv(tmp_path / "resources.csv", index=False)
    (tmp_path / "scenario.toml").write_text(TWO_REQUESTS)
    run, out = tmp_path / "run", tmp_path / "report"
    assert main(["run", str(tmp_path / "scenario.toml"), "--out", str(run), "--quiet"]) == 0
    assert main(["report", str(run), "--out", str(out)]) == 0
    rounds = pd.read_parquet(run / "rounds.parquet")
    assert rounds["n_requests"].tolist() == [2, 0, 0] * 2 and rounds["n_allocated"].tolist() == [2, 0, 0] * 2
    summary = pd.read_csv(out / "summary.csv").set_index(["mechanism", "metric"])
    for mechanism in ("greedy", "mohaf"):
        first = rounds[(rounds["mechanism"] == mechanism) & (rounds["round"] == 0)].iloc[0]
        assert summary.loc[(mechanism, "satisfaction"), "mean"] == 1.0  # not 1/3: rounds 1 and 2 had no market
        assert rounds.loc[rounds["mechanism"] == mechanism, "satisfaction"].mean() == pytest.approx(1 / 3)
        assert first["efficiency"] > 0.5
        for metric in ("efficiency", "welfare", "jain", "utilization", "energy", "mean_price", "alg_opt"):
            assert summary.loc[(mechanism, metric), "mean"] == first[metric], metric
            assert summary.loc[(mechanism, metric), "n_rounds"] == 1
    md = (out / "summary.md").read_text()
    assert "- rounds with no requests, left out of every mean: 2 of 3 rounds of every mechanism" in md
    assert "a round with no requests (`n_requests = 0`) is left out of every per-seed mean" in md
    assert md_row(md, "satisfaction (served share)") == ["**1**", "**1**"]
    assert "failed" not in md.split("## Means per mechanism")[0]  # no mechanism failed


def write_run(path: Path, rounds: pd.DataFrame, fmt: str, mechanisms: list[str]) -> Path:
    """A run directory holding only a rounds table and the manifest the report reads."""
    path.mkdir()
    if fmt == "csv":
        rounds.to_csv(path / "rounds.csv", index=False, float_format="%.17g")
    else:
        rounds.to_parquet(path / "rounds.parquet", index=False)
    (path / "manifest.json").write_text(json.dumps({"format": fmt, "mechanisms": mechanisms,
                                                    "scenario": {"name": path.name}}))
    return path


#: seed 1 rounds 1 and 3 and seed 2 round 2: optimal's solver found no allocation
FAILED = {(1, 1), (1, 3), (2, 2)}


def failing_rounds() -> pd.DataFrame:
    """Three mechanisms, two seeds, five rounds (the last without requests), new oracle columns.

    ``optimal`` has the highest welfare, Jain and the lowest Gini and energy in the rounds
    it solved, and fails in three rounds (nothing served: efficiency 0, Jain 1, Gini 0,
    energy 0). ``mohaf`` leads in utility welfare, ``random`` in money.
    """
    base = {
        "mohaf": {"welfare": 5.0, "value_welfare": 4.0, "jain": 0.5, "jain_winners": 0.9, "gini": 0.4,
                  "energy": 10.0, "alg_opt": 0.8, "alg_bound": 0.7, "alg_value_bound": 0.6, "cluster_loss": 0.1},
        "random": {"welfare": 4.0, "value_welfare": 6.0, "jain": 0.45, "jain_winners": 0.85, "gini": 0.45,
                   "energy": 11.0, "alg_opt": 0.7, "alg_bound": 0.6, "alg_value_bound": 0.8, "cluster_loss": 0.2},
        "optimal": {"welfare": 6.0, "value_welfare": 5.0, "jain": 0.55, "jain_winners": 0.95, "gini": 0.3,
                    "energy": 12.0, "alg_opt": 0.95, "alg_bound": 0.9, "alg_value_bound": 0.85, "cluster_loss": 0.0},
    }
    rows = []
    for mechanism, values in base.items():
        for seed in (1, 2):
            for t in range(5):
                failed = mechanism == "optimal" and (seed, t) in FAILED
                empty = t == 4
                row = {"mechanism": mechanism, "seed": seed, "round": t, "n_requests": 0 if empty else 10,
                       "mechanism_failed": failed}
                if failed or empty:
                    row.update(n_allocated=0, welfare=0.0, value_welfare=0.0, efficiency=0.0, satisfaction=0.0,
                               jain=1.0, jain_winners=1.0, gini=0.0, utilization=0.0, revenue=0.0, energy=0.0,
                               alg_opt=0.0 if failed else 1.0, alg_bound=0.0 if failed else 1.0,
                               alg_value_bound=0.0 if failed else 1.0, cluster_loss=1.0 if failed else 0.0)
                else:
                    welfare = values["welfare"] + 0.1 * t
                    row.update(values, n_allocated=5, welfare=welfare, efficiency=welfare / 10, satisfaction=0.5,
                               utilization=0.6, revenue=3.0)
                row["mean_price"] = 1.0 + 0.01 * t
                row["price_change"] = 0.01
                row["opt_welfare"] = row["welfare"] / row["alg_opt"] if row["alg_opt"] else 7.0
                row["bound_welfare"] = row["welfare"] / row["alg_bound"] if row["alg_bound"] else 7.5
                row["opt_proven"] = t in (0, 1, 2, 4)
                row["opt_status"] = ("bound_only" if (mechanism, seed, t) == ("optimal", 1, 1) else
                                     "optimal" if t in (0, 1, 2, 4) else "feasible")
                row["opt_scope"] = "candidates" if (seed, t) == (2, 0) else "all"
                rows.append(row)
    return pd.DataFrame(rows)


def test_failed_rounds_are_left_out_and_never_win(tmp_path):
    mechanisms = ["mohaf", "random", "optimal"]
    run = write_run(tmp_path / "failures", failing_rounds(), "csv", mechanisms)
    out = tmp_path / "report"
    assert main(["report", str(run), "--out", str(out)]) == 0
    summary = pd.read_csv(out / "summary.csv").set_index(["mechanism", "metric"])
    # optimal's means are over its solved rounds with requests: seed 1 rounds 0, 2; seed 2 rounds 0, 1, 3
    seed1, seed2 = (0.60 + 0.62) / 2, (0.60 + 0.61 + 0.63) / 3
    assert summary.loc[("optimal", "efficiency"), "mean"] == pytest.approx((seed1 + seed2) / 2, rel=1e-12)
    assert summary.loc[("optimal", "efficiency"), "n_rounds"] == 5
    assert (summary.xs("optimal", level="mechanism")["n_failed"] == 3).all()
    for metric, value in [("jain", 0.55), ("gini", 0.3), ("energy", 12.0), ("satisfaction", 0.5), ("alg_bound", 0.9)]:
        assert summary.loc[("optimal", metric), "mean"] == pytest.approx(value, rel=1e-12), metric
    assert summary.loc[("mohaf", "efficiency"), "n_rounds"] == 8 and summary.loc[("mohaf", "jain"), "mean"] == 0.5
    # never a false winner: optimal leads efficiency, welfare, Jain, Gini in the rounds it solved, and is bolded nowhere
    best = summary[summary["best"]].reset_index()
    assert "optimal" not in set(best["mechanism"])
    winners = dict(zip(best["metric"], best["mechanism"]))
    assert winners["efficiency"] == winners["welfare"] == winners["jain"] == winners["gini"] == "mohaf"
    assert winners["energy"] == "mohaf" and winners["value_welfare"] == "random"
    assert winners["alg_bound"] == "mohaf" and winners["alg_value_bound"] == "random"
    assert "mean_price" not in winners  # no better direction
    md = (out / "summary.md").read_text()
    assert "- optimal: 3 of 10 rounds failed: the solver found no allocation; left out" in md
    assert "- rounds with no requests, left out of every mean: 2 of 10 rounds of every mechanism" in md
    assert "Never bolded: optimal (failed rounds; its means are over the other rounds)." in md
    for label in ("efficiency", "Jain, all requests", "Gini over users", "energy", "ALG/OPT"):
        cells = md_row(md, label)
        assert not cells[2].startswith("**") and cells[0].startswith("**"), label
    assert md_row(md, "Gini over users")[2] == "0.3 ± 0"
    # two yardsticks: utility ranks mohaf first, money random; optimal is not ranked
    ranking = md.split("## Two yardsticks")[1]
    assert md_row(ranking, "mohaf")[1] == "1" and md_row(ranking, "mohaf")[5] == "2"
    assert md_row(ranking, "random")[1] == "2" and md_row(ranking, "random")[5] == "1"
    assert md_row(ranking, "optimal")[1] == md_row(ranking, "optimal")[5] == "-"
    assert "The rankings differ: by utility mohaf > random; in money random > mohaf" in ranking
    assert "an upper estimate of the true ratio" in ranking and "a proven lower bound" in ranking
    assert "The true ratio lies between the two." in ranking
    # the oracle's status and scope per mechanism, over the rounds with requests (4 per seed)
    assert "| mechanism | optimal | feasible | bound_only | scope all | scope candidates | proven |" in md
    status = md.split("### The oracle per mechanism")[1]
    assert md_row(status, "mohaf") == ["6", "2", "0", "7", "1", "75 %"]
    assert md_row(status, "optimal") == ["5", "2", "1", "7", "1", "75 %"]
    # the cost of restrictions: optimal against the whole market, and the hierarchy
    restrictions = md.split("## The cost of restrictions")[1]
    assert "Over its 5 counted rounds it reaches ALG/OPT 0.95 ± 0 and ALG/bound 0.9 ± 0" in restrictions
    assert "costs between 5.0 % and 10.0 % (the true share lies in that range)" in restrictions
    assert "in 4 of these rounds; in the other 1 only candidate pairs" in restrictions
    assert "In 3 of 10 rounds its solver found no allocation within its limits" in restrictions
    assert md_row(restrictions, "cluster loss") == ["0.1 ± 0", "0.2 ± 0", "0 ± 0"]
    assert summary.loc[("optimal", "cluster_loss"), "mean"] == 0.0
    figures = {p.name for p in out.glob("*.png")}
    assert "alg_opt.png" in figures and "timing.png" not in figures


def test_old_run_nan_never_wins(tmp_path):
    """A run from before mechanism_failed and the bounds: alg_opt with gaps, opt_proven with gaps."""
    rounds = failing_rounds()
    rounds = rounds[rounds["mechanism"] != "optimal"].drop(columns=[
        "mechanism_failed", "value_welfare", "bound_welfare", "alg_bound", "alg_value_bound", "opt_status",
        "opt_scope", "cluster_loss"]).reset_index(drop=True)
    gap = (rounds["mechanism"] == "random") & (rounds["seed"] == 1) & (rounds["round"] == 2)
    rounds.loc[rounds["mechanism"] == "random", "alg_opt"] = 0.99  # the best ALG/OPT where it has one ...
    rounds.loc[gap, "alg_opt"] = np.nan  # ... but a round without one
    rounds["opt_proven"] = rounds["opt_proven"].astype(object)
    rounds.loc[gap, "opt_proven"] = None
    run = write_run(tmp_path / "old", rounds, "parquet", ["mohaf", "random"])
    out = tmp_path / "report"
    figures = write_report(run, out)
    assert "alg_opt" in figures
    summary = pd.read_csv(out / "summary.csv").set_index(["mechanism", "metric"])
    assert set(summary.index.get_level_values("metric")) == {m for m, _, _ in SUMMARY} - {
        "value_welfare", "alg_bound", "alg_value_bound"}
    row = summary.loc[("random", "alg_opt")]
    assert row["mean"] == pytest.approx(0.99, rel=1e-12) and row["n_rounds"] == 7 and row["n_missing"] == 1
    assert not row["best"] and summary.loc[("mohaf", "alg_opt"), "best"]
    md = (out / "summary.md").read_text()
    assert md_row(md, "ALG/OPT") == ["**0.8 ± 0**", "0.99 ± 0 †"]
    assert "† mean over fewer rounds: the metric is missing (NaN)" in md
    assert "so ALG/OPT is a lower bound on the true ratio" in md  # the old meaning of alg_opt
    assert "## Two yardsticks" not in md and "## The cost of restrictions" not in md and "rounds failed" not in md
    status = md.split("### The oracle per mechanism")[1]
    assert md_row(status, "mohaf") == ["75 %"] and md_row(status, "random") == ["71 %"]  # 5 of 7 known


def test_bad_flag_names_row_and_column(tmp_path, capsys):
    rounds = failing_rounds()
    rounds["mechanism_failed"] = rounds["mechanism_failed"].astype(object)
    rounds.loc[7, "mechanism_failed"] = "maybe"
    run = write_run(tmp_path / "run", rounds, "csv", ["mohaf"])
    err = _error(capsys, ["report", str(run), "--out", str(tmp_path / "out")])
    assert "rounds.csv" in err and "row 7" in err and "'mechanism_failed'" in err and "maybe" in err


def test_report_help_imports_no_heavy_library():
    """``market report --help`` reads plots.BANDS; plots imports matplotlib and scipy only when drawing."""
    code = textwrap.dedent("""
        import sys
        from market.apps.cli import main
        try:
            main(["report", "--help"])
        except SystemExit as exc:
            assert exc.code == 0
        print(sorted(m for m in ("matplotlib", "scipy", "numba", "mesa") if m in sys.modules))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage: market report" in proc.stdout and "--band {minmax,ci}" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_scaling_fit_is_polyfit_of_its_rows(tmp_path):
    out = tmp_path / "scaling"
    assert main(["scaling", "--out", str(out), "--mechanisms", "greedy,random,optimal", "--min-requests", "40",
                 "--max-requests", "160", "--per-decade", "4", "--max-rounds", "1", "--fit-from", "0",
                 "--optimal-max-round-s", "1e-9", "--quiet"]) == 0
    measured = pd.read_csv(out / "measurements.csv")
    fits = pd.read_csv(out / "fits.csv")
    assert {p.name for p in out.iterdir()} == {"measurements.csv", "fits.csv", "scaling.png", "scaling.md", "run.json", ".market-output"}
    for mechanism in ("greedy", "random"):
        rows = measured[measured["mechanism"] == mechanism]
        assert rows["requests"].tolist() == [40, 71, 126]  # 10^(k/4) between 40 and 160
        assert (rows["resources"] == rows["requests"] // 4).all()
        assert (rows["round_s"] > 0).all()
        fit = fits.set_index("mechanism").loc[mechanism]
        used = rows[(rows["requests"] >= fit["fit_min_requests"]) & (rows["requests"] <= fit["fit_max_requests"])]
        assert len(used) == fit["n_points"] == 3
        slope, intercept = np.polyfit(np.log10(used["requests"]), np.log10(used["round_s"]), 1)
        assert fit["slope"] == pytest.approx(slope, rel=1e-12)
        assert fit["intercept"] == pytest.approx(intercept, rel=1e-12)
    # the exact reference stops after its first size (its budget is below any real round time), and says so
    optimal = measured[measured["mechanism"] == "optimal"]
    assert optimal["requests"].tolist() == [10]
    md = (out / "scaling.md").read_text()
    assert re.search(r"optimal.*10 requests", md) and "scaling.png" in md


#: what a mechanism that serves nobody in a round shows (Jain of nothing is 1, Gini 0, no energy)
IDLE = {"n_allocated": 0, "welfare": 0.0, "value_welfare": 0.0, "efficiency": 0.0, "satisfaction": 0.0, "jain": 1.0,
        "jain_winners": 1.0, "gini": 0.0, "utilization": 0.0, "revenue": 0.0, "energy": 0.0}


def market_rounds(values: dict[str, dict], n_requests: int = 10, rounds: int = 3) -> pd.DataFrame:
    """Two seeds of ``rounds`` rounds per mechanism, every round showing the mechanism's ``values``."""
    rows = []
    for mechanism, mine in values.items():
        for seed in (1, 2):
            for t in range(rounds):
                row = {"mechanism": mechanism, "seed": seed, "round": t, "n_requests": n_requests,
                       "mechanism_failed": False, "n_allocated": 5, "efficiency": 0.5, "satisfaction": 0.5,
                       "jain": 0.5, "jain_winners": 0.9, "gini": 0.4, "utilization": 0.6, "revenue": 3.0,
                       "energy": 10.0, "mean_price": 1.0 + 0.01 * t, "price_change": 0.01, **mine}
                rows.append(row)
    return pd.DataFrame(rows)


def report_md(tmp_path: Path, rounds: pd.DataFrame, name: str = "run") -> tuple[str, pd.DataFrame]:
    run = write_run(tmp_path / name, rounds, "csv", list(dict.fromkeys(rounds["mechanism"])))
    out = tmp_path / f"{name}-report"
    assert main(["report", str(run), "--out", str(out)]) == 0
    return (out / "summary.md").read_text(), pd.read_csv(out / "summary.csv").set_index(["mechanism", "metric"])


def ranks(md: str, column: int) -> list[str]:
    """The rank column (1 = utility, 3 = money, no oracle columns) of the two-yardsticks table, in row order."""
    table = md.split("## Two yardsticks")[1].split("\n\n")
    rows = next(block for block in table if block.startswith("| mechanism |")).splitlines()[2:]
    return [[c.strip() for c in row.strip("|").split("|")][column + 1] for row in rows]


def test_equal_means_share_a_rank(tmp_path):
    """Budgets of 1e-9: every welfare 0; equal means share a competition rank and the order shows '='."""
    zero = {m: {"welfare": 0.0, "value_welfare": 0.0} for m in ("mohaf", "greedy", "random")}
    md, summary = report_md(tmp_path, market_rounds(zero), "zero")
    assert ranks(md, 1) == ranks(md, 3) == ["1", "1", "1"]
    assert "Both yardsticks rank the mechanisms alike: all tie (mohaf = greedy = random)." in md
    assert "change place" not in md and "same order: mohaf > " not in md
    assert "standard competition ranking, 1, 1, 3" in md
    assert summary.xs("welfare", level="metric")["best"].all()  # the bold agrees: all tie
    # utility mohaf = greedy > random (within 1e-12 relative), money mohaf > greedy > random: only a tie differs
    values = {"mohaf": {"welfare": 5.0, "value_welfare": 6.0}, "greedy": {"welfare": 5.0 * (1 + 1e-14), "value_welfare": 5.0},
              "random": {"welfare": 4.0, "value_welfare": 4.0}}
    md, _ = report_md(tmp_path, market_rounds(values), "tie")
    assert ranks(md, 1) == ["1", "1", "3"] and ranks(md, 3) == ["1", "2", "3"]
    assert ("The rankings differ: by utility mohaf = greedy > random; in money mohaf > greedy > random "
            "(mohaf, greedy tie by one yardstick only).") in md
    assert "change place" not in md
    assert md_row(md, "welfare (utility sum)")[:2] == ["**5 ± 0**", "**5 ± 0**"]
    # a real swap beside a tie: random passes greedy in money, mohaf and greedy tie by utility only
    values["random"]["value_welfare"] = 5.5
    md, _ = report_md(tmp_path, market_rounds(values), "swap")
    assert ranks(md, 3) == ["1", "3", "2"]
    assert ("The rankings differ: by utility mohaf = greedy > random; in money mohaf > random > greedy "
            "(greedy, random change place; mohaf tie by one yardstick only).") in md
    # the same ties by both yardsticks: the same order, ties shown
    values["random"]["value_welfare"] = 4.0
    values["greedy"]["value_welfare"] = 6.0
    md, _ = report_md(tmp_path, market_rounds(values), "same")
    assert ranks(md, 1) == ranks(md, 3) == ["1", "1", "3"]
    assert "Both yardsticks rank the mechanisms in the same order: mohaf = greedy > random." in md


def test_money_weights_tie_at_zero(tmp_path):
    """Weights [0, 0, 0, 1]: money welfare 0 for all, utility apart; no one changes place, ties shown."""
    values = {m: {"welfare": w, "value_welfare": 0.0} for m, w in (("mohaf", 3.0), ("greedy", 2.0), ("random", 1.0))}
    md, _ = report_md(tmp_path, market_rounds(values), "money")
    assert ranks(md, 1) == ["1", "2", "3"] and ranks(md, 3) == ["1", "1", "1"]
    assert ("The rankings differ: by utility mohaf > greedy > random; in money mohaf = greedy = random "
            "(mohaf, greedy, random tie by one yardstick only).") in md


def test_run_without_requests_has_nothing_to_compare(tmp_path):
    """Every round n_requests = 0: no means, no rankings, no oracle table; the summary says why."""
    rounds = market_rounds({m: {**IDLE, "value_welfare": 0.0} for m in ("mohaf", "greedy")}, n_requests=0)
    rounds["alg_opt"], rounds["alg_bound"], rounds["alg_value_bound"] = 1.0, 1.0, 1.0
    rounds["bound_welfare"], rounds["opt_proven"], rounds["opt_status"], rounds["opt_scope"] = 0.0, True, "optimal", "all"
    md, summary = report_md(tmp_path, rounds, "empty")
    assert "## Nothing to compare" in md
    assert ("No round of this run had requests (`n_requests = 0` in all 12 rows of the rounds table: every round of "
            "every mechanism and seed)") in md
    figures = {p.name for p in (tmp_path / "empty-report").glob("*.png")}
    assert figures == {"price_convergence.png"}  # no figure of empty means or empty trajectories
    assert set(re.findall(r"\]\(([^)]+\.png)\)", md)) == figures
    assert "there is nothing to compare" in md
    for gone in ("## Means per mechanism", "## Two yardsticks", "### The oracle per mechanism", "same order",
                 "The rankings differ", "| metric |", "| mechanism |", "## The cost of restrictions"):
        assert gone not in md, gone
    for line in md.splitlines():  # no empty or broken table anywhere
        if line.startswith("|"):
            assert "|  |" not in line and line.strip() != "|---|", line
    assert "- rounds with no requests, left out of every mean: 6 of 6 rounds of every mechanism" in md
    assert (summary["n_rounds"] == 0).all() and summary["mean"].isna().all() and not summary["best"].any()


def test_oracle_table_needs_a_status_in_a_market_round(tmp_path):
    """The oracle's status only in rounds without requests: no table with empty columns."""
    rounds = market_rounds({"mohaf": {"welfare": 2.0, "value_welfare": 1.0}, "greedy": {"welfare": 1.0, "value_welfare": 2.0}})
    rounds.loc[rounds["round"] == 2, "n_requests"] = 0
    rounds["alg_opt"] = 0.9
    rounds["opt_status"] = np.where(rounds["round"] == 2, "optimal", None)
    md, _ = report_md(tmp_path, rounds, "status")
    assert "### The oracle per mechanism" not in md and "| mechanism |  |" not in md


def test_mechanism_that_served_nobody_is_not_bolded_by_convention(tmp_path):
    """Weights [0, 0, 0, 1]: the auctions serve nobody; Jain 1, Gini 0, energy 0 are no wins."""
    values = {"mohaf": {"welfare": 3.0, "value_welfare": 2.0, "jain": 0.6, "jain_winners": 0.8, "gini": 0.3,
                        "energy": 9.0},
              "greedy": {"welfare": 2.0, "value_welfare": 2.5, "jain": 0.5, "jain_winners": 0.95, "gini": 0.35,
                         "energy": 8.0},
              "first_price": dict(IDLE), "second_price": dict(IDLE)}
    md, summary = report_md(tmp_path, market_rounds(values), "idle")
    best = summary[summary["best"]].reset_index()
    winners = best.groupby("metric")["mechanism"].apply(list).to_dict()
    assert winners["jain"] == ["mohaf"] and winners["jain_winners"] == ["greedy"]
    assert winners["gini"] == ["mohaf"] and winners["energy"] == ["greedy"]
    assert winners["welfare"] == ["mohaf"] and winners["value_welfare"] == ["greedy"]
    for label in ("Jain, all requests", "Jain, served requests", "Gini over users", "energy"):
        cells = md_row(md, label)
        assert not cells[2].startswith("**") and not cells[3].startswith("**"), label
        assert cells[2] == ("0 ± 0" if label in ("Gini over users", "energy") else "1 ± 0"), label
    assert ("a mechanism that served no request in any counted round is not bolded on the rows an empty "
            "allocation wins by convention") in md
    assert ("Not bolded where an empty allocation wins by convention (Jain, all requests; Jain, served requests; "
            "Gini over users; energy): first_price, second_price (served no request in any counted round).") in md
    # every mechanism idle (budgets of 1e-9): no bold on those rows at all, the utility rows tie
    md, summary = report_md(tmp_path, market_rounds({m: dict(IDLE) for m in ("mohaf", "greedy")}), "all_idle")
    for metric in ("jain", "jain_winners", "gini", "energy"):
        assert not summary.xs(metric, level="metric")["best"].any(), metric
    assert md_row(md, "Jain, all requests") == ["1 ± 0", "1 ± 0"]
    assert md_row(md, "welfare (utility sum)") == ["**0 ± 0**", "**0 ± 0**"]


# --- the multi-resource section ------------------------------------------------------------
#: t quantile of a 95 % interval with 2 degrees of freedom (three seeds), scipy.stats.t.ppf(0.975, 2)
T2 = 4.302652729911275
#: the section's table header (a market with a gpu dimension)
GPU_HEADER = ("| mechanism | unallocated GPU share ↓ | GPU fragmentation ↓ | welfare (utility sum) ↑ | welfare in money ↑ "
              "| satisfaction ↑ | Jain, dominant shares ↑ | envy share ↓ | GPU utilisation ↑ |")


def gpu_rounds(seeds: tuple[int, ...] = (1, 2, 3)) -> pd.DataFrame:
    """A GPU market: drf, best_fit and optimal, three rounds per seed, the last without requests.

    Per counted round: best_fit leaves 0.1 / 0.3 of the GPUs free in seed 1, 0.2 / 0.4 in
    seed 2, 0.3 / 0.5 in seed 3 (per-seed means 0.2, 0.3, 0.4); drf's welfare is 10 + seed
    and 12 + seed (per-seed means 12, 13, 14); everything else is constant. optimal has the
    best value of every column but fails in seed 1 round 1 (nothing served, zeros there).
    The round without requests carries values that would move every mean.
    """
    rows = []
    for mechanism in ("drf", "best_fit", "optimal"):
        for seed in seeds:
            for t in range(3):
                failed = mechanism == "optimal" and (seed, t) == (1, 1)
                row = {"mechanism": mechanism, "seed": seed, "round": t, "n_requests": 0 if t == 2 else 10,
                       "mechanism_failed": failed, "n_allocated": 5, "efficiency": 0.5, "jain": 0.5,
                       "jain_winners": 0.9, "utilization": 0.6, "mean_price": 1.0, "price_change": 0.01,
                       "satisfaction": 0.5, "gpu_fragmentation": 0.1}
                if mechanism == "drf":
                    row.update(unallocated_gpu=0.4, welfare=10.0 + seed + 2 * t, value_welfare=4.0,
                               dominant_share_jain=0.9, envy_share=0.1)
                elif mechanism == "best_fit":
                    row.update(unallocated_gpu=0.1 * seed + 0.2 * t, welfare=10.0, value_welfare=5.0,
                               dominant_share_jain=0.6, envy_share=0.3)
                else:
                    row.update(unallocated_gpu=0.05, gpu_fragmentation=0.0, welfare=20.0, value_welfare=6.0,
                               satisfaction=0.7, dominant_share_jain=0.95, envy_share=0.05)
                if failed or t == 2:
                    row.update(n_allocated=0, unallocated_gpu=0.0 if failed else 1.0, gpu_fragmentation=0.0,
                               welfare=100.0, value_welfare=100.0, satisfaction=1.0, dominant_share_jain=1.0,
                               envy_share=0.0)
                row["utilization_gpu"] = 1.0 - row["unallocated_gpu"]
                rows.append(row)
    return pd.DataFrame(rows)


def test_multiresource_section_has_the_means_and_intervals(tmp_path):
    md, summary = report_md(tmp_path, gpu_rounds(), "gpu")
    out = tmp_path / "gpu-report"
    section = md.split("## Multi-resource market")[1].split("\n## ")[0]
    assert GPU_HEADER in section
    half = T2 * 0.1 / np.sqrt(3)  # best_fit's unallocated share and GPU utilisation, drf's welfare (sd 0.1, 1)
    assert f"{half:.2g}" == "0.25" and f"{10 * half:.2g}" == "2.5"
    # best per column among those with no failed round: optimal, best on every column, is bolded nowhere;
    # equal means (fragmentation, satisfaction) are all bold
    assert md_row(section, "drf") == ["0.4 ± 0", "**0.1 ± 0**", "**13 ± 2.5**", "4 ± 0", "**0.5 ± 0**",
                                      "**0.9 ± 0**", "**0.1 ± 0**", "0.6 ± 0"]
    assert md_row(section, "best_fit") == ["**0.3 ± 0.25**", "**0.1 ± 0**", "10 ± 0", "**5 ± 0**", "**0.5 ± 0**",
                                           "0.6 ± 0", "0.3 ± 0", "**0.7 ± 0.25**"]
    assert md_row(section, "optimal") == ["0.05 ± 0", "0 ± 0", "20 ± 0", "6 ± 0", "0.7 ± 0", "0.95 ± 0", "0.05 ± 0",
                                          "0.95 ± 0"]
    assert "Never bolded: optimal (failed rounds)." in section
    # the CSV beside summary.csv: the section's rows in its order, the same numbers as summary.csv
    table = pd.read_csv(out / "multiresource.csv")
    assert list(dict.fromkeys(table["metric"])) == [m for m, _, _ in MULTIRESOURCE]
    assert table["mechanism"].tolist() == ["drf", "best_fit", "optimal"] * len(MULTIRESOURCE)
    rows = table.set_index(["mechanism", "metric"])
    pd.testing.assert_frame_equal(rows, summary.loc[rows.index], check_names=False)
    unallocated = rows.loc[("best_fit", "unallocated_gpu")]
    assert unallocated["mean"] == pytest.approx(0.3, rel=1e-12)
    assert unallocated["ci_low"] == pytest.approx(0.3 - half, rel=1e-9)
    assert unallocated["ci_high"] == pytest.approx(0.3 + half, rel=1e-9)
    welfare = rows.loc[("drf", "welfare")]
    assert (welfare["mean"], welfare["n_seeds"], welfare["n_rounds"]) == (pytest.approx(13.0, rel=1e-12), 3, 6)
    assert welfare["ci_high"] - welfare["mean"] == pytest.approx(10 * half, rel=1e-9)
    assert rows.loc[("optimal", "welfare"), "n_rounds"] == 5 and rows.loc[("optimal", "welfare"), "n_failed"] == 1
    assert rows.loc[("optimal", "unallocated_gpu"), "mean"] == pytest.approx(0.05, rel=1e-12)  # failed round left out
    best = table[table["best"]].groupby("metric")["mechanism"].apply(list).to_dict()
    assert best == {"unallocated_gpu": ["best_fit"], "gpu_fragmentation": ["drf", "best_fit"], "welfare": ["drf"],
                    "value_welfare": ["best_fit"], "satisfaction": ["drf", "best_fit"],
                    "dominant_share_jain": ["drf"], "envy_share": ["drf"], "utilization_gpu": ["best_fit"]}
    # the bars, drawn and linked
    assert (out / "multiresource.png").read_bytes().startswith(PNG)
    assert "(multiresource.png)" in md and "[multiresource.csv](multiresource.csv)" in md


def test_multiresource_section_needs_its_columns(tmp_path):
    """No multi-resource column: no section, CSV or figure. A cpu/mem market: the section without the GPU."""
    values = {"mohaf": {"welfare": 2.0, "value_welfare": 1.0}, "greedy": {"welfare": 1.0, "value_welfare": 2.0}}
    md, summary = report_md(tmp_path, market_rounds(values), "plain")
    out = tmp_path / "plain-report"
    assert "## Multi-resource market" not in md and "multiresource.csv" not in md and "multiresource.png" not in md
    assert not (out / "multiresource.csv").exists() and not (out / "multiresource.png").exists()
    assert not {m for m, _, _ in MULTIRESOURCE if m not in {c for c, _, _ in SUMMARY}} & set(
        summary.index.get_level_values("metric"))
    rounds = gpu_rounds().drop(columns=["unallocated_gpu", "gpu_fragmentation", "utilization_gpu"])
    md, _ = report_md(tmp_path, rounds, "cpumem")
    section = md.split("## Multi-resource market")[1].split("\n## ")[0]
    assert ("| mechanism | welfare (utility sum) ↑ | welfare in money ↑ | satisfaction ↑ | Jain, dominant shares ↑ "
            "| envy share ↓ |") in section
    assert "GPU" not in section and "unallocated_gpu" not in section
    assert md_row(section, "drf") == ["**13 ± 2.5**", "4 ± 0", "**0.5 ± 0**", "**0.9 ± 0**", "**0.1 ± 0**"]
    table = pd.read_csv(tmp_path / "cpumem-report" / "multiresource.csv")
    assert list(dict.fromkeys(table["metric"])) == ["welfare", "value_welfare", "satisfaction",
                                                    "dominant_share_jain", "envy_share"]


def test_multiresource_section_with_one_seed_is_never_nan(tmp_path):
    md, _ = report_md(tmp_path, gpu_rounds(seeds=(1,)), "one")
    section = md.split("## Multi-resource market")[1].split("\n## ")[0]
    cells = [c for m in ("drf", "best_fit", "optimal") for c in md_row(section, m)]
    assert not any(c.strip("*") in ("nan", "n/a", "") or "±" in c for c in cells)
    assert not re.search(r"\bnan\b", md, re.IGNORECASE)
    assert md_row(section, "best_fit") == ["**0.2**", "**0.1**", "10", "**5**", "**0.5**", "0.6", "0.3", "**0.8**"]
    assert md_row(section, "drf")[2] == "**12**"
    assert md_row(section, "optimal") == ["0.05", "0", "20", "6", "0.7", "0.95", "0.05", "0.95"]  # failed: no bold
    table = pd.read_csv(tmp_path / "one-report" / "multiresource.csv")
    assert table["mean"].notna().all() and (table["n_seeds"] == 1).all()
    assert table["ci_low"].isna().all() and table["ci_high"].isna().all()  # one seed: no interval, as in summary.csv
