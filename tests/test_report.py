"""``market report`` and ``market scaling``: files, numbers, intervals, bad input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from market.apps.cli import main
from market.apps.report import SUMMARY, TRAJECTORIES, write_report
from tests.conftest import read_run

PNG = b"\x89PNG\r\n\x1a\n"
FIGURES = {"comparison.png", "price_convergence.png", "alg_opt.png", "timing.png",
           *(f"{metric}.png" for metric, _ in TRAJECTORIES)}


@pytest.fixture(scope="module")
def report(small_run, tmp_path_factory) -> tuple[Path, dict[str, pd.DataFrame]]:
    out = tmp_path_factory.mktemp("report") / "report"
    assert main(["report", str(small_run[0]), "--out", str(out)]) == 0
    return out, read_run(small_run[0])


def test_report_writes_figures_and_summary(report):
    out, _ = report
    files = {p.name for p in out.iterdir()}
    assert files == FIGURES | {"summary.md", "summary.csv", ".market-output"}  # nothing else, no temporaries
    for name in FIGURES:
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, name
    md = (out / "summary.md").read_text()
    linked = set(re.findall(r"\]\(([^)]+\.png)\)", md))
    assert linked == FIGURES  # every figure is linked, every link resolves


def test_summary_means_equal_rounds_table(report):
    out, tables = report
    rounds = tables["rounds"]
    summary = pd.read_csv(out / "summary.csv")
    metrics = [m for m, _, _ in SUMMARY]
    assert set(summary["metric"]) == set(metrics)  # the small run has the oracle on
    for mechanism, group in rounds.groupby("mechanism"):
        # every seed has the same number of rounds, so the mean of per-seed means is the plain mean
        assert group.groupby("seed").size().nunique() == 1
        for metric in metrics:
            row = summary[(summary["mechanism"] == mechanism) & (summary["metric"] == metric)].iloc[0]
            assert row["mean"] == pytest.approx(group[metric].mean(), rel=1e-12, abs=1e-12)
            per_seed = group.groupby("seed")[metric].mean()
            assert row["n_seeds"] == per_seed.size == 2
            if per_seed.std() > 0:  # identical seeds (e.g. ALG/OPT = 1 for optimal): no spread
                low, high = stats.t.interval(0.95, per_seed.size - 1, loc=per_seed.mean(), scale=stats.sem(per_seed))
                assert row["ci_low"] == pytest.approx(low, rel=1e-9)
                assert row["ci_high"] == pytest.approx(high, rel=1e-9)
            assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    # the Markdown table shows the same means: one row per metric, one column per mechanism
    md = (out / "summary.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| metric |"))
    mechanisms = [c.strip() for c in header.strip("|").split("|")][1:]
    assert mechanisms == list(dict.fromkeys(rounds["mechanism"]))
    efficiency = next(line for line in md.splitlines() if line.startswith("| efficiency |"))
    cells = [c.strip().strip("*") for c in efficiency.strip("|").split("|")][1:]
    for mechanism, cell in zip(mechanisms, cells):
        assert cell.split(" ± ")[0] == f"{rounds.loc[rounds['mechanism'] == mechanism, 'efficiency'].mean():.4g}"


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
