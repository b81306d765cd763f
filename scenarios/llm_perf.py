"""Performance model of LLM serving on GPUs: prefill, decode, KV cache, KV transfer, SLOs.

Pure functions and frozen dataclasses, numpy-vectorised over requests, no I/O. The
LLM-serving market on the Azure LLM inference trace 2023 (Splitwise, ISCA 2024: each
request has prompt tokens and output tokens) prices and schedules with these numbers.

Reference model and the market's "GPU"
--------------------------------------
The reference model is **Llama-2-70B in fp16**, served with **tensor parallelism 8**
(one model instance per 8-GPU DGX machine), as in Splitwise (Patel et al., "Splitwise:
Efficient Generative LLM Inference Using Phase Splitting", ISCA 2024), whose cluster runs
one instance per DGX-A100 / DGX-H100 with ``tensor_parallelism: 8`` (splitwise-sim,
``configs/start_state/splitwise.yaml``). The "GPU" sold in the market is therefore **one
serving instance = 8 physical GPUs of one type** (``GPUS_PER_INSTANCE``); every rate below
is per instance.

Where the numbers come from
---------------------------
Prefill throughput and the decode-time fit are fitted here to the measurements the
Splitwise authors published with their simulator: ``data/perf_model.csv`` in
github.com/Mutinifni/splitwise-sim (the artifact of the ISCA 2024 paper; its README calls
it "extensive profiling data from the DGX-A100 and DGX-H100 machines"). Rows used:
``model == llama2-70b``, ``tensor_parallel == 8``, hardware ``a100-80gb`` / ``h100-80gb``
(5 to 45 repetitions per point; 128 generated tokens per request, except the 512-token,
batch-1 point, repeated with 128 ... 8,192 generated tokens; times in ms, converted to s).

* ``prefill_tokens_per_s``: least-squares fit through the origin of ``prompt_time`` against
  ``prompt_size`` over the single-request rows (``batch_size == 1``, prompts 128 ... 8192
  tokens, 75 rows per GPU: 5 repetitions per size, 45 at 512): A100 5,550 tokens/s, H100
  10,020 tokens/s. The measured rate is not constant: it peaks near 2,048 tokens (A100
  7,240, H100 15,240 tokens/s, medians), is lower for long prompts (attention is quadratic
  in the prompt: A100 4,600 tokens/s at 8,192) and much lower for short ones (a fixed cost
  of ~50-65 ms per prefill). The fit is the single rate that best predicts prefill time
  over that range. Its errors: optimistic on short prompts (128 tokens: predicted 23 ms
  vs 65 ms measured on A100, 13 ms vs 58 ms on H100), pessimistic near 2,048 tokens
  (1.3x on A100, 1.5x on H100), within 10 % at 8,192.
* ``decode_base_s`` and ``decode_per_seq_s``: least-squares line through ``token_time``
  (the time per output token of every sequence in the batch, i.e. TBT/TPOT) against
  ``batch_size`` over the rows with 512-token prompts and batches 1, 2, 4, ..., 64 (75
  rows per GPU: 45 at batch 1, 5 at each other batch): A100 ``0.04440 + 0.000389 b`` s
  (R^2 0.96), H100 ``0.03007 + 0.000302 b`` s (R^2 0.98). Medians, A100: 45.0 ms at b = 1,
  50.4 ms at 16, 71.6 ms at 64; H100: 30.6, 34.2, 50.2 ms. The measured contexts are short
  (512 prompt tokens plus 128 generated at batches >= 2); longer contexts cost more per
  token (attention reads the whole KV cache) and this linear model does not see context
  length. Batches above 64 are extrapolation.

The KV-cache size is architecture arithmetic, the memory left for it is GPU memory minus
weights minus a stated reserve, and the transfer link is the DGX's InfiniBand (below).

Confidence: the fitted numbers reproduce the published measurements as stated (high
confidence in the data, medium in the linear/constant-rate simplification). The SLO
defaults are read from the DistServe artifact's plotting script, not from the paper's
table (see ``DEFAULT_SLO``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from market.errors import MarketInputError

#: physical GPUs in one serving instance (tensor parallelism of the reference model)
GPUS_PER_INSTANCE = 8
#: the model every default profile describes
REFERENCE_MODEL = "Llama-2-70B, fp16, tensor parallel 8"

#: Llama-2-70B architecture (Hugging Face ``meta-llama/Llama-2-70b-hf`` ``config.json``:
#: ``num_hidden_layers`` 80, ``num_attention_heads`` 64, ``num_key_value_heads`` 8 (grouped-
#: query attention), ``hidden_size`` 8192, so head_dim = 8192 / 64 = 128; ``torch_dtype``
#: float16, 2 bytes per element). Cross-checked against a printed Llama-2-70B module tree,
#: where ``k_proj``/``v_proj`` map 8192 -> 1024 = 8 heads x 128.
LLAMA2_70B_LAYERS = 80
LLAMA2_70B_KV_HEADS = 8
LLAMA2_70B_HEAD_DIM = 128
FP16_BYTES = 2
#: 2 (K and V) x 80 layers x 8 KV heads x 128 x 2 bytes = 327,680 bytes (320 KiB) per token
LLAMA2_70B_KV_BYTES_PER_TOKEN = (
    2 * LLAMA2_70B_LAYERS * LLAMA2_70B_KV_HEADS * LLAMA2_70B_HEAD_DIM * FP16_BYTES
)

#: Llama-2-70B parameters from the same config (vocab 32,000, intermediate 28,672, untied
#: embeddings): 80 x (2 x 8192^2 + 2 x 8192 x 1024 + 3 x 8192 x 28672 + 2 x 8192)
#: + 2 x 32000 x 8192 + 8192 = 68,976,648,192; in fp16 that is 137.95 GB of weights.
LLAMA2_70B_WEIGHTS_GB = 68_976_648_192 * FP16_BYTES / 1e9
#: HBM of one A100-80GB or H100-80GB (SXM): 80 GiB = 85,899,345,920 bytes (the figure
#: splitwise-sim uses, ``configs/hardware_repo/processors/{a100,h100}-80gb.yaml``)
HBM_GB_PER_GPU = 80 * 2**30 / 1e9
#: fraction of HBM the serving engine may use; the rest is the reserve for activations,
#: CUDA context and fragmentation. 0.9 is vLLM's default ``gpu_memory_utilization``.
MEMORY_UTILIZATION = 0.9
#: KV memory of one 8-GPU instance: 0.9 x 8 x 85.899 GB - 137.95 GB = 480.52 GB
#: (the same for A100-80GB and H100-80GB: both have 80 GiB per GPU)
INSTANCE_KV_MEMORY_GB = (
    MEMORY_UTILIZATION * GPUS_PER_INSTANCE * HBM_GB_PER_GPU - LLAMA2_70B_WEIGHTS_GB
)


#: fields that may be 0 (a decode step with no fixed cost); all others must be > 0
_MAY_BE_ZERO = frozenset({"decode_base_s"})


def _check(key: str, field: str, value: Any, source: str | None = None) -> float:
    """``value`` as a float, or a one-line MarketInputError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MarketInputError(f"key '{key}' must be a number, got {value!r}", source=source)
    number = float(value)
    if not math.isfinite(number):
        raise MarketInputError(f"key '{key}' must be finite, got {value!r}", source=source)
    if field in _MAY_BE_ZERO:
        if number < 0:
            raise MarketInputError(f"key '{key}' must be >= 0, got {value!r}", source=source)
    elif number <= 0:
        raise MarketInputError(f"key '{key}' must be > 0, got {value!r}", source=source)
    return number


@dataclass(frozen=True)
class GPUProfile:
    """Serving rates of one instance (``GPUS_PER_INSTANCE`` GPUs) of one GPU type.

    ``prefill_tokens_per_s``: prompt tokens processed per second in the prefill phase
    (tokens/s). ``decode_base_s`` + ``decode_per_seq_s`` x batch: time per output token of
    every sequence in a decode batch (s/token). ``kv_bytes_per_token``: KV-cache bytes one
    token occupies (bytes). ``kv_memory_gb``: memory left for the KV cache (GB = 1e9 bytes).
    ``kv_transfer_gbps``: the link that moves a KV cache between a prefill and a decode
    instance (gigabits per second, 1e9 bits/s, aggregate over the instance's NICs).
    """

    name: str
    prefill_tokens_per_s: float
    decode_base_s: float
    decode_per_seq_s: float
    kv_bytes_per_token: float
    kv_memory_gb: float
    kv_transfer_gbps: float

    def __post_init__(self) -> None:
        for key in NUMERIC_FIELDS:
            _check(f"{self.name}.{key}", key, getattr(self, key))


#: the fields a ``[llm.gpus.<name>]`` table may set (all numbers)
NUMERIC_FIELDS = (
    "prefill_tokens_per_s",
    "decode_base_s",
    "decode_per_seq_s",
    "kv_bytes_per_token",
    "kv_memory_gb",
    "kv_transfer_gbps",
)


A100_80GB = GPUProfile(
    name="A100",
    # splitwise-sim data/perf_model.csv, llama2-70b, a100-80gb, TP 8, batch_size 1,
    # prompts 128..8192: least squares through the origin of prompt_time vs prompt_size.
    prefill_tokens_per_s=5550.0,
    # same file, 512-token prompts, batch 1..64: token_time = 44.40 ms + 0.389 ms x batch.
    decode_base_s=0.0444,
    decode_per_seq_s=0.000389,
    kv_bytes_per_token=float(LLAMA2_70B_KV_BYTES_PER_TOKEN),
    kv_memory_gb=INSTANCE_KV_MEMORY_GB,
    # DGX-A100: 8 x 200 Gb/s HDR InfiniBand (one ConnectX-6 per GPU) = 1,600 Gb/s = 200 GB/s;
    # Splitwise moves the KV cache over this back-plane, and splitwise-sim's KV schedulers
    # use ``transfer_bandwidth: 200`` (GiB/s) for it (configs/orchestrator_repo/schedulers/
    # kv_round_robin.yaml).
    kv_transfer_gbps=1600.0,
)

H100_80GB = GPUProfile(
    name="H100",
    # splitwise-sim data/perf_model.csv, llama2-70b, h100-80gb, TP 8 (same fits as A100).
    prefill_tokens_per_s=10020.0,
    decode_base_s=0.03007,
    decode_per_seq_s=0.000302,
    kv_bytes_per_token=float(LLAMA2_70B_KV_BYTES_PER_TOKEN),
    kv_memory_gb=INSTANCE_KV_MEMORY_GB,
    # DGX-H100: 8 x 400 Gb/s NDR InfiniBand (ConnectX-7) = 3,200 Gb/s = 400 GB/s.
    kv_transfer_gbps=3200.0,
)

#: the default instance types, by the name a scenario uses in ``[llm.gpus.<name>]``
DEFAULT_GPUS: Mapping[str, GPUProfile] = MappingProxyType({"A100": A100_80GB, "H100": H100_80GB})


@dataclass(frozen=True)
class ServiceSLO:
    """Latency objectives of one service: time to first token and time per output token (s)."""

    ttft_s: float
    tpot_s: float

    def __post_init__(self) -> None:
        for key in ("ttft_s", "tpot_s"):
            _check(key, key, getattr(self, key))


#: Per-service SLOs of the two Azure trace services (code, conversation), from DistServe
#: (Zhong et al., OSDI 2024), for its OPT-66B workloads, the size closest to Llama-2-70B:
#: code completion (HumanEval) TTFT 0.125 s, TPOT 0.2 s; chatbot (ShareGPT) TTFT 0.4 s,
#: TPOT 0.1 s. Read from the DistServe artifact, github.com/LLMServe/DistServe,
#: ``evaluation/ae-scripts/e2e/_plot.py`` (``plot_fig9``: "opt-66b-humaneval", 0.125, 0.2;
#: ``plot_fig8_lower``: "opt-66b-sharegpt", 0.4, 0.1), the script that draws the paper's
#: Figures 8 and 9. The paper's own SLO table (Table 1) was not available to check here;
#: if it differs from the artifact, the artifact is what these numbers are.
#: Caution: DistServe's code SLO was set for HumanEval's short prompts. The Azure code
#: trace has long prompts (median 1,469 tokens in AzureLLMInferenceTrace_code.csv, 8,819
#: requests; conversation: median 1,020 prompt, 129 output tokens): at the default rates
#: a 1,469-token prompt alone takes 0.26 s on A100 and 0.15 s on H100, so most code
#: requests miss a 0.125 s TTFT whatever the schedule. Override ``[llm.slo.code]``
#: for a feasible target.
DEFAULT_SLO: Mapping[str, ServiceSLO] = MappingProxyType(
    {
        "code": ServiceSLO(ttft_s=0.125, tpot_s=0.2),
        "conversation": ServiceSLO(ttft_s=0.4, tpot_s=0.1),
    }
)


# ---------------------------------------------------------------- the model


def _out(x: np.ndarray) -> Any:
    """A 0-d result as a Python scalar, an array as it is."""
    return x.item() if np.ndim(x) == 0 else x


def prefill_time(prompt_tokens: Any, gpu: GPUProfile) -> Any:
    """Seconds to prefill ``prompt_tokens`` (scalar or array of token counts) on ``gpu``.

    ``prompt_tokens / prefill_tokens_per_s``; same shape as ``prompt_tokens``.
    """
    return _out(np.asarray(prompt_tokens, dtype=float) / gpu.prefill_tokens_per_s)


def tpot(batch: Any, gpu: GPUProfile) -> Any:
    """Seconds per output token of every sequence in a decode batch of ``batch`` sequences.

    ``decode_base_s + decode_per_seq_s * batch``; ``batch`` scalar or array, same shape out.
    """
    return _out(gpu.decode_base_s + gpu.decode_per_seq_s * np.asarray(batch, dtype=float))


def max_batch(tpot_slo: Any, gpu: GPUProfile) -> Any:
    """Largest batch b >= 1 with ``tpot(b, gpu) <= tpot_slo``; 0 if even b = 1 misses.

    ``tpot_slo`` in s (scalar or array); returns int (or int64 array). Consistent with
    ``tpot`` to the last bit: ``tpot(max_batch(s)) <= s < tpot(max_batch(s) + 1)``.
    """
    slo = np.asarray(tpot_slo, dtype=float)
    raw = np.floor((slo - gpu.decode_base_s) / gpu.decode_per_seq_s)
    b = np.where(np.isfinite(raw), np.maximum(raw, 0.0), 0.0)
    # float rounding can leave the quotient one off either way: correct against tpot itself
    b = np.where(gpu.decode_base_s + gpu.decode_per_seq_s * (b + 1) <= slo, b + 1, b)
    b = np.where((b > 0) & (gpu.decode_base_s + gpu.decode_per_seq_s * b > slo), b - 1, b)
    return _out(b.astype(np.int64))


def kv_gb(tokens: Any, gpu: GPUProfile) -> Any:
    """GB (1e9 bytes) of KV cache that ``tokens`` tokens occupy: ``tokens * kv_bytes_per_token / 1e9``."""
    return _out(np.asarray(tokens, dtype=float) * gpu.kv_bytes_per_token / 1e9)


def kv_capacity_tokens(gpu: GPUProfile) -> int:
    """Tokens whose KV cache fits in ``gpu.kv_memory_gb`` (prompt + generated, all sequences)."""
    return math.floor(gpu.kv_memory_gb * 1e9 / gpu.kv_bytes_per_token)


def kv_transfer_time(tokens: Any, gpu: GPUProfile, peer: GPUProfile | None = None) -> Any:
    """Seconds to move the KV cache of ``tokens`` tokens from a prefill to a decode instance.

    ``kv_gb(tokens) * 8 / kv_transfer_gbps`` (GB -> Gb). With ``peer`` (the other end), the
    slower of the two links sets the rate. Bandwidth only: no latency term, no overlap with
    the prefill (Splitwise overlaps the transfer layer by layer, so this is an upper bound).
    """
    gbps = (
        gpu.kv_transfer_gbps if peer is None else min(gpu.kv_transfer_gbps, peer.kv_transfer_gbps)
    )
    return _out(np.asarray(tokens, dtype=float) * gpu.kv_bytes_per_token * 8.0 / (gbps * 1e9))


def ttft(wait_s: Any, queued_prefill_tokens: Any, prompt_tokens: Any, gpu: GPUProfile) -> Any:
    """Time to first token (s): ``wait_s + (queued_prefill_tokens + prompt_tokens) / prefill_tokens_per_s``.

    The request's prefill runs after the prefills queued before it on the same instance
    (first come, first served). All arguments broadcast (scalars or arrays over requests).
    """
    queued = np.asarray(queued_prefill_tokens, dtype=float) + np.asarray(prompt_tokens, dtype=float)
    return _out(np.asarray(wait_s, dtype=float) + queued / gpu.prefill_tokens_per_s)


def decode_time(output_tokens: Any, batch: Any, gpu: GPUProfile) -> Any:
    """Seconds to generate ``output_tokens`` in a decode batch of ``batch``: ``output_tokens * tpot(batch)``.

    Counts every output token at the decode rate (the first one is also produced by the
    prefill, so this over-counts by one TPOT: a conservative choice). Broadcasts.
    """
    step = gpu.decode_base_s + gpu.decode_per_seq_s * np.asarray(batch, dtype=float)
    return _out(np.asarray(output_tokens, dtype=float) * step)


def meets_slo(ttft_s: Any, tpot_s: Any, ttft_slo: Any, tpot_slo: Any) -> Any:
    """True where both ``ttft_s <= ttft_slo`` and ``tpot_s <= tpot_slo`` (bool, or bool array)."""
    ok = (np.asarray(ttft_s, dtype=float) <= np.asarray(ttft_slo, dtype=float)) & (
        np.asarray(tpot_s, dtype=float) <= np.asarray(tpot_slo, dtype=float)
    )
    return _out(ok)


# ---------------------------------------------------------------- scenario overrides


def profile_from(
    table: Mapping[str, Any],
    base: GPUProfile,
    source: str | None = None,
    name: str | None = None,
    prefix: str = "llm.gpus",
) -> GPUProfile:
    """``base`` with the values of a scenario's ``[llm.gpus.<name>]`` table.

    Keys are the numeric fields of ``GPUProfile`` (``NUMERIC_FIELDS``); each value must be
    a finite number > 0 (``decode_base_s`` >= 0). Unknown keys are refused. ``name``
    (default ``base.name``) names the profile and the keys in error messages, e.g.
    ``key 'llm.gpus.H100.prefill_tokens_per_s' must be > 0, got -3``; ``source`` (a file)
    prefixes them.
    """
    name = base.name if name is None else name
    if not isinstance(table, Mapping):
        raise MarketInputError(
            f"key '{prefix}.{name}' must be a table, got {table!r}", source=source
        )
    values: dict[str, float] = {}
    for key, value in table.items():
        full = f"{prefix}.{name}.{key}"
        if key not in NUMERIC_FIELDS:
            known = ", ".join(NUMERIC_FIELDS)
            raise MarketInputError(f"unknown key '{full}' (known: {known})", source=source)
        values[key] = _check(full, key, value, source)
    return replace(base, name=name, **values)


def slo_from(
    table: Mapping[str, Any],
    base: Mapping[str, ServiceSLO] = DEFAULT_SLO,
    source: str | None = None,
    prefix: str = "llm.slo",
) -> Mapping[str, ServiceSLO]:
    """``base`` SLOs with a scenario's ``[llm.slo.<service>]`` tables (keys ``ttft_s``, ``tpot_s``).

    Values must be finite and > 0 (zero or negative refused, naming the key); unknown keys
    are refused. A service not in ``base`` is added and must give both keys. Returns a new
    read-only mapping.
    """
    if not isinstance(table, Mapping):
        raise MarketInputError(f"key '{prefix}' must be a table, got {table!r}", source=source)
    keys = tuple(f.name for f in fields(ServiceSLO))
    out = dict(base)
    for service, entry in table.items():
        where = f"{prefix}.{service}"
        if not isinstance(entry, Mapping):
            raise MarketInputError(
                f"key '{where}' must be a table with {' and '.join(keys)}, got {entry!r}",
                source=source,
            )
        values: dict[str, float] = {}
        for key, value in entry.items():
            if key not in keys:
                raise MarketInputError(
                    f"unknown key '{where}.{key}' (known: {', '.join(keys)})", source=source
                )
            values[key] = _check(f"{where}.{key}", key, value, source)
        if service in out:
            out[service] = replace(out[service], **values)
        else:
            missing = [k for k in keys if k not in values]
            if missing:
                raise MarketInputError(
                    f"key '{where}' is a new service and must set {' and '.join(missing)}",
                    source=source,
                )
            out[service] = ServiceSLO(**values)
    return MappingProxyType(out)
