"""Dominant Resource Fairness: progressive filling on users' dominant shares.

After Ghodsi, Zaharia, Hindman, Konwinski, Shenker and Stoica, "Dominant Resource
Fairness: Fair Allocation of Multiple Resource Types" (NSDI 2011). A user's *dominant
share* is the largest, over the resource dimensions ``d`` (the columns of ``demand``:
cpu and memory today, any number works), of the share of the sub-market's total
capacity ``sum_j capacity[j, d]`` that the requests served to the user so far take.
Dimensions in which the sub-market has no capacity at all count as share 0 (only
requests demanding nothing there can be served).

Progressive filling: repeatedly take the user with the lowest dominant share (ties to
the lower local user index) that still has a request that fits somewhere, and serve
that user's next request: a user's requests are taken in descending ``priority``, ties
by row; requests that fit nowhere at that moment are skipped for good (capacity only
shrinks, so they never fit later). Stop when no user has a request that fits.

A request fits on a candidate that is real (not -1 padding), whose price is within the
request's budget, and whose local resource still has the demand left in every
dimension (within the kernels' slack, relative to the resource's capacity: the fit test
of :func:`mechanisms.kernels._room`). Of those it takes the candidate with the highest
utility ``b_ij``, ties to the lowest price, then to the lowest column. Winners pay that price: the posted price
``market.posted`` by default (as ``mohaf`` does), or with ``payment = "reserve"`` the
posted cost ``market.reserve`` (as ``greedy`` and ``random`` do).

Dominant shares start at 0 in every sub-market: the priority mass a user already holds
this round (``user_won``) is not a resource share and is not counted. The rng is not
used: the outcome depends only on the sub-market. Payments are posted, not critical,
so the mechanism is not truthful.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import ClassVar

import numpy as np

from mechanisms.base import Allocation, Mechanism, SubMarket, paid
from mechanisms.kernels import _EPS, fit_slack
from mechanisms.registry import register

#: slack of the fit test, as in the kernels (:func:`mechanisms.kernels._room`): a request
#: fits if ``left + EPS * (1 + |capacity|) >= demand``, relative to the resource's capacity
EPS = _EPS

PAYMENTS = ("posted", "reserve")


def dominant_shares(market: SubMarket, choice: np.ndarray) -> np.ndarray:
    """Each user's dominant share under ``choice``.

    Args:
        market: the sub-market.
        choice: ``(N,)`` chosen candidate column, -1 if unserved.

    Returns:
        ``(U,)`` dominant share per local user index, ``U = max(user) + 1`` (0 if
        ``N = 0``); dimensions with no total capacity count as 0.
    """
    n_users = int(market.user.max()) + 1 if market.n_requests else 0
    used = np.zeros((n_users, market.demand.shape[1]))
    served = choice >= 0
    np.add.at(used, market.user[served], market.demand[served])
    return _dominant(used, market.capacity.sum(axis=0))


def _dominant(used: np.ndarray, total: np.ndarray) -> np.ndarray:
    scale = np.where(total > 0, total, np.inf)
    share = used / scale
    return share.max(axis=-1) if share.shape[-1] else np.zeros(share.shape[:-1])


@register("drf")
class DRF(Mechanism):
    """Dominant Resource Fairness (progressive filling), highest-utility fitting candidate.

    Args:
        payment: ``"posted"`` (winners pay ``market.posted``, the default) or
            ``"reserve"`` (the posted cost ``market.reserve``, as ``greedy`` pays).
    """

    truthful: ClassVar[bool] = False
    flat: ClassVar[bool] = False

    def __init__(self, payment: str = "posted") -> None:
        if payment not in PAYMENTS:
            raise ValueError(f"payment must be one of {PAYMENTS}, got {payment!r}")
        self.payment = payment

    def allocate(self, market: SubMarket, rng: np.random.Generator) -> Allocation:
        """Progressive filling on dominant shares; winners pay the posted price."""
        choice, _ = self.fill(market)
        price = market.posted if self.payment == "posted" else market.reserve
        return Allocation(choice, paid(market, choice, price))

    def fill(self, market: SubMarket) -> tuple[np.ndarray, np.ndarray]:
        """The allocation and the order the requests were served in.

        Returns:
            ``(choice, order)``: ``(N,)`` chosen column or -1, and the rows served, in
            the order progressive filling served them.
        """
        n, k = market.candidates.shape
        choice = np.full(n, -1, dtype=np.int64)
        if n == 0 or k == 0:
            return choice, np.empty(0, dtype=np.int64)
        price = market.posted if self.payment == "posted" else market.reserve
        cand = np.asarray(market.candidates)
        demand = np.asarray(market.demand, dtype=float)
        ok = (cand >= 0) & (price <= market.budget[:, None])
        # per request, the allowed columns by preference: highest utility, cheapest, lowest column
        rank = np.lexsort((np.broadcast_to(np.arange(k), (n, k)), price, -market.utility), axis=1)
        left = np.array(market.capacity, dtype=float)  # a copy: never write into the market
        slack = fit_slack(left)  # the fit test's slack, relative to each resource's capacity
        total = left.sum(axis=0)
        users = np.asarray(market.user)
        # each user's requests: priority descending, ties by row
        by_user = np.lexsort((np.arange(n), -np.asarray(market.priority), users))
        starts = np.flatnonzero(np.r_[True, users[by_user][1:] != users[by_user][:-1]])
        queues = {int(users[by_user[s]]): deque(by_user[s:e]) for s, e in zip(starts, np.r_[starts[1:], n], strict=True)}
        used = {u: np.zeros(demand.shape[1]) for u in queues}
        heap = [(0.0, u) for u in sorted(queues)]
        order = []
        while heap:
            _, u = heapq.heappop(heap)
            queue = queues[u]
            while queue:
                i = int(queue.popleft())
                c = self._fit(i, rank[i], ok[i], cand[i], demand[i], left, slack)
                if c >= 0:
                    break
            else:
                continue  # nothing of u fits any more, nor ever will: u is done
            choice[i] = c
            left[cand[i, c]] -= demand[i]
            order.append(i)
            used[u] += demand[i]
            heapq.heappush(heap, (float(_dominant(used[u], total)), u))
        return choice, np.asarray(order, dtype=np.int64)

    @staticmethod
    def _fit(
        i: int, rank: np.ndarray, ok: np.ndarray, cand: np.ndarray, demand: np.ndarray, left: np.ndarray,
        slack: np.ndarray,
    ) -> int:
        """The first column of ``rank`` that is allowed and fits (``left + slack >= demand``), or -1."""
        for c in rank:
            if ok[c] and np.all(left[cand[c]] + slack[cand[c]] >= demand):
                return int(c)
        return -1
