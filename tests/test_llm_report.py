"""``market llm-report``: run-level serving aggregation (exact, on a hand-made ledger) and the command."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market.apps.cli import main
from market.studies import llm_serving
from scenarios import azure_llm

pytestmark = pytest.mark.skipif(not (azure_llm.data_dir() / azure_llm.FILES["code"]).is_file(),
                                reason="Azure LLM trace not available (MARKET_DATA_DIR)")


def _spec(**kw) -> azure_llm.LLMServing:
    n = 6
    base = {
        "n": n, "round_seconds": 0.5, "arrival_s": np.array([0.0, 0.1, 0.6, 1.2, 1.9, 2.5]),
        "prompt": np.full(n, 100), "output": np.full(n, 10), "prefill_rounds": np.ones(n, dtype=np.int64),
        "decode_rounds": np.ones(n, dtype=np.int64), "ttft_slo": np.full(n, 1.0), "tpot_slo": np.full(n, 0.1),
        "tenant": np.array(["a", "a", "b", "b", "c", "c"], dtype=object), "profiles": (), "shared_share": 0.0,
        "gpus": 8, "hopeless": 0,
    }
    return azure_llm.LLMServing(**{**base, **kw})


def test_run_metrics_on_a_hand_made_ledger_are_exact():
    spec = _spec()
    rounds = 4  # 2 s: request 4 (1.9 s) arrives in the run, request 5 (2.5 s) does not
    ledger = {
        # request:   0 good, 1 TTFT miss, 2 TPOT miss, 3 finishes after the run, 4 dropped, 5 never arrives
        "ttft": np.array([0.5, 1.5, 0.8, 0.4, np.nan, np.nan]),
        "tpot": np.array([0.05, 0.05, 0.2, 0.05, np.nan, np.nan]),
        "finish": np.array([1, 2, 3, 4, -1, -1]),
    }
    status = np.array([1, 1, 1, 1, 2, 0,  # prefills
                       1, 1, 1, 1, 0, 0])  # decodes
    m = llm_serving.run_metrics(spec, ledger, status, rounds)
    gpu_seconds = 8 * rounds * 0.5
    assert m["arrived"] == 5 and m["finished"] == 3 and m["good"] == 1 and m["dropped"] == 1
    assert m["goodput"] == 1 / gpu_seconds
    assert m["throughput"] == 3 / gpu_seconds
    assert m["slo_attainment"] == 1 / 3
    assert m["slo_attainment_dropped"] == 1 / 4  # the dropped request is a miss
    assert m["ttft_attainment"] == 2 / 3 and m["tpot_attainment"] == 2 / 3
    # linear interpolation over the finished requests, sorted: position 0.9 x 2 = 1.8
    assert m["ttft_p90"] == pytest.approx(0.8 + 0.8 * (1.5 - 0.8), rel=1e-12)  # 1.36
    assert m["tpot_p90"] == pytest.approx(0.05 + 0.8 * (0.2 - 0.05), rel=1e-12)  # 0.17
    assert m["dropped_share"] == 1 / 5


def test_run_metrics_weight_by_requests_not_by_rounds():
    """Attainment is over finished requests: one round with 1 of 1 good and one with 0 of 3
    gives 1/4, not the mean of the round shares (1/2); percentiles from the requests."""
    spec = _spec(arrival_s=np.zeros(6))
    ledger = {"ttft": np.array([0.1, 2.0, 2.0, 2.0, 0.1, 0.1]), "tpot": np.full(6, 0.05),
              "finish": np.array([0, 1, 1, 1, -1, -1])}
    m = llm_serving.run_metrics(spec, ledger, np.ones(12, dtype=np.int8), 2)
    assert m["slo_attainment"] == 0.25
    assert m["ttft_p90"] == 2.0
    assert m["dropped_share"] == 0.0


def test_run_metrics_without_finished_requests_are_nan_not_errors():
    spec = _spec()
    ledger = {"ttft": np.full(6, np.nan), "tpot": np.full(6, np.nan), "finish": np.full(6, -1)}
    m = llm_serving.run_metrics(spec, ledger, np.zeros(12, dtype=np.int8), 3)
    assert m["finished"] == 0 and m["goodput"] == 0.0
    assert math.isnan(m["slo_attainment"]) and math.isnan(m["ttft_p90"]) and math.isnan(m["tpot_p90"])


def test_run_goodput_is_the_mean_of_the_round_goodputs():
    """The run-level goodput from the ledger equals the mean of the model's round goodputs."""
    from market.core.model import MarketModel
    from scenarios.config import load

    sc = llm_serving.variant(load("azure-llm"), "shared", 4.0, 24)
    model = MarketModel(sc, mechanism="greedy", rng=1)
    for _ in range(24):
        model.step()
    m = llm_serving.run_metrics(model.serving, model.state.serving, model.state.status, 24)
    rounds = model.rounds_table()
    assert m["goodput"] == pytest.approx(rounds["goodput"].mean(), rel=1e-12)
    assert m["finished"] > 0


def test_cli_writes_tables_plots_and_summary(tmp_path: Path, capsys):
    out = tmp_path / "llm"
    args = ["llm-report", "azure-llm", "--out", str(out), "--rates", "2,4", "--seeds", "1", "--rounds", "24",
            "--mechanisms", "greedy,drf", "--quiet"]
    assert main(args) == 0
    for name in ("table.csv", "table.md", "runs.csv", "ratios.csv", "goodput.png", "slo_attainment.png",
                 "summary.md", "manifest.json", ".market-output"):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "table.csv")
    assert len(table) == 2 * 2 * 2  # pools x rates x mechanisms
    assert list(table["pools"].unique()) == ["shared", "disaggregated"]
    assert sorted(table["rate"].unique()) == [2.0, 4.0]
    assert list(table["mechanism"].unique()) == ["greedy", "drf"]
    means = [m for m, _ in llm_serving.SUMMARY]
    assert not table[means].isna().any().any()
    # one seed: no interval
    assert table[[f"{m}_low" for m in means]].isna().all().all()
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 8 and not runs[llm_serving.RUN_COLUMNS].isna().any().any()
    assert (runs["finished"] > 0).all()
    md = (out / "table.md").read_text().strip().splitlines()
    assert len(md) == 2 + 8
    summary = (out / "summary.md").read_text()
    assert "DistServe" in summary and "Splitwise" in summary and "--rates 2,4" in summary
    ratios = pd.read_csv(out / "ratios.csv")
    assert len(ratios) == 4
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("rates", ["0", "-1", "1,abc", "nan", "inf", ",", "1,1"])
def test_bad_rates_are_one_line_exit_2_nothing_written(tmp_path: Path, capsys, rates):
    out = tmp_path / "llm"
    with pytest.raises(SystemExit) as exc:
        main(["llm-report", "--out", str(out), "--rates", rates, "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--rates" in err[0]
    assert not out.exists()
    assert not list(tmp_path.iterdir())


def test_other_bad_input_is_one_line_exit_2(tmp_path: Path, capsys):
    out = tmp_path / "llm"
    assert main(["llm-report", "--out", str(out), "--mechanisms", "nope", "--quiet"]) == 2
    assert main(["llm-report", "--out", str(out), "--rounds", "0", "--quiet"]) == 2
    assert main(["llm-report", "default", "--out", str(out), "--quiet"]) == 2
    assert main(["llm-report", "--out", str(out), "--start-seconds", "-5", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("error:") for line in err)
    assert not out.exists()
