"""The one mechanism interface: a sub-market in, an allocation out.

Every mechanism is a plain object with a ``name`` and an :meth:`Mechanism.allocate`
method. It sees only the :class:`SubMarket` it is given (arrays, an rng) and returns an
:class:`Allocation`: for each request the column of its chosen candidate (or -1) and a
payment. Mechanisms never mutate their input and never read global state, so the same
sub-market and rng always give the same allocation.

Layout: requests are rows; each request has ``K`` candidate resources stored as an
``(N, K)`` array (ELL layout, padded with -1), with the static pair utility, the posted
reserve and the posted price beside it in arrays of the same shape. Resource indices in
``candidates`` are *local* to the sub-market (rows of ``capacity``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np


@dataclass(frozen=True)
class SubMarket:
    """One planner's market for one round, as arrays.

    Its arrays are valid during the call that receives it (``allocate``, ``refine``): the
    engine lends the candidate tables (``candidates``, ``utility``, ``reserve``, ``posted``
    may be views of buffers the next round writes over, :mod:`market.core.workspace`), so a
    mechanism that keeps anything of a sub-market past the call keeps a copy.

    Attributes:
        demand: ``(N, D)`` demand of each request in every allocation unit (the market's
            resource dimensions, e.g. cpu and memory, or cpu, memory and GPUs).
        budget: ``(N,)`` true budget (the most a request can pay in total).
        bid_scale: ``(N,)`` the owner's bidding strategy: 1 is truthful, < 1 shades.
        priority: ``(N,)`` normalised priority ``p~`` in [0, 1] (fairness weight).
        user: ``(N,)`` local user index (rows of ``user_won``).
        candidates: ``(N, K)`` local resource index of each candidate, -1 = none.
        utility: ``(N, K)`` static pair utility ``b_ij`` in [0, 1] (same for everyone).
        reserve: ``(N, K)`` posted cost ``rho_j * q_i * duration_i`` (``q_i`` the request's
            priced quantity, by default its cpu).
        posted: ``(N, K)`` posted price ``reserve * (0.8 + 0.4 b_ij)``.
        capacity: ``(M, D)`` residual capacity of the local resources in every dimension.
        user_won: ``(U,)`` priority mass ``X_u`` each user already holds this round.
        fairness_weight: ``delta``, weight of the concave fairness term.
        resource_ids: ``(M,)`` global index of each local resource (for reporting).
        request_ids: ``(N,)`` global row of each request in the order book.
        cost_weight: ``alpha``, weight of the cost term ``alpha * (1 - reserve / budget)``
            in ``utility``; truthful payments use it to take the budget back out.
        duration: ``(N,)`` rounds each request holds its resource once served (None: not
            known, e.g. a market built by hand).
        rounds_left: rounds from this one to the end of the market's span, this one
            included (its ``horizon`` less the round; >= 1); capacity held past it is worth
            nothing to the run. None: open-ended (not known, e.g. a market built by hand).
    """

    demand: np.ndarray
    budget: np.ndarray
    bid_scale: np.ndarray
    priority: np.ndarray
    user: np.ndarray
    candidates: np.ndarray
    utility: np.ndarray
    reserve: np.ndarray
    posted: np.ndarray
    capacity: np.ndarray
    user_won: np.ndarray
    fairness_weight: float
    resource_ids: np.ndarray
    request_ids: np.ndarray
    cost_weight: float = 0.0
    duration: np.ndarray | None = None
    rounds_left: int | None = None

    @property
    def n_requests(self) -> int:
        """Number of requests (rows)."""
        return int(self.candidates.shape[0])

    @property
    def valid(self) -> np.ndarray:
        """``(N, K)`` mask of real candidates (not padding)."""
        return self.candidates >= 0

    def bids(self) -> np.ndarray:
        """``(N, K)`` reported value ``bid_scale * budget * b_ij``, capped at the budget."""
        value = (self.bid_scale * self.budget)[:, None] * self.utility
        return np.minimum(value, self.budget[:, None])


@dataclass
class Allocation:
    """A mechanism's answer for one sub-market.

    Attributes:
        choice: ``(N,)`` column of the chosen candidate, or -1 if unserved.
        payment: ``(N,)`` payment of each request (0 if unserved).
        proven_optimal: set by exact solvers: True when optimality is proven.
        bound: set by exact solvers: a proven upper bound on the welfare.
        failed: set by exact solvers that found no allocation within their limits (the
            allocation then serves nobody; reports leave such rounds out).
        time_limited: set by mechanisms whose wall-clock limit stopped their search (e.g.
            ``optimal``'s ``time_limit``): the allocation then depends on the machine's
            speed, so the round's ``mechanism_time_limited`` marks it as not reproducible.
    """

    choice: np.ndarray
    payment: np.ndarray
    proven_optimal: bool | None = None
    bound: float | None = None
    failed: bool = False
    info: dict = field(default_factory=dict)
    time_limited: bool = False

    @classmethod
    def empty(cls, n: int) -> Allocation:
        """An allocation that serves nobody."""
        return cls(np.full(n, -1, dtype=np.int64), np.zeros(n))


def paid(market: SubMarket, choice: np.ndarray, price: np.ndarray) -> np.ndarray:
    """Payments of the chosen pairs.

    Args:
        market: the sub-market.
        choice: ``(N,)`` chosen candidate column, -1 if unserved.
        price: ``(N, K)`` price of each pair (e.g. ``market.posted`` or ``market.bids()``).

    Returns:
        ``(N,)`` the price of each request's chosen pair, 0 where unserved.
    """
    rows = np.flatnonzero(choice >= 0)
    payment = np.zeros(market.n_requests)
    payment[rows] = price[rows, choice[rows]]
    return payment


class Mechanism(ABC):
    """Base class of all allocation mechanisms.

    Subclasses set ``name`` and implement :meth:`allocate`. Constructor keyword
    arguments are the mechanism's parameters (from the scenario's
    ``[mechanism_params.<name>]`` table). The engine reads the declared class
    attributes ``flat`` and ``truthful``; :func:`mechanisms.checks.check_mechanism`
    checks that a subclass keeps the contract every mechanism must keep.
    """

    #: the name scenarios and the CLI use (set by :func:`mechanisms.registry.register`).
    name: ClassVar[str] = ""
    #: True if payments make truthful bidding a dominant strategy (audited).
    truthful: ClassVar[bool] = False
    #: True if the engine must give the mechanism the whole round as one sub-market
    #: (no clustering), e.g. an exact solver whose optimality clustering would break.
    flat: ClassVar[bool] = False

    @abstractmethod
    def allocate(self, market: SubMarket, rng: np.random.Generator) -> Allocation:
        """Allocate one sub-market.

        Args:
            market: the sub-market (read-only arrays).
            rng: the random generator for this call (deterministic per round and cluster).

        Returns:
            The allocation: a candidate column (or -1) and a payment per request.
        """

    def refines(self, n_requests: int) -> bool:
        """Whether the root hands a round of ``n_requests`` back to :meth:`refine` (default: never).

        A mechanism that refines gets the whole round after the cluster auctions and the
        spill-over, with every pair a request could reach in its own and its neighbouring
        clusters: the clusters then no longer cut a request off from a better resource
        elsewhere. Building that market costs about what a flat round costs.
        """
        return False

    def refine(self, market: SubMarket, choice: np.ndarray, rng: np.random.Generator) -> Allocation:
        """Improve the round's allocation over the whole round (when :meth:`refines`).

        Called by the root planner once the cluster auctions and the spill-over are done.

        Args:
            market: the whole round: every request with its candidates in its own cluster
                and, for those the clusters left unserved, in the neighbouring ones; the
                capacity free at the start of the round; ``user_won`` as it was then.
            choice: ``(N,)`` the allocation so far (a candidate column, -1 if unserved),
                feasible on ``market``.
            rng: the root's generator for this call.

        Returns:
            The round's allocation, which replaces ``choice`` (payments included).
        """
        raise NotImplementedError(f"{type(self).__name__} does not refine rounds")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
