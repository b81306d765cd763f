"""Acceptance checks of the LLM-serving market on the Azure LLM inference trace (issue 13).

1. ``market run azure-llm`` on the real trace (``$MARKET_DATA_DIR``): every mechanism, the
   written tables re-checked with ``check_run_tables`` in ``("prefill", "kv", "batch")``,
   the five serving metrics in every round; a longer run where requests finish.
2. A tiny market computed by hand: two requests on one instance of a custom GPU, the
   TTFT / TPOT the docstrings' formulas predict, the SLO decision, the round metrics.
3. Disaggregated and shared pools of the same seed: decode after prefill by at least
   ``after_lag`` rounds, phases only on their instances.
4. Bad input: one line on stderr, exit 2, nothing written.
5. The same seed twice: identical rounds and allocations.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market.apps.cli import main
from market.core.feasibility import check_run_tables
from market.core.model import MarketModel
from scenarios import llm_perf
from scenarios.config import load

DIMS = ("prefill", "kv", "batch")
SERVING = ["slo_attainment", "goodput", "ttft_p90", "tpot_p90", "tenant_goodput_jain"]
SHIPPED = Path(__file__).resolve().parents[1] / "scenarios" / "azure-llm.toml"
TRACE_DIR = "azure-llm-2023"
HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"

needs_trace = pytest.mark.skipif(
    not (Path(__import__("os").environ.get("MARKET_DATA_DIR", "/nonexistent")) / TRACE_DIR
         / "AzureLLMInferenceTrace_code.csv").is_file(),
    reason="the Azure LLM trace is not under $MARKET_DATA_DIR")


def cli(*argv: str) -> tuple[int, str]:
    """``market ...`` in this process: (exit code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(argv))
    return code, err.getvalue()


def tables(out: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_parquet(p) for p in out.glob("*.parquet")}


def per_seed(t: dict[str, pd.DataFrame], seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    req = t["requests"][t["requests"]["seed"] == seed].drop(columns="seed")
    res = t["resources"][t["resources"]["seed"] == seed].drop(columns="seed")
    alloc = t["allocations"][t["allocations"]["seed"] == seed]
    return req, res, alloc


def shipped_with(tmp: Path, name: str, **replace: str) -> Path:
    """The shipped scenario with some lines replaced (``old=new`` pairs as a dict)."""
    text = SHIPPED.read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return path


# --- 1. the real trace through every mechanism --------------------------------------------


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("azure-short") / "out"
    code, err = cli("run", "azure-llm", "--rounds", "3", "--seeds", "1", "--out", str(out), "--quiet")
    assert code == 0, err
    return tables(out)


@needs_trace
def test_short_run_every_mechanism_feasible(short_run):
    t = short_run
    mechs = set(load("azure-llm").mechanisms)
    assert set(t["rounds"]["mechanism"]) == mechs
    assert len(t["rounds"]) == 3 * len(mechs)
    assert not t["rounds"]["mechanism_failed"].any()
    req, res, alloc = per_seed(t, 1)
    assert set(res["resource_type"]) == {"A100/shared", "H100/shared"} and len(res) == 3
    # each trace request is two rows, a prefill and a decode after it
    ids = req["request_id"]
    assert ids.str.endswith("/prefill").sum() == ids.str.endswith("/decode").sum() == len(req) // 2 > 0
    checked = 0
    for mech in sorted(mechs):
        part = alloc[alloc["mechanism"] == mech]
        checked += check_run_tables(req, res, part, dimensions=DIMS)
    assert checked == len(alloc) > 0
    assert set(alloc["mechanism"]) == mechs  # every mechanism sold something


@needs_trace
def test_short_run_serving_metrics_finite(short_run):
    r = short_run["rounds"]
    for col in SERVING:
        assert col in r.columns, col
        assert np.isfinite(r[col].to_numpy(float)).all(), col
    # 3 rounds of 0.25 s: no decode can have finished (decode enters a round after its prefill
    # and holds >= 1 round): the "nothing finished" values; attainment is 1 in a round that
    # dropped nobody and 0 in one that dropped a request (a prefill past its TTFT deadline)
    assert r["slo_attainment"].isin([0.0, 1.0]).all() and (r["goodput"] == 0.0).all()
    assert (r["ttft_p90"] == 0.0).all() and (r["tpot_p90"] == 0.0).all() and (r["tenant_goodput_jain"] == 1.0).all()


LONG_ROUNDS = 40
LONG_MECHS = "greedy,mohaf"


@pytest.fixture(scope="module")
def long_runs(tmp_path_factory):
    """40 rounds (10 s of trace), shared and disaggregated pools, same seed."""
    tmp = tmp_path_factory.mktemp("azure-long")
    runs = {}
    for pools in ("shared", "disaggregated"):
        toml = shipped_with(tmp, pools, **{'pools = "shared"': f'pools = "{pools}"'})
        out = tmp / f"out-{pools}"
        code, err = cli("run", str(toml), "--rounds", str(LONG_ROUNDS), "--seeds", "1", "--mechanisms", LONG_MECHS,
                        "--out", str(out), "--quiet")
        assert code == 0, err
        runs[pools] = tables(out)
    return runs


@needs_trace
@pytest.mark.parametrize("pools", ["shared", "disaggregated"])
def test_long_run_metrics_in_range(long_runs, pools):
    t = long_runs[pools]
    r = t["rounds"]
    assert len(r) == 2 * LONG_ROUNDS
    for col in SERVING:
        assert np.isfinite(r[col].to_numpy(float)).all(), col
    assert r["slo_attainment"].between(0, 1).all()
    assert (r["goodput"] >= 0).all()
    assert r["tenant_goodput_jain"].between(0, 1).all()
    finished = r[r["ttft_p90"] > 0]
    assert len(finished) >= 5  # requests do finish in a 40-round run, in both mechanisms
    assert set(finished["mechanism"]) == set(LONG_MECHS.split(","))
    # a round with a finished request has both percentiles > 0; a round without has both 0
    assert ((r["ttft_p90"] > 0) == (r["tpot_p90"] > 0)).all()
    idle = r[r["ttft_p90"] == 0]
    # nothing finished: attainment 1 if nobody was dropped, else 0 (drops are misses)
    assert idle["slo_attainment"].isin([0.0, 1.0]).all() and (idle["goodput"] == 0.0).all()
    # goodput counts good requests per GPU-second: 3 instances x 8 GPUs x 0.25 s
    gpus = 3 * llm_perf.GPUS_PER_INSTANCE
    good = finished["goodput"] * gpus * 0.25
    np.testing.assert_allclose(good, np.round(good), atol=1e-9)
    # attainment 0 <=> no good request
    assert ((finished["slo_attainment"] == 0) == (good.round() == 0)).all()
    req, res, alloc = per_seed(t, 1)
    assert check_run_tables(req, res, alloc, dimensions=DIMS) == len(alloc) > 0


# --- 2. a tiny market by hand -----------------------------------------------------------------

# Code trace: the first row (s = 0) sets the origin; with start_seconds 0.25 and rate 2 a
# request s seconds in arrives at (s - 0.25) / 2: the origin row at -0.125 (dropped), code-1 at
# (0.75 - 0.25) / 2 = 0.25 s, code-2 at (9 - 0.25) / 2 = 4.375 s >= 4 rounds x 1 s (dropped).
CODE_CSV = HEADER + ("2023-11-16 00:00:00.0000000,100,5\n"
                     "2023-11-16 00:00:00.7500000,2000,12\n"
                     "2023-11-16 00:00:09.0000000,100,5\n")
# Conversation trace: its own origin (s = 0, dropped); conv-1 at (1.5 - 0.25) / 2 = 0.625 s.
CONV_CSV = HEADER + ("2023-11-16 00:00:00.0000000,100,5\n"
                     "2023-11-16 00:00:01.5000000,1500,25\n")

TINY_TOML = """\
name = "tiny-llm"
rounds = 4
seeds = [1]
mechanisms = ["greedy"]

[market]
source = "azure_llm"
services = ["code", "conversation"]
start_seconds = 0.25
round_seconds = 1.0
rate = 2.0
tenants = 1
price_per_1k = {{ code = 1.0, conversation = 1.0 }}
cost_per_1k = {{ G = 0.001 }}

[llm]
pools = "{pools}"
instances = {{ G = {instances} }}
shared_prefill_share = 0.5
{llm_extra}

[llm.gpus.G]
prefill_tokens_per_s = 10000.0
decode_base_s = 0.02
decode_per_seq_s = 0.001
kv_bytes_per_token = 327680.0
kv_memory_gb = 100.0
kv_transfer_gbps = 1000.0

[llm.slo.code]
ttft_s = 1.25
tpot_s = 0.1105

[llm.slo.conversation]
ttft_s = 1.0
tpot_s = 0.2
"""


def tiny(tmp: Path, monkeypatch, code_csv: str = CODE_CSV, conv_csv: str = CONV_CSV, pools: str = "shared",
         instances: int = 1, llm_extra: str = "", **market_lines: str) -> Path:
    """Write the tiny traces and scenario under ``tmp``; point MARKET_DATA_DIR there."""
    folder = tmp / "data" / TRACE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "AzureLLMInferenceTrace_code.csv").write_text(code_csv)
    (folder / "AzureLLMInferenceTrace_conv.csv").write_text(conv_csv)
    monkeypatch.setenv("MARKET_DATA_DIR", str(tmp / "data"))
    text = TINY_TOML.format(pools=pools, instances=instances, llm_extra=llm_extra)
    for old, new in market_lines.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp / "tiny.toml"
    path.write_text(text)
    return path


def test_tiny_market_by_hand(tmp_path, monkeypatch):
    model = MarketModel(load(tiny(tmp_path, monkeypatch)), "greedy", 1)
    req, res = model.market.requests, model.market.resources
    # rows: code-1 (arrives 0.25 s) before conv-1 (0.625 s), prefills then decodes
    assert req["request_id"].tolist() == ["code-1/prefill", "conv-1/prefill", "code-1/decode", "conv-1/decode"]
    assert req["round"].tolist() == [0, 0, 0, 0]
    # one shared instance: prefill 1 s x 10,000 tokens/s x share 0.5 = 5,000 tokens a round;
    # batch: tightest TPOT SLO 0.1105 s x (1 - 0.5) = 0.05525 s per step,
    # (0.05525 - 0.02) / 0.001 = 35.25 -> 35 sequences
    assert res["resource_type"].tolist() == ["G/shared"]
    assert res["prefill"].tolist() == [5000.0] and res["batch"].tolist() == [35.0] and res["kv"].tolist() == [100.0]
    # prompts fit one round: prefill rows ask for the whole prompt for 1 round
    assert req["prefill"].tolist() == [2000.0, 1500.0, 0.0, 0.0]
    # decode rounds at the largest batch: tpot(35) = 0.02 + 0.035 = 0.055 s, / (1 - 0.5) = 0.11 s;
    # code-1 ceil(12 x 0.11 / 1) = ceil(1.32) = 2, conv-1 ceil(25 x 0.11) = ceil(2.75) = 3
    assert req["duration"].tolist() == [1, 1, 2, 3]
    assert req["after"].tolist() == ["", "", "code-1/prefill", "conv-1/prefill"]
    assert req["after_lag"].tolist() == [1, 1, 1, 1]  # shared: no KV transfer
    # eligible: first in queue, served in round 0, code-1 0.75 + 2000 / 5000 = 1.15 <= 1.25,
    # conv-1 0.375 + 1500 / 5000 = 0.675 <= 1.0; deadline: last round t with
    # (t + 1) - arrival + run <= slo: code-1 floor(0.25 + 1.25 - 0.4) - 1 = 0,
    # conv-1 floor(0.625 + 1.0 - 0.3) - 1 = 0
    assert req["allowed_types"].tolist() == ["G/shared"] * 4
    assert req["deadline"].tolist()[:2] == [0.0, 0.0]

    # round 0: both prefills sold to the one instance, queued in row order (arrival).
    # rate = 10,000 x 0.5 = 5,000 tokens/s
    # code-1: wait 1 - 0.25 = 0.75, queued 0:      TTFT = 0.75 + 2000 / 5000 = 1.15 s (SLO 1.25: met)
    # conv-1: wait 1 - 0.625 = 0.375, queued 2000: TTFT = 0.375 + 3500 / 5000 = 1.075 s (SLO 1.0: missed)
    model.step()
    assert model.record.metrics["n_allocated"] == 2
    assert model.state.served_round.tolist() == [0, 0, -1, -1]
    np.testing.assert_allclose(model.state.serving["ttft"], [1.15, 1.075], rtol=0, atol=1e-12)
    assert np.isnan(model.state.serving["tpot"]).all()
    assert model.state.serving["finish"].tolist() == [-1, -1]

    # round 1: both decodes enter (after_lag 1) and are sold; the instance then holds a batch of 2:
    # step = tpot(2) / (1 - 0.5) = (0.02 + 0.002) / 0.5 = 0.044 s
    # code-1: prefill ends 0.25 + 1.15 = 1.4, gap = 2 - 1.4 = 0.6;
    #         TPOT = (0.6 + 12 x 0.044) / 12 = 1.128 / 12 = 0.094 s (SLO 0.1105: met)
    # conv-1: prefill ends 0.625 + 1.075 = 1.7, gap = 2 - 1.7 = 0.3;
    #         TPOT = (0.3 + 25 x 0.044) / 25 = 1.4 / 25 = 0.056 s (SLO 0.2: met)
    # finish = round sold + decode rounds - 1: code-1 1 + 2 - 1 = 2, conv-1 1 + 3 - 1 = 3
    model.step()
    assert model.state.served_round.tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(model.state.serving["tpot"], [0.094, 0.056], rtol=0, atol=1e-12)
    assert model.state.serving["finish"].tolist() == [2, 3]
    model.step()
    model.step()
    rounds = model.datacollector.get_table_dataframe("rounds").set_index("round")
    got = rounds[SERVING]
    expected = pd.DataFrame({
        # rounds 0, 1: nothing finished
        # round 2: code-1 finishes within both SLOs: attainment 1, goodput 1 / (1 instance x 8 GPUs x 1 s)
        # round 3: conv-1 finishes, TTFT missed: attainment 0, goodput 0; one tenant: Jain 1
        "slo_attainment": [1.0, 1.0, 1.0, 0.0],
        "goodput": [0.0, 0.0, 0.125, 0.0],
        "ttft_p90": [0.0, 0.0, 1.15, 1.075],
        "tpot_p90": [0.0, 0.0, 0.094, 0.056],
        "tenant_goodput_jain": [1.0, 1.0, 1.0, 1.0],
    }, index=pd.Index([0, 1, 2, 3], name="round"))
    pd.testing.assert_frame_equal(got.astype(float), expected, rtol=0, atol=1e-12, check_names=False)


def test_tiny_market_disaggregated_by_hand(tmp_path, monkeypatch):
    """Two G instances, one prefill one decode: the KV transfer delays the decode."""
    model = MarketModel(load(tiny(tmp_path, monkeypatch, pools="disaggregated", instances=2)), "greedy", 1)
    req, res = model.market.requests, model.market.resources
    assert res["resource_type"].tolist() == ["G/prefill", "G/decode"]
    # prefill instance: 1 s x 10,000 tokens/s = 10,000 tokens; decode instance: batch at the
    # tightest TPOT SLO 0.1105 s: (0.1105 - 0.02) / 0.001 = 90.5 -> 90
    assert res["prefill"].tolist() == [10000.0, 0.0] and res["batch"].tolist() == [0.0, 90.0]
    # KV transfer over 1,000 Gb/s: 2000 tokens x 327,680 B x 8 / 1e12 = 0.00524288 s -> 1 round;
    # after_lag = 1 prefill round + 1 transfer round = 2
    assert req["after_lag"].tolist() == [1, 1, 2, 2]
    # decode rounds at batch 90: tpot = 0.02 + 0.09 = 0.11 s; code-1 ceil(1.32) = 2, conv-1 ceil(2.75) = 3
    assert req["duration"].tolist() == [1, 1, 2, 3]
    assert req["allowed_types"].tolist() == ["G/prefill", "G/prefill", "G/decode", "G/decode"]
    for _ in range(4):
        model.step()
    # round 0, rate 10,000: code-1 TTFT = 0.75 + 2000 / 10000 = 0.95 (met),
    #                       conv-1 TTFT = 0.375 + 3500 / 10000 = 0.725 (met)
    np.testing.assert_allclose(model.state.serving["ttft"], [0.95, 0.725], rtol=0, atol=1e-12)
    # decodes enter and are sold in round 0 + 2 = 2, batch 2: step = 0.02 + 0.002 = 0.022 s
    # code-1: gap = 3 - (0.25 + 0.95) = 1.8,  TPOT = (1.8 + 12 x 0.022) / 12 = 2.064 / 12 = 0.172 (SLO 0.1105: missed)
    # conv-1: gap = 3 - (0.625 + 0.725) = 1.65, TPOT = (1.65 + 25 x 0.022) / 25 = 2.2 / 25 = 0.088 (met)
    assert model.state.served_round.tolist() == [0, 0, 2, 2]
    assert model.state.served_resource.tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(model.state.serving["tpot"], [0.172, 0.088], rtol=0, atol=1e-12)
    # finish: code-1 2 + 2 - 1 = 3, conv-1 2 + 3 - 1 = 4 (after the horizon)
    assert model.state.serving["finish"].tolist() == [3, 4]
    rounds = model.datacollector.get_table_dataframe("rounds").set_index("round")
    # round 3: code-1 alone, TPOT missed: attainment 0, goodput 0, p90s its own latencies
    last = rounds.loc[3, SERVING].astype(float).tolist()
    np.testing.assert_allclose(last, [0.0, 0.0, 0.95, 0.172, 1.0], rtol=0, atol=1e-12)
    assert (rounds.loc[[0, 1, 2], "slo_attainment"] == 1.0).all()


# --- 3. disaggregated and shared: decode after prefill ---------------------------------------


@needs_trace
@pytest.mark.parametrize("pools", ["shared", "disaggregated"])
def test_decode_after_its_prefill(long_runs, pools):
    req, res, alloc = per_seed(long_runs[pools], 1)
    req = req.set_index("request_id")
    decodes = req[req.index.str.endswith("/decode")]
    # after_lag: the prefill's rounds, plus the KV transfer's rounds when disaggregated
    # (prompt = per-round prefill x rounds; the slowest link is A100's 1,600 Gb/s; 0.25 s rounds)
    pre = req.loc[decodes["after"]]
    assert (decodes["after"].to_numpy() == (decodes.index.str.removesuffix("/decode") + "/prefill")).all()
    prompt = (pre["prefill"] * pre["duration"]).round().to_numpy()
    transfer = np.ceil(prompt * llm_perf.LLAMA2_70B_KV_BYTES_PER_TOKEN * 8 / 1600e9 / 0.25)
    want = pre["duration"].to_numpy() + (transfer if pools == "disaggregated" else 0)
    np.testing.assert_array_equal(decodes["after_lag"].to_numpy(), want)
    if pools == "disaggregated":
        assert (decodes["after_lag"].to_numpy() > pre["duration"].to_numpy()).all()
    types = res.set_index("resource_id")["resource_type"]
    for mech, part in alloc.groupby("mechanism"):
        served = part.set_index("request_id")
        dec = served[served.index.str.endswith("/decode")]
        assert len(dec) > 0, mech
        pre_ids = dec.index.str.removesuffix("/decode") + "/prefill"
        assert pre_ids.isin(served.index).all(), mech  # no decode without its prefill
        lag = dec["round"].to_numpy() - served.loc[pre_ids, "round"].to_numpy()
        assert (lag >= req.loc[dec.index, "after_lag"].to_numpy()).all(), mech
        assert (lag >= 1).all()
        kinds = served["resource_id"].map(types)
        is_pre = served.index.str.endswith("/prefill")
        if pools == "disaggregated":
            assert kinds[is_pre].str.endswith("/prefill").all(), mech
            assert kinds[~is_pre].str.endswith("/decode").all(), mech
        else:
            assert kinds.str.endswith("/shared").all(), mech
    if pools == "disaggregated":
        assert set(res["resource_type"]) == {"A100/prefill", "A100/decode", "H100/decode"}


# --- 4. bad input -----------------------------------------------------------------------------

GOOD = "2023-11-16 00:00:00.0000000,100,5\n"


@pytest.mark.parametrize("line, field, value", [
    ("2023-11-16 00:00:00.5000000,-3,5\n", "ContextTokens", "-3"),
    ("2023-11-16 00:00:00.5000000,100,\n", "GeneratedTokens", "''"),
    ("2023-11-16 00:00:00.5000000,12.5,5\n", "ContextTokens", "12.5"),
    ("2023-11-16 00:00:00.5000000,100,many\n", "GeneratedTokens", "many"),
    ("16/11/2023 noon,100,5\n", "TIMESTAMP", "noon"),
    ("2023-11-16 00:00:00.5000000,100\n", "GeneratedTokens", ""),  # a short row
    ("2023-11-16 00:00:00.5000000,1e3,5\n", "ContextTokens", "1e3"),  # tokens are written as digits
])
def test_bad_trace_field(tmp_path, monkeypatch, line, field, value):
    toml = tiny(tmp_path, monkeypatch, code_csv=HEADER + GOOD + line)
    out = tmp_path / "out"
    code, err = cli("run", str(toml), "--out", str(out), "--quiet")
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "AzureLLMInferenceTrace_code.csv" in err and "line 3" in err and field in err and value in err, err
    assert not out.exists()


def test_bad_trace_field_line_counts_blank_lines(tmp_path, monkeypatch):
    toml = tiny(tmp_path, monkeypatch, code_csv=HEADER + "\n" + GOOD + "  \n" + "2023-11-16 00:00:00.5000000,-3,5\n")
    out = tmp_path / "out"
    code, err = cli("run", str(toml), "--out", str(out), "--quiet")
    assert code == 2 and "AzureLLMInferenceTrace_code.csv: line 5: field 'ContextTokens'" in err, err
    assert not out.exists()


@pytest.mark.parametrize("replace, words", [
    ({"round_seconds = 1.0": "round_seconds = 0"}, ["market.round_seconds", "> 0"]),
    ({"rate = 2.0": "rate = -1"}, ["market.rate", "-1"]),
    ({"ttft_s = 1.25": "ttft_s = 0"}, ["llm.slo.code.ttft_s", "> 0"]),
    ({'pools = "shared"': 'pools = "other"'}, ["llm.pools", "other"]),
    ({"shared_prefill_share = 0.5": "shared_prefill_share = 0.5\nprefill_share = 0.5",
      'pools = "shared"': 'pools = "disaggregated"'}, ["llm.prefill_share", "without instances"]),
    ({"shared_prefill_share = 0.5": "shared_prefill_share = 0.5\nbatch_size = 4"}, ["llm.batch_size"]),
    ({"price_per_1k": "colour = 'red'\nprice_per_1k"}, ["market.colour"]),
    ({"instances = { G = 1 }": "instances = { G = 0 }"}, ["llm.instances", "at least one"]),
    ({"instances = { G = 1 }": "instances = { B200 = 1 }"}, ["llm.instances.B200"]),
    ({"shared_prefill_share = 0.5": "shared_prefill_share = 1.0"}, ["llm.shared_prefill_share", "below 1"]),
    ({"decode_per_seq_s = 0.001": "decode_per_seq_s = 0"}, ["llm.gpus.G.decode_per_seq_s", "> 0"]),
    # 0.1105 s x (1 - 0.9) is below the GPU's 0.02 s decode step: no decode capacity at all
    ({"shared_prefill_share = 0.5": "shared_prefill_share = 0.9"}, ["llm.shared_prefill_share", "no instance can decode"]),
])
def test_bad_scenario_key(tmp_path, monkeypatch, replace, words):
    toml = tiny(tmp_path, monkeypatch, **replace)
    out = tmp_path / "out"
    code, err = cli("run", str(toml), "--out", str(out), "--quiet")
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for w in words:
        assert w in err, (w, err)
    assert not out.exists()


def test_llm_table_with_another_source(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(textwrap.dedent("""\
        name = "x"
        rounds = 2
        seeds = [1]
        mechanisms = ["greedy"]
        [market]
        source = "synthetic"
        [llm]
        pools = "shared"
        """))
    out = tmp_path / "out"
    code, err = cli("run", str(toml), "--out", str(out), "--quiet")
    assert code == 2, err
    assert err.count("\n") == 1 and "[llm]" in err and "synthetic" in err, err
    assert not out.exists()


def test_missing_trace_file(tmp_path, monkeypatch):
    toml = tiny(tmp_path, monkeypatch)
    (tmp_path / "data" / TRACE_DIR / "AzureLLMInferenceTrace_conv.csv").unlink()
    out = tmp_path / "out"
    code, err = cli("run", str(toml), "--out", str(out), "--quiet")
    assert code == 2 and err.count("\n") == 1 and "AzureLLMInferenceTrace_conv.csv" in err, err
    assert not out.exists()


# --- 5. reproducibility -------------------------------------------------------------------------


@needs_trace
def test_same_seed_same_tables(long_runs, tmp_path):
    toml = shipped_with(tmp_path, "again", **{'pools = "shared"': 'pools = "disaggregated"'})
    out = tmp_path / "again"
    code, err = cli("run", str(toml), "--rounds", str(LONG_ROUNDS), "--seeds", "1", "--mechanisms", LONG_MECHS,
                    "--out", str(out), "--quiet")
    assert code == 0, err
    again, first = tables(out), long_runs["disaggregated"]
    for name in ("rounds", "allocations", "requests", "resources"):
        pd.testing.assert_frame_equal(again[name], first[name], check_exact=True, obj=name)
    assert len(first["allocations"]) > 0


def test_tiny_market_reproducible(tmp_path, monkeypatch):
    toml = tiny(tmp_path, monkeypatch)
    outs = []
    for k in range(2):
        out = tmp_path / f"out{k}"
        code, err = cli("run", str(toml), "--out", str(out), "--quiet")
        assert code == 0, err
        outs.append(tables(out))
    for name in ("rounds", "allocations"):
        pd.testing.assert_frame_equal(outs[0][name], outs[1][name], check_exact=True, obj=name)
    assert math.isclose(outs[0]["rounds"]["goodput"].sum(), 0.125)


def test_timestamps_without_fractions_and_services_on_one_clock(tmp_path, monkeypatch):
    # conversation starts 2 s after code: its request at +2.5 s of its own clock is 4.5 s
    # after the first code request, (4.5 - 0.25) / 2 = 2.125 s: round 2
    conv = HEADER + "2023-11-16 00:00:02,100,5\n2023-11-16 00:00:04.5,1500,25\n"
    model = MarketModel(load(tiny(tmp_path, monkeypatch, conv_csv=conv)), "greedy", 1)
    req = model.market.requests.set_index("request_id")
    assert req.loc["conv-0/prefill", "round"] == 0  # (2 - 0.25) / 2 = 0.875 s
    assert req.loc["conv-1/prefill", "round"] == 2


def test_a_dropped_request_is_a_miss_of_the_round_it_leaves():
    from market.core import serving
    from scenarios import llm_perf
    from scenarios.azure_llm import LLMServing

    spec = LLMServing(
        n=3, round_seconds=1.0, arrival_s=np.zeros(3), prompt=np.full(3, 100), output=np.full(3, 10),
        prefill_rounds=np.ones(3, dtype=np.int64), decode_rounds=np.ones(3, dtype=np.int64),
        ttft_slo=np.full(3, 2.0), tpot_slo=np.full(3, 0.1), tenant=np.array(["a", "a", "b"], dtype=object),
        profiles=(llm_perf.A100_80GB,), shared_share=0.0, gpus=8, hopeless=0,
    )
    ledger = serving.new_ledger(spec)
    ledger["ttft"][:2], ledger["tpot"][:2], ledger["finish"][:2] = [1.0, 3.0], [0.05, 0.05], [4, 4]
    # request 2's decode row (market row 3 + 2 = 5) leaves the book unserved in round 4
    serving.settle(spec, 4, ledger, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(1),
                   gave_up=np.array([5]))
    m = serving.metrics(spec, 4, ledger)
    # finished: 0 (good), 1 (TTFT 3 > 2: miss); dropped: 2 -> 1 good of 3
    assert m["slo_attainment"] == pytest.approx(1 / 3)
    assert m["goodput"] == pytest.approx(1 / (8 * 1.0))
    assert serving.metrics(spec, 5, ledger)["slo_attainment"] == 1.0  # nothing finished or dropped


def test_data_verify_and_fetch_the_azure_trace(tmp_path):
    from market.apps.data import fetch, verify
    from scenarios import azure_llm

    real = Path(os.environ["MARKET_DATA_DIR"]) / azure_llm.FOLDER
    assert [s.status for s in verify(real.parent, data="azure-llm-2023")] == ["ok", "ok"]
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in azure_llm.CONTENT_SHA256:
        (mirror / name).write_bytes((real / name).read_bytes())
    dest = tmp_path / "data"
    lines: list[str] = []
    out = fetch(dest, base_url=mirror.as_uri(), log=lines.append, data="azure-llm-2023")
    assert [s.status for s in out] == ["ok", "ok"] and all(line.startswith("fetched") for line in lines)
    name = azure_llm.FILES["conversation"]
    assert (dest / azure_llm.FOLDER / name).read_bytes() == (real / name).read_bytes()


def test_requests_no_instance_can_serve_in_time_are_warned_about(tmp_path):
    out = tmp_path / "out"
    code, err = cli("run", "azure-llm", "--rounds", "2", "--seeds", "1", "--mechanisms", "greedy", "--out", str(out),
                    "--quiet")
    assert code == 0, err
    assert "warning: azure-llm (seed 1): " in err and "cannot meet their TTFT SLO on any instance type" in err, err


def test_an_slo_for_an_unknown_service_is_refused(tmp_path, monkeypatch):
    toml = tiny(tmp_path, monkeypatch, llm_extra="")
    toml.write_text(toml.read_text() + "\n[llm.slo.conv]\nttft_s = 1.0\ntpot_s = 0.1\n")
    code, err = cli("run", str(toml), "--out", str(tmp_path / "out"), "--quiet")
    assert code == 2 and "llm.slo.conv" in err and "no such service" in err, err
