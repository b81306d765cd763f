"""MOHAF's two greedy chains (steps 1-2 of :mod:`mechanisms.mohaf`), side by side.

The first chain is the greedy on ``F`` ranked by ``rank / size`` (:func:`lazy_greedy`)
then re-insertion (:func:`reinsert`); the second prices the capacity
(:func:`capacity_prices`), ranks pairs by gain less that price and runs the same greedy
and re-insertion. The two share nothing but their read-only inputs, and each is one numba
call that releases the GIL, so :func:`two_chains` runs the first on a helper thread while
the calling thread runs the second: on two threads where numba has two (the bench,
``market run --workers 1`` on two CPUs), one after the other where it has one (pool workers
that share the CPUs, :mod:`market.core.pool`). Either way each chain's result is the one it
computes alone, so the allocation does not depend on the thread count. (A ``prange`` over
the two chains measured the same, but its first compilation from a cold cache took 26 s,
against 15 s for this form and 8 s for the kernels before the chains were fused.)
"""

from __future__ import annotations

import contextlib
import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numba as nb
import numpy as np

import mechanisms.numba_cache  # noqa: F401  (before any kernel: the cache keyed by the kernels' source)
from mechanisms.improve import reinsert
from mechanisms.kernels import lazy_greedy
from mechanisms.lagrangian import capacity_prices


@nb.njit(cache=True, nogil=True)
def greedy_chain(
    cand: np.ndarray, key: np.ndarray, net: np.ndarray, demand: np.ndarray, cap: np.ndarray, user: np.ndarray,
    prio: np.ndarray, user_won: np.ndarray, delta: float, size: np.ndarray, order: np.ndarray, passes: int,
    width: int,
) -> np.ndarray:
    """:func:`lazy_greedy` on ``key`` (ranked by ``rank / size``), then ``passes`` of :func:`reinsert` on ``net``.

    Returns:
        ``(N,)`` chosen candidate column per request, -1 if unserved.
    """
    choice = lazy_greedy(cand, key, demand, cap, user, prio, user_won, delta, size)
    if passes == 0:
        return choice
    return reinsert(choice, order, cand, net, demand, cap, user, prio, user_won, delta, passes, width)


@nb.njit(cache=True)
def directed_key(cand: np.ndarray, net: np.ndarray, price: np.ndarray) -> np.ndarray:
    """``(N, K)`` the price-directed greedy's key: ``net - price`` (0 on padding), shifted positive.

    Shifted by ``1e-9 - min(0, min key)`` so that the greedy places every request that fits
    (the priced-out ones may still be worth serving); the order is unchanged.
    """
    n, k = cand.shape
    key = np.empty((n, k))
    for i in range(n):
        for c in range(k):
            key[i, c] = net[i, c] - price[i, c] if cand[i, c] >= 0 else 0.0
    low = key.min() if key.size else 0.0
    shift = 1e-9 - (low if low < 0.0 else 0.0)  # a NaN minimum shifts by 1e-9, as min(0.0, nan) does
    for i in range(n):
        for c in range(k):
            key[i, c] += shift
    return key


@nb.njit(cache=True, nogil=True)
def directed_chain(
    cand: np.ndarray, net: np.ndarray, gain: np.ndarray, demand: np.ndarray, cap: np.ndarray, user: np.ndarray,
    prio: np.ndarray, user_won: np.ndarray, delta: float, order: np.ndarray, passes: int, width: int,
    iterations: int, step: float, price: np.ndarray,
) -> np.ndarray:
    """The price-directed chain: :func:`capacity_prices` on ``gain``, :func:`directed_key`, :func:`greedy_chain` (size 1).

    ``price``: ``(N, K)`` those capacity prices if the caller has them already (MOHAF's
    ``bid_prices = "round"``), else an empty ``(0, 0)`` array: computed here.

    Returns:
        ``(N,)`` chosen candidate column per request, -1 if unserved.
    """
    if price.shape[0] != cand.shape[0]:
        price = capacity_prices(cand, gain, demand, cap, iterations, step)
    key = directed_key(cand, net, price)
    return greedy_chain(cand, key, net, demand, cap, user, prio, user_won, delta, np.ones(cand.shape[0]), order,
                        passes, width)


@functools.lru_cache(maxsize=1)
def _helper_thread(pid: int) -> ThreadPoolExecutor:
    """The one helper thread of process ``pid`` (a forked child, whose pid differs, starts its own)."""
    return ThreadPoolExecutor(1, thread_name_prefix="mohaf-chain")


def two_chains(
    cand: np.ndarray, net: np.ndarray, gain: np.ndarray, demand: np.ndarray, cap: np.ndarray, user: np.ndarray,
    prio: np.ndarray, user_won: np.ndarray, delta: float, size: np.ndarray, order: np.ndarray, passes: int,
    width: int, iterations: int, step: float, price: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Both chains: the first (greedy on ``net`` by ``rank / size``) and the price-directed one.

    Args:
        cand: ``(N, K)`` local resource of each candidate, -1 = padding.
        net: ``(N, K)`` pair value the greedies and re-insertion maximise (``F``'s ``b``).
        gain: ``(N, K)`` pair gain the capacity prices weigh (``b`` plus the request's
            fairness gain alone; 0 on padding).
        demand: ``(N, D)`` demand in every dimension.
        cap: ``(M, D)`` capacity.
        user: ``(N,)`` local user of each request.
        prio: ``(N,)`` priority (the fairness mass a request brings its user).
        user_won: ``(U,)`` mass each user held before.
        delta: fairness weight.
        size: ``(N,)`` the first greedy's size per request (its rank is gain / size).
        order: the requests in the order re-insertion tries them.
        passes: re-insertion passes (0: none).
        width: how many of its first candidates re-insertion may move a request to.
        iterations: subgradient steps of the capacity prices.
        step: their first step length.
        price: ``(N, K)`` those prices if already computed (None: computed in the chain).

    Returns:
        ``(first, directed)``, each ``(N,)`` chosen candidate column per request, -1 if unserved.
    """
    fairness = (user, prio, user_won, float(delta))
    first = functools.partial(greedy_chain, cand, net, net, demand, cap, *fairness, size, order, passes, width)
    pending = None
    # with one CPU's share (nb.get_num_threads() == 1) the chains run in turn, and so they do
    # while the interpreter shuts down (its executors take no more work: RuntimeError)
    if nb.get_num_threads() > 1:
        with contextlib.suppress(RuntimeError):
            pending = _helper_thread(os.getpid()).submit(first)
    # meanwhile, on this thread
    known = np.empty((0, 0)) if price is None else price
    second = directed_chain(cand, net, gain, demand, cap, *fairness, order, passes, width, iterations, step, known)
    return (first() if pending is None else pending.result()), second
