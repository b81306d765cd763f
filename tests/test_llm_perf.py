"""The LLM-serving performance model: hand-computed TTFT/TPOT/SLO decisions, max_batch
boundaries, KV arithmetic, consistent defaults, keyed override errors, vectorised = scalar,
and monotonicity properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.errors import MarketInputError
from scenarios import llm_perf as lp
from scenarios.llm_perf import (
    A100_80GB,
    DEFAULT_GPUS,
    DEFAULT_SLO,
    H100_80GB,
    GPUProfile,
    ServiceSLO,
    decode_time,
    kv_capacity_tokens,
    kv_gb,
    kv_transfer_time,
    max_batch,
    meets_slo,
    prefill_time,
    profile_from,
    slo_from,
    tpot,
    ttft,
)

#: a profile with round numbers: 10,000 prompt tokens/s, tpot = 0.02 + 0.001 b
HAND = GPUProfile(
    name="hand",
    prefill_tokens_per_s=10_000.0,
    decode_base_s=0.02,
    decode_per_seq_s=0.001,
    kv_bytes_per_token=327_680.0,
    kv_memory_gb=100.0,
    kv_transfer_gbps=1_600.0,
)


# ---------------------------------------------------------------- hand-computed requests


def test_two_requests_give_the_ttft_tpot_and_slo_decision_the_formulas_predict():
    slo = ServiceSLO(ttft_s=0.5, tpot_s=0.05)
    # A: waits 0.1 s behind 2,000 queued prefill tokens, prompt 1,000, decodes in a batch of 10
    #    TTFT = 0.1 + (2,000 + 1,000) / 10,000 = 0.1 + 0.3 = 0.4 s; TPOT = 0.02 + 0.001 * 10 = 0.03 s
    ttft_a = ttft(0.1, 2_000, 1_000, HAND)
    tpot_a = tpot(10, HAND)
    assert ttft_a == pytest.approx(0.4, abs=1e-12)
    assert tpot_a == pytest.approx(0.03, abs=1e-12)
    # B: waits 0.2 s behind 3,000 queued tokens, prompt 4,000, batch of 20
    #    TTFT = 0.2 + (3,000 + 4,000) / 10,000 = 0.2 + 0.7 = 0.9 s; TPOT = 0.02 + 0.020 = 0.04 s
    ttft_b = ttft(0.2, 3_000, 4_000, HAND)
    tpot_b = tpot(20, HAND)
    assert ttft_b == pytest.approx(0.9, abs=1e-12)
    assert tpot_b == pytest.approx(0.04, abs=1e-12)
    # A meets both (0.4 <= 0.5, 0.03 <= 0.05); B misses on TTFT (0.9 > 0.5) though its TPOT meets
    assert meets_slo(ttft_a, tpot_a, slo.ttft_s, slo.tpot_s) is True
    assert meets_slo(ttft_b, tpot_b, slo.ttft_s, slo.tpot_s) is False
    assert tpot_b <= slo.tpot_s
    # the same decision over arrays of both requests
    both = meets_slo(np.array([ttft_a, ttft_b]), np.array([tpot_a, tpot_b]), slo.ttft_s, slo.tpot_s)
    assert both.tolist() == [True, False]
    # prefill alone: 1,000 / 10,000 = 0.1 s; decode of 100 tokens in batch 10: 100 * 0.03 = 3.0 s
    assert prefill_time(1_000, HAND) == pytest.approx(0.1, abs=1e-12)
    assert decode_time(100, 10, HAND) == pytest.approx(3.0, abs=1e-12)


def test_meets_slo_is_inclusive_and_needs_both():
    assert meets_slo(0.5, 0.05, 0.5, 0.05) is True
    assert meets_slo(0.5, 0.0500001, 0.5, 0.05) is False
    assert meets_slo(0.5000001, 0.05, 0.5, 0.05) is False


# ---------------------------------------------------------------- max_batch


def test_max_batch_at_exactly_the_slo_is_that_batch():
    for b in (1, 2, 5, 17, 64, 999):
        assert max_batch(tpot(b, HAND), HAND) == b
    # 0.02 + 0.001 * 5 = 0.025: 5 meets, 6 (0.026) misses
    assert max_batch(0.025, HAND) == 5
    assert max_batch(0.0259, HAND) == 5
    assert max_batch(0.0261, HAND) == 6
    # the literal 0.026 is a hair below the float 0.02 + 0.001 * 6: consistent with tpot(), 5
    assert (tpot(6, HAND) <= 0.026) == (max_batch(0.026, HAND) == 6)


def test_max_batch_is_zero_when_even_one_sequence_misses():
    assert max_batch(0.0209, HAND) == 0  # tpot(1) = 0.021
    assert max_batch(0.02, HAND) == 0  # exactly the base time: no batch of 1 fits
    assert max_batch(0.01, HAND) == 0  # below the base time
    assert max_batch(0.0, HAND) == 0
    assert max_batch(0.021, HAND) == 1


def test_max_batch_vectorised():
    slos = np.array([0.01, 0.021, 0.025, 0.1])
    out = max_batch(slos, HAND)
    assert out.dtype == np.int64
    assert out.tolist() == [0, 1, 5, 80]  # (0.1 - 0.02) / 0.001 = 80


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.floats(min_value=0.0, max_value=10.0, allow_nan=False))
def test_max_batch_is_the_largest_batch_that_meets(slo):
    b = max_batch(slo, HAND)
    assert b >= 0
    if b > 0:
        assert tpot(b, HAND) <= slo
    assert tpot(b + 1, HAND) > slo


# ---------------------------------------------------------------- KV cache


def test_kv_bytes_per_token_from_the_llama2_70b_architecture():
    # 2 (K, V) x 80 layers x 8 KV heads x 128 head_dim x 2 bytes (fp16) = 327,680 bytes
    assert lp.LLAMA2_70B_KV_BYTES_PER_TOKEN == 2 * 80 * 8 * 128 * 2 == 327_680
    assert A100_80GB.kv_bytes_per_token == H100_80GB.kv_bytes_per_token == 327_680
    # 1,000 tokens: 327,680,000 bytes = 0.32768 GB; 4,096 tokens: 1.34217728 GB
    assert kv_gb(1_000, A100_80GB) == pytest.approx(0.32768, rel=1e-12)
    assert kv_gb(4_096, H100_80GB) == pytest.approx(1.34217728, rel=1e-12)
    # transfer over 1,600 Gb/s: 0.32768 GB * 8 = 2.62144 Gb -> 2.62144 / 1,600 = 1.6384 ms
    assert kv_transfer_time(1_000, HAND) == pytest.approx(0.0016384, rel=1e-12)
    # a slower peer sets the rate: 800 Gb/s doubles it
    slow = profile_from({"kv_transfer_gbps": 800}, HAND)
    assert kv_transfer_time(1_000, HAND, slow) == pytest.approx(0.0032768, rel=1e-12)
    assert kv_transfer_time(1_000, slow, HAND) == pytest.approx(0.0032768, rel=1e-12)
    # capacity: 100 GB / 327,680 B = 305,175.78 -> 305,175 tokens
    assert kv_capacity_tokens(HAND) == 305_175


def test_kv_memory_is_hbm_minus_reserve_minus_weights():
    # weights: 68,976,648,192 params x 2 B = 137.953296384 GB
    assert pytest.approx(137.953296384, rel=1e-12) == lp.LLAMA2_70B_WEIGHTS_GB
    # 0.9 x 8 x 85.89934592 GB - 137.953296384 GB = 480.52199424 GB
    assert A100_80GB.kv_memory_gb == pytest.approx(480.52199424, rel=1e-9)
    assert H100_80GB.kv_memory_gb == A100_80GB.kv_memory_gb


# ---------------------------------------------------------------- defaults


def test_the_defaults_are_consistent():
    a, h = DEFAULT_GPUS["A100"], DEFAULT_GPUS["H100"]
    assert (a, h) == (A100_80GB, H100_80GB)
    assert h.prefill_tokens_per_s > a.prefill_tokens_per_s
    for b in (1, 8, 64, 256):
        assert tpot(b, h) < tpot(b, a)
    assert h.kv_transfer_gbps >= a.kv_transfer_gbps
    for gpu in (a, h):
        assert gpu.kv_memory_gb > 0
        assert kv_capacity_tokens(gpu) > 100_000  # many full-length requests fit
        for service, slo in DEFAULT_SLO.items():
            assert max_batch(slo.tpot_s, gpu) >= 1, (gpu.name, service)
    assert set(DEFAULT_SLO) == {"code", "conversation"}
    assert DEFAULT_SLO["code"] == ServiceSLO(ttft_s=0.125, tpot_s=0.2)
    assert DEFAULT_SLO["conversation"] == ServiceSLO(ttft_s=0.4, tpot_s=0.1)


def test_the_defaults_reproduce_the_measurements_they_were_fitted_to():
    """Medians of splitwise-sim data/perf_model.csv (llama2-70b, TP 8), within the fit's error."""
    # token_time medians at 512-token prompts: A100 45.0 / 50.4 / 71.6 ms at b = 1 / 16 / 64
    for b, ms in ((1, 45.03), (16, 50.44), (64, 71.61)):
        assert tpot(b, A100_80GB) == pytest.approx(ms / 1000, rel=0.06)
    # H100 30.6 / 34.2 / 50.2 ms
    for b, ms in ((1, 30.56), (16, 34.17), (64, 50.16)):
        assert tpot(b, H100_80GB) == pytest.approx(ms / 1000, rel=0.06)
    # prompt_time medians at batch 1: A100 8,192 tokens 1.55 s, H100 0.845 s (within 10 %)
    assert prefill_time(8_192, A100_80GB) == pytest.approx(1.5498, rel=0.1)
    assert prefill_time(8_192, H100_80GB) == pytest.approx(0.8449, rel=0.1)


def test_profiles_and_mappings_are_frozen():
    with pytest.raises(AttributeError):
        A100_80GB.prefill_tokens_per_s = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        DEFAULT_GPUS["B200"] = A100_80GB  # type: ignore[index]
    with pytest.raises(TypeError):
        DEFAULT_SLO["chat"] = ServiceSLO(1.0, 1.0)  # type: ignore[index]


# ---------------------------------------------------------------- overrides


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_profile_from_overrides_checked_values():
    p = profile_from({"prefill_tokens_per_s": 12_000, "decode_base_s": 0}, H100_80GB, "s.toml")
    assert p.prefill_tokens_per_s == 12_000.0
    assert p.decode_base_s == 0.0
    assert p.decode_per_seq_s == H100_80GB.decode_per_seq_s
    assert p.name == "H100"
    assert profile_from({}, A100_80GB, name="A100x").name == "A100x"
    assert profile_from({}, A100_80GB) == A100_80GB


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            {"prefill_tokens_per_s": -3},
            "s.toml: key 'llm.gpus.H100.prefill_tokens_per_s' must be > 0, got -3",
        ),
        (
            {"decode_per_seq_s": 0},
            "s.toml: key 'llm.gpus.H100.decode_per_seq_s' must be > 0, got 0",
        ),
        (
            {"decode_base_s": -0.01},
            "s.toml: key 'llm.gpus.H100.decode_base_s' must be >= 0, got -0.01",
        ),
        (
            {"kv_memory_gb": math.nan},
            "s.toml: key 'llm.gpus.H100.kv_memory_gb' must be finite, got nan",
        ),
        (
            {"kv_transfer_gbps": math.inf},
            "s.toml: key 'llm.gpus.H100.kv_transfer_gbps' must be finite, got inf",
        ),
        (
            {"kv_bytes_per_token": "big"},
            "s.toml: key 'llm.gpus.H100.kv_bytes_per_token' must be a number, got 'big'",
        ),
        (
            {"kv_bytes_per_token": True},
            "s.toml: key 'llm.gpus.H100.kv_bytes_per_token' must be a number, got True",
        ),
        (
            {"prefill_tokens_per_sec": 1},
            "s.toml: unknown key 'llm.gpus.H100.prefill_tokens_per_sec'",
        ),
        ({"name": "X"}, "s.toml: unknown key 'llm.gpus.H100.name'"),
    ],
)
def test_profile_from_refuses_bad_values_in_one_line_naming_the_key(table, expected):
    with pytest.raises(MarketInputError) as exc:
        profile_from(table, H100_80GB, "s.toml")
    assert _one_line(exc).startswith(expected)


def test_a_profile_built_by_hand_is_checked_too():
    with pytest.raises(
        MarketInputError, match=r"key 'bad.prefill_tokens_per_s' must be > 0, got 0"
    ):
        GPUProfile("bad", 0, 0.01, 0.001, 1.0, 1.0, 1.0)


def test_slo_from_overrides_and_adds_services():
    slo = slo_from({"code": {"ttft_s": 1.5}, "summary": {"ttft_s": 15, "tpot_s": 0.15}})
    assert slo["code"] == ServiceSLO(ttft_s=1.5, tpot_s=0.2)
    assert slo["conversation"] == DEFAULT_SLO["conversation"]
    assert slo["summary"] == ServiceSLO(ttft_s=15.0, tpot_s=0.15)
    assert DEFAULT_SLO["code"].ttft_s == 0.125  # the defaults are untouched


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"code": {"ttft_s": 0}}, "f.toml: key 'llm.slo.code.ttft_s' must be > 0, got 0"),
        (
            {"conversation": {"tpot_s": -0.1}},
            "f.toml: key 'llm.slo.conversation.tpot_s' must be > 0, got -0.1",
        ),
        ({"code": {"ttft": 1}}, "f.toml: unknown key 'llm.slo.code.ttft'"),
        ({"code": 0.5}, "f.toml: key 'llm.slo.code' must be a table"),
        (
            {"summary": {"ttft_s": 15}},
            "f.toml: key 'llm.slo.summary' is a new service and must set tpot_s",
        ),
    ],
)
def test_slo_from_refuses_bad_values_in_one_line_naming_the_key(table, expected):
    with pytest.raises(MarketInputError) as exc:
        slo_from(table, source="f.toml")
    assert _one_line(exc).startswith(expected)


# ---------------------------------------------------------------- vectorised = scalar


def test_vectorised_calls_equal_scalar_calls():
    rng = np.random.default_rng(0)
    n = 50
    prompt = rng.integers(1, 8_000, n)
    out = rng.integers(1, 2_000, n)
    wait = rng.uniform(0, 5, n)
    queued = rng.integers(0, 50_000, n)
    batch = rng.integers(1, 300, n)
    slo = rng.uniform(0.0, 0.2, n)
    for gpu in (A100_80GB, H100_80GB, HAND):
        checks = [
            (prefill_time(prompt, gpu), [prefill_time(int(p), gpu) for p in prompt]),
            (tpot(batch, gpu), [tpot(int(b), gpu) for b in batch]),
            (max_batch(slo, gpu), [max_batch(float(s), gpu) for s in slo]),
            (kv_gb(prompt + out, gpu), [kv_gb(int(p + o), gpu) for p, o in zip(prompt, out)]),
            (kv_transfer_time(prompt, gpu), [kv_transfer_time(int(p), gpu) for p in prompt]),
            (
                ttft(wait, queued, prompt, gpu),
                [ttft(float(w), int(q), int(p), gpu) for w, q, p in zip(wait, queued, prompt)],
            ),
            (
                decode_time(out, batch, gpu),
                [decode_time(int(o), int(b), gpu) for o, b in zip(out, batch)],
            ),
        ]
        for vector, scalars in checks:
            assert isinstance(vector, np.ndarray) and vector.shape == (n,)
            assert all(isinstance(s, (int, float)) for s in scalars)
            np.testing.assert_array_equal(vector, np.array(scalars))
        t, d = ttft(wait, queued, prompt, gpu), tpot(batch, gpu)
        np.testing.assert_array_equal(
            meets_slo(t, d, 1.0, 0.05),
            np.array([meets_slo(float(a), float(b), 1.0, 0.05) for a, b in zip(t, d)]),
        )


# ---------------------------------------------------------------- properties

tokens = st.integers(min_value=0, max_value=1_000_000)
seconds = st.floats(min_value=0.0, max_value=1e4, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(seconds, seconds, tokens, tokens, tokens, st.sampled_from([A100_80GB, H100_80GB, HAND]))
def test_ttft_is_monotone_in_wait_and_queue(w1, w2, q1, q2, prompt, gpu):
    lo_w, hi_w = sorted((w1, w2))
    lo_q, hi_q = sorted((q1, q2))
    assert ttft(lo_w, lo_q, prompt, gpu) <= ttft(hi_w, lo_q, prompt, gpu)
    assert ttft(lo_w, lo_q, prompt, gpu) <= ttft(lo_w, hi_q, prompt, gpu)
    assert ttft(lo_w, lo_q, prompt, gpu) >= lo_w + prefill_time(prompt, gpu) - 1e-9 * (1 + lo_w)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(tokens, tokens, st.sampled_from([A100_80GB, H100_80GB, HAND]))
def test_tpot_is_monotone_in_batch(b1, b2, gpu):
    lo, hi = sorted((b1, b2))
    assert tpot(lo, gpu) <= tpot(hi, gpu)
    if hi > lo:
        assert tpot(lo, gpu) < tpot(hi, gpu)
