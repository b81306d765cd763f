"""Numba kernels shared by the mechanisms: the allocation hot loops.

All kernels work on the ELL layout of :class:`mechanisms.base.SubMarket`: ``cand`` is
``(N, K)`` local resource indices (-1 = no candidate), ``demand`` is ``(N, D)`` and
``cap`` is the ``(M, D)`` residual capacity, which kernels copy and never mutate. The
number of resource dimensions ``D >= 1`` (cpu, memory, gpu, ...) is read from the
arrays' shapes; a request fits a resource when it fits in every dimension, within a
slack relative to the sub-market's capacity ``cap`` the residual was taken from
(:func:`_room`, the one fit test of the mechanisms).
Ties are broken by the flat pair index ``i * K + k`` so results never depend on sort
stability or thread count.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

import mechanisms.numba_cache  # noqa: F401  (before any kernel: the cache keyed by the kernels' source)

#: slack of the fit test, relative to the capacity the residual was taken from: a request
#: fits when ``residual + _EPS * (1 + |capacity|) >= demand`` in every dimension
#: (:func:`_room`). Relative, so a market in large units (MiB, milli-cores) keeps its exact
#: fits: the round-off of a residual grows with the capacity, and an absolute 1e-12 is
#: below one ulp of values above ~4096. Far below the market's 1e-9 relative capacity check
#: (:mod:`market.core.feasibility`), even summed over a round's passes.
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
def _slack(scale: float) -> float:
    """The slack of the fit test on a residual of the capacity ``scale``: ``_EPS (1 + |scale|)``."""
    return _EPS * (1.0 + abs(scale))


@nb.njit(cache=True, inline="always")
def _room(left: float, need: float, scale: float) -> bool:
    """``need`` fits ``left``, a residual of the capacity ``scale``: ``left + _slack(scale) >= need``.

    The one fit test of the allocation code in one dimension (NaN never fits).
    """
    return left + _slack(scale) >= need


def fit_slack(capacity: np.ndarray) -> np.ndarray:
    """The slack of :func:`_slack` elementwise, for numpy code.

    ``left + fit_slack(cap) >= need`` is :func:`_room`'s test, bit for bit.
    """
    return _EPS * (1.0 + np.abs(capacity))


@nb.njit(cache=True, inline="always")
def _fits_row(res: np.ndarray, r: int, cap: np.ndarray, j: int, demand: np.ndarray, i: int) -> bool:
    """Request ``i`` fits the residual ``res[r]`` of resource ``j`` (capacity ``cap[j]``) in every dimension."""
    for d in range(demand.shape[1]):  # noqa: SIM110 (a loop numba compiles; no generator in all())
        if not _room(res[r, d], demand[i, d], cap[j, d]):
            return False
    return True


@nb.njit(cache=True, inline="always")
def _fits(res: np.ndarray, j: int, demand: np.ndarray, i: int, cap: np.ndarray) -> bool:
    """Request ``i`` fits resource ``j``'s residual ``res[j]`` of ``cap[j]`` in every dimension."""
    return _fits_row(res, j, cap, j, demand, i)


@nb.njit(cache=True, inline="always")
def _take(res: np.ndarray, j: int, demand: np.ndarray, i: int) -> None:
    """Place request ``i`` on resource ``j``: its demand leaves ``res[j]`` in every dimension."""
    for d in range(demand.shape[1]):
        res[j, d] -= demand[i, d]


@nb.njit(cache=True, inline="always")
def _log2p1(x: float) -> float:
    return math.log2(1.0 + x)


@nb.njit(cache=True, inline="always")
def fairness_step(won: float, p: float, delta: float) -> float:
    """Fairness gain ``delta [log2(1 + won + p) - log2(1 + won)]`` of priority ``p`` joining a user's mass ``won``."""
    return delta * (_log2p1(won + p) - _log2p1(won))


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
    # rows whose keys are all numbers: a popped request whose previous best column still
    # fits keeps it without a scan (keys are fixed and capacity only shrinks, so the columns
    # that beat it did not fit then and do not now); a NaN key breaks that (it wins only as
    # the first column that fits), so such a row is always scanned
    steady = np.ones(n, dtype=np.bool_)
    for i in range(n):
        for c in range(k):
            steady[i] &= not (ok[i, c] and math.isnan(base[i, c]))
    first = np.empty(n)
    first_idx = np.empty(n, dtype=np.int64)
    m = 0
    for i in range(n):
        c = _best_column(i, base, cand, ok, demand, res, cap)
        if c >= 0:
            u = user[i]
            first[m] = (base[i, c] + fairness_step(won[u], prio[i], delta)) / size[i]
            first_idx[m] = i * k + c
            m += 1
    # The first keys sorted once (descending; a stable sort keeps equal keys in index
    # order), and the re-evaluated entries in a heap beside them: the next entry is the
    # larger of the two heads. Same order as one heap over everything, but most pops come
    # from the sorted run, where a heap of 10^5+ entries misses the cache at every level.
    order = np.argsort(-first[:m], kind="mergesort")
    run_key = first[:m][order]
    run_idx = first_idx[:m][order]
    keys = np.empty(n)
    idx = np.empty(n, dtype=np.int64)
    top = 0
    p = 0
    while p < m or top > 0:
        if top > 0 and (p == m or _above(keys[0], idx[0], run_key[p], run_idx[p])):
            e = idx[0]
            top -= 1
            keys[0] = keys[top]
            idx[0] = idx[top]
            _sift_down(keys, idx, top, 0)
        else:
            e = run_idx[p]
            p += 1
        i = e // k
        c = e - i * k  # the best column when the entry was made
        if not (steady[i] and _fits(res, cand[i, c], demand, i, cap)):
            c = _best_column(i, base, cand, ok, demand, res, cap)
        if c < 0:
            continue
        u = user[i]
        gain = base[i, c] + fairness_step(won[u], prio[i], delta)
        # nothing to gain, or not a number: never served (a NaN key would go back on the heap
        # for ever, as no comparison ranks it)
        if not gain > 0.0:
            continue
        e = i * k + c
        rank = gain / size[i]
        if p < m and (top == 0 or _above(run_key[p], run_idx[p], keys[0], idx[0])):
            best = _above(rank, e, run_key[p], run_idx[p])
        else:
            best = top == 0 or _above(rank, e, keys[0], idx[0])
        if best:
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
        if j < 0 or choice[i] >= 0 or not _fits(res, j, demand, i, cap):
            continue
        choice[i] = c
        _take(res, j, demand, i)
    return choice


@nb.njit(cache=True)
def _best_column(
    i: int, key: np.ndarray, cand: np.ndarray, ok: np.ndarray, demand: np.ndarray, res: np.ndarray, cap: np.ndarray
) -> int:
    best = -1
    for c in range(cand.shape[1]):
        j = cand[i, c]
        fits = j >= 0 and ok[i, c] and _fits(res, j, demand, i, cap)
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
        c = _best_column(i, key, cand, ok, demand, res, cap)
        if c >= 0:
            j = cand[i, c]
            choice[i] = c
            _take(res, j, demand, i)
    return choice


@nb.njit(cache=True)
def _quality_integral(
    lo: float, hi: float, avail: np.ndarray, quality: np.ndarray, threshold: np.ndarray
) -> float:
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


# --- the ladder's Myerson payments: the run without a winner, replayed locally -------
#
# A stream is the ordered list of positions (in ``order``) where something may happen on
# one resource: the actual run's takes of it (kind _TAKES) or the requests that have an
# open pair on it (kind _BIDDERS). Both kinds live in one CSR: ``starts[kind, j]`` to
# ``starts[kind, j + 1]`` index ``positions``, and a take's index also indexes ``take_res``.
# The streams of a winner's replay are merged by a min-heap of (position, resource,
# stamp) rows; a stream restarted or stopped gets a new stamp, so its old row is skipped.

_TAKES = 0
_BIDDERS = 1


@nb.njit(cache=True)
def _ladder_run(
    order: np.ndarray,
    quality: np.ndarray,
    ok: np.ndarray,
    cand: np.ndarray,
    demand: np.ndarray,
    cap: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The ladder's allocation, with the history the payments read.

    Requests in ``order`` take the fitting ``ok`` candidate of highest ``quality`` (ties
    to the lower column).

    Returns:
        ``(choice, free, take_start, take_pos, take_res)``: ``choice`` ``(N,)`` column or
        -1; ``free`` ``(N, K)`` the candidates a winner fits when its turn comes (all
        False for the others); the takes by resource as CSR: resource ``j``'s are rows
        ``take_start[j]:take_start[j + 1]`` (``take_start`` ``(M + 1,)``) of ``take_pos``
        ``(T,)``, their positions in ``order`` ascending, and ``take_res`` ``(T, D)``,
        ``j``'s residual just after each (the very values the run computed).
    """
    n, k = cand.shape
    m, dims = cap.shape
    res = cap.copy()
    choice = np.full(n, -1, dtype=np.int64)
    free = np.zeros((n, k), dtype=np.bool_)
    seq_pos = np.empty(n, dtype=np.int64)
    seq_j = np.empty(n, dtype=np.int64)
    seq_res = np.empty((n, dims))
    take_start = np.zeros(m + 1, dtype=np.int64)
    t = 0
    for pos in range(n):
        i = order[pos]
        c = _best_column(i, quality, cand, ok, demand, res, cap)
        if c < 0:
            continue
        for cc in range(k):
            free[i, cc] = cand[i, cc] >= 0 and _fits(res, cand[i, cc], demand, i, cap)
        j = cand[i, c]
        choice[i] = c
        _take(res, j, demand, i)
        seq_pos[t] = pos
        seq_j[t] = j
        seq_res[t] = res[j]
        take_start[j + 1] += 1
        t += 1
    for j in range(m):
        take_start[j + 1] += take_start[j]
    cursor = take_start[:-1].copy()
    take_pos = np.empty(t, dtype=np.int64)
    take_res = np.empty((t, dims))
    for s in range(t):
        row = cursor[seq_j[s]]
        take_pos[row] = seq_pos[s]
        take_res[row] = seq_res[s]
        cursor[seq_j[s]] += 1
    return choice, free, take_start, take_pos, take_res


@nb.njit(cache=True)
def _bidders(
    order: np.ndarray, ok: np.ndarray, cand: np.ndarray, m: int
) -> tuple[np.ndarray, np.ndarray]:
    """The positions in ``order`` of the requests with an ``ok`` pair on each resource.

    Returns:
        ``(start, pos)``: resource ``j``'s are ``pos[start[j]:start[j + 1]]``, ascending
        (``start`` ``(M + 1,)``).
    """
    n, k = cand.shape
    start = np.zeros(m + 1, dtype=np.int64)
    for i in range(n):
        for c in range(k):
            if cand[i, c] >= 0 and ok[i, c]:
                start[cand[i, c] + 1] += 1
    for j in range(m):
        start[j + 1] += start[j]
    cursor = start[:-1].copy()
    pos = np.empty(start[m], dtype=np.int64)
    for p in range(n):
        i = order[p]
        for c in range(k):
            j = cand[i, c]
            if j >= 0 and ok[i, c]:
                pos[cursor[j]] = p
                cursor[j] += 1
    return start, pos


@nb.njit(cache=True)
def _grow(heap: np.ndarray) -> np.ndarray:
    """The heap with twice the room, its rows kept."""
    bigger = np.empty((2 * heap.shape[0], heap.shape[1]), dtype=heap.dtype)
    bigger[: heap.shape[0]] = heap
    return bigger


@nb.njit(cache=True, inline="always")
def _row_before(heap: np.ndarray, a: int, b: int) -> bool:
    for f in range(3):
        if heap[a, f] != heap[b, f]:
            return heap[a, f] < heap[b, f]
    return False


@nb.njit(cache=True, inline="always")
def _swap_rows(heap: np.ndarray, a: int, b: int) -> None:
    for f in range(3):
        heap[a, f], heap[b, f] = heap[b, f], heap[a, f]


@nb.njit(cache=True)
def _push(heap: np.ndarray, top: int, p: int, r: int, stamp: int) -> np.ndarray:
    """Add the row ``(p, r, stamp)`` to the min-heap of ``top`` rows (grown if full)."""
    if top == heap.shape[0]:
        heap = _grow(heap)
    heap[top, 0] = p
    heap[top, 1] = r
    heap[top, 2] = stamp
    pos = top
    while pos > 0:
        parent = (pos - 1) // 2
        if not _row_before(heap, pos, parent):
            break
        _swap_rows(heap, pos, parent)
        pos = parent
    return heap


@nb.njit(cache=True)
def _pop(heap: np.ndarray, top: int) -> int:
    """Drop the least row of the min-heap of ``top`` rows; returns the new size."""
    top -= 1
    for f in range(3):
        heap[0, f] = heap[top, f]
    pos = 0
    while True:
        best = pos
        for child in (2 * pos + 1, 2 * pos + 2):
            if child < top and _row_before(heap, child, best):
                best = child
        if best == pos:
            return top
        _swap_rows(heap, pos, best)
        pos = best


@nb.njit(cache=True)
def _open(
    heap: np.ndarray,
    top: int,
    streams: np.ndarray,
    r: int,
    kind: int,
    after: int,
    stamp: int,
    starts: np.ndarray,
    positions: np.ndarray,
) -> tuple[np.ndarray, int]:
    """(Re)start resource ``r``'s stream of ``kind`` at its first position after ``after``."""
    lo = starts[kind, r]
    hi = starts[kind, r + 1]
    while lo < hi:
        mid = (lo + hi) >> 1
        if positions[mid] <= after:
            lo = mid + 1
        else:
            hi = mid
    streams[r, 0] = kind
    streams[r, 1] = lo
    streams[r, 2] = stamp
    if lo < starts[kind, r + 1]:
        heap = _push(heap, top, positions[lo], r, stamp)
        top += 1
    return heap, top


@nb.njit(cache=True, inline="always")
def _last_take(starts: np.ndarray, positions: np.ndarray, j: int, p: int) -> int:
    """Row of ``take_res`` with resource ``j``'s residual before position ``p`` (-1: its capacity)."""
    lo = starts[_TAKES, j]
    hi = starts[_TAKES, j + 1]
    while lo < hi:
        mid = (lo + hi) >> 1
        if positions[mid] < p:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1 if lo > starts[_TAKES, j] else -1


@nb.njit(cache=True, inline="always")
def _fits_before(
    starts: np.ndarray,
    positions: np.ndarray,
    take_res: np.ndarray,
    cap: np.ndarray,
    j: int,
    p: int,
    demand: np.ndarray,
    i: int,
) -> bool:
    """Request ``i`` fits resource ``j`` as the actual run left it before position ``p``."""
    t = _last_take(starts, positions, j, p)
    return _fits_row(take_res, t, cap, j, demand, i) if t >= 0 else _fits(cap, j, demand, i, cap)


@nb.njit(cache=True, inline="always")
def _ranks_above(quality: np.ndarray, o: int, a: int, b: int) -> bool:
    """Column ``a`` of request ``o`` beats column ``b`` on the ladder (ties to the lower)."""
    return quality[o, a] > quality[o, b] or (quality[o, a] == quality[o, b] and a < b)


@nb.njit(cache=True)
def _choice_without(
    o: int,
    p: int,
    me: int,
    quality: np.ndarray,
    ok: np.ndarray,
    cand: np.ndarray,
    demand: np.ndarray,
    cap: np.ndarray,
    choice: np.ndarray,
    in_diff: np.ndarray,
    res_diff: np.ndarray,
    starts: np.ndarray,
    positions: np.ndarray,
    take_res: np.ndarray,
) -> int:
    """Request ``o``'s column (at position ``p``) in the run without the winner ``me``.

    Resources in the difference set (``in_diff == me``) have the residual ``res_diff``;
    the others the actual run's. On those, the actual choice ``ca`` still fits, and
    every column ranked above it still does not; only when ``ca`` is itself in the
    set may a column ranked below it (looked up in the history) take its place.
    """
    ca = choice[o]
    ca_moved = ca >= 0 and in_diff[cand[o, ca]] == me
    best = -1
    for c in range(cand.shape[1]):
        j = cand[o, c]
        if j < 0 or not ok[o, c] or (best >= 0 and not quality[o, c] > quality[o, best]):
            continue
        if in_diff[j] == me:
            fits = _fits(res_diff, j, demand, o, cap)
        elif c == ca:
            fits = True
        elif ca < 0 or not ca_moved or _ranks_above(quality, o, c, ca):
            fits = False
        else:
            fits = _fits_before(starts, positions, take_res, cap, j, p, demand, o)
        if fits:
            best = c
    return best


@nb.njit(cache=True)
def _matches_history(
    res_diff: np.ndarray,
    starts: np.ndarray,
    positions: np.ndarray,
    take_res: np.ndarray,
    cap: np.ndarray,
    j: int,
    p: int,
) -> bool:
    """``res_diff[j]`` equals, bit for bit, the actual run's residual of ``j`` before ``p``."""
    t = _last_take(starts, positions, j, p)
    for d in range(cap.shape[1]):
        if res_diff[j, d] != (take_res[t, d] if t >= 0 else cap[j, d]):
            return False
    return True


@nb.njit(cache=True)
def _critical_value(
    pos: int,
    order: np.ndarray,
    report: np.ndarray,
    quality: np.ndarray,
    reserve: np.ndarray,
    ok: np.ndarray,
    cand: np.ndarray,
    demand: np.ndarray,
    cap: np.ndarray,
    choice: np.ndarray,
    free: np.ndarray,
    starts: np.ndarray,
    positions: np.ndarray,
    take_res: np.ndarray,
    in_diff: np.ndarray,
    res_diff: np.ndarray,
    streams: np.ndarray,
) -> float:
    """``z q(z) - integral_0^z q(t) dt`` for the winner at position ``pos`` of ``order``.

    At a report ``t < z`` the winner ``i`` comes after the requests reporting more, run
    without it, and gets the best of its candidates open at ``t`` that still fit it
    there. That run differs from the actual one only through the demand ``i`` took: the
    difference set (``in_diff == pos``, residuals ``res_diff``) starts as ``i``'s
    resource and grows (or shrinks) where a request chooses otherwise. A later request
    can choose otherwise only if it has an open pair in the set, and ``q`` only steps
    down when a take leaves ``i`` no room on one of its free candidates; so the replay
    visits, in order, the bidders of the set's resources and the actual takes of ``i``'s
    free candidates, and reads every other residual from the actual run's history. It
    stops, as a full replay would, below the lowest threshold of ``i``'s free pairs.
    """
    i = order[pos]
    k = cand.shape[1]
    threshold = np.empty(k)
    avail = np.empty(k, dtype=np.bool_)
    floor = np.inf  # below every threshold q(t) = 0: stop replaying there
    for cc in range(k):
        threshold[cc] = reserve[i, cc] / quality[i, cc] if quality[i, cc] > 0 else np.inf
        avail[cc] = free[i, cc]
        if avail[cc] and threshold[cc] < floor:
            floor = threshold[cc]
    heap = np.empty((16, 3), dtype=np.int64)
    top = 0
    stamp = 0
    own = cand[i, choice[i]]
    in_diff[own] = pos
    t = _last_take(starts, positions, own, pos)
    res_diff[own] = take_res[t] if t >= 0 else cap[own]
    stamp += 1
    heap, top = _open(heap, top, streams, own, _BIDDERS, pos, stamp, starts, positions)
    for cc in range(k):
        if avail[cc] and cand[i, cc] != own:
            stamp += 1
            heap, top = _open(
                heap, top, streams, cand[i, cc], _TAKES, pos, stamp, starts, positions
            )
    upper = report[i]
    integral = 0.0
    last = pos
    while top > 0:
        p = heap[0, 0]
        r = heap[0, 1]
        valid = heap[0, 2] == streams[r, 2]
        top = _pop(heap, top)
        if not valid:
            continue
        nxt = streams[r, 1] + 1
        streams[r, 1] = nxt
        if nxt < starts[streams[r, 0], r + 1]:
            heap = _push(heap, top, positions[nxt], r, streams[r, 2])
            top += 1
        if p == last:  # the same request in another stream
            continue
        last = p
        o = order[p]
        # below the lowest threshold of i's free pairs q(t) = 0 whatever is taken
        if upper <= floor or report[o] <= floor:
            break
        ca = choice[o]
        cb = ca
        for cc in range(k):
            if cand[o, cc] >= 0 and ok[o, cc] and in_diff[cand[o, cc]] == pos:
                cb = _choice_without(
                    o,
                    p,
                    pos,
                    quality,
                    ok,
                    cand,
                    demand,
                    cap,
                    choice,
                    in_diff,
                    res_diff,
                    starts,
                    positions,
                    take_res,
                )
                break
        ja = cand[o, ca] if ca >= 0 else -1
        jb = cand[o, cb] if cb >= 0 else -1
        if ja == jb:
            if jb >= 0 and in_diff[jb] == pos:
                _take(res_diff, jb, demand, o)
        else:
            # jb gains o's demand in the run without i, ja keeps it; each resource joins
            # the set with the actual run's residual, and leaves it when equal again
            for j in (jb, ja):
                if j < 0:
                    continue
                if in_diff[j] != pos:
                    in_diff[j] = pos
                    t = _last_take(starts, positions, j, p)
                    res_diff[j] = take_res[t] if t >= 0 else cap[j]
                    stamp += 1
                    heap, top = _open(heap, top, streams, j, _BIDDERS, p, stamp, starts, positions)
                if j == jb:
                    _take(res_diff, j, demand, o)
                if _matches_history(res_diff, starts, positions, take_res, cap, j, p + 1):
                    in_diff[j] = -1
                    stamp += 1
                    streams[j, 2] = stamp
                    for cc in range(k):
                        if avail[cc] and cand[i, cc] == j:
                            heap, top = _open(
                                heap, top, streams, j, _TAKES, p, stamp, starts, positions
                            )
                            break
        if jb < 0:
            continue
        hit = False
        for cc in range(k):
            hit = hit or (avail[cc] and cand[i, cc] == jb)
        if not hit:
            continue
        if in_diff[jb] == pos:
            room = _fits(res_diff, jb, demand, i, cap)
        else:
            room = _fits_before(starts, positions, take_res, cap, jb, p + 1, demand, i)
        if room:
            continue
        # o's take left i no room on jb: above report[o] i comes first and has jb
        lo = min(report[o], upper)
        integral += _quality_integral(lo, upper, avail, quality[i], threshold)
        upper = lo
        floor = np.inf
        for cc in range(k):
            if avail[cc] and cand[i, cc] == jb:
                avail[cc] = False
            if avail[cc] and threshold[cc] < floor:
                floor = threshold[cc]
        if in_diff[jb] != pos:  # its takes no longer matter
            stamp += 1
            streams[jb, 2] = stamp
    integral += _quality_integral(0.0, upper, avail, quality[i], threshold)
    return max(0.0, report[i] * quality[i, choice[i]] - integral)


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
    ``quality`` among those with ``report * quality >= reserve`` (ties to the lower
    column). A request's allocated quality ``q(z)`` is non-decreasing in its own report
    ``z`` (a higher report moves it earlier, where a superset of resources is free), so
    charging ``z q(z) - integral_0^z q(t) dt`` makes truthful reporting dominant
    (Myerson 1981, "Optimal auction design", the payment identity).

    The integral is exact: ``q(t)`` steps down at the reports of the later requests
    whose takes, in the run without ``i``, leave ``i`` no room on a free candidate.
    That run is replayed only where it can differ from the actual one or touch ``i``'s
    candidates (:func:`_critical_value`), on the actual run's per-resource history, so
    a winner costs the requests near its resources instead of every later request.

    Args:
        order: ``(N,)`` requests by descending report (ties in a fixed order).
        report: ``(N,)`` each request's report ``z``.
        quality: ``(N, K)`` quality of each pair (the ladder's key).
        reserve: ``(N, K)`` a pair is open at ``z`` when ``z * quality >= reserve``.
        cand: ``(N, K)`` candidate resources, -1 = padding.
        demand: ``(N, D)`` demand per request.
        cap: ``(M, D)`` residual capacity (copied, never mutated).

    Returns:
        ``(choice, payment)``, each ``(N,)``: the chosen column (-1 = unserved) and
        ``z q(z) - integral_0^z q(t) dt`` (0 for the unserved).
    """
    n, k = cand.shape
    m, dims = cap.shape
    ok = np.empty((n, k), dtype=np.bool_)
    for i in range(n):
        for c in range(k):
            ok[i, c] = report[i] * quality[i, c] >= reserve[i, c]
    choice, free, take_start, take_pos, take_res = _ladder_run(
        order, quality, ok, cand, demand, cap
    )
    bid_start, bid_pos = _bidders(order, ok, cand, m)
    starts = np.empty((2, m + 1), dtype=np.int64)
    starts[_TAKES] = take_start
    starts[_BIDDERS] = bid_start + take_pos.size
    positions = np.concatenate((take_pos, bid_pos))
    in_diff = np.full(m, -1, dtype=np.int64)  # = pos while in the winner at pos's set
    res_diff = np.empty((m, dims))
    streams = np.zeros((m, 3), dtype=np.int64)  # kind, next index, stamp
    payment = np.zeros(n)
    for pos in range(n):
        if choice[order[pos]] >= 0:
            payment[order[pos]] = _critical_value(
                pos,
                order,
                report,
                quality,
                reserve,
                ok,
                cand,
                demand,
                cap,
                choice,
                free,
                starts,
                positions,
                take_res,
                in_diff,
                res_diff,
                streams,
            )
    return choice, payment


@nb.njit(cache=True)
def merge_ties(value: np.ndarray, rel: float) -> np.ndarray:
    """``value`` with the entries of a row that differ by round-off made exactly equal.

    A row's entries in ascending order are cut into runs, each entry within ``rel``
    (relative) of the next; every entry of a run becomes the run's largest. Values
    computed in floating point from other data carry that data's round-off
    (``b + alpha c / B`` is budget-free only in exact arithmetic: 0.75 at one budget,
    0.7500000000000001 at another), and a comparison with ``==`` or ``>`` then decides
    on noise what exact ties would decide by rule. O(N K^2) at worst (an insertion
    sort of each row), about N K^2 / 4 on random rows.

    Args:
        value: ``(N, K)`` values (e.g. slopes), compared within their row only.
        rel: relative tolerance (far above round-off, far below real differences).

    Returns:
        ``(N, K)`` a new array.
    """
    n, k = value.shape
    out = value.copy()
    idx = np.empty(k, dtype=np.int64)
    for i in range(n):
        for c in range(k):  # the row's columns by ascending value (insertion sort: K is small)
            x = value[i, c]
            b = c - 1
            while b >= 0 and value[i, idx[b]] > x:
                idx[b + 1] = idx[b]
                b -= 1
            idx[b + 1] = c
        for a in range(k - 2, -1, -1):  # from the top: an entry close to the next takes its run's value
            v, w = value[i, idx[a]], value[i, idx[a + 1]]
            if w - v <= rel * max(abs(v), abs(w)):
                out[i, idx[a]] = out[i, idx[a + 1]]
    return out


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
            if j < 0 or not ok[i, c] or not _fits(res, j, demand, i, cap):
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
