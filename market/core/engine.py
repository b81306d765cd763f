"""One round of the market as array code: partition, auction, spill-over, validation.

:func:`clear_round` is the hot path that :class:`market.core.model.MarketModel` calls from
its planners and that ``market bench`` times. It knows nothing about Mesa: it takes the
round's order book and the resources' state as numpy arrays and returns who got what.

Steps (README, "Architecture": one round):

1. **Partition**: route each request to its cluster (and ``spill_neighbors`` more) and
   compute its K best feasible candidates in its own cluster (primary) and in the
   neighbouring clusters (secondary), with utilities and posted prices.
2. **Auction**: each cluster's sub-market goes to the mechanism (clusters in ascending
   order, sharing the users' won priority mass ``X_u``).
3. **Spill-over**: requests still unserved try their secondary candidates on the
   capacity left, in one global sub-market.
   **Refinement** (mechanisms that ``refines(N)``, e.g. MOHAF): the root hands the mechanism
   the whole round, every request over its primary and secondary candidates on the
   capacity free at the start, with the allocation so far, and keeps what it returns.
4. **Validation**: the shared feasibility check.
5. **Scoring**: every mechanism is scored by the same welfare
   ``F = sum b_ij + delta * sum_u [g(W_u + X_u) - g(W_u)]``, split per request as
   ``x_i = b_ij + delta * [g(W_u + X_u) - g(W_u)] * p_i / X_u``.

Mechanisms flagged ``flat`` (the exact optimum) get the whole round at once, over the
union of primary and secondary candidates, the same pairs the others can reach.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numba as nb
import numpy as np

import mechanisms.numba_cache  # noqa: F401  (before any kernel: the cache keyed by the kernels' source)
from market.core.candidates import Candidates, find_candidates, request_rows
from market.core.dense import dense_unique, group_order, lookup_table
from market.core.eligibility import any_type
from market.core.feasibility import check_round
from market.core.hierarchy import Hierarchy, route
from market.core.workspace import Workspace
from mechanisms.base import Allocation, Mechanism, SubMarket
from mechanisms.checks import WellFormed
from mechanisms.kernels import fit_slack


class Planner(Protocol):
    """Who clears a sub-market (the model's PlannerAgents)."""

    def clear(self, mechanism: Mechanism, market: SubMarket, rng: np.random.Generator) -> Allocation:
        """Run ``mechanism`` on ``market``."""
        ...

    def refine(self, mechanism: Mechanism, market: SubMarket, choice: np.ndarray,
               rng: np.random.Generator) -> Allocation:
        """Let ``mechanism`` improve the whole round's allocation ``choice`` (the root only)."""
        ...


@dataclass(frozen=True)
class RoundParams:
    """Market parameters a round needs (from the scenario).

    Attributes:
        weights: ``(alpha, beta, gamma, delta)`` for cost, QoS, energy, fairness.
        d_max: distance at which the proximity utility reaches 0.
        candidates: K, candidates per request (per pass).
        spill_neighbors: extra clusters per request for the spill-over (-1 = all).
        validate: run the shared feasibility check (always on outside benchmarks).
    """

    weights: tuple[float, float, float, float] = (0.4, 0.3, 0.1, 0.2)
    d_max: float = 200 * np.sqrt(2)
    candidates: int = 22
    spill_neighbors: int = 3
    validate: bool = True


@dataclass
class OrderBook:
    """The round's requests as columns (rows, not objects).

    ``rows`` is each request's row in the market, its stable key: which of several
    candidates of equal utility a request keeps, and in which order, follows from it
    (:mod:`market.core.candidates`, "Ties"), the same in every round and run. None: the
    book's own rows ``0..N-1`` (a book built by hand).
    """

    # x, y, duration, budget, priority (p~), ..., "demand" (N, D) in every dimension,
    # "priced" (N,) the priced quantity q, optional "allowed" (N, W) eligibility masks
    columns: dict[str, np.ndarray]
    user: np.ndarray  # (N,) global user index
    bid_scale: np.ndarray  # (N,) from each owner's bidding strategy
    need: np.ndarray  # (N, E) demand in allocation units
    rows: np.ndarray | None = None  # (N,) each request's row in the market (its key)
    # (N, 8 + D) the book's request_rows if the caller has them (the model takes its rows of
    # the market's, built once); None: built from the columns when asked
    matrix: np.ndarray | None = None

    @property
    def keys(self) -> np.ndarray:
        """``(N,)`` each request's stable key for spreading ties: ``rows``, else ``0..N-1``."""
        return np.arange(self.size, dtype=np.int64) if self.rows is None else np.asarray(self.rows, dtype=np.int64)

    @property
    def size(self) -> int:
        """Number of requests."""
        return int(self.user.size)

    @property
    def allowed(self) -> np.ndarray:
        """``(N, W)`` eligibility masks (:mod:`market.core.eligibility`); all types if the book has none."""
        allowed = self.columns.get("allowed")
        return any_type(self.size) if allowed is None else allowed

    def request_matrix(self) -> np.ndarray:
        """``(N, 8 + D)`` request rows in the candidate kernel's layout (:mod:`market.core.candidates`)."""
        return request_matrix(self.columns) if self.matrix is None else self.matrix


def request_matrix(columns: dict[str, np.ndarray]) -> np.ndarray:
    """``(N, 8 + D)`` the request rows of order-book ``columns`` (:class:`OrderBook`) in the kernel's layout."""
    c = columns
    return request_rows(c["x"], c["y"], c["priced"], c["duration"], c["budget"], c["min_reliability"],
                        c["min_availability"], c["max_latency"], c["demand"])


@dataclass
class RoundOutcome:
    """What a round produced, per order-book row."""

    resource: np.ndarray  # (N,) global resource or -1
    payment: np.ndarray  # (N,)
    base_utility: np.ndarray  # (N,) b_ij of the won pair (0 if unserved)
    utility: np.ndarray  # (N,) x_i, the common per-request welfare share
    won: np.ndarray  # (U,) priority mass each user won this round
    timings: dict[str, float] = field(default_factory=dict)
    proven_optimal: bool | None = None
    bound: float | None = None
    spilled: int = 0
    failed: bool = False  # a planner's mechanism found no allocation (exact solvers only)
    time_limited: bool = False  # a planner's mechanism was stopped by its wall-clock limit
    best: np.ndarray | None = None  # (N,) each request's best candidate resource this round (-1: none)
    best_utility: np.ndarray | None = None  # (N,) its utility b_ij (0: none)

    @property
    def welfare(self) -> float:
        """``F(S)``, the sum of the per-request utilities."""
        return float(self.utility.sum())


def _log2p1(x: np.ndarray) -> np.ndarray:
    return np.log2(1.0 + x)


def score(
    base_utility: np.ndarray, served: np.ndarray, priority: np.ndarray, user: np.ndarray,
    start_won: np.ndarray, won: np.ndarray, delta: float,
) -> np.ndarray:
    """Per-request share ``x_i`` of the common welfare ``F`` (sums to ``F``)."""
    gained = won - start_won
    with np.errstate(divide="ignore", invalid="ignore"):
        per_mass = np.where(gained > 0, (_log2p1(won) - _log2p1(start_won)) / gained, 0.0)
    return np.where(served, base_utility + delta * per_mass[user] * priority, 0.0)


def _with_room(
    hierarchy: Hierarchy, free: np.ndarray, need: np.ndarray, capacity: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster membership (``order``, ``start``) restricted to resources with room left.

    A resource whose free capacity is below the smallest demand of ``need`` is no
    candidate of any of those requests (the candidate kernel's own test, same
    tolerance: relative to ``capacity``, the free capacity the round started from), so
    leaving it out changes nothing but the time the spill-over pass spends scanning
    resources the cluster auctions have filled.
    """
    order = hierarchy.order
    slack = fit_slack(capacity.take(order, axis=0))
    room = np.all(free.take(order, axis=0) + slack >= need.min(axis=0), axis=1)
    kept = np.concatenate([[0], np.cumsum(room)])
    return hierarchy.order[room], kept[hierarchy.start]


def submarket(
    rows: np.ndarray, cand: Candidates, book: OrderBook, free: np.ndarray, won: np.ndarray,
    weights: tuple[float, float, float, float], aligned: bool = False,
    lookups: tuple[np.ndarray, np.ndarray] | None = None, rounds_left: int | None = None,
    local: np.ndarray | None = None,
) -> SubMarket:
    """The sub-market of order-book ``rows`` over their candidates (local indices).

    ``weights`` are the round's ``(alpha, beta, gamma, delta)``: the sub-market carries
    delta (the fairness term) and alpha (the cost weight, which truthful payments need).

    ``aligned`` says that ``cand``'s rows are exactly ``rows`` (candidates computed for
    these requests only), so its arrays are used as they are, without a copy.

    ``lookups``: blank :func:`~market.core.dense.lookup_table` s over the resources and the
    users, to renumber them (the round allocates them once: the sub-markets are built once
    per cluster per round, so this is a hot path); None: new ones.

    ``rounds_left``: the round's rounds to the end of the market's span, this one included
    (:attr:`~mechanisms.base.SubMarket.rounds_left`; None: open-ended).

    ``local``: a buffer for the local candidate indices, ``cand.resource``'s shape for the
    rows (a workspace's; :func:`~market.core.dense.dense_unique`'s ``out``); None: a new array.
    """
    # np.take along axis 0: the same rows as ``a[rows]``, several times faster for 2-d arrays
    pick = (lambda a: a) if aligned else (lambda a: a.take(rows, axis=0))
    by_resource, by_user = lookups or (lookup_table(free.shape[0]), lookup_table(won.shape[0]))
    resource_ids, local_cand = dense_unique(pick(cand.resource), by_resource, local)  # -1 stays -1
    users, user_local = dense_unique(book.user[rows], by_user)
    return SubMarket(
        demand=book.need.take(rows, axis=0),
        budget=book.columns["budget"][rows],
        bid_scale=book.bid_scale[rows],
        priority=book.columns["priority"][rows],
        user=user_local,
        candidates=local_cand,
        utility=pick(cand.utility),
        reserve=pick(cand.reserve),
        posted=pick(cand.posted),
        capacity=free.take(resource_ids, axis=0),
        user_won=won[users],
        fairness_weight=float(weights[3]),
        resource_ids=resource_ids,
        request_ids=rows,
        cost_weight=float(weights[0]),
        duration=book.columns["duration"][rows],
        rounds_left=rounds_left,
    )


def _apply(
    alloc: Allocation, sub: SubMarket, cand: Candidates, book: OrderBook,
    free: np.ndarray, won: np.ndarray, out: RoundOutcome, aligned: bool = False,
) -> None:
    """Write a sub-market's allocation into the round outcome and the shared state."""
    out.failed |= alloc.failed
    out.time_limited |= bool(alloc.time_limited)
    _record(alloc.choice, alloc.payment, sub.request_ids, aligned, cand.resource, cand.utility, book.need,
            book.user, book.columns["priority"], out.resource, out.payment, out.base_utility, free, won)


@nb.njit(cache=True)
def _record(
    choice: np.ndarray, payment: np.ndarray, rows: np.ndarray, aligned: bool, resource: np.ndarray,
    utility: np.ndarray, need: np.ndarray, user: np.ndarray, priority: np.ndarray,
    out_resource: np.ndarray, out_payment: np.ndarray, out_utility: np.ndarray, free: np.ndarray, won: np.ndarray,
) -> None:
    """:func:`_apply`'s loop: each served request of a sub-market, in its order.

    For sub-market request ``h`` with ``choice[h] >= 0`` (order-book row ``i = rows[h]``, its
    candidates in row ``h`` of ``resource``/``utility`` if ``aligned``, else row ``i``):
    the outcome's resource, payment and ``b_ij`` of row ``i``, its need off its resource's
    ``free`` ``(M, E)`` and its priority onto its user's ``won`` ``(U,)``, one request after
    another (what ``np.subtract.at``/``np.add.at`` do, in the same order).
    """
    for h in range(choice.size):
        c = choice[h]
        if c < 0:
            continue
        i = rows[h]
        at = h if aligned else i
        j = resource[at, c]
        out_resource[i] = j
        out_payment[i] = payment[h]
        out_utility[i] = utility[at, c]
        for e in range(need.shape[1]):
            free[j, e] -= need[i, e]
        won[user[i]] += priority[i]


def _expand(cand: Candidates, rows: np.ndarray, n: int) -> Candidates:
    """``cand`` (the candidates of ``rows``) as ``n`` rows, the others without candidates."""
    k = cand.resource.shape[1]
    resource = np.full((n, k), -1, dtype=np.int64)
    resource[rows] = cand.resource
    arrays = []
    for a in (cand.utility, cand.reserve, cand.posted):
        full = np.zeros((n, k))
        full[rows] = a
        arrays.append(full)
    return Candidates(resource, *arrays)


def _columns(resource: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """``(N,)`` the column of each request's chosen resource among its candidates, -1 if unserved."""
    hit = np.flatnonzero(chosen >= 0)
    choice = np.full(chosen.size, -1, dtype=np.int64)
    match = resource[hit] == chosen[hit, None]
    if not match.any(axis=1).all():
        raise AssertionError("a served request's resource is not among its candidates")
    choice[hit] = np.argmax(match, axis=1)
    return choice


def clear_round(
    book: OrderBook,
    resource_matrix: np.ndarray,
    resources: dict[str, np.ndarray],
    free: np.ndarray,
    hierarchy: Hierarchy,
    mechanism: Mechanism,
    rng: np.random.Generator,
    params: RoundParams,
    start_won: np.ndarray,
    planners: Sequence[Planner] | None = None,
    rounds_left: int | None = None,
    workspace: Workspace | None = None,
) -> RoundOutcome:
    """Run one round of the hierarchical auction.

    Args:
        book: the order book.
        resource_matrix: ``(M, 7 + D)`` resource rows for the candidate kernel at the
            round's prices (:mod:`market.core.candidates`, "Layouts").
        resources: resource columns for validation (``capacity`` ``(M, D)``, ``type``,
            reliability, ...).
        free: ``(M, E)`` free capacity in allocation units (not modified).
        hierarchy: the clusters.
        mechanism: the allocation mechanism.
        rng: this round's generator (one child per cluster is spawned from it).
        params: the round parameters.
        start_won: ``(U,)`` priority mass users carry into the round (fairness memory).
        planners: who clears each sub-market: ``planners[c]`` cluster ``c``'s, and
            ``planners[-1]`` (the root) the spill-over market and flat mechanisms' whole
            round (None: the mechanism is called directly).
        rounds_left: rounds from this one to the end of the market's span, this one
            included (every sub-market carries it; None: open-ended).
        workspace: buffers for the candidate tables of the cluster auctions and the
            spill-over, kept by the caller from round to round (:mod:`market.core.workspace`;
            nothing built on them outlives the round); None: new arrays.

    Returns:
        The outcome, with per-phase timings in milliseconds.

    Raises:
        InvariantError: a sub-market's answer is malformed (:func:`mechanisms.checks.check_form`:
            checked before the settlement indexes with it).
        InfeasibleAllocationError: the round's allocation breaks a constraint (the shared check).
    """
    t0 = time.perf_counter()
    mechanism = WellFormed(mechanism)  # every answer checked before it is read (plug-ins)
    n = book.size
    delta = params.weights[3]
    free_before = free
    free = free.copy()
    won = start_won.astype(float).copy()
    out = RoundOutcome(
        resource=np.full(n, -1, dtype=np.int64), payment=np.zeros(n), base_utility=np.zeros(n),
        utility=np.zeros(n), won=won,
    )
    xy = np.column_stack([book.columns["x"], book.columns["y"]])
    routes = route(hierarchy, xy, book.need, free, params.spill_neighbors)
    matrix = book.request_matrix()
    keys = book.keys
    allowed = book.allowed
    lookups = (lookup_table(free.shape[0]), lookup_table(won.shape[0]))  # blank, for every sub-market

    def candidates(rows: np.ndarray, clusters: np.ndarray, members: tuple[np.ndarray, np.ndarray] | None = None,
                   scan: np.ndarray | None = None, buffers: str | None = None) -> Candidates:
        order, start = members or (hierarchy.order, hierarchy.start)
        k = params.candidates
        out = None
        if workspace is not None and buffers is not None:
            def lent(name: str, n: int, k: int, dtype: np.dtype) -> np.ndarray:
                return workspace.array(f"{buffers}.{name}", n, k, dtype)

            out = Candidates.allocate(rows.size, k, lent)
        return find_candidates(
            matrix, book.need, resource_matrix, free, order, start,
            clusters, k, params.weights, params.d_max, keys, allowed, scan,
            capacity=free_before, rows=rows, out=out,
        )

    def allocate(c: int, sub: SubMarket, rng: np.random.Generator) -> Allocation:
        if planners is None:
            return mechanism.allocate(sub, rng)
        return planners[c].clear(mechanism, sub, rng)

    everyone = np.arange(n)
    spill = routes.shape[1] > 1
    children = rng.spawn(hierarchy.n_clusters + 2)  # one stream per cluster planner, the root's two
    if mechanism.flat:
        primary = candidates(everyone, routes[:, :1])
        out.best = primary.resource[:, 0].copy()
        out.best_utility = primary.utility[:, 0].copy()
        # one market over every pair a request could reach, priced on the same free capacity
        union = Candidates.concat(primary, candidates(everyone, routes[:, 1:])) if spill else primary
        t1 = time.perf_counter()
        sub = submarket(everyone, union, book, free, won, params.weights, aligned=True, lookups=lookups,
                        rounds_left=rounds_left)
        alloc = allocate(-1, sub, children[0])
        _apply(alloc, sub, union, book, free, won, out, aligned=True)
        out.proven_optimal, out.bound = alloc.proven_optimal, alloc.bound
    else:
        home = routes[:, 0]
        order = group_order(home)
        # candidates in cluster order: a cluster's requests are scanned one after another
        # while its resources are in cache, and each planner gets its block as views
        primary = candidates(order, routes[order, :1], buffers="primary")
        out.best = np.empty(n, dtype=np.int64)
        out.best[order] = primary.resource[:, 0]
        out.best_utility = np.empty(n)
        out.best_utility[order] = primary.utility[:, 0]
        t1 = time.perf_counter()
        bounds = np.searchsorted(home[order], np.arange(-1, hierarchy.n_clusters + 1))
        for c in range(hierarchy.n_clusters):
            block = slice(bounds[c + 1], bounds[c + 2])
            if block.start == block.stop:
                continue
            mine = primary.rows(block)
            sub = submarket(order[block], mine, book, free, won, params.weights, aligned=True, lookups=lookups,
                            rounds_left=rounds_left)
            _apply(allocate(c, sub, children[c]), sub, mine, book, free, won, out, aligned=True)
        # spill-over: the root re-auctions what is left on the neighbouring clusters'
        # remaining capacity; only unserved requests need candidates there
        left = np.flatnonzero((out.resource < 0) & (routes[:, 1] >= 0)) if spill else everyone[:0]
        if left.size:
            t_spill = time.perf_counter()
            # computed grouped by first spill-over cluster (cache), written in row order
            by_cluster = group_order(routes[left, 1])
            secondary = candidates(left, routes[left, 1:], _with_room(hierarchy, free, book.need[left], free_before), by_cluster,
                                   buffers="secondary")
            t1 += time.perf_counter() - t_spill
            local = None if workspace is None else workspace.array("secondary.local", *secondary.resource.shape, np.int64)
            sub = submarket(left, secondary, book, free, won, params.weights, aligned=True, lookups=lookups,
                            rounds_left=rounds_left, local=local)
            before = int(np.sum(out.resource >= 0))
            alloc = allocate(-1, sub, children[hierarchy.n_clusters])
            _apply(alloc, sub, secondary, book, free, won, out, aligned=True)
            out.spilled = int(np.sum(out.resource >= 0)) - before
        if mechanism.refines(n):
            # the whole round over every pair a request could reach (the flat market), priced on
            # the capacity free at the start: the root may move any request to another cluster
            whole = primary.rows(np.argsort(order))  # back to row order
            if spill:
                t_whole = time.perf_counter()
                around = find_candidates(matrix, book.need, resource_matrix, free_before, hierarchy.order,
                                         hierarchy.start, routes[:, 1:], params.candidates, params.weights,
                                         params.d_max, keys, allowed)
                t1 += time.perf_counter() - t_whole
                if left.size:  # the spill-over's pairs, where the requests it served now are
                    whole = Candidates.concat(whole, _expand(secondary, left, n))
                whole = Candidates.concat(whole, around)
            sub = submarket(everyone, whole, book, free_before, start_won, params.weights, aligned=True,
                            rounds_left=rounds_left)
            choice = _columns(whole.resource, out.resource)
            stream = children[hierarchy.n_clusters + 1]
            alloc = (planners[-1].refine(mechanism, sub, choice, stream) if planners is not None
                     else mechanism.refine(sub, choice, stream))
            out.resource[:], out.payment[:], out.base_utility[:] = -1, 0.0, 0.0
            free[:], won[:] = free_before, start_won
            _apply(alloc, sub, whole, book, free, won, out, aligned=True)
    t2 = time.perf_counter()
    if params.validate:
        check_round(out.resource, out.payment, book.columns, resources, book.need, free_before)
    t3 = time.perf_counter()
    out.utility = score(out.base_utility, out.resource >= 0, book.columns["priority"], book.user, start_won, won, delta)
    out.timings = {
        "candidates_ms": 1e3 * (t1 - t0),
        "alloc_ms": 1e3 * (t2 - t1),
        "validate_ms": 1e3 * (t3 - t2),
    }
    return out
