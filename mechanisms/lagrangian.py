"""Capacity prices for a welfare greedy: the Lagrangian dual by projected subgradient.

Relaxing the capacity constraints of the welfare program (one pair per request,
``sum_i d_id x_ij <= C_jd`` for every resource ``j`` and dimension ``d``) with prices
``mu_jd >= 0`` per unit of capacity share gives each request the separate problem
``max_j [g_ij - sum_d mu_jd d_id / C_jd]^+``, where ``g_ij`` is the pair's gain. The dual
is minimised by the projected subgradient method (Held, Wolfe and Crowder, "Validation of
subgradient optimization", Math. Prog. 6, 1974; Fisher, "The Lagrangian relaxation
method for solving integer programming problems", Management Sci. 27(1), 1981): each
request takes its best priced pair, and a resource's price rises by the step times its
overload in each dimension (load share minus 1) and falls, not below 0, where it is
underused. A greedy that ranks pairs by gain minus price then leaves scarce capacity to
the requests that need it and places the others where capacity is cheap.

One iteration is one pass over the ``(N, K)`` pairs (``O(N K D)``).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

import mechanisms.numba_cache  # noqa: F401  (before any kernel: the cache keyed by the kernels' source)


@nb.njit(cache=True)
def capacity_prices(
    cand: np.ndarray,
    gain: np.ndarray,
    demand: np.ndarray,
    cap: np.ndarray,
    iterations: int,
    step: float,
    scale: float = 1.0,
    bounded: bool = False,
) -> np.ndarray:
    """The price of each pair's capacity after ``iterations`` subgradient steps.

    Args:
        cand: ``(N, K)`` local resource of each candidate, -1 = padding.
        gain: ``(N, K)`` gain of each pair (welfare units).
        demand: ``(N, D)`` demand per request.
        cap: ``(M, D)`` capacity of each resource (a dimension with capacity 0 is not priced).
        iterations: subgradient steps (0: every price 0).
        step: first step length, in welfare units per unit of overload; step ``t`` is
            ``step / sqrt(t + 1)`` (a divergent series of vanishing steps).
        scale: the steps are divided by it: the typical load of one request in units of
            a resource's capacity (1: one round's demand; MOHAF's fluid prices pass the
            mean occupancy, whose loads are that many times larger).
        bounded: project the prices onto ``[0, ub_jd]`` with ``ub_jd = max_i g_ij C_jd /
            d_id``, the largest gain per unit of ``j``'s capacity share any of its pairs
            offers: at a higher price no request takes ``j``, so the dual only falls
            towards the box and its minimum lies in it. Keeps a price that one step
            overshot from staying above every request's value.

    Returns:
        ``(N, K)`` ``sum_d mu_jd d_id / C_jd`` at the last prices (0 for padding).
    """
    n, k = cand.shape
    m, dims = cap.shape
    # per-resource arrays are (D, M): a dimension's pass gathers from one contiguous row
    inv = np.zeros((dims, m))  # 1 / C_jd, 0 where a dimension has no capacity (not priced)
    for j in range(m):
        for d in range(dims):
            if cap[j, d] > 0.0:
                inv[d, j] = 1.0 / cap[j, d]
    # each row's real pairs, padding dropped: their resources (unsigned: numba then drops the
    # negative-index wraparound from the gathers) and gains
    count = np.zeros(n, dtype=np.int64)
    res = np.zeros((n, k), dtype=np.uint64)
    pair_gain = np.zeros((n, k))
    for i in range(n):
        r = 0
        for c in range(k):
            if cand[i, c] >= 0:
                res[i, r] = cand[i, c]
                pair_gain[i, r] = gain[i, c]
                r += 1
        count[i] = r
    upper = np.full((dims, m), np.inf)
    if bounded:
        upper[:] = 0.0
        for i in range(n):
            for r in range(count[i]):
                j = res[i, r]
                for d in range(dims):
                    share = demand[i, d] * inv[d, j]
                    if share > 0.0:
                        upper[d, j] = max(upper[d, j], pair_gain[i, r] / share)
    mu = np.zeros((dims, m))
    load = np.zeros((dims, m))
    value = np.empty(k)
    for t in range(iterations):
        load[:] = 0.0
        for i in range(n):
            # the row's priced values, one dimension at a time (passes that vectorise; the
            # same sums, in the same order, as one pair at a time), then its best pair
            pairs = count[i]
            for r in range(pairs):
                value[r] = pair_gain[i, r]
            for d in range(dims):
                need = demand[i, d]
                for r in range(pairs):
                    j = res[i, r]
                    value[r] -= mu[d, j] * need * inv[d, j]
            best = 0.0
            best_r = -1
            for r in range(pairs):
                if value[r] > best:
                    best = value[r]
                    best_r = r
            if best_r >= 0:
                j = res[i, best_r]
                for d in range(dims):
                    load[d, j] += demand[i, d] * inv[d, j]
        size = step / math.sqrt(t + 1.0) / scale
        priced = False
        for d in range(dims):
            for j in range(m):
                if cap[j, d] > 0.0:
                    was = mu[d, j]
                    mu[d, j] = min(upper[d, j], max(0.0, was + size * (load[d, j] - 1.0)))
                    priced |= was > 0.0 or mu[d, j] > 0.0
        if not priced:  # every price 0 before and after: every later step repeats this one
            break
    price = np.zeros((n, k))
    for i in range(n):
        for c in range(k):
            j = cand[i, c]
            if j < 0:
                continue
            for d in range(dims):
                price[i, c] += mu[d, j] * demand[i, d] * inv[d, j]
    return price
