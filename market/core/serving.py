"""The serving metrics of an LLM-serving market, round by round (``rounds`` columns).

The market (:mod:`scenarios.azure_llm`) describes its trace requests in a
:class:`scenarios.azure_llm.LLMServing`; this module keeps, per run, each request's
latencies as rounds sell its phases (a ledger of arrays in the model's state, copied with
it for what-if rounds) and computes the round's metrics. The definitions are
:class:`~scenarios.azure_llm.LLMServing`'s docstring.
"""

from __future__ import annotations

import numpy as np

from market.core.metrics import jain
from scenarios import llm_perf
from scenarios.azure_llm import LLMServing, predicted_ttft


def new_ledger(spec: LLMServing) -> dict[str, np.ndarray]:
    """Per trace request: ``ttft``, ``tpot`` (s, nan until known) and ``finish`` round (-1)."""
    return {"ttft": np.full(spec.n, np.nan), "tpot": np.full(spec.n, np.nan),
            "finish": np.full(spec.n, -1, dtype=np.int64), "dropped": np.full(spec.n, -1, dtype=np.int64)}


def settle(spec: LLMServing, t: int, ledger: dict[str, np.ndarray], rows: np.ndarray, resource: np.ndarray,
           batch_held: np.ndarray, gave_up: np.ndarray | None = None) -> None:
    """Record the latencies the rows sold in round ``t`` fix, and the requests dropped (in place).

    Args:
        spec: the market's serving description.
        t: the round.
        ledger: :func:`new_ledger`'s arrays.
        rows: ``(S,)`` market rows sold this round.
        resource: ``(S,)`` the instance each was sold to.
        batch_held: ``(M,)`` decode sequences each instance holds after the round.
        gave_up: ``(G,)`` market rows that left the book unserved this round (patience or
            deadline): their requests are dropped, SLO misses of this round.
    """
    if gave_up is not None and gave_up.size:
        req = np.where(gave_up < spec.n, gave_up, gave_up - spec.n)
        ledger["dropped"][req] = np.where(ledger["dropped"][req] < 0, t, ledger["dropped"][req])
    n, R = spec.n, spec.round_seconds
    share = spec.shared_share if spec.shared_share > 0 else 1.0
    pre = rows < n
    if pre.any():
        req, res = rows[pre], resource[pre]
        order = np.lexsort((req, res))  # by instance, then row (arrival order)
        req, res = req[order], res[order]
        rounds = spec.prefill_rounds[req]
        tokens = spec.prompt[req] / rounds  # each round's share of a prefill
        cum = np.cumsum(tokens)
        first = np.r_[True, res[1:] != res[:-1]]
        queued = cum - tokens - np.maximum.accumulate(np.where(first, cum - tokens, 0.0))
        rate = np.array([p.prefill_tokens_per_s for p in spec.profiles])[res] * share
        # the round's prefills run after it clears, queued on their instance
        ledger["ttft"][req] = predicted_ttft((t + 1) * R - spec.arrival_s[req], queued, spec.prompt[req], rounds, rate, R)
    dec = ~pre
    if dec.any():
        req, res = rows[dec] - n, resource[dec]
        step = np.array([float(llm_perf.tpot(batch_held[j], spec.profiles[j])) for j in res])
        if spec.shared_share > 0:
            step = step / (1 - spec.shared_share)  # decode runs the rest of each round
        prefill_end = spec.arrival_s[req] + ledger["ttft"][req]
        gap = np.maximum(0.0, (t + 1) * R - prefill_end)
        out = spec.output[req].astype(float)
        ledger["tpot"][req] = (gap + out * step) / out
        ledger["finish"][req] = t + spec.decode_rounds[req] - 1


def metrics(spec: LLMServing, t: int, ledger: dict[str, np.ndarray]) -> dict[str, float]:
    """The serving metrics of round ``t``; never NaN.

    Over the requests finishing in it and those dropped in it (a dropped request, whose
    prefill or decode left the book unserved, is an SLO miss of the round it leaves):
    ``slo_attainment`` = finished within both SLOs / (finished + dropped), 1.0 when there
    are none; the p90s over the finished ones only (0.0 when none finished).
    """
    done = np.flatnonzero(ledger["finish"] == t)
    lost = int(np.count_nonzero(ledger["dropped"] == t))
    if done.size == 0:
        return {"slo_attainment": 1.0 if lost == 0 else 0.0, "goodput": 0.0, "ttft_p90": 0.0, "tpot_p90": 0.0,
                "tenant_goodput_jain": 1.0}
    ttft, tpot = ledger["ttft"][done], ledger["tpot"][done]
    good = (ttft <= spec.ttft_slo[done]) & (tpot <= spec.tpot_slo[done])
    tenants, which = np.unique(spec.tenant[done], return_inverse=True)
    per_tenant = np.bincount(which.reshape(-1), weights=good.astype(float), minlength=tenants.size)
    return {
        "slo_attainment": float(good.sum()) / (done.size + lost),
        "goodput": float(good.sum()) / (spec.gpus * spec.round_seconds),
        "ttft_p90": float(np.percentile(ttft, 90)),
        "tpot_p90": float(np.percentile(tpot, 90)),
        "tenant_goodput_jain": jain(per_tenant),
    }
