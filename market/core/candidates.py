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


# The scan's helpers take scalars or tuples of them: a helper that numba inlines with the
# request and resource arrays as arguments left reference counting (atomic, shared between
# threads) on every pair, which cost more than the pair's arithmetic (measured: 3x).


@nb.njit(cache=True, inline="always")
def request_at(rq: np.ndarray, i: int) -> tuple[float, float, float, float, float, float, float, float]:
    """Request ``i``'s scalar columns (``RQ_X .. RQ_MAX_LAT``), read once per row."""
    return (rq[i, RQ_X], rq[i, RQ_Y], rq[i, RQ_PRICED], rq[i, RQ_DURATION], rq[i, RQ_BUDGET], rq[i, RQ_MIN_REL],
            rq[i, RQ_MIN_AVAIL], rq[i, RQ_MAX_LAT])


@nb.njit(cache=True, inline="always")
def resource_at(rs: np.ndarray, j: int) -> tuple[float, float, float, float, float, float]:
    """Resource ``j``'s columns ``RS_X .. RS_ENERGY`` (price, QoS, energy)."""
    return rs[j, RS_X], rs[j, RS_Y], rs[j, RS_PRICE], rs[j, RS_REL], rs[j, RS_AVAIL], rs[j, RS_ENERGY]


@nb.njit(cache=True, inline="always")
def terms_of(req: tuple, res: tuple, d_max: float) -> tuple[float, float, float, float, float]:
    """The utility terms of a pair from :func:`request_at` and :func:`resource_at` (the one copy of the formulas above).

    Returns:
        ``(dist, reserve, u_cost, u_qos, u_en)``: distance, reserve price ``rho_j q_i dur_i``
        and the three utility terms (each in [0, 1]).
    """
    qx, qy, priced, duration, budget = req[0], req[1], req[2], req[3], req[4]
    rx, ry, price, rel, avail, energy = res
    dist = math.sqrt((rx - qx) ** 2 + (ry - qy) ** 2)
    cost = price * priced * duration
    u_cost = min(1.0, max(0.0, 1.0 - cost / budget))
    u_qos = 0.25 * (rel + avail) + 0.5 * max(0.0, 1.0 - dist / d_max)
    return dist, cost, u_cost, u_qos, energy


@nb.njit(cache=True, inline="always")
def pair_components(rq: np.ndarray, i: int, rs: np.ndarray, j: int, d_max: float) -> tuple[float, float, float, float, float]:
    """The utility terms of pair ``(i, j)`` (:func:`terms_of`).

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
    return terms_of(request_at(rq, i), resource_at(rs, j), d_max)


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
def fits(rq: np.ndarray, need: np.ndarray, rs: np.ndarray, free: np.ndarray, allowed: np.ndarray, i: int,
         j: int) -> bool:
    """Request ``i`` fits resource ``j`` (capacity and free capacity in every dimension) and may use its type."""
    for d in range(rq.shape[1] - RQ_DEMAND):
        if rq[i, RQ_DEMAND + d] > rs[j, RS_CAPACITY + d]:
            return False
    for d in range(need.shape[1]):
        if need[i, d] > free[j, d] + 1e-12:
            return False
    return eligible(allowed, i, int(rs[j, RS_TYPE]))


@nb.njit(cache=True, inline="always")
def priced_utility(req: tuple, res: tuple, alpha: float, beta: float, gamma: float, d_max: float) -> float:
    """``b_ij`` of a pair that meets the request's QoS, latency and budget (reserve and posted price), else -1.

    ``req`` and ``res`` are :func:`request_at` and :func:`resource_at` of the pair.
    """
    min_rel, min_avail, max_lat, budget = req[5], req[6], req[7], req[4]
    if res[3] < min_rel or res[4] < min_avail:
        return -1.0
    dist, cost, u_cost, u_qos, u_en = terms_of(req, res, d_max)
    if dist > max_lat or cost > budget:
        return -1.0
    b = weighted_utility(u_cost, u_qos, u_en, alpha, beta, gamma)
    if posted_price(cost, b) > budget:
        return -1.0
    return b


@nb.njit(cache=True, inline="always")
def feasible_utility(
    rq: np.ndarray, need: np.ndarray, rs: np.ndarray, free: np.ndarray, allowed: np.ndarray, i: int, j: int,
    alpha: float, beta: float, gamma: float, d_max: float,
) -> float:
    """``b_ij`` if request ``i`` may be placed on resource ``j`` now, else -1.

    The one feasibility rule of a pair (the module's: capacity and free capacity in every
    dimension, eligibility, QoS, latency, reserve and posted price within the budget):
    :func:`fits`, then :func:`priced_utility`, which the candidate kernel calls itself
    (with the request's columns read once per row); the whole-market oracle
    (:mod:`market.core.oracle`) calls this. ``allowed`` is the ``(N, W)`` eligibility
    masks (:mod:`market.core.eligibility`).
    """
    if not fits(rq, need, rs, free, allowed, i, j):
        return -1.0
    return priced_utility(request_at(rq, i), resource_at(rs, j), alpha, beta, gamma, d_max)


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
def _select(util: np.ndarray, pos: np.ndarray, n: int, k: int) -> None:
    """Reorder the ``n`` pairs so that the first ``k`` are the best (in any order): quickselect."""
    lo, hi, t = 0, n - 1, k - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        pivot_b, pivot_p = util[mid], pos[mid]
        a, z = lo, hi
        while a <= z:
            while _worse(pivot_b, pivot_p, util[a], pos[a]):
                a += 1
            while _worse(util[z], pos[z], pivot_b, pivot_p):
                z -= 1
            if a <= z:
                util[a], util[z] = util[z], util[a]
                pos[a], pos[z] = pos[z], pos[a]
                a += 1
                z -= 1
        if t <= z:
            hi = z
        elif t >= a:
            lo = a
        else:
            return


@nb.njit(cache=True)
def _best_pairs(util: np.ndarray, pos: np.ndarray, total: int, k: int, key: int, level: np.ndarray) -> tuple[int, int]:
    """The row's ``k`` best of its ``total`` feasible pairs, in order, the cut level spread by the key.

    ``util`` and ``pos`` hold the pairs (scratch, reordered in place); on return their first
    ``count = min(k, total)`` are the kept pairs, utility descending, then position. When
    the top-k cut splits a level of equal utility, the ``r`` slots it keeps take the
    level's ``T`` pairs (in ascending position ``t``) from ``t = key mod T`` on,
    cyclically (the module's "Ties"); ``level`` is scratch for them.

    Returns:
        ``(count, whole)``: pairs kept, and how many leading ones are whole levels (to
        rotate in place).
    """
    count = total
    if total > k:
        _select(util, pos, total, k)
        count = k
    for a in range(1, count):  # insertion sort of the kept pairs, best first
        b, p = util[a], pos[a]
        q = a
        while q > 0 and _worse(util[q - 1], pos[q - 1], b, p):
            util[q], pos[q] = util[q - 1], pos[q - 1]
            q -= 1
        util[q], pos[q] = b, p
    if total <= k or k == 0:
        return count, count
    cut = util[k - 1]
    left_out = False
    for q in range(k, total):
        left_out |= util[q] == cut
    if not left_out:
        return count, count
    r = 1
    while r < k and util[k - 1 - r] == cut:
        r += 1
    members = 0
    for q in range(k - r, total):
        if util[q] == cut:
            level[members] = pos[q]
            members += 1
    level[:members].sort()
    o = key % members
    for d in range(r):
        pos[k - r + d] = level[(o + d) % members]
    return count, k - r


#: rows per block of the candidate kernel's loop (each block has its own scratch)
_BLOCK = 64


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
    scan: np.ndarray,  # (N,) the rows in the order to compute them (each row written in place)
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
    widest = 0
    for c in range(start.size - 1):
        widest = max(widest, start[c + 1] - start[c])
    width = widest * routes.shape[1]  # most pairs a row can scan
    for block in nb.prange((n + _BLOCK - 1) // _BLOCK):
        # a row's feasible pairs, (utility, position in ``order``), then its cut level
        pair_util = np.empty(width)
        pair_pos = np.empty(width, dtype=np.int64)
        level = np.empty(width, dtype=np.int64)
        for p in range(block * _BLOCK, min(n, (block + 1) * _BLOCK)):
            i = scan[p]
            req = request_at(rq, i)
            total = 0
            for s in range(routes.shape[1]):
                c = routes[i, s]
                if c < 0:
                    continue
                for pos in range(start[c], start[c + 1]):
                    j = order[pos]
                    if not fits(rq, need, rs, free, allowed, i, j):
                        continue
                    b = priced_utility(req, resource_at(rs, j), alpha, beta, gamma, d_max)
                    if b < 0.0:
                        continue
                    pair_util[total] = b
                    pair_pos[total] = pos
                    total += 1
            count, whole = _best_pairs(pair_util, pair_pos, total, k, keys[i], level)
            for q in range(count):
                util[i, q] = pair_util[q]
                cand[i, q] = pair_pos[q]
            _rotate_levels(util, cand, i, whole, keys[i])
            for q in range(count):
                j = order[cand[i, q]]
                cand[i, q] = j
                reserve[i, q] = rs[j, RS_PRICE] * req[2] * req[3]
                posted[i, q] = posted_price(reserve[i, q], util[i, q])
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
    scan: np.ndarray | None = None,
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
        scan: ``(N,)`` a permutation of the rows: the order to compute them in (e.g. grouped
            by cluster, so that a cluster's resources stay in cache), each written in its own
            row of the result; None: ``0..N-1``.

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
    scan = np.arange(n, dtype=np.int64) if scan is None else np.ascontiguousarray(scan, dtype=np.int64)
    if scan.shape != (n,):
        raise ValueError(f"scan: one per request ({n}) expected, got shape {scan.shape}")
    if n == 0:
        z = np.zeros((0, k))
        return Candidates(np.zeros((0, k), dtype=np.int64), z, z, z)
    return Candidates(
        *(_candidate_kernel_parallel if requests.shape[0] >= PARALLEL_MIN_ROWS else _candidate_kernel_serial)(
            np.ascontiguousarray(requests), np.ascontiguousarray(need), np.ascontiguousarray(resources),
            np.ascontiguousarray(free), allowed, order, start, np.ascontiguousarray(routes), keys, scan, int(k),
            float(alpha), float(beta), float(gamma), float(d_max),
        )
    )
