"""An LLM-serving market on the Azure LLM inference trace 2023 (``[market] source = "azure_llm"``).

Files: ``$MARKET_DATA_DIR/azure-llm-2023/AzureLLMInferenceTrace_code.csv`` and
``AzureLLMInferenceTrace_conv.csv`` (``TIMESTAMP, ContextTokens, GeneratedTokens``; one
hour each of a code-completion and a conversation service; Patel et al., "Splitwise",
ISCA 2024, Azure Public Dataset, CC-BY 4.0).

**Time.** A round is ``round_seconds`` of trace time. The trace is replayed from
``start_seconds`` after its first request (of any of the services: they keep their
relative timing), at ``rate`` times its speed: a request
``s`` seconds into the trace arrives at ``(s - start_seconds) / rate`` seconds of market
time (``rate = 2`` replays it twice as fast: twice the requests per second, the same
requests), in round ``floor(arrival / round_seconds)``; the market spans the scenario's
horizon. The round clears at the end of its window.

**Sellers** are serving instances (:mod:`scenarios.llm_perf`: one instance = 8 GPUs of one
type running Llama-2-70B), ``[llm] instances = { A100 = 4, H100 = 2 }``. ``[llm] pools``:
``"shared"``, every instance does both phases, giving ``shared_prefill_share`` of each
round to prefill and the rest to decode (time slicing: a decode step then takes
``tpot / (1 - share)``); or ``"disaggregated"``, the first ``prefill_share`` of each type's
instances (rounded, at least one of each kind overall) do prefill only and the rest
decode only (Splitwise, DistServe). Resource type ``<gpu>/<role>`` (``A100/shared``,
``H100/prefill``, ...). Dimensions ``("prefill", "kv", "batch")``:

- ``prefill``: prompt tokens an instance prefills in a round, ``round_seconds x
  prefill_tokens_per_s`` (x the shared share; 0 on decode instances);
- ``kv``: GB of KV cache, ``kv_memory_gb``;
- ``batch``: decode sequences at once, the largest batch whose TPOT meets the tightest
  TPOT SLO of the services (:func:`scenarios.llm_perf.max_batch`; under sharing, at the
  SLO times ``1 - share``; 0 on prefill instances).

**Buyers.** Each trace request becomes two rows: its prefill ``<id>/prefill`` (prompt
tokens, the prompt's KV cache, one round) and its decode ``<id>/decode`` (``after`` the
prefill, entering the book one round after it, plus the KV transfer's rounds when pools
are disaggregated; the whole KV cache and one batch slot for the rounds its output takes at
the largest batch). A row may only go to an instance whose predicted latency meets its
service's SLO: the prefill to types whose prefill of the prompt, served in the round it
arrives, first in queue, meets the TTFT SLO, and not after the last round where the
fastest such type still would (``deadline``); the decode to decode-capable instances
(their batch capacity keeps TPOT within the SLO). Tenants are users: each service's
requests are split by a seeded draw into ``tenants`` tenants, each with its own budget
multiplier (log-normal, sigma 0.5), so fairness between tenants means something. Budgets
follow a price per thousand tokens: ``price_per_1k[service] x (prompt + output) / 1000 x
multiplier``, split between the phases in proportion to their priced quantities.

**Prices.** ``price_weights`` make a unit price a price per thousand tokens: a prefill row
prices its prompt tokens / 1000, a decode row its batch slot times ``round_seconds / (1000
tpot_ref)`` per round (the output tokens one slot yields per round at the reference
TPOT, A100 at batch 1), so its cost is about ``unit_cost x output / 1000``. An instance's
``unit_cost`` is ``cost_per_1k[gpu]``.

The market's rounds get the serving metrics of :class:`LLMServing` (``slo_attainment``,
``goodput``, ``ttft_p90``, ``tpot_p90``, ``tenant_goodput_jain``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from market.errors import MarketInputError
from scenarios import llm_perf
from scenarios.file_lines import file_line
from scenarios.tables import MarketData, validate

FOLDER = "azure-llm-2023"
FILES = {"code": "AzureLLMInferenceTrace_code.csv", "conversation": "AzureLLMInferenceTrace_conv.csv"}
FETCH_HINT = "run: market data fetch azure-llm-2023, or set MARKET_DATA_DIR"
#: sha256 of each file's content (the data folder's README; ``market data verify``)
CONTENT_SHA256: dict[str, str] = {
    "AzureLLMInferenceTrace_code.csv": "54e9a6d2a4bd06ba1e060304b900abbc74cbea53de96506e60fe5bb4f2277fb6",
    "AzureLLMInferenceTrace_conv.csv": "2f1e5b666d4e3055fdbba98598ce2ec307767b9064e03e2fa46676dbcc7d0bf8",
}
DIMENSIONS = ("prefill", "kv", "batch")
#: ``[market]`` keys of the source, with their defaults
DEFAULTS: dict[str, Any] = {
    "services": ["code", "conversation"],
    "start_seconds": 0.0,
    "round_seconds": 1.0,
    "rate": 1.0,
    "tenants": 3,
    "price_per_1k": {"code": 0.004, "conversation": 0.004},
    "cost_per_1k": {"A100": 0.002, "H100": 0.003},
}
#: ``[llm]`` keys, with their defaults (``gpus`` and ``slo`` are tables of overrides)
LLM_DEFAULTS: dict[str, Any] = {
    "pools": "shared",
    "instances": {"A100": 4, "H100": 2},
    "prefill_share": 0.5,
    "shared_prefill_share": 0.5,
    "gpus": {},
    "slo": {},
}
POOLS = ("shared", "disaggregated")
#: token counts are below this (exact as floats; a count beyond is no request's, and would wrap as int64)
TOKENS_MAX = 2**53


def data_dir() -> Path:
    """The trace folder (``$MARKET_DATA_DIR``; the same default as the other traces)."""
    from scenarios import google2011

    return google2011.data_dir() / FOLDER


# --- options --------------------------------------------------------------------------


def _number(value: Any, key: str, source: str, low: float = 0.0, strict: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MarketInputError(f"key {key!r} must be a finite number, got {value!r}", source=source)
    if value < low or (strict and value == low):
        raise MarketInputError(f"key {key!r} must be {'>' if strict else '>='} {low:g}, got {value!r}", source=source)
    return float(value)


def options(market: Mapping[str, Any], llm: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The source's ``[market]`` and ``[llm]`` keys with defaults, every value checked.

    Raises:
        MarketInputError: naming the key (zero or negative rates, SLOs, counts; a pool
            split that leaves a phase without instances; unknown keys, services, GPUs).
    """
    given = {k: v for k, v in market.items() if k != "source"}
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise MarketInputError(f"unknown key market.{unknown[0]} for source 'azure_llm' (known: {', '.join(DEFAULTS)})",
                               source=source)
    opt = {**DEFAULTS, **given}
    services = opt["services"]
    if not isinstance(services, list) or not services or any(s not in FILES for s in services) \
            or len(set(services)) != len(services):
        raise MarketInputError(f"key 'market.services' must be a non-empty list of distinct services from "
                               f"{', '.join(FILES)}, got {services!r}", source=source)
    opt["start_seconds"] = _number(opt["start_seconds"], "market.start_seconds", source, strict=False)
    opt["round_seconds"] = _number(opt["round_seconds"], "market.round_seconds", source)
    opt["rate"] = _number(opt["rate"], "market.rate", source)
    tenants = opt["tenants"]
    if isinstance(tenants, bool) or not isinstance(tenants, int) or tenants < 1:
        raise MarketInputError(f"key 'market.tenants' must be an integer >= 1, got {tenants!r}", source=source)
    for key in ("price_per_1k", "cost_per_1k"):
        table = opt[key]
        if not isinstance(table, dict):
            raise MarketInputError(f"key 'market.{key}' must be a table, got {table!r}", source=source)
        opt[key] = {**DEFAULTS[key], **{k: _number(v, f"market.{key}.{k}", source) for k, v in table.items()}}
    for s in services:
        if s not in opt["price_per_1k"]:
            raise MarketInputError(f"key 'market.price_per_1k.{s}' is missing", source=source)

    given_llm = dict(llm)
    unknown = sorted(set(given_llm) - set(LLM_DEFAULTS))
    if unknown:
        raise MarketInputError(f"unknown key llm.{unknown[0]} (known: {', '.join(LLM_DEFAULTS)})", source=source)
    lo = {**LLM_DEFAULTS, **given_llm}
    if lo["pools"] not in POOLS:
        raise MarketInputError(f"key 'llm.pools' must be one of {', '.join(POOLS)}, got {lo['pools']!r}", source=source)
    gpus_table = lo["gpus"]
    if not isinstance(gpus_table, dict):
        raise MarketInputError(f"key 'llm.gpus' must be a table of GPU tables, got {gpus_table!r}", source=source)
    profiles = dict(llm_perf.DEFAULT_GPUS)
    for name, table in gpus_table.items():
        base = profiles.get(name, llm_perf.A100_80GB)
        if not isinstance(table, dict):
            raise MarketInputError(f"key 'llm.gpus.{name}' must be a table, got {table!r}", source=source)
        if name not in profiles and set(table) != set(llm_perf.NUMERIC_FIELDS):
            raise MarketInputError(f"key 'llm.gpus.{name}': a new GPU type sets every field "
                                   f"({', '.join(llm_perf.NUMERIC_FIELDS)})", source=source)
        profiles[name] = llm_perf.profile_from(table, base, source=source, name=name)
    instances = lo["instances"]
    if not isinstance(instances, dict) or not instances:
        raise MarketInputError(f"key 'llm.instances' must be a table of GPU = count, got {instances!r}", source=source)
    for name, count in instances.items():
        if name not in profiles:
            raise MarketInputError(f"key 'llm.instances.{name}': no such GPU type (known: {', '.join(profiles)}; "
                                   "define it in [llm.gpus.<name>])", source=source)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise MarketInputError(f"key 'llm.instances.{name}' must be an integer >= 0, got {count!r}", source=source)
    if sum(instances.values()) < 1:
        raise MarketInputError("key 'llm.instances': the market needs at least one instance", source=source)
    lo["prefill_share"] = _number(lo["prefill_share"], "llm.prefill_share", source)
    lo["shared_prefill_share"] = _number(lo["shared_prefill_share"], "llm.shared_prefill_share", source)
    for key in ("prefill_share", "shared_prefill_share"):
        if lo[key] >= 1:
            raise MarketInputError(f"key 'llm.{key}' must be below 1 (the other phase needs time or instances), "
                                   f"got {lo[key]!r}", source=source)
    slo_table = lo["slo"]
    if not isinstance(slo_table, dict):
        raise MarketInputError(f"key 'llm.slo' must be a table of service tables, got {slo_table!r}", source=source)
    unknown = sorted(set(slo_table) - set(FILES))
    if unknown:
        raise MarketInputError(f"key 'llm.slo.{unknown[0]}': no such service (known: {', '.join(FILES)})", source=source)
    slo = llm_perf.slo_from(slo_table, source=source)
    opt["llm"] = {**lo, "profiles": profiles, "slo": slo}
    roles = _roles(instances, lo["pools"], lo["prefill_share"])
    if lo["pools"] == "disaggregated" and (not any(r == "prefill" for _, r in roles)
                                           or not any(r == "decode" for _, r in roles)):
        raise MarketInputError(f"key 'llm.prefill_share' = {lo['prefill_share']!r} leaves a phase without instances "
                               f"({sum(instances.values())} in all)", source=source)
    tightest = min(slo[s].tpot_s for s in services)
    slice_ = (1 - lo["shared_prefill_share"]) if lo["pools"] == "shared" else 1.0
    if all(int(llm_perf.max_batch(tightest * slice_, profiles[g])) == 0 for g, r in roles if r != "prefill"):
        key = "llm.shared_prefill_share" if lo["pools"] == "shared" else "llm.slo"
        raise MarketInputError(f"key {key!r}: no instance can decode within the tightest TPOT SLO ({tightest:g} s"
                               + (f" x {slice_:g} of each round" if lo["pools"] == "shared" else "")
                               + "): every decode-capable GPU's decode_base_s is above it", source=source)
    return opt


def _roles(instances: Mapping[str, int], pools: str, prefill_share: float) -> list[tuple[str, str]]:
    """``(gpu, role)`` of every instance, GPU types in the order given.

    Disaggregated: ``round(prefill_share x count)`` of each type prefill, the rest decode;
    if that leaves a phase without any instance, the largest pool gives it one.
    """
    if pools == "shared":
        return [(g, "shared") for g, n in instances.items() for _ in range(n)]
    split = {g: min(n, round(prefill_share * n)) for g, n in instances.items()}
    if sum(split.values()) == 0 and sum(instances.values()) > 1:
        big = max(instances, key=lambda g: instances[g])
        split[big] = 1
    if sum(split.values()) == sum(instances.values()) and sum(instances.values()) > 1:
        big = max(instances, key=lambda g: split[g])
        split[big] -= 1
    return [(g, "prefill" if k < split[g] else "decode") for g, n in instances.items() for k in range(n)]


# --- the trace --------------------------------------------------------------------------


def read_trace(service: str, root: Path | None = None) -> pd.DataFrame:
    """One service's trace: ``time`` (its timestamp), ``prompt``, ``output``, ``row`` (its data row in the file), in time order.

    Timestamps are ISO 8601 (``2023-11-16 18:17:03.9799600``, fractions optional); one
    with a UTC offset or ``Z`` (``...03.97996+00:00``, ``...T18:17:03Z``) is converted to
    UTC, and one without is read as UTC, so the services' clocks compare whatever mix a
    file holds; ``time`` is naive UTC. Token counts are whole numbers >= 0 and below
    :data:`TOKENS_MAX`, written as digits.

    Raises:
        MarketInputError: a missing file or column, a file with a header row only, an
            unparseable timestamp, a missing, fractional, negative or huge token count: one
            line naming the file (and the line and field).
    """
    path = (data_dir() if root is None else Path(root)) / FILES[service]
    if not path.is_file():
        raise MarketInputError(f"missing trace file {path} ({FETCH_HINT})")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises many types; the user needs one line
        raise MarketInputError(f"cannot read trace file: {exc}", source=str(path)) from None
    for col in ("TIMESTAMP", "ContextTokens", "GeneratedTokens"):
        if col not in raw.columns:
            raise MarketInputError(f"missing column {col!r}", source=str(path))
    if raw.empty:  # a cut download, never the published file: not a service without requests
        raise MarketInputError(f"no requests: the file holds a header row only ({FETCH_HINT}; or leave {service!r} out "
                               "of market.services)", source=str(path))
    stamps = pd.to_datetime(raw["TIMESTAMP"].str.strip(), format="ISO8601", utc=True, errors="coerce").dt.tz_localize(None)
    bad = stamps.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise MarketInputError(f"line {file_line(path, row)}: field 'TIMESTAMP' is not a timestamp: {raw['TIMESTAMP'].iloc[row]!r}",
                               source=str(path))
    out = {}
    for col, name in (("ContextTokens", "prompt"), ("GeneratedTokens", "output")):
        text = raw[col].str.strip()
        values = pd.to_numeric(text.where(text.str.fullmatch(r"[0-9]+"), None), errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values >= TOKENS_MAX)  # beyond it the int64 cast wraps (to -9.2e18)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise MarketInputError(f"line {file_line(path, row)}: field {col!r} must be a whole number of tokens >= 0 and "
                                   f"below 2**53, got {raw[col].iloc[row]!r}", source=str(path))
        out[name] = values.astype(np.int64)
    frame = pd.DataFrame({"time": stamps, **out, "row": np.arange(len(raw), dtype=np.int64)})
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


# --- the market ---------------------------------------------------------------------------


def build(scenario: Any, rng: np.random.Generator) -> MarketData:
    """The LLM-serving market of ``scenario`` for one seed (module docstring).

    Raises:
        MarketInputError: on bad keys or trace fields (one line).
    """
    opt = options(scenario.source_params(), scenario.llm, scenario.path)
    lo = opt["llm"]
    R, horizon = opt["round_seconds"], int(scenario.horizon)
    profiles: dict[str, llm_perf.GPUProfile] = lo["profiles"]
    slo: Mapping[str, llm_perf.ServiceSLO] = lo["slo"]
    roles = _roles(lo["instances"], lo["pools"], lo["prefill_share"])
    shared = lo["pools"] == "shared"
    share = lo["shared_prefill_share"]
    services = opt["services"]
    tpot_slo = min(slo[s].tpot_s for s in services)

    # sellers
    gpu = [g for g, _ in roles]
    role = [r for _, r in roles]
    prof = [profiles[g] for g in gpu]
    m = len(roles)
    prefill_cap = np.array([R * p.prefill_tokens_per_s * (share if r == "shared" else 1.0 if r == "prefill" else 0.0)
                            for p, r in zip(prof, role, strict=True)])
    batch_cap = np.array([0.0 if r == "prefill" else
                          float(llm_perf.max_batch(tpot_slo * ((1 - share) if r == "shared" else 1.0), p))
                          for p, r in zip(prof, role, strict=True)])
    res = pd.DataFrame({
        "resource_id": [f"{g}-{r}-{k}" for k, (g, r) in enumerate(roles)],
        "prefill": prefill_cap, "kv": [p.kv_memory_gb for p in prof], "batch": batch_cap,
        "unit_cost": [opt["cost_per_1k"].get(g, 0.0) for g in gpu],
        "reliability": 1.0, "availability": 1.0, "energy_efficiency": 1.0, "x": 0.0, "y": 0.0,
        "owner_id": gpu, "resource_type": [f"{g}/{r}" for g, r in roles],
    })

    # buyers: the trace window, replayed at the rate
    frames = []
    for s in services:
        t = read_trace(s)
        t = t.assign(service=s, trace_index=np.arange(len(t)))
        frames.append(t)
    trace = pd.concat(frames, ignore_index=True)
    # the services' clocks together: seconds from the first request of any of them
    trace["seconds"] = (trace["time"] - trace["time"].min()).dt.total_seconds()
    arrival = (trace["seconds"].to_numpy() - opt["start_seconds"]) / opt["rate"]
    keep = (arrival >= 0) & (arrival < horizon * R)
    trace = trace[keep].assign(arrival_s=arrival[keep]).sort_values(["arrival_s", "service", "trace_index"], kind="stable")
    trace = trace.reset_index(drop=True)
    n = len(trace)
    service = trace["service"].to_numpy()
    prompt = trace["prompt"].to_numpy()
    output = np.maximum(trace["output"].to_numpy(), 1)  # a request yields at least its first token
    arrival_s = trace["arrival_s"].to_numpy()
    rnd = np.floor(arrival_s / R).astype(np.int64)
    ids = np.array([f"{'code' if s == 'code' else 'conv'}-{k}" for s, k in zip(service, trace["trace_index"], strict=True)],
                   dtype=object)
    # tenants: a seeded split of each service, each tenant its own budget multiplier
    tenant = rng.integers(0, opt["tenants"], n)
    multiplier = np.exp(rng.normal(0.0, 0.5, (len(services), opt["tenants"])))
    svc_index = np.array([services.index(s) for s in service], dtype=np.int64)
    user = np.array([f"{s}-tenant-{k}" for s, k in zip(service, tenant, strict=True)], dtype=object)
    ttft_slo = np.array([slo[s].ttft_s for s in service])
    tpot_slo_req = np.array([slo[s].tpot_s for s in service])

    # a prefill larger than a round's budget runs over several rounds at an even share:
    # d rounds on the slowest prefill instance, prompt / d tokens of every round's budget
    slowest_prefill = min(c for c, r in zip(prefill_cap, role, strict=True) if r != "decode")
    prefill_rounds = _whole_rounds(np.ceil(prompt / slowest_prefill), trace, "ContextTokens", "its prefill")
    # the largest batch on any decode-capable instance sets the worst-case decode rounds
    ref = llm_perf.A100_80GB
    decode_gpus = [(p, b) for p, r, b in zip(prof, role, batch_cap, strict=True) if r != "prefill"]
    worst_tpot = max(float(llm_perf.tpot(b, p)) / ((1 - share) if shared else 1.0) for p, b in decode_gpus)
    decode_rounds = _whole_rounds(np.ceil(output * worst_tpot / R), trace, "GeneratedTokens", "its decode")
    kv_prompt = np.asarray(llm_perf.kv_gb(prompt, ref), dtype=float)
    kv_total = np.asarray(llm_perf.kv_gb(prompt + output, ref), dtype=float)
    transfer_rounds = np.zeros(n, dtype=np.int64)
    if not shared:
        slowest = min((p for p, r in zip(prof, role, strict=True)), key=lambda p: p.kv_transfer_gbps)
        transfer = np.ceil(np.asarray(llm_perf.kv_transfer_time(prompt, slowest), dtype=float) / R)
        transfer_rounds = _whole_rounds(transfer, trace, "ContextTokens", "its KV transfer", least=0)

    # eligibility by predicted TTFT: served in its arrival round, first in queue
    prefill_types = sorted({f"{g}/{r}" for g, r in roles if r != "decode"})
    decode_types = sorted({f"{g}/{r}" for g, r in roles if r != "prefill"})
    wait0 = (rnd + 1) * R - arrival_s
    allowed = []
    deadline = np.full(n, -1, dtype=np.int64)
    for t in prefill_types:
        g, r = t.split("/")
        rate = profiles[g].prefill_tokens_per_s * (share if r == "shared" else 1.0)
        run = predicted_ttft(0.0, 0.0, prompt, prefill_rounds, rate, R)
        ok = wait0 + run <= ttft_slo
        allowed.append(ok)
        # last round t with (t + 1) R - arrival + run <= slo
        last = np.floor((arrival_s + ttft_slo - run) / R).astype(np.int64) - 1
        deadline = np.where(ok, np.maximum(deadline, last), deadline)
    allowed_arr = np.array(allowed).reshape(len(prefill_types), n)
    prefill_allowed = np.array(["|".join(t for t, ok in zip(prefill_types, allowed_arr[:, i], strict=True) if ok)
                                for i in range(n)], dtype=object)
    # no type meets the TTFT SLO: the request is still sold (its TTFT will miss), to any
    # prefill type, within the patience; counted (LLMServing.hopeless) and warned about
    hopeless = prefill_allowed == ""
    prefill_allowed[hopeless] = "|".join(prefill_types)
    prefill_deadline = np.where(hopeless, np.inf, np.maximum(deadline, rnd)).astype(float)

    total_q = prompt / 1000 + output / 1000
    budget = np.array([opt["price_per_1k"][s] for s in service]) * total_q * multiplier[svc_index, tenant]
    # the market's price weights (module docstring), unless the scenario sets its own
    weights = dict(zip(DIMENSIONS, scenario.price_weights(DIMENSIONS), strict=True)) \
        if "price_weights" in scenario.market else {"prefill": 0.001, "kv": 0.0, "batch": R / (1000 * float(llm_perf.tpot(1, ref)))}
    q_prefill = weights["prefill"] * prompt + weights["kv"] * kv_prompt * prefill_rounds
    q_decode = (weights["batch"] + weights["kv"] * kv_total) * decode_rounds
    split = q_prefill / np.maximum(q_prefill + q_decode, 1e-12)
    priority = np.ones(n)
    common = {"user_id": np.concatenate([user, user]), "priority": np.concatenate([priority, priority]),
              "x": 0.0, "y": 0.0}
    req = pd.DataFrame({
        "request_id": np.concatenate([ids + "/prefill", ids + "/decode"]),
        "round": np.concatenate([rnd, rnd]),
        "prefill": np.concatenate([prompt / prefill_rounds, np.zeros(n)]),
        "kv": np.concatenate([kv_prompt, kv_total]),
        "batch": np.concatenate([np.zeros(n), np.ones(n)]),
        "budget": np.concatenate([np.maximum(budget * split, 1e-9), np.maximum(budget * (1 - split), 1e-9)]),
        **common,
        "duration": np.concatenate([prefill_rounds, decode_rounds]),
        "after": np.concatenate([np.full(n, "", dtype=object), ids + "/prefill"]),
        "after_lag": np.concatenate([np.ones(n, dtype=np.int64), prefill_rounds + transfer_rounds]),
        "deadline": np.concatenate([prefill_deadline, np.full(n, np.inf)]),
        "allowed_types": np.concatenate([prefill_allowed, np.full(n, "|".join(decode_types), dtype=object)]),
    })
    source = f"azure_llm ({', '.join(FILES[s] for s in services)})"
    requests = validate(req, "requests", source, DIMENSIONS)
    resources = validate(res, "resources", source, DIMENSIONS)
    serving = LLMServing(
        n=n, round_seconds=R, arrival_s=arrival_s, prompt=prompt, output=output, prefill_rounds=prefill_rounds,
        decode_rounds=decode_rounds,
        ttft_slo=ttft_slo,
        tpot_slo=tpot_slo_req, tenant=user, profiles=tuple(prof), shared_share=share if shared else 0.0,
        gpus=m * llm_perf.GPUS_PER_INSTANCE, hopeless=int(hopeless.sum()),
    )
    return MarketData(requests, resources, priority_max=1.0, dimensions=DIMENSIONS, extension=serving,
                      price_weights=tuple(weights[d] for d in DIMENSIONS))


def _whole_rounds(rounds: np.ndarray, trace: pd.DataFrame, field: str, what: str, least: int = 1) -> np.ndarray:
    """``max(least, rounds)`` as int64.

    A count of 2**53 rounds or more (the int64 cast would wrap it) stops with one line
    naming the trace file, the request's line and ``field``.
    """
    huge = ~(rounds < TOKENS_MAX)
    if huge.any():
        k = int(np.flatnonzero(huge)[0])
        path = data_dir() / FILES[trace["service"].iat[k]]
        raise MarketInputError(
            f"line {file_line(path, int(trace['row'].iat[k]))}: field {field!r}: {what} would take 2**53 rounds or "
            "more of market.round_seconds (fewer tokens, or longer rounds)", source=str(path))
    return np.maximum(least, rounds).astype(np.int64)


def predicted_ttft(wait_s: Any, queued_tokens: Any, prompt: Any, rounds: Any, rate: Any, round_seconds: float) -> Any:
    """Time to first token of a prefill sold at the end of a round (s).

    ``wait + (rounds - 1) x round_seconds + (queued + prompt / rounds) / rate``: the wait
    until its round clears, then its share ``prompt / rounds`` of each of its rounds'
    prefill budget, processed after the ``queued`` tokens sold before it on its instance in
    its first round (:func:`scenarios.llm_perf.ttft` for a one-round prefill).

    Args:
        wait_s: seconds from arrival to the end of the round that sold it.
        queued_tokens: prompt tokens sold before it to the same instance that round.
        prompt: its prompt tokens.
        rounds: the rounds its prefill spans (``>= 1``).
        rate: the instance's prefill tokens per second (times the shared share).
        round_seconds: the round's length.
    """
    return wait_s + (rounds - 1) * round_seconds + (queued_tokens + prompt / rounds) / rate


# --- the serving metrics ----------------------------------------------------------------------


@dataclass(frozen=True)
class LLMServing:
    """What the rounds of an LLM-serving market measure (the market's extension).

    Rows ``0..n-1`` of the requests table are the prefills, ``n..2n-1`` the decodes of the
    same trace requests. When a round sells prefills, each one's **TTFT** is fixed: the wait
    from its arrival to the end of the round plus the prefills sold before it (row order:
    arrival) to the same instance in that round and its own, at the instance's prefill
    rate (:func:`scenarios.llm_perf.ttft`; under sharing at ``share`` of it). When a round
    sells decodes, each one's **TPOT** is fixed: ``(gap + output x step) / output``, with
    ``gap`` the time from the end of its prefill to the end of this round (waiting for a
    batch slot; the KV transfer's rounds when disaggregated) and ``step`` the instance's
    :func:`scenarios.llm_perf.tpot` at the batch it then holds (the decodes running on it
    after the round, this one included; under sharing divided by ``1 - share``). The
    request **finishes** in the last round its decode holds.

    Metrics of round ``t`` over the requests that finish in it (``rounds`` columns):
    ``slo_attainment`` the share that met both SLOs (1.0 when none finished: nothing was
    missed), ``goodput`` those within both SLOs per GPU (physical GPUs: instances x
    :data:`scenarios.llm_perf.GPUS_PER_INSTANCE`) per second of the round, ``ttft_p90`` /
    ``tpot_p90`` the 90th percentiles in seconds (0.0 when none finished),
    ``tenant_goodput_jain`` Jain's index over the goodput of the tenants with a finished
    request (1.0 when at most one).
    """

    n: int
    round_seconds: float
    arrival_s: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    prefill_rounds: np.ndarray
    decode_rounds: np.ndarray
    ttft_slo: np.ndarray
    tpot_slo: np.ndarray
    tenant: np.ndarray
    profiles: tuple[llm_perf.GPUProfile, ...]
    shared_share: float
    gpus: int
    hopeless: int

    COLUMNS = ("slo_attainment", "goodput", "ttft_p90", "tpot_p90", "tenant_goodput_jain")

    def warnings(self) -> list[str]:
        """What a user should know before trusting the run (one line each)."""
        if not self.hopeless:
            return []
        return [(f"{self.hopeless} of {self.n} requests cannot meet their TTFT SLO on any instance type even if "
                 "served at once (a prompt longer than a round's prefill budget, or an SLO below a round); they are "
                 "sold to any prefill instance and count as misses")]
