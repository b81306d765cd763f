"""Numba kernels shared by the mechanisms: the allocation hot loops.

All kernels work on the ELL layout of :class:`mechanisms.base.SubMarket`: ``cand`` is
``(N, K)`` local resource indices (-1 = no candidate), ``demand`` is ``(N, D)`` and
``cap`` is the ``(M, D)`` residual capacity, which kernels copy and never mutate. The
number of resource dimensions ``D >= 1`` (cpu, memory, gpu, ...) is read from the
arrays' shapes; a request fits a resource when it fits in every dimension.
Ties are broken by the flat pair index ``i * K + k`` so results never depend on sort
stability or thread count.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

import mechanisms.numba_cache  # noqa: F401  (before any kernel: the cache keyed by the kernels' source)

_EPS = 1e-12
#: posted price = posted cost x (0.8 + 0.4 b_ij); with b_ij <= 1 at most this multiple
POSTED_MARKUP_MAX = 1.2


@nb.njit(cache=True, inline="always")
def posted_price(cost: float, b: float) -> float:
    """The posted price of a pair: its posted cost ``rho_j cpu_i dur_i`` marked up by ``b_ij``.

    The candidate kernel prices every pair with it; mechanisms that reason about the
    highest posted price use :data:`POSTED_MARKUP_MAX` beside it.
    """
    return cost * (0.8 + 0.4 * b)


@nb.njit(cache=True, inline="always")
def _fits(res: np.ndarray, j: int, demand: np.ndarray, i: int) -> bool:
    """Request ``i`` fits resource ``j``'s residual ``res[j]`` in every dimension."""
    for d in range(demand.shape[1]):  # noqa: SIM110 (a loop numba compiles; no generator in all())
        if not res[j, d] + _EPS >= demand[i, d]:
            return False
    return True


@nb.njit(cache=True, inline="always")
def _take(res: np.ndarray, j: int, demand: np.ndarray, i: int) -> None:
    """Place request ``i`` on resource ``j``: its demand leaves ``res[j]`` in every dimension."""
    for d in range(demand.shape[1]):
        res[j, d] -= demand[i, d]


@nb.njit(cache=True, inline="always")
def _log2p1(x: float) -> float:
    return math.log2(1.0 + x)


# --- a binary max-heap on (key, index), ties to the smaller index ------------------


@nb.njit(cache=True, inline="always")
def _above(ka: float, ia: int, kb: float, ib: int) -> bool:
    return ka > kb or (ka == kb and ia < ib)


@nb.njit(cache=True)
def _sift_down(keys: np.ndarray, idx: np.ndarray, n: int, pos: int) -> None:
    while True:
        left = 2 * pos + 1
        if left >= n:
            return
        best = left
        right = left + 1
        if right < n and _above(keys[right], idx[right], keys[left], idx[left]):
            best = right
        if _above(keys[best], idx[best], keys[pos], idx[pos]):
            keys[pos], keys[best] = keys[best], keys[pos]
            idx[pos], idx[best] = idx[best], idx[pos]
            pos = best
        else:
            return


@nb.njit(cache=True)
def _heapify(keys: np.ndarray, idx: np.ndarray, n: int) -> None:
    for pos in range(n // 2 - 1, -1, -1):
        _sift_down(keys, idx, n, pos)


@nb.njit(cache=True)
def lazy_greedy(
    cand: np.ndarray,
    base: np.ndarray,
    demand: np.ndarray,
    cap: np.ndarray,
    user: np.ndarray,
    prio: np.ndarray,
    user_won: np.ndarray,
    delta: float,
    size: np.ndarray,
) -> np.ndarray:
    """Greedy on marginal gains of ``F(S) = sum b + delta * sum_u log2(1 + X_u)``.

    Requests are ranked by ``gain / size_i``: ``size = 1`` is plain greedy on gains;
    a request's share of the capacity makes it greedy on gain per unit of capacity.

    The gain of pair (i, j) is ``b_ij + delta * (g(X_u + p_i) - g(X_u))``. The fairness
    part is the same for all of a request's pairs, so a request's best pair is its
    highest-``b`` candidate that fits, and the heap holds one entry per request (not per
    pair): its key is an upper bound, since gains only fall as users win and capacity
    only shrinks. A popped request is re-evaluated and accepted only if it still beats
    the next key, so the picks are exactly those of plain pair-level greedy (ties to
    the smaller flat pair index ``i * K + k``).

    Returns:
        ``(N,)`` chosen candidate column per request, -1 if unserved.
    """
    n, k = cand.shape
    res = cap.copy()
    won = user_won.copy()
    choice = np.full(n, -1, dtype=np.int64)
    ok = cand >= 0
    keys = np.empty(n)
    idx = np.empty(n, dtype=np.int64)
    top = 0
    for i in range(n):
        c = _best_column(i, base, cand, ok, demand, res)
        if c >= 0:
            u = user[i]
            keys[top] = (base[i, c] + delta * (_log2p1(won[u] + prio[i]) - _log2p1(won[u]))) / size[i]
            idx[top] = i * k + c
            top += 1
    _heapify(keys, idx, top)
    while top > 0:
        i = idx[0] // k
        top -= 1
        keys[0] = keys[top]
        idx[0] = idx[top]
        _sift_down(keys, idx, top, 0)
        c = _best_column(i, base, cand, ok, demand, res)
        if c < 0:
            continue
        u = user[i]
        gain = base[i, c] + delta * (_log2p1(won[u] + prio[i]) - _log2p1(won[u]))
        if gain <= 0.0:
            continue
        e = i * k + c
        rank = gain / size[i]
        if top == 0 or _above(rank, e, keys[0], idx[0]):
            j = cand[i, c]
            choice[i] = c
            _take(res, j, demand, i)
            won[u] += prio[i]
        else:  # stale key: push back with the fresh gain
            pos = top
            keys[pos] = rank
            idx[pos] = e
            top += 1
            while pos > 0:
                parent = (pos - 1) // 2
                if _above(keys[pos], idx[pos], keys[parent], idx[parent]):
                    keys[pos], keys[parent] = keys[parent], keys[pos]
                    idx[pos], idx[parent] = idx[parent], idx[pos]
                    pos = parent
                else:
                    break
    return choice


@nb.njit(cache=True)
def edge_scan(order: np.ndarray, cand: np.ndarray, demand: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Sorted-edge greedy: accept pairs in ``order`` (flat ``i * K + k``) while they fit.

    Returns:
        ``(N,)`` chosen candidate column per request, -1 if unserved.
    """
    n, k = cand.shape
    res = cap.copy()
    choice = np.full(n, -1, dtype=np.int64)
    for e in order:
        i = e // k
        c = e - i * k
        j = cand[i, c]
        if j < 0 or choice[i] >= 0 or not _fits(res, j, demand, i):
            continue
        choice[i] = c
        _take(res, j, demand, i)
    return choice


@nb.njit(cache=True)
def _best_column(i: int, key: np.ndarray, cand: np.ndarray, ok: np.ndarray, demand: np.ndarray, res: np.ndarray) -> int:
    best = -1
    for c in range(cand.shape[1]):
        j = cand[i, c]
        fits = j >= 0 and ok[i, c] and _fits(res, j, demand, i)
        if fits and (best < 0 or key[i, c] > key[i, best]):
            best = c
    return best


@nb.njit(cache=True)
def sequential_pick(
    order: np.ndarray, key: np.ndarray, ok: np.ndarray, cand: np.ndarray, demand: np.ndarray, cap: np.ndarray
) -> np.ndarray:
    """Requests in ``order`` each take their allowed candidate with the largest ``key`` that fits.

    Returns:
        ``(N,)`` chosen candidate column per request, -1 if unserved.
    """
    res = cap.copy()
    choice = np.full(cand.shape[0], -1, dtype=np.int64)
    for i in order:
        c = _best_column(i, key, cand, ok, demand, res)
        if c >= 0:
            j = cand[i, c]
            choice[i] = c
            _take(res, j, demand, i)
    return choice


@nb.njit(cache=True)
def _quality_integral(lo: float, hi: float, avail: np.ndarray, quality: np.ndarray, threshold: np.ndarray) -> float:
    """Integral over t in (lo, hi) of max{quality_c : avail_c and t >= threshold_c}."""
    if hi <= lo:
        return 0.0
    k = quality.shape[0]
    # breakpoints inside (lo, hi), plus the ends; q(t) is a step function between them
    pts = np.empty(k + 2)
    m = 0
    pts[m] = lo
    m += 1
    for c in range(k):
        if avail[c] and lo < threshold[c] < hi:
            pts[m] = threshold[c]
            m += 1
    pts[m] = hi
    m += 1
    pts[:m].sort()
    total = 0.0
    for s in range(m - 1):
        a = pts[s]
        b = pts[s + 1]
        if b <= a:
            continue
        mid = 0.5 * (a + b)
        q = 0.0
        for c in range(k):
            if avail[c] and mid >= threshold[c] and quality[c] > q:
                q = quality[c]
        total += q * (b - a)
    return total


@nb.njit(cache=True)
def _grow(undo_j: np.ndarray, undo_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The undo log with twice the room, its entries kept."""
    j = np.empty(2 * undo_j.size, dtype=np.int64)
    v = np.empty((2 * undo_j.size, undo_v.shape[1]))
    j[: undo_j.size] = undo_j
    v[: undo_j.size] = undo_v
    return j, v


@nb.njit(cache=True)
def myerson_ladder(
    order: np.ndarray,
    report: np.ndarray,
    quality: np.ndarray,
    reserve: np.ndarray,
    cand: np.ndarray,
    demand: np.ndarray,
    cap: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Truthful (Myerson) payments for a request-ordered quality ladder.

    Requests in ``order`` (descending ``report``) take the fitting candidate of highest
    ``quality`` among those with ``report * quality >= reserve``. A request's allocated
    quality ``q(z)`` is non-decreasing in its own report ``z`` (a higher report moves it
    earlier, where a superset of resources is free), so charging
    ``z q(z) - integral_0^z q(t) dt`` makes truthful reporting dominant (Myerson 1981).
    The integral is computed exactly by replaying the other requests without ``i``.

    Returns:
        ``(choice, payment)``, each ``(N,)``.
    """
    n, k = cand.shape
    res = cap.copy()
    choice = np.full(n, -1, dtype=np.int64)
    payment = np.zeros(n)
    ok = np.empty((n, k), dtype=np.bool_)
    for i in range(n):
        for c in range(k):
            ok[i, c] = report[i] * quality[i, c] >= reserve[i, c]
    threshold = np.empty(k)
    avail = np.empty(k, dtype=np.bool_)
    undo_j = np.empty(64, dtype=np.int64)
    undo_v = np.empty((64, demand.shape[1]))
    for pos in range(n):
        i = order[pos]
        c = _best_column(i, quality, cand, ok, demand, res)
        if c < 0:
            continue
        z = report[i]
        win_q = quality[i, c]
        for cc in range(k):
            threshold[cc] = reserve[i, cc] / quality[i, cc] if quality[i, cc] > 0 else np.inf
        floor = np.inf  # below every threshold q(t) = 0: stop replaying there
        for cc in range(k):
            j = cand[i, cc]
            avail[cc] = j >= 0 and _fits(res, j, demand, i)
            if avail[cc] and threshold[cc] < floor:
                floor = threshold[cc]
        # replay the others after i, without i, in place on res; an undo log puts back
        # the exact values after (a copy of res per winner costs O(M) each)
        upper = z
        integral = 0.0
        logged = 0
        for p2 in range(pos + 1, n):
            o = order[p2]
            # below the lowest threshold of i's free pairs q(t) = 0 whatever is taken
            if upper <= floor or report[o] <= floor:
                break
            co = _best_column(o, quality, cand, ok, demand, res)
            if co < 0:
                continue
            jo = cand[o, co]
            if logged == undo_j.size:
                undo_j, undo_v = _grow(undo_j, undo_v)
            undo_j[logged] = jo
            undo_v[logged] = res[jo]
            logged += 1
            _take(res, jo, demand, o)
            changed = False
            for cc in range(k):
                if avail[cc] and cand[i, cc] == jo and not _fits(res, jo, demand, i):
                    changed = True
            if changed:
                lo = min(report[o], upper)
                integral += _quality_integral(lo, upper, avail, quality[i], threshold)
                upper = lo
                floor = np.inf
                for cc in range(k):
                    if avail[cc] and cand[i, cc] == jo:
                        avail[cc] = False
                    if avail[cc] and threshold[cc] < floor:
                        floor = threshold[cc]
        for u in range(logged - 1, -1, -1):
            res[undo_j[u]] = undo_v[u]
        integral += _quality_integral(0.0, upper, avail, quality[i], threshold)
        choice[i] = c
        payment[i] = max(0.0, z * win_q - integral)
        j = cand[i, c]
        _take(res, j, demand, i)
    return choice, payment


@nb.njit(cache=True)
def ladder_reserve(cand: np.ndarray, slope: np.ndarray, cost: np.ndarray, threshold: np.ndarray, weight: float) -> np.ndarray:
    """Reserves under which every upgrade of a request's slope ladder pays for itself.

    On a ladder (highest slope among the pairs open to the report), a request moves
    from pair ``l`` to a pair ``j`` of higher slope at a report ``t`` where both are
    open. Its Myerson payment grows by ``t (s_j - s_l)``; the step is paid for when
    that is at least ``weight (c_j - c_l)``, i.e. ``t >= u_lj = weight (c_j - c_l) /
    (s_j - s_l)``, the report from which ``t s_j - weight c_j`` beats ``t s_l - weight
    c_l``. So ``j`` opens at the largest of its own ``threshold`` and ``u_lj`` over the
    cheaper, lower-slope pairs ``l`` that open below ``u_lj``; of two pairs with equal
    slope only the cheaper opens. Summed over the steps, the payment is at least
    ``weight`` times the winning pair's cost.

    A pair's opening depends only on its own data and on cheaper pairs', never on the
    report: a pair that is no candidate at some report (too dear for it) moves no
    pair that could open there, so the ladder stays truthful even when the candidate
    set is built from the reported budget.

    Args:
        cand: ``(N, K)`` candidate resources, -1 = padding.
        slope: ``(N, K)`` budget-free slope ``s_ij`` of each pair's value.
        cost: ``(N, K)`` posted cost ``c_ij``.
        threshold: ``(N, K)`` report from which each pair opens by itself; at least
            the report from which the pair is surely a candidate.
        weight: ``alpha``, the cost term's weight in the value.

    Returns:
        ``(N, K)`` reserve for :func:`myerson_ladder` (``report * slope >= reserve``),
        inf for padding and closed pairs.
    """
    n, k = cand.shape
    valid = (cand >= 0) & (slope > 0.0)
    opens = np.where(valid, threshold, np.inf)
    for i in range(n):
        for j in range(k):
            for low in range(k):
                if low == j or not valid[i, j] or not valid[i, low]:
                    continue
                if slope[i, low] > slope[i, j] or cost[i, j] <= cost[i, low]:
                    continue
                if slope[i, low] == slope[i, j]:
                    opens[i, j] = np.inf  # a dearer pair of the same slope never opens
                    break
                cross = weight * (cost[i, j] - cost[i, low]) / (slope[i, j] - slope[i, low])
                if threshold[i, low] < cross:
                    opens[i, j] = max(opens[i, j], cross)
    return np.where(valid, opens * slope, np.inf)


#: the packing rules of :func:`pack_in_order`
BEST_FIT = 0
DOT_PRODUCT = 1


@nb.njit(cache=True)
def pack_in_order(
    rule: int, ok: np.ndarray, cand: np.ndarray, demand: np.ndarray, cap: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """Requests in row order each take the allowed, fitting candidate the packing ``rule`` scores best.

    With ``r = res[j] / scale`` and ``q = demand[i] / scale`` (``res`` the residual
    capacity at the time, per dimension), :data:`BEST_FIT` minimises the residual left
    after placement, ``sum_d (r_d - q_d)``, and :data:`DOT_PRODUCT` maximises the
    alignment ``sum_d q_d r_d``. Ties go to the lower column. O(N K D).

    Args:
        rule: :data:`BEST_FIT` or :data:`DOT_PRODUCT`.
        ok: ``(N, K)`` pairs allowed (e.g. affordable).
        cand: ``(N, K)`` candidate resources, -1 = padding.
        demand: ``(N, D)`` demand per request.
        cap: ``(M, D)`` residual capacity (copied, never mutated).
        scale: ``(D,)`` positive normaliser of each dimension.

    Returns:
        ``(N,)`` chosen candidate column per request, -1 if unserved.
    """
    n, k = cand.shape
    dims = demand.shape[1]
    res = cap.copy()
    choice = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        best = -1
        best_score = 0.0
        for c in range(k):
            j = cand[i, c]
            if j < 0 or not ok[i, c] or not _fits(res, j, demand, i):
                continue
            score = 0.0
            if rule == BEST_FIT:
                for d in range(dims):
                    score -= (res[j, d] - demand[i, d]) / scale[d]
            else:
                for d in range(dims):
                    score += (demand[i, d] / scale[d]) * (res[j, d] / scale[d])
            if best < 0 or score > best_score:
                best = c
                best_score = score
        if best >= 0:
            choice[i] = best
            _take(res, cand[i, best], demand, i)
    return choice
