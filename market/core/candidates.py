"""Candidate generation: the K best resources of each request, with their utilities.

One fused numba kernel scans, for each request, the resources of the clusters it is
routed to, keeps the feasible ones (capacity, QoS, budget) and retains the K of highest
static utility ``b_ij``, the cost, QoS and energy terms of the MOHAF paper's utility
(Agrawal et al., arXiv:2508.14830, 2025), each rescaled into [0, 1] (the paper's QoS term
reaches 1.5; its fairness term moves into the welfare ``F`` of :mod:`market.core.engine`):

- ``u_cost = clip(1 - rho_j * q_i * duration_i / B_i, 0, 1)``, with ``q_i`` the request's
  priced quantity (``sum_d w_d demand_id`` over the market's dimensions; by default its
  demand in the first dimension, the cpu: the paper's rule)
- ``u_qos = 0.5 * (reliability_j + availability_j) / 2 + 0.5 * max(0, 1 - dist_ij / D_max)``
- ``u_en`` = min-max normalised energy efficiency of j
- ``b_ij = alpha * u_cost + beta * u_qos + gamma * u_en``

and the posted prices ``reserve_ij = rho_j * q_i * duration_i`` and
``posted_ij = reserve_ij * (0.8 + 0.4 b_ij)``. A pair is feasible when the request fits
the resource (its demand within the resource's capacity in every dimension) and its free
capacity now (in every allocation unit), the resource's type is one the request allows
(:mod:`market.core.eligibility`), it meets its QoS thresholds and both prices are within
its budget. Output is the ELL layout ``(N, K)``, padded with -1, ordered by utility.

**Layouts.** Request rows ``rq`` (``RQ_*`` columns): x, y, priced quantity ``q``,
duration, budget, min reliability, min availability, max latency, then the demand in
each of the D dimensions. Resource rows ``rs`` (``RS_*``): x, y, unit price,
reliability, availability, normalised energy efficiency, type code, then the capacity
in each dimension. D is read from the shapes, so every kernel works for any D.

**Ties.** Pairs of equal utility (identical resources, or a term that clips) are spread
over requests by the request's key, a stable id (the engine passes its row in the
market): the ``T`` feasible pairs of one utility level, in their order in the clusters'
member list (cluster, then resource index), are taken cyclically from member
``key mod T`` on. A level the top-K cut keeps the ``r`` pairs from that member on; a
level kept whole is listed from it. So requests with consecutive keys (a round's
arrivals) start at consecutive members of a pool of identical resources and keep
different ones among their K, and the pool shares the load; with the lowest index as
the tie-break every request kept the same K of them and the rest were never offered.
The rule depends on the key and the market only, so results stay byte-reproducible;
within a row the order is utility descending, then this rotation.
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass

import numba as nb
import numpy as np

import mechanisms.numba_cache  # noqa: F401  (before any kernel: the cache keyed by the kernels' source)
from market.core.eligibility import any_type, eligible
from mechanisms.kernels import posted_price

# request columns of the kernels' ``rq`` matrix (then one demand column per dimension)
RQ_X, RQ_Y, RQ_PRICED, RQ_DURATION, RQ_BUDGET, RQ_MIN_REL, RQ_MIN_AVAIL, RQ_MAX_LAT, RQ_DEMAND = range(9)
# resource columns of the kernels' ``rs`` matrix (then one capacity column per dimension)
RS_X, RS_Y, RS_PRICE, RS_REL, RS_AVAIL, RS_ENERGY, RS_TYPE, RS_CAPACITY = range(8)


def request_rows(
    x: np.ndarray, y: np.ndarray, priced: np.ndarray, duration: np.ndarray, budget: np.ndarray,
    min_reliability: np.ndarray, min_availability: np.ndarray, max_latency: np.ndarray, demand: np.ndarray,
) -> np.ndarray:
    """``(N, 8 + D)`` request rows in the kernels' layout (the one place that writes it).

    Args:
        x: ``(N,)`` location, first coordinate.
        y: ``(N,)`` location, second coordinate.
        priced: ``(N,)`` the priced quantity ``q`` (its price is per unit of it per round).
        duration: ``(N,)`` rounds held.
        budget: ``(N,)`` the most the request pays.
        min_reliability: ``(N,)`` QoS threshold in [0, 1].
        min_availability: ``(N,)`` QoS threshold in [0, 1].
        max_latency: ``(N,)`` largest distance accepted (``inf``: none).
        demand: ``(N, D)`` demand in every dimension.
    """
    demand = np.asarray(demand, dtype=float)
    demand = demand if demand.ndim == 2 else demand.reshape(np.shape(x)[0], -1)
    return np.column_stack([x, y, priced, duration, budget, min_reliability, min_availability, max_latency,
                            demand]).astype(float)


def resource_rows(
    x: np.ndarray, y: np.ndarray, price: np.ndarray, reliability: np.ndarray, availability: np.ndarray,
    energy_norm: np.ndarray, type_code: np.ndarray, capacity: np.ndarray,
) -> np.ndarray:
    """``(M, 7 + D)`` resource rows in the kernels' layout (the one place that writes it).

    Args:
        x: ``(M,)`` location, first coordinate.
        y: ``(M,)`` location, second coordinate.
        price: ``(M,)`` the round's unit price.
        reliability: ``(M,)`` in [0, 1].
        availability: ``(M,)`` in [0, 1].
        energy_norm: ``(M,)`` energy efficiency min-max normalised to [0, 1].
        type_code: ``(M,)`` eligibility type codes (:mod:`market.core.eligibility`; 0 = untyped).
        capacity: ``(M, D)`` capacity in every dimension.
    """
    capacity = np.asarray(capacity, dtype=float)
    capacity = capacity if capacity.ndim == 2 else capacity.reshape(np.shape(x)[0], -1)
    return np.column_stack([x, y, price, reliability, availability, energy_norm, type_code,
                            capacity]).astype(float)


@dataclass(frozen=True)
class Candidates:
    """``(N, K)`` candidate resources (global index, -1 = none) and pair arrays."""

    resource: np.ndarray
    utility: np.ndarray
    reserve: np.ndarray
    posted: np.ndarray

    def rows(self, index: slice | np.ndarray) -> Candidates:
        """The candidates of some rows: views for a slice, copies in that order for an index array."""
        return Candidates(self.resource[index], self.utility[index], self.reserve[index], self.posted[index])

    @staticmethod
    def concat(a: Candidates, b: Candidates) -> Candidates:
        """Columns of ``a`` then ``b`` (pairs present in both are kept once, from ``a``)."""
        dup = (b.resource[:, :, None] == a.resource[:, None, :]).any(axis=2) & (b.resource >= 0)
        res_b = np.where(dup, -1, b.resource)
        return Candidates(
            np.concatenate([a.resource, res_b], axis=1),
            np.concatenate([a.utility, b.utility], axis=1),
            np.concatenate([a.reserve, b.reserve], axis=1),
            np.concatenate([a.posted, b.posted], axis=1),
        )


@nb.njit(cache=True, inline="always")
def _worse(b1: float, p1: int, b2: float, p2: int) -> bool:
    """Pair 1 ranks below pair 2: lower utility, or equal utility and a later position."""
    return b1 < b2 or (b1 == b2 and p1 > p2)


# Row heaps take the 2-D arrays and a row index: slicing a row inside the parallel loop
# would create array views, whose reference counting costs more than the heap itself.


@nb.njit(cache=True, inline="always")
def _swap(util: np.ndarray, cand: np.ndarray, i: int, a: int, b: int) -> None:
    util[i, a], util[i, b] = util[i, b], util[i, a]
    cand[i, a], cand[i, b] = cand[i, b], cand[i, a]


@nb.njit(cache=True, inline="always")
def _heap_down(util: np.ndarray, cand: np.ndarray, i: int, n: int) -> None:
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= n:
            return
        if child + 1 < n and _worse(util[i, child + 1], cand[i, child + 1], util[i, child], cand[i, child]):
            child += 1
        if not _worse(util[i, child], cand[i, child], util[i, pos], cand[i, pos]):
            return
        _swap(util, cand, i, pos, child)
        pos = child


@nb.njit(cache=True, inline="always")
def _heap_push(util: np.ndarray, cand: np.ndarray, i: int, n: int, b: float, j: int) -> None:
    pos = n
    util[i, pos], cand[i, pos] = b, j
    while pos > 0:
        parent = (pos - 1) // 2
        if not _worse(util[i, pos], cand[i, pos], util[i, parent], cand[i, parent]):
            return
        _swap(util, cand, i, pos, parent)
        pos = parent


@nb.njit(cache=True, inline="always")
def _sort_row(util: np.ndarray, cand: np.ndarray, i: int, n: int) -> None:
    """Insertion sort of row ``i``'s first ``n`` pairs, best first (``n`` <= K)."""
    for a in range(1, n):
        b, j = util[i, a], cand[i, a]
        p = a
        while p > 0 and _worse(util[i, p - 1], cand[i, p - 1], b, j):
            util[i, p], cand[i, p] = util[i, p - 1], cand[i, p - 1]
            p -= 1
        util[i, p], cand[i, p] = b, j


@nb.njit(cache=True, inline="always")
def pair_components(rq: np.ndarray, i: int, rs: np.ndarray, j: int, d_max: float) -> tuple[float, float, float, float, float]:
    """The utility terms of pair ``(i, j)`` (the one copy of the formulas above).

    Args:
        rq: ``(N, 8 + D)`` request rows (the module's layout).
        i: request row.
        rs: ``(M, 7 + D)`` resource rows (the module's layout), the price being the
            round's unit price.
        j: resource row.
        d_max: distance at which the proximity utility reaches 0.

    Returns:
        ``(dist, reserve, u_cost, u_qos, u_en)``: distance, reserve price ``rho_j q_i dur_i``
        and the three utility terms (each in [0, 1]).
    """
    dist = math.sqrt((rs[j, RS_X] - rq[i, RQ_X]) ** 2 + (rs[j, RS_Y] - rq[i, RQ_Y]) ** 2)
    cost = rs[j, RS_PRICE] * rq[i, RQ_PRICED] * rq[i, RQ_DURATION]
    u_cost = min(1.0, max(0.0, 1.0 - cost / rq[i, RQ_BUDGET]))
    u_qos = 0.25 * (rs[j, RS_REL] + rs[j, RS_AVAIL]) + 0.5 * max(0.0, 1.0 - dist / d_max)
    return dist, cost, u_cost, u_qos, rs[j, RS_ENERGY]


@nb.njit(cache=True, inline="always")
def weighted_utility(u_cost: float, u_qos: float, u_en: float, alpha: float, beta: float, gamma: float) -> float:
    """``b_ij = alpha u_cost + beta u_qos + gamma u_en`` (summed in this order)."""
    return alpha * u_cost + beta * u_qos + gamma * u_en


@nb.njit(cache=True)
def pair_terms(rq: np.ndarray, rs: np.ndarray, req: np.ndarray, res: np.ndarray, d_max: float) -> np.ndarray:
    """``(P, 3)`` terms ``u_cost, u_qos, u_en`` of the pairs ``(req[p], res[p])``.

    The same arithmetic as the candidate kernel (:func:`pair_components`), so that an
    allocation can be rescored under any weights (:func:`pair_utility`).
    """
    out = np.empty((req.size, 3))
    for p in range(req.size):
        _, _, out[p, 0], out[p, 1], out[p, 2] = pair_components(rq, req[p], rs, res[p], d_max)
    return out


@nb.njit(cache=True)
def pair_utility(terms: np.ndarray, alpha: float, beta: float, gamma: float) -> np.ndarray:
    """``(P,)`` static utility ``b`` of pairs from their :func:`pair_terms`, as the kernel sums it."""
    out = np.empty(terms.shape[0])
    for p in range(terms.shape[0]):
        out[p] = weighted_utility(terms[p, 0], terms[p, 1], terms[p, 2], alpha, beta, gamma)
    return out


@nb.njit(cache=True, inline="always")
def feasible_utility(
    rq: np.ndarray, need: np.ndarray, rs: np.ndarray, free: np.ndarray, allowed: np.ndarray, i: int, j: int,
    alpha: float, beta: float, gamma: float, d_max: float,
) -> float:
    """``b_ij`` if request ``i`` may be placed on resource ``j`` now, else -1.

    The one feasibility rule of a pair (the module's: capacity and free capacity in every
    dimension, eligibility, QoS, latency, reserve and posted price within the budget),
    shared by the candidate kernel and the whole-market oracle (:mod:`market.core.oracle`).
    ``allowed`` is the ``(N, W)`` eligibility masks (:mod:`market.core.eligibility`).
    """
    for d in range(rq.shape[1] - RQ_DEMAND):
        if rq[i, RQ_DEMAND + d] > rs[j, RS_CAPACITY + d]:
            return -1.0
    for d in range(need.shape[1]):
        if need[i, d] > free[j, d] + 1e-12:
            return -1.0
    if not eligible(allowed, i, int(rs[j, RS_TYPE])):
        return -1.0
    if rs[j, RS_REL] < rq[i, RQ_MIN_REL] or rs[j, RS_AVAIL] < rq[i, RQ_MIN_AVAIL]:
        return -1.0
    dist, cost, u_cost, u_qos, u_en = pair_components(rq, i, rs, j, d_max)
    if dist > rq[i, RQ_MAX_LAT] or cost > rq[i, RQ_BUDGET]:
        return -1.0
    b = weighted_utility(u_cost, u_qos, u_en, alpha, beta, gamma)
    if posted_price(cost, b) > rq[i, RQ_BUDGET]:
        return -1.0
    return b


@nb.njit(cache=True, inline="always")
def _rotate(cand: np.ndarray, i: int, a: int, n: int, shift: int) -> None:
    """Rotate ``cand[i, a:a + n]`` left by ``shift`` (three reversals, in place)."""
    if n < 2 or shift == 0:
        return
    for lo, hi in ((a, a + shift - 1), (a + shift, a + n - 1), (a, a + n - 1)):
        while lo < hi:
            cand[i, lo], cand[i, hi] = cand[i, hi], cand[i, lo]
            lo += 1
            hi -= 1


@nb.njit(cache=True, inline="always")
def _rotate_levels(util: np.ndarray, cand: np.ndarray, i: int, n: int, key: int) -> None:
    """Within each run of equal utility among the first ``n`` pairs, start at the key's member.

    A run of ``L`` pairs in ascending position is rotated left by ``key mod L``.
    """
    a = 0
    while a < n:
        e = a + 1
        while e < n and util[i, e] == util[i, a]:
            e += 1
        _rotate(cand, i, a, e - a, key % (e - a))
        a = e


@nb.njit(cache=True)
def _spread_cut_level(
    rq: np.ndarray, need: np.ndarray, rs: np.ndarray, free: np.ndarray, allowed: np.ndarray, order: np.ndarray,
    start: np.ndarray, routes: np.ndarray, util: np.ndarray, cand: np.ndarray, i: int, k: int, key: int,
    alpha: float, beta: float, gamma: float, d_max: float,
) -> int:
    """Refill row ``i``'s last utility level, which the top-k cut, by the rotation rule.

    The level's ``T`` feasible pairs, in ascending position ``t = 0..T-1``, are taken from
    ``o = key mod T`` on, cyclically: the ``r`` slots the level holds get ``t = o, o+1, ...``.
    Rare (pairs of equal utility at the cut), so the clusters are simply scanned again.

    Returns:
        How many leading pairs of the row are whole levels (to rotate in place).
    """
    level = util[i, k - 1]
    r = 1
    while r < k and util[i, k - 1 - r] == level:
        r += 1
    # clusters in ascending id, so that pairs come in ascending position
    routed = np.sort(routes[i])
    total = 0
    for c in routed:
        if c < 0:
            continue
        for pos in range(start[c], start[c + 1]):
            if feasible_utility(rq, need, rs, free, allowed, i, order[pos], alpha, beta, gamma, d_max) == level:
                total += 1
    o = key % total
    t = 0
    for c in routed:
        if c < 0:
            continue
        for pos in range(start[c], start[c + 1]):
            if feasible_utility(rq, need, rs, free, allowed, i, order[pos], alpha, beta, gamma, d_max) == level:
                d = (t - o) % total
                if d < r:
                    cand[i, k - r + d] = pos
                t += 1
    return k - r


def _candidate_rows(
    rq: np.ndarray,  # (N, 8 + D) request rows (RQ_* layout)
    need: np.ndarray,  # (N, E) demand in the allocation's capacity units
    rs: np.ndarray,  # (M, 7 + D) resource rows (RS_* layout) at the round's prices
    free: np.ndarray,  # (M, E) free capacity in allocation units
    allowed: np.ndarray,  # (N, W) eligibility masks
    order: np.ndarray,  # resources sorted by cluster
    start: np.ndarray,  # (C + 1,) cluster c holds order[start[c]:start[c + 1]]
    routes: np.ndarray,  # (N, S) clusters to scan per request, -1 = none
    keys: np.ndarray,  # (N,) each request's stable key, to spread ties
    k: int,
    alpha: float,
    beta: float,
    gamma: float,
    d_max: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = rq.shape[0]
    cand = np.full((n, k), -1, dtype=np.int64)
    util = np.zeros((n, k))
    reserve = np.zeros((n, k))
    posted = np.zeros((n, k))
    for i in nb.prange(n):
        priced, dur = rq[i, RQ_PRICED], rq[i, RQ_DURATION]
        count = 0
        lost = -1.0  # best utility of a feasible pair left out (to detect a cut tie)
        for s in range(routes.shape[1]):
            c = routes[i, s]
            if c < 0:
                continue
            for pos in range(start[c], start[c + 1]):
                b = feasible_utility(rq, need, rs, free, allowed, i, order[pos], alpha, beta, gamma, d_max)
                if b < 0.0:
                    continue
                # keep the row's top-k (by position in ``order`` while scanning) in a heap
                # whose root is the worst kept pair
                if count < k:
                    _heap_push(util, cand, i, count, b, pos)
                    count += 1
                elif _worse(util[i, 0], cand[i, 0], b, pos):
                    lost = max(lost, util[i, 0])
                    util[i, 0], cand[i, 0] = b, pos
                    _heap_down(util, cand, i, count)
                else:
                    lost = max(lost, b)
        # heap -> row ordered by utility desc, position asc; then spread the ties
        _sort_row(util, cand, i, count)
        whole = count
        if count == k and k > 0 and lost == util[i, k - 1]:
            # the last utility level was cut: choose which of its pairs stay by the key
            whole = _spread_cut_level(rq, need, rs, free, allowed, order, start, routes, util, cand, i, k,
                                      keys[i], alpha, beta, gamma, d_max)
        _rotate_levels(util, cand, i, whole, keys[i])
        for p in range(count):
            j = order[cand[i, p]]
            cand[i, p] = j
            reserve[i, p] = rs[j, RS_PRICE] * priced * dur
            posted[i, p] = posted_price(reserve[i, p], util[i, p])
    return cand, util, reserve, posted


# The same kernel compiled twice: threads pay off only on big order books, and a
# parallel launch costs milliseconds when the other core is busy (the dashboard, tests).
# (The serial one is a renamed copy: numba names its cache files after the function.)
_candidate_kernel_parallel = nb.njit(parallel=True, cache=True)(_candidate_rows)
_serial_rows = types.FunctionType(_candidate_rows.__code__, _candidate_rows.__globals__, "_candidate_rows_serial")
_serial_rows.__qualname__ = "_candidate_rows_serial"
_candidate_kernel_serial = nb.njit(cache=True)(_serial_rows)
PARALLEL_MIN_ROWS = 2_000


def find_candidates(
    requests: np.ndarray,
    need: np.ndarray,
    resources: np.ndarray,
    free: np.ndarray,
    order: np.ndarray,
    start: np.ndarray,
    routes: np.ndarray,
    k: int,
    weights: tuple[float, float, float, float],
    d_max: float,
    keys: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
) -> Candidates:
    """Top-``k`` feasible candidates per request among the clusters in ``routes``.

    Args:
        requests: ``(N, 8 + D)`` request rows (the module's ``RQ_*`` layout).
        need: ``(N, E)`` demand in allocation units.
        resources: ``(M, 7 + D)`` resource rows (``RS_*``) at the current unit prices.
        free: ``(M, E)`` free capacity in allocation units.
        order: resources sorted by cluster.
        start: cluster offsets into ``order``.
        routes: ``(N, S)`` cluster ids to scan per request (-1 = none).
        k: candidates per request.
        weights: ``(alpha, beta, gamma, delta)``; delta is not used here.
        d_max: distance at which the proximity utility reaches 0.
        keys: ``(N,)`` a stable non-negative key of each request (its row in the market),
            which spreads its equal-utility candidates (the module's "Ties"); None: its
            row here.
        allowed: ``(N, W)`` eligibility masks (:mod:`market.core.eligibility`); None:
            every request may use every resource.

    Returns:
        The candidate arrays, each ``(N, k)``, best first: utility descending, then the
        key's rotation of each level of equal utility.
    """
    alpha, beta, gamma, _ = weights
    n = requests.shape[0]
    keys = np.arange(n, dtype=np.int64) if keys is None else np.ascontiguousarray(keys, dtype=np.int64)
    if keys.shape != (n,):
        raise ValueError(f"keys: one per request ({n}) expected, got shape {keys.shape}")
    allowed = any_type(n) if allowed is None else np.ascontiguousarray(allowed, dtype=np.int64)
    if n == 0:
        z = np.zeros((0, k))
        return Candidates(np.zeros((0, k), dtype=np.int64), z, z, z)
    return Candidates(
        *(_candidate_kernel_parallel if requests.shape[0] >= PARALLEL_MIN_ROWS else _candidate_kernel_serial)(
            np.ascontiguousarray(requests), np.ascontiguousarray(need), np.ascontiguousarray(resources),
            np.ascontiguousarray(free), allowed, order, start, np.ascontiguousarray(routes), keys, int(k),
            float(alpha), float(beta), float(gamma), float(d_max),
        )
    )
