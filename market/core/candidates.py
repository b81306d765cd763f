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

**Scan.** Per call the kernel copies the resources' columns into contiguous rows in
cluster order, each cluster's block sorted by unit price (:func:`_columns`). The reserve
price grows with the unit price, so a binary search on the budget test skips each
cluster's block past the request's budget; over the rest, branch-free passes compute the
pair's utility or -1 (:func:`priced_utility`) and the per-dimension tests of
:func:`fits`, which vectorise; a counting sort on utility buckets then orders the best
pairs (:func:`_bucket_order`). None of this changes a result: the same arithmetic in the
same order, the same tests, and the rank (utility, then position) a total order (a row
with a utility that is not finite takes the quickselect over its pairs in member order).

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
from collections.abc import Callable
from dataclasses import dataclass

import numba as nb
import numpy as np

from market.core.eligibility import any_type, eligible
from mechanisms import numba_threads  # noqa: F401  (before any parallel kernel: its threads sleep when idle)
from mechanisms.kernels import _slack, posted_price
from mechanisms.numba_cache import compiled_twice  # its import sets the kernels' cache folder

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

    #: each array's name and dtype, in field order
    FIELDS = (("resource", np.dtype(np.int64)), ("utility", np.dtype(np.float64)), ("reserve", np.dtype(np.float64)),
              ("posted", np.dtype(np.float64)))

    @classmethod
    def allocate(cls, n: int, k: int, array: Callable[[str, int, int, np.dtype], np.ndarray] | None = None) -> Candidates:
        """``(n, k)`` arrays of every field, from ``array(name, n, k, dtype)`` (None: ``np.empty``)."""
        array = array or (lambda name, rows, columns, dtype: np.empty((rows, columns), dtype=dtype))
        return cls(*(array(name, n, k, dtype) for name, dtype in cls.FIELDS))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(resource, utility, reserve, posted)``."""
        return self.resource, self.utility, self.reserve, self.posted

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
def reserve_price(price: float, priced: float, duration: float) -> float:
    """The reserve price ``rho_j q_i dur_i`` of a pair (multiplied in this order)."""
    return price * priced * duration


@nb.njit(cache=True, inline="always")
def over_budget(price: float, budget: float) -> bool:
    """A price (the reserve or the posted one) the budget cannot pay."""
    return price > budget


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
    cost = reserve_price(price, priced, duration)
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
def within(demand: float, capacity: float) -> bool:
    """A demand is within a capacity in one dimension (the capacity test of :func:`fits`)."""
    return not demand > capacity


@nb.njit(cache=True, inline="always")
def has_room(need: float, free: float, scale: float) -> bool:
    """A need fits the free capacity in one allocation unit (the free test of :func:`fits`).

    Within the allocation kernels' slack (:func:`mechanisms.kernels._slack`), relative to
    ``scale``, the capacity ``free`` was taken from (the free capacity the round started
    from): ``free + 1e-12 (1 + |scale|) >= need``, so exact fits survive large units. A NaN
    passes (the engine's validation rejects it).
    """
    return not need > free + _slack(scale)


@nb.njit(cache=True, inline="always")
def fits(rq: np.ndarray, need: np.ndarray, rs: np.ndarray, free: np.ndarray, allowed: np.ndarray, i: int,
         j: int) -> bool:
    """Request ``i`` fits resource ``j`` (capacity and free capacity in every dimension) and may use its type.

    Per dimension :func:`within` and :func:`has_room`, then :func:`eligible`. ``free`` is
    the free capacity the round started from, so it is also the scale of the fit test's
    slack (as :func:`find_candidates` with no ``capacity``).
    """
    for d in range(rq.shape[1] - RQ_DEMAND):
        if not within(rq[i, RQ_DEMAND + d], rs[j, RS_CAPACITY + d]):
            return False
    for d in range(need.shape[1]):
        if not has_room(need[i, d], free[j, d], free[j, d]):
            return False
    return eligible(allowed, i, int(rs[j, RS_TYPE]))


@nb.njit(cache=True, inline="always")
def priced_utility(req: tuple, res: tuple, alpha: float, beta: float, gamma: float, d_max: float) -> float:
    """``b_ij`` of a pair that meets the request's QoS, latency and budget (reserve and posted price), else -1.

    ``req`` and ``res`` are :func:`request_at` and :func:`resource_at` of the pair (or the
    same scalars from the kernel's per-round columns). Branch-free (every test is
    evaluated, then one select), so that the kernel's loop over a cluster's resources
    vectorises; the arithmetic of ``b`` is the one of :func:`terms_of` and
    :func:`weighted_utility` whichever test fails.
    """
    min_rel, min_avail, max_lat, budget = req[5], req[6], req[7], req[4]
    dist, cost, u_cost, u_qos, u_en = terms_of(req, res, d_max)
    b = weighted_utility(u_cost, u_qos, u_en, alpha, beta, gamma)
    rejected = ((res[3] < min_rel) | (res[4] < min_avail) | (dist > max_lat) | over_budget(cost, budget)
                | over_budget(posted_price(cost, b), budget))
    return -1.0 if rejected else b


@nb.njit(cache=True, inline="always")
def feasible_utility(
    rq: np.ndarray, need: np.ndarray, rs: np.ndarray, free: np.ndarray, allowed: np.ndarray, i: int, j: int,
    alpha: float, beta: float, gamma: float, d_max: float,
) -> float:
    """``b_ij`` if request ``i`` may be placed on resource ``j`` now, else -1.

    The one feasibility rule of a pair (the module's: capacity and free capacity in every
    dimension, eligibility, QoS, latency, reserve and posted price within the budget):
    :func:`fits`, then :func:`priced_utility`. The candidate kernel applies the same
    parts itself over a cluster's columns (:func:`priced_utility`, then :func:`within`,
    :func:`has_room` and :func:`eligible` per dimension, in passes); the whole-market
    oracle (:mod:`market.core.oracle`) calls this. ``allowed`` is the ``(N, W)`` eligibility
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


@nb.njit(cache=True, inline="always")
def _insertion_sort(util: np.ndarray, pos: np.ndarray, n: int) -> None:
    """Sort the first ``n`` pairs best first (utility descending, then position)."""
    for a in range(1, n):
        b, p = util[a], pos[a]
        q = a
        while q > 0 and _worse(util[q - 1], pos[q - 1], b, p):
            util[q], pos[q] = util[q - 1], pos[q - 1]
            q -= 1
        util[q], pos[q] = b, p


@nb.njit(cache=True, inline="always")
def _by_position(util: np.ndarray, pos: np.ndarray, lo: int, hi: int) -> None:
    """Sort the pairs ``lo .. hi`` by position (an insertion sort)."""
    for a in range(lo + 1, hi):
        b, p = util[a], pos[a]
        q = a
        while q > lo and pos[q - 1] > p:
            util[q], pos[q] = util[q - 1], pos[q - 1]
            q -= 1
        util[q], pos[q] = b, p


@nb.njit(cache=True, inline="always")
def _bucket_order(util: np.ndarray, pos: np.ndarray, total: int, k: int, tag: np.ndarray, spare_util: np.ndarray,
                  spare_pos: np.ndarray, spare_tag: np.ndarray, hist: np.ndarray) -> int:
    """Sort the best pairs first: a counting sort on utility buckets, then an insertion sort.

    A pair's bucket ``int((hi - b) * scale)`` (``lo``, ``hi``: the row's extreme utilities,
    about two buckets per pair) never decreases as its utility ``b`` decreases, and pairs of
    equal utility share one. The buckets are taken best first until they hold ``k`` pairs:
    those ``m`` pairs hold the ``k`` best and every pair of the ``k``-th's utility. They are
    kept (branch-free), counting-sorted by bucket, nearly in order, and an insertion sort (a
    step or two a pair) finishes the order. ``tag`` and ``spare_*`` are scratch of
    ``total`` or more, ``hist`` of more than ``2 total``.

    Returns:
        ``m``, the sorted leading pairs (``util`` and ``pos`` after them are left stale), or
        -1 if a utility is not finite (nothing done).
    """
    hi = util[0]
    lo = util[0]
    finite = True
    for q in range(total):
        b = util[q]
        hi = b if b > hi else hi
        lo = b if b < lo else lo
        finite &= abs(b) < math.inf
    if not finite:
        return -1
    buckets = min(hist.size, 2 * total)
    scale = 0.0
    if hi > lo:
        scale = (buckets - 1) / (hi - lo)
        if not scale < math.inf:
            return -1
    for t in range(buckets):
        hist[t] = 0
    for q in range(total):
        t = min(buckets - 1, int((hi - util[q]) * scale))
        tag[q] = t
        hist[t] += 1
    cut = buckets - 1  # the last bucket taken
    m = 0
    for t in range(buckets):  # each bucket's first slot, until the buckets hold k pairs
        h = hist[t]
        hist[t] = m
        m += h
        if m >= k:
            cut = t
            break
    kept = 0
    for q in range(total):  # the pairs of the buckets taken, each written, counted if taken
        spare_util[kept] = util[q]
        spare_pos[kept] = pos[q]
        spare_tag[kept] = tag[q]
        kept += tag[q] <= cut
    for q in range(m):
        t = spare_tag[q]
        d = hist[t]
        hist[t] = d + 1
        util[d] = spare_util[q]
        pos[d] = spare_pos[q]
    _insertion_sort(util, pos, m)
    return m


@nb.njit(cache=True, inline="always")
def _best_pairs(util: np.ndarray, pos: np.ndarray, total: int, k: int, key: int, level: np.ndarray,
                spare_util: np.ndarray, spare_pos: np.ndarray, spare_tag: np.ndarray, hist: np.ndarray,
                routed: np.ndarray) -> tuple[int, int]:
    """The row's ``k`` best of its ``total`` feasible pairs, in order, the cut level spread by the key.

    ``util`` and ``pos`` hold the pairs (scratch, reordered in place); on return their first
    ``count = min(k, total)`` are the kept pairs, utility descending, then position. When
    the top-k cut splits a level of equal utility, the ``r`` slots it keeps take the
    level's ``T`` pairs (in ascending position ``t``) from ``t = key mod T`` on,
    cyclically (the module's "Ties"); ``level`` is scratch for them, and with ``spare_*``
    and ``hist`` for :func:`_bucket_order`. ``routed[s] .. routed[s + 1]`` are the pairs of
    the row's ``s``-th cluster: when a utility is not finite (NaN ranks nowhere) they are
    put back in member order and a quickselect takes the ``k`` best, as the kernel always did.

    Returns:
        ``(count, whole)``: pairs kept, and how many leading ones are whole levels (to
        rotate in place).
    """
    if total == 0 or k == 0:
        return 0, 0
    count = min(k, total)
    m = _bucket_order(util, pos, total, k, level, spare_util, spare_pos, spare_tag, hist)
    if m < 0:
        m = total
        for s in range(routed.size - 1):
            _by_position(util, pos, routed[s], routed[s + 1])
        if total > k:
            _select(util, pos, total, k)
        _insertion_sort(util, pos, count)
    if total <= k:
        return count, count
    # pairs past ``m`` rank below the ``k``-th and differ from its utility
    cut = util[k - 1]
    left_out = False
    for q in range(k, m):
        left_out |= util[q] == cut
    if not left_out:
        return count, count
    r = 1
    while r < k and util[k - 1 - r] == cut:
        r += 1
    members = 0
    for q in range(k - r, m):
        if util[q] == cut:
            level[members] = pos[q]
            members += 1
    level[:members].sort()
    o = key % members
    for d in range(r):
        pos[k - r + d] = level[(o + d) % members]
    return count, k - r


@nb.njit(cache=True)
def _columns(
    rs: np.ndarray, free: np.ndarray, scale: np.ndarray, order: np.ndarray, start: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The resources' columns for the kernel's scan, each contiguous, by cluster then unit price.

    Returns:
        ``(cols, where, code)``: ``cols`` ``(7 + D + 2 E, P)`` rows ``RS_X .. RS_TYPE``, the
        capacity per dimension, the free capacity per unit, then the scale of its fit
        test (:func:`has_room`) per unit, of the ``P`` members of
        ``order``, each cluster's block sorted by unit price (stable); ``where`` each
        column's position in ``order``; ``code`` its type code.
    """
    dims = rs.shape[1] - RS_CAPACITY
    units = free.shape[1]
    cols = np.empty((RS_CAPACITY + dims + 2 * units, order.size))
    where = np.empty(order.size, dtype=np.int64)
    code = np.empty(order.size, dtype=np.int64)
    for c in range(start.size - 1):
        lo = start[c]
        price = np.empty(start[c + 1] - lo)
        for t in range(price.size):
            price[t] = rs[order[lo + t], RS_PRICE]
        for t, u in enumerate(np.argsort(price, kind="mergesort")):
            where[lo + t] = lo + u
    for q in range(order.size):
        j = order[where[q]]
        for r in range(RS_CAPACITY + dims):
            cols[r, q] = rs[j, r]
        for e in range(units):
            cols[RS_CAPACITY + dims + e, q] = free[j, e]
            cols[RS_CAPACITY + dims + units + e, q] = scale[j, e]
        code[q] = int(rs[j, RS_TYPE])
    return cols, where, code


@nb.njit(cache=True, inline="always")
def _affordable(price: np.ndarray, lo: int, hi: int, priced: float, duration: float, budget: float) -> int:
    """The end of the columns ``lo .. hi`` (ascending ``price``) whose reserve price the budget pays.

    The reserve price grows with the unit price (``priced``, ``duration`` positive and
    finite, no price NaN: the caller's checks), so :func:`over_budget` holds from one
    column on: a binary search with the same test finds it exactly.
    """
    while lo < hi:
        mid = (lo + hi) >> 1
        if over_budget(reserve_price(price[mid], priced, duration), budget):
            hi = mid
        else:
            lo = mid + 1
    return lo


#: rows per block of the candidate kernel's loop (each block has its own scratch)
_BLOCK = 64


def _candidate_rows(
    rq: np.ndarray,  # (N, 8 + D) request rows (RQ_* layout)
    need: np.ndarray,  # (N, E) demand in the allocation's capacity units
    rs: np.ndarray,  # (M, 7 + D) resource rows (RS_* layout) at the round's prices
    free: np.ndarray,  # (M, E) free capacity in allocation units
    scale: np.ndarray,  # (M, E) the capacity free was taken from (the fit test's scale)
    allowed: np.ndarray,  # (N, W) eligibility masks
    order: np.ndarray,  # resources sorted by cluster
    start: np.ndarray,  # (C + 1,) cluster c holds order[start[c]:start[c + 1]]
    routes: np.ndarray,  # (N, S) clusters to scan per request, -1 = none
    keys: np.ndarray,  # (N,) each request's stable key, to spread ties
    scan: np.ndarray,  # (N,) the rows in the order to compute them (each row written in place)
    rows: np.ndarray,  # (N,) each row's request: its row of rq, need, keys and allowed
    k: int,
    alpha: float,
    beta: float,
    gamma: float,
    d_max: float,
    cand: np.ndarray,  # (N, K) int64 out: the candidates (-1 = none), every entry written
    util: np.ndarray,  # (N, K) out: their utilities (0 past the row's last)
    reserve: np.ndarray,  # (N, K) out: reserve prices (0 past the row's last)
    posted: np.ndarray,  # (N, K) out: posted prices (0 past the row's last)
) -> None:
    n = rows.shape[0]
    dims = rq.shape[1] - RQ_DEMAND
    units = need.shape[1]
    typed = allowed.shape[1] > 0
    cols, where, code = _columns(rs, free, scale, order, start)
    price = cols[RS_PRICE]
    column_of = np.empty(where.size, dtype=np.int64)  # each position in ``order``'s column in ``cols``
    for q in range(where.size):
        column_of[where[q]] = q
    sorted_prices = not np.isnan(price).any()
    widest = 0
    for c in range(start.size - 1):
        widest = max(widest, start[c + 1] - start[c])
    width = widest * routes.shape[1]  # most pairs a row can scan
    for block in nb.prange((n + _BLOCK - 1) // _BLOCK):
        # one cluster's utilities (-1: infeasible); the row's feasible pairs (utility,
        # position in ``order``; a slot more: each is written, then counted if feasible);
        # scratch of their selection
        scratch = np.empty(widest)
        pair_util = np.empty(width + 1)
        pair_pos = np.empty(width + 1, dtype=np.int64)
        level = np.empty(width, dtype=np.int64)
        spare_util = np.empty(width + 1)
        spare_pos = np.empty(width + 1, dtype=np.int64)
        spare_tag = np.empty(width + 1, dtype=np.int64)
        hist = np.empty(2 * width + 2, dtype=np.int64)
        routed = np.empty(routes.shape[1] + 1, dtype=np.int64)  # each route's first pair
        # the block's requests gathered first, in one loop of independent loads: their rows
        # lie anywhere in a book of up to 80 MB, and fetched one row at a time each miss
        # waited for the one before (measured: a third of a 1M-row call)
        first = block * _BLOCK
        last = min(n, first + _BLOCK)
        b_rq = np.empty((last - first, rq.shape[1]))
        b_need = np.empty((last - first, units))
        b_allowed = np.empty((last - first, allowed.shape[1]), dtype=allowed.dtype)
        b_key = np.empty(last - first, dtype=np.int64)
        for p in range(first, last):  # element by element: a row slice costs atomic reference counts
            r = rows[scan[p]]
            for f in range(rq.shape[1]):
                b_rq[p - first, f] = rq[r, f]
            for e in range(units):
                b_need[p - first, e] = need[r, e]
            for w in range(allowed.shape[1]):
                b_allowed[p - first, w] = allowed[r, w]
            b_key[p - first] = keys[r]
        for p in range(first, last):
            i = scan[p]
            r = p - first  # the request's row of the block's copies
            req = request_at(b_rq, r)
            priced, duration, budget = req[2], req[3], req[4]
            # the columns past the budget's reach in each cluster are skipped
            bounded = sorted_prices and 0.0 < priced < math.inf and 0.0 < duration < math.inf
            total = 0
            for s in range(routes.shape[1]):
                routed[s] = total
                c = routes[i, s]
                if c < 0:
                    continue
                lo, hi = start[c], start[c + 1]
                if bounded:
                    hi = _affordable(price, lo, hi, priced, duration, budget)
                # branch-free passes over the cluster's contiguous columns (they vectorise):
                # the pair's utility or -1, then the tests of :func:`fits` (an AND, in any
                # order). The positions are unsigned: numba then drops its negative-index
                # wraparound from every access, which kept these loops from vectorising
                # (measured 3x on the tests' passes)
                ulo, uhi = nb.uint64(lo), nb.uint64(hi)
                for q in range(ulo, uhi):
                    scratch[q - ulo] = priced_utility(
                        req, (cols[RS_X, q], cols[RS_Y, q], cols[RS_PRICE, q], cols[RS_REL, q], cols[RS_AVAIL, q],
                              cols[RS_ENERGY, q]), alpha, beta, gamma, d_max)
                for d in range(dims):
                    demand = b_rq[r, RQ_DEMAND + d]
                    for q in range(ulo, uhi):
                        ok = within(demand, cols[RS_CAPACITY + d, q])
                        scratch[q - ulo] = scratch[q - ulo] if ok else -1.0
                for e in range(units):
                    needed = b_need[r, e]
                    for q in range(ulo, uhi):
                        ok = has_room(needed, cols[RS_CAPACITY + dims + e, q],
                                      cols[RS_CAPACITY + dims + units + e, q])
                        scratch[q - ulo] = scratch[q - ulo] if ok else -1.0
                if typed:
                    for q in range(ulo, uhi):
                        ok = eligible(b_allowed, r, code[q])
                        scratch[q - ulo] = scratch[q - ulo] if ok else -1.0
                for q in range(ulo, uhi):
                    b = scratch[q - ulo]
                    pair_util[total] = b
                    pair_pos[total] = where[q]
                    total += 0 if b < 0.0 else 1
            routed[routes.shape[1]] = total
            count, whole = _best_pairs(pair_util, pair_pos, total, k, b_key[r], level, spare_util, spare_pos, spare_tag,
                                       hist, routed)
            for q in range(count):
                util[i, q] = pair_util[q]
                cand[i, q] = pair_pos[q]
            _rotate_levels(util, cand, i, whole, b_key[r])
            for q in range(count):
                at = cand[i, q]
                cand[i, q] = order[at]
                reserve[i, q] = reserve_price(price[column_of[at]], priced, duration)  # rs's price, copied
                posted[i, q] = posted_price(reserve[i, q], util[i, q])
            for q in range(count, k):
                cand[i, q] = -1
                util[i, q] = 0.0
                reserve[i, q] = 0.0
                posted[i, q] = 0.0


# The same kernel compiled twice: threads pay off only on big order books, and a
# parallel launch costs milliseconds when the other core is busy (the dashboard, tests).
# Measured with the vectorised scan (2 cores): with one core free the threads halve a
# call from 1,674 rows up (3.6 -> 2.0 ms; 3,553 rows 6.4 -> 3.4 ms; 100k 151 -> 84 ms),
# with both cores busy the serial kernel wins (3,553 rows 8.7 against 13.4 ms, 100k 99
# against 121 ms). The threshold counts row-clusters (rows times the clusters each scans):
# a spill-over call of 1,660 rows over 3 clusters in the 3,553 x 888 bench round takes
# 2.2 ms on the threads against 2.7-3.6 ms serial (alternating rounds, three processes).
_candidate_kernel_parallel, _candidate_kernel_serial = compiled_twice(_candidate_rows)
#: the least rows x clusters scanned per row for which the kernel runs on threads
PARALLEL_MIN_SCANS = 2_000


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
    capacity: np.ndarray | None = None,
    rows: np.ndarray | None = None,
    out: Candidates | None = None,
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
        capacity: ``(M, E)`` the capacity ``free`` was taken from (the free capacity the
            round started from): the scale of the fit test's slack (:func:`has_room`);
            None: ``free`` itself.
        rows: ``(N,)`` the requests to compute, rows of ``requests``, ``need``, ``keys`` and
            ``allowed`` (which then hold every request of the book): the same answer as
            passing ``requests[rows]``, ``keys[rows]`` and so on, without copying them (80 MB
            of request rows at 1M); ``routes`` and ``scan`` are per computed row. Without
            ``keys`` a request's key is its row of ``requests`` (``rows[i]``, not ``i``).
            None: every row.
        out: a :class:`Candidates` of four ``(N, k)`` arrays to write the result into
            (writable, C-contiguous, none sharing memory with another; ``resource`` int64, the
            others float64), e.g. a :class:`~market.core.workspace.Workspace`'s buffers kept
            from round to round, every entry overwritten (``scan`` a permutation); None: new
            arrays.

    Returns:
        The candidate arrays, each ``(N, k)``, best first: utility descending, then the
        key's rotation of each level of equal utility.
    """
    alpha, beta, gamma, _ = weights
    book = requests.shape[0]
    keys = np.arange(book, dtype=np.int64) if keys is None else np.ascontiguousarray(keys, dtype=np.int64)
    if keys.shape != (book,):
        raise ValueError(f"keys: one per request ({book}) expected, got shape {keys.shape}")
    allowed = any_type(book) if allowed is None else np.ascontiguousarray(allowed, dtype=np.int64)
    rows = np.arange(book, dtype=np.int64) if rows is None else np.ascontiguousarray(rows, dtype=np.int64)
    n = rows.shape[0]
    if rows.ndim != 1 or (n and not (rows.min() >= 0 and rows.max() < book)):
        raise ValueError(f"rows: a row of the {book} requests each expected")
    scan = np.arange(n, dtype=np.int64) if scan is None else np.ascontiguousarray(scan, dtype=np.int64)
    if scan.shape != (n,):
        raise ValueError(f"scan: one per request ({n}) expected, got shape {scan.shape}")
    if routes.shape[0] != n:
        raise ValueError(f"routes: one row per request ({n}) expected, got shape {routes.shape}")
    start = np.ascontiguousarray(start, dtype=np.int64)
    order = np.ascontiguousarray(order, dtype=np.int64)
    # the kernel indexes with these unchecked (numba has no bounds checks)
    if start.ndim != 1 or not start.size or start[0] != 0 or start[-1] != order.size or (np.diff(start) < 0).any():
        raise ValueError(f"start: cluster offsets into order, from 0 to {order.size} and non-decreasing, expected")
    if routes.size and routes.max() >= start.size - 1:
        raise ValueError(f"routes: cluster ids below {start.size - 1} (or -1) expected, got {routes.max()}")
    free = np.ascontiguousarray(free)
    scale = free if capacity is None else np.ascontiguousarray(capacity, dtype=float)
    if scale.shape != free.shape:
        raise ValueError(f"capacity: the shape of free {free.shape} expected, got {scale.shape}")
    if out is None:
        # numpy's arrays (which asks the kernel for huge pages: a fraction of the page faults
        # of the kernel's own allocations, measured 3-4x faster to fill at 100k rows)
        out = Candidates.allocate(n, k)
    else:
        arrays = out.arrays()
        for t, ((name, dtype), array) in enumerate(zip(Candidates.FIELDS, arrays, strict=True)):
            problem = (
                f"shape {array.shape}" if array.shape != (n, k)
                else f"dtype {array.dtype}" if array.dtype != dtype
                else "not C-contiguous" if not array.flags.c_contiguous
                else "read-only" if not array.flags.writeable
                else "memory shared with another" if any(np.may_share_memory(array, b) for b in arrays[:t])
                else None
            )
            if problem:
                raise ValueError(f"out.{name}: a writable C-contiguous {dtype} array of shape {(n, k)} "
                                 f"of its own expected, got one {problem}")
    out = out.arrays()
    if n == 0:
        return Candidates(*out)
    parallel = n * max(1, routes.shape[1]) >= PARALLEL_MIN_SCANS
    (_candidate_kernel_parallel if parallel else _candidate_kernel_serial)(
        np.ascontiguousarray(requests), np.ascontiguousarray(need), np.ascontiguousarray(resources),
        free, scale, allowed, order, start, np.ascontiguousarray(routes), keys, scan, rows, int(k),
        float(alpha), float(beta), float(gamma), float(d_max), *out,
    )
    return Candidates(*out)
