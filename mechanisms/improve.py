"""Local improvement of an allocation: re-insert unserved requests with one ejection.

The pass MOHAF runs after its greedy (:mod:`mechanisms.mohaf`). Greedy places a request on
its best pair at the time, which can take the last room of a resource that a request
coming later could only have had there. The pass walks the unserved requests in a given
order and inserts each on the candidate where that raises the welfare

    ``F(S) = sum_S b_ij + delta * sum_u [log2(1 + X_u(S)) - log2(1 + W_u)]``

most, by one of three moves (the neighbourhood of Lee, Sviridenko and Vondrak's
exchange local search for matroid intersections, "Submodular maximization over multiple
matroids via generalized exchange properties", Math. Oper. Res. 35(4), 2010, restricted
to one element in and at most one moved or out):

- **insert** on a candidate with room for it in every dimension;
- **move and insert**: a request ``s`` served on that candidate moves to another of its
  own candidates that has room, freeing enough for the newcomer;
- **swap**: ``s`` gives its place up (is unserved) when the newcomer's gain is larger
  than ``s``'s loss (``b`` plus the fairness ``s``'s user loses).

A move is made only when it raises ``F`` by more than a tolerance, so ``F`` never falls
and the pass ends; every move keeps each resource within its capacity in every
dimension. Each request is tried once per pass: one pass costs ``O(U K (L K + L D))``
for ``U`` unserved requests, ``K`` candidates and ``L`` requests served per resource.
"""

from __future__ import annotations

import numba as nb
import numpy as np

import mechanisms.numba_cache  # noqa: F401  (before any kernel: the cache keyed by the kernels' source)
from mechanisms.kernels import _fits, _room, _take, fairness_step

_TOL = 1e-9


@nb.njit(cache=True, inline="always")
def _fits_without(res: np.ndarray, j: int, demand: np.ndarray, i: int, s: int, cap: np.ndarray) -> bool:
    """Request ``i`` fits resource ``j`` (capacity ``cap[j]``) once request ``s`` has left it, in every dimension."""
    for d in range(demand.shape[1]):
        if not _room(res[j, d] + demand[s, d], demand[i, d], cap[j, d]):
            return False
    return True


@nb.njit(cache=True)
def reinsert(
    choice: np.ndarray,
    order: np.ndarray,
    cand: np.ndarray,
    base: np.ndarray,
    demand: np.ndarray,
    cap: np.ndarray,
    user: np.ndarray,
    prio: np.ndarray,
    user_won: np.ndarray,
    delta: float,
    passes: int,
    width: int,
) -> np.ndarray:
    """Improve an allocation by inserting unserved requests (insert, move and insert, swap).

    Args:
        choice: ``(N,)`` candidate column of each request, -1 if unserved; a feasible
            allocation (copied, never mutated).
        order: the requests to try, in the order to try them (served ones are skipped).
        cand: ``(N, K)`` local resource of each candidate, -1 = padding.
        base: ``(N, K)`` pair utility ``b_ij``.
        demand: ``(N, D)`` demand in every dimension.
        cap: ``(M, D)`` capacity the allocation was made on.
        user: ``(N,)`` local user of each request.
        prio: ``(N,)`` priority ``p_i`` (the fairness mass a request brings its user).
        user_won: ``(U,)`` mass each user held before the allocation.
        delta: fairness weight.
        passes: passes over ``order`` (the pass stops early when one changes nothing).
        width: how many of a served request's candidates (the first, in column order, which
            candidate generation sorts by utility) a move may take it to; bounds the work
            per unserved request at ``O(K L width)``.

    Returns:
        ``(N,)`` the improved allocation; its ``F`` is at least the input's.
    """
    n, k = cand.shape
    ch = choice.copy()
    res = cap.copy()
    won = user_won.copy()
    # requests served on each resource: a doubly linked list per resource
    head = np.full(cap.shape[0], -1, dtype=np.int64)
    nxt = np.full(n, -1, dtype=np.int64)
    prv = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        if ch[i] >= 0:
            j = cand[i, ch[i]]
            _take(res, j, demand, i)
            won[user[i]] += prio[i]
            nxt[i] = head[j]
            if head[j] >= 0:
                prv[head[j]] = i
            head[j] = i
    for _ in range(passes):
        changed = False
        for u in order:
            if ch[u] >= 0:
                continue
            uu = user[u]
            fair_u = fairness_step(won[uu], prio[u], delta)
            best = _TOL
            best_c = -1
            best_s = -1
            best_c2 = -1
            for c in range(k):
                j = cand[u, c]
                if j < 0:
                    continue
                gain = base[u, c] + fair_u
                if not gain > best:  # no better, or not a number (a NaN pair is never placed)
                    continue
                if _fits(res, j, demand, u, cap):
                    best, best_c, best_s, best_c2 = gain, c, -1, -1
                    continue
                s = head[j]
                while s >= 0:
                    if _fits_without(res, j, demand, u, s, cap):
                        cs = ch[s]
                        tried = 0
                        for c2 in range(k):  # move s to another of its first candidates
                            j2 = cand[s, c2]
                            if j2 < 0 or j2 == j:
                                continue
                            tried += 1
                            if tried > width:
                                break
                            if not _fits(res, j2, demand, s, cap):
                                continue
                            gain2 = gain + base[s, c2] - base[s, cs]
                            if gain2 > best:
                                best, best_c, best_s, best_c2 = gain2, c, s, c2
                        us = user[s]
                        if us != uu:  # swap: s gives its place up
                            loss = base[s, cs] + fairness_step(won[us] - prio[s], prio[s], delta)
                            if gain - loss > best:
                                best, best_c, best_s, best_c2 = gain - loss, c, s, -1
                    s = nxt[s]
            if best_c < 0:
                continue
            j = cand[u, best_c]
            if best_s >= 0:
                s = best_s
                for d in range(demand.shape[1]):
                    res[j, d] += demand[s, d]
                # unlink s from j
                if prv[s] >= 0:
                    nxt[prv[s]] = nxt[s]
                else:
                    head[j] = nxt[s]
                if nxt[s] >= 0:
                    prv[nxt[s]] = prv[s]
                prv[s] = -1
                nxt[s] = -1
                if best_c2 >= 0:
                    j2 = cand[s, best_c2]
                    _take(res, j2, demand, s)
                    ch[s] = best_c2
                    nxt[s] = head[j2]
                    if head[j2] >= 0:
                        prv[head[j2]] = s
                    head[j2] = s
                else:
                    ch[s] = -1
                    won[user[s]] -= prio[s]
            _take(res, j, demand, u)
            ch[u] = best_c
            won[uu] += prio[u]
            nxt[u] = head[j]
            prv[u] = -1
            if head[j] >= 0:
                prv[head[j]] = u
            head[j] = u
            changed = True
        if not changed:
            break
    return ch
