"""Conformance check for mechanisms, in the spirit of scikit-learn's ``check_estimator``.

:func:`check_mechanism` runs a mechanism instance through the invariants every
mechanism must keep, on sub-markets it builds itself (no engine involved), and raises
an :class:`AssertionError` whose message starts with ``invariant '<name>':`` for the
first invariant that breaks, followed by what broke and on which market. The names
(:data:`INVARIANTS`) are stable, so tests and scripts can match on them:

- ``interface``: the object is a :class:`~mechanisms.base.Mechanism` whose declared
  class attributes ``flat`` and ``truthful`` are booleans.
- ``no-crash``: ``allocate`` returns on every market, empty and degenerate ones included.
- ``returns-allocation``: it returns an :class:`~mechanisms.base.Allocation`.
- ``single-assignment``: ``choice`` is an ``(N,)`` integer array: one column (or -1)
  per request, so no request is served twice.
- ``payment-shape``: ``payment`` is an ``(N,)`` real-valued array.
- ``choice-range``: every choice is -1 or a column ``0 <= c < K``.
- ``qos``: every chosen column holds a real candidate (not -1 padding). QoS thresholds
  (reliability, availability, latency) are encoded by the candidate set, so choosing
  outside it is how a mechanism breaks them.
- ``capacity``: on every local resource and in every dimension (every column of
  ``demand`` and ``capacity``), the demand of the requests assigned to it is at most
  its capacity (to ``1e-9`` relative).
- ``payment-finite``, ``payment-nonnegative``, ``payment-budget``: every payment is
  finite and ``0 <= payment <= budget`` (to ``1e-9`` relative).
- ``unserved-pays-nothing``: a request with choice -1 pays exactly 0.
- ``determinism``: the same market and a generator with the same seed give an
  identical allocation (so no global random state, clocks or caches leak in).
  A mechanism that refines (:meth:`~mechanisms.base.Mechanism.refines`) is also handed
  its own allocation of each market to ``refine``, and the refined allocation must keep
  every invariant above (from ``no-crash`` to ``unserved-pays-nothing``).
- ``no-mutation``: every array of the sub-market is unchanged byte for byte (and every
  scalar field equal) after each call. The arrays are passed read-only, so a write fails where it happens; a mechanism that
  raises because an input is read-only breaks this invariant, not ``no-crash``.
- ``truthful`` (only for ``truthful = True`` mechanisms): on small markets with one
  request per user and no cost or fairness term, no request gains by shading its bid
  (``bid_scale`` 0.3, 0.6 or 0.9 instead of 1) while everyone else bids truthfully; a
  request's utility is its value ``budget * utility[i, c]`` minus its payment.

The markets: empty ones (``N = 0``, with and without resources and columns), ``K = 0``
columns, ``M = 0`` resources, requests with no candidates and padding between real
candidates, zero capacity, zero demand, tiny and huge numbers, identical requests over
identical resources (ties), capacity that fits a set of requests exactly or misses by a
hair, one user with many requests, and ``n_markets`` seeded random markets of several
sizes, all with two resource dimensions (cpu, memory); then, for ``D`` = 1, 3 and 4
resource dimensions (:data:`DIMENSIONS`), empty and resource-less markets, a random
one, a dimension with no capacity anywhere, a dimension that binds, and capacity that
fits exactly or misses in one dimension by a hair. Only numpy and :mod:`mechanisms.base` are used, so a plug-in author can run the
check without the rest of the framework (``market check-mechanism NAME`` from a shell).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields, replace

import numba as nb
import numpy as np

import mechanisms.numba_cache  # noqa: F401  (before any kernel: the cache keyed by the kernels' source)
from mechanisms.base import Allocation, Mechanism, SubMarket

#: relative and absolute tolerance of the capacity and budget invariants
TOL = 1e-9

#: the invariants, in the order they are checked on each market
INVARIANTS = (
    "interface",
    "no-crash",
    "returns-allocation",
    "no-mutation",
    "single-assignment",
    "payment-shape",
    "choice-range",
    "qos",
    "capacity",
    "payment-finite",
    "payment-nonnegative",
    "payment-budget",
    "unserved-pays-nothing",
    "determinism",
    "truthful",
)

#: the bid shadings tried by the ``truthful`` invariant
SHADINGS = (0.3, 0.6, 0.9)


class InvariantError(AssertionError):
    """A mechanism broke an invariant.

    Attributes:
        invariant: the name of the broken invariant (one of :data:`INVARIANTS`).
        market: the label of the market it broke on, if any.
    """

    def __init__(self, invariant: str, detail: str, market: str | None = None) -> None:
        where = f" (market {market!r})" if market is not None else ""
        super().__init__(f"invariant {invariant!r}: {detail}{where}")
        self.invariant = invariant
        self.market = market


def _fail(invariant: str, detail: str, label: str | None = None) -> None:
    raise InvariantError(invariant, detail, label)


# --- the markets ------------------------------------------------------------------------


def build_market(
    candidates: np.ndarray,
    demand: np.ndarray,
    capacity: np.ndarray,
    *,
    budget: np.ndarray | None = None,
    utility: np.ndarray | None = None,
    reserve: np.ndarray | None = None,
    bid_scale: np.ndarray | None = None,
    priority: np.ndarray | None = None,
    user: np.ndarray | None = None,
    user_won: np.ndarray | None = None,
    fairness_weight: float = 0.0,
    cost_weight: float = 0.0,
) -> SubMarket:
    """A consistent sub-market from its candidates, demand and capacity.

    What is not given is filled in as candidate generation would: budgets 10, utility
    0.5, reserve 1 (capped at the budget), posted price ``reserve * (0.8 + 0.4 utility)``
    (capped at the budget), bid scale 1, priority 0.5, one user per request with
    nothing won yet. Padding pairs (candidate -1) get utility, reserve and posted 0.

    Args:
        candidates: ``(N, K)`` local resource index per column, -1 = none.
        demand: ``(N, D)`` demand per request.
        capacity: ``(M, D)`` capacity per local resource.
        budget: ``(N,)`` budgets.
        utility: ``(N, K)`` pair utilities in [0, 1].
        reserve: ``(N, K)`` posted costs.
        bid_scale: ``(N,)`` bidding strategy (1 = truthful).
        priority: ``(N,)`` normalised priorities.
        user: ``(N,)`` local user index.
        user_won: ``(U,)`` priority mass each user already holds.
        fairness_weight: ``delta``.
        cost_weight: ``alpha``.

    Returns:
        The sub-market (fresh arrays, writeable).
    """
    cand = np.asarray(candidates, dtype=np.int64)
    n, k = cand.shape
    valid = cand >= 0
    budget = np.full(n, 10.0) if budget is None else np.asarray(budget, dtype=float)
    utility = np.full((n, k), 0.5) if utility is None else np.asarray(utility, dtype=float)
    reserve = np.ones((n, k)) if reserve is None else np.asarray(reserve, dtype=float)
    utility = np.where(valid, utility, 0.0)
    reserve = np.where(valid, np.minimum(reserve, budget[:, None]), 0.0)
    posted = np.minimum(reserve * (0.8 + 0.4 * utility), budget[:, None])
    user = np.arange(n, dtype=np.int64) if user is None else np.asarray(user, dtype=np.int64)
    n_users = int(user.max()) + 1 if n else 0
    if user_won is None:
        user_won = np.zeros(n_users)
    capacity = np.asarray(capacity, dtype=float)
    return SubMarket(
        demand=np.asarray(demand, dtype=float).reshape(n, capacity.shape[1]),
        budget=budget,
        bid_scale=np.ones(n) if bid_scale is None else np.asarray(bid_scale, dtype=float),
        priority=np.full(n, 0.5) if priority is None else np.asarray(priority, dtype=float),
        user=user,
        candidates=cand,
        utility=utility,
        reserve=reserve,
        posted=posted,
        capacity=capacity,
        user_won=np.asarray(user_won, dtype=float),
        fairness_weight=float(fairness_weight),
        resource_ids=np.arange(capacity.shape[0], dtype=np.int64) * 3 + 7,
        request_ids=np.arange(n, dtype=np.int64) * 2 + 1,
        cost_weight=float(cost_weight),
    )


def random_market(
    rng: np.random.Generator, n: int, m: int, k: int, *, users: int | None = None,
    fairness_weight: float = 0.3, cost_weight: float = 0.0, shading: bool = True, dims: int = 2,
) -> SubMarket:
    """A random consistent sub-market: distinct candidates per row, some padding.

    Demands are uniform in [0.05, 1) and capacities in [0, 3) in every dimension.

    Args:
        rng: the generator.
        n: requests.
        m: local resources.
        k: candidate columns (at most ``m`` are real per row).
        users: distinct users (default: one per request).
        fairness_weight: ``delta``.
        cost_weight: ``alpha``.
        shading: draw bid scales below 1 for some requests.
        dims: resource dimensions ``D`` (columns of ``demand`` and ``capacity``).

    Returns:
        The sub-market.
    """
    cand = np.full((n, k), -1, dtype=np.int64)
    for i in range(n):
        width = int(rng.integers(0, min(k, m) + 1))
        cols = np.sort(rng.choice(k, size=width, replace=False)) if width else np.empty(0, dtype=np.int64)
        cand[i, cols] = rng.choice(m, size=width, replace=False)
    budget = rng.uniform(0.5, 10.0, n)
    users = n if users is None else users
    return build_market(
        cand,
        rng.uniform(0.05, 1.0, (n, dims)),
        rng.uniform(0.0, 3.0, (m, dims)),
        budget=budget,
        utility=rng.uniform(0.0, 1.0, (n, k)),
        reserve=rng.uniform(0.0, 0.9, (n, k)) * budget[:, None],
        bid_scale=np.where(rng.random(n) < 0.3, 0.7, 1.0) if shading else np.ones(n),
        priority=rng.integers(0, 11, n) / 10.0,
        user=rng.permutation(n) % max(users, 1) if n else np.empty(0, dtype=np.int64),
        user_won=rng.integers(0, 4, max(users, 1) if n else 0) / 10.0,
        fairness_weight=fairness_weight,
        cost_weight=cost_weight,
    )


#: the resource dimensions ``D`` the conformance markets cover besides cpu and memory (D = 2)
DIMENSIONS = (1, 3, 4)


def dimension_markets(dims: int, seed: int = 0) -> Iterator[tuple[str, SubMarket]]:
    """Markets with ``dims`` resource dimensions (columns of ``demand`` and ``capacity``).

    Empty (``N = 0``), no resources (``M = 0``), a random market, a dimension with no
    capacity anywhere (half the requests demand nothing there and may be served, the
    others may not), a dimension that binds (plenty of everything else), and capacity
    that fits four requests exactly or misses in one dimension by a hair. The special
    dimension is the last one, which a mechanism that only looks at the first two
    columns never sees.

    Args:
        dims: ``D >= 1``.
        seed: seed of the random draws.

    Yields:
        ``(label, market)`` pairs, labelled ``"D=<dims>: ..."``.
    """
    rng = np.random.default_rng([seed, 2, dims])
    tag = f"D={dims}:"
    last = dims - 1
    yield f"{tag} N=0", build_market(np.empty((0, 3), dtype=np.int64), np.empty((0, dims)), np.ones((2, dims)))
    yield f"{tag} no resources, M=0", build_market(np.full((3, 2), -1), np.ones((3, dims)), np.empty((0, dims)))
    yield f"{tag} random, N=30, M=5, K=4", random_market(
        rng, 30, 5, 4, users=10, fairness_weight=0.3, cost_weight=0.4, dims=dims,
    )
    n, m = 12, 3
    cand = np.tile(np.arange(m), (n, 1))
    cand[1::3, 1] = -1
    utility = rng.uniform(0.0, 1.0, (n, m))
    demand = rng.uniform(0.05, 1.0, (n, dims))
    demand[::2, last] = 0.0
    capacity = rng.uniform(1.0, 3.0, (m, dims))
    capacity[:, last] = 0.0
    yield f"{tag} no capacity in dimension {last}", build_market(cand, demand, capacity, utility=utility)
    n = 16
    cand = np.tile(np.arange(m), (n, 1))
    demand = rng.uniform(0.05, 1.0, (n, dims))
    demand[:, last] = rng.uniform(0.3, 0.9, n)
    capacity = np.full((m, dims), 100.0)
    capacity[:, last] = 1.0
    yield f"{tag} dimension {last} binds", build_market(
        cand, demand, capacity, utility=rng.uniform(0.0, 1.0, (n, m)), priority=rng.integers(0, 11, n) / 10.0,
    )
    demand = rng.uniform(0.05, 1.0, (4, dims))
    exact = demand.sum(axis=0, keepdims=True)
    yield f"{tag} tight capacity: fits exactly", build_market(np.zeros((4, 1)), demand, exact)
    short = exact + 1.0
    short[0, last] = exact[0, last] - 1e-7
    yield f"{tag} tight capacity: dimension {last} short by a hair", build_market(np.zeros((4, 1)), demand, short)


def markets(n_markets: int = 8, seed: int = 0) -> Iterator[tuple[str, SubMarket]]:
    """The conformance markets: the fixed degenerate ones, ``n_markets`` random ones, other D.

    The fixed and random markets have two resource dimensions (cpu, memory); then come
    the :func:`dimension_markets` for each ``D`` in :data:`DIMENSIONS`, and the
    :func:`held_markets` (durations and the rounds left in the run).

    Args:
        n_markets: random markets after the fixed ones.
        seed: seed of the random ones.

    Yields:
        ``(label, market)`` pairs; the label names the market in failure messages.
    """
    none = np.empty((0, 2))
    yield "empty: N=0", build_market(np.empty((0, 3), dtype=np.int64), none, np.ones((2, 2)))
    yield "empty: N=0, M=0, K=0", build_market(np.empty((0, 0), dtype=np.int64), none, none)
    yield "no columns: K=0", build_market(np.empty((4, 0), dtype=np.int64), np.ones((4, 2)), np.ones((2, 2)))
    yield "no resources: M=0", build_market(np.full((3, 2), -1), np.ones((3, 2)), none)
    yield "no candidates anywhere", build_market(np.full((3, 2), -1), np.ones((3, 2)), np.full((2, 2), 5.0))
    yield "padding between candidates", build_market(
        np.array([[-1, -1, -1], [2, -1, 0], [-1, 1, -1], [-1, -1, 2], [0, 1, 2]]),
        np.full((5, 2), 0.5), np.full((3, 2), 1.0),
        utility=np.array([[0.9, 0.9, 0.9], [0.2, 0.9, 0.3], [0.9, 0.5, 0.9], [0.9, 0.9, 0.4], [0.1, 0.2, 0.3]]),
    )
    yield "zero capacity", build_market(np.tile(np.arange(3), (4, 1)), np.full((4, 2), 0.5), np.zeros((3, 2)))
    yield "zero capacity in one dimension", build_market(
        np.tile(np.arange(2), (4, 1)), np.full((4, 2), 0.5), np.array([[4.0, 0.0], [0.0, 4.0]]),
    )
    yield "zero demand", build_market(np.tile(np.arange(2), (3, 1)), np.zeros((3, 2)), np.array([[0.0, 0.0], [1.0, 1.0]]))
    yield "one request, one resource", build_market(np.zeros((1, 1)), np.ones((1, 2)), np.ones((1, 2)))
    yield "ties: identical requests over identical resources", build_market(
        np.tile(np.arange(3), (6, 1)), np.ones((6, 2)), np.full((3, 2), 2.0),
        priority=np.full(6, 0.5), user=np.arange(6) % 3,
    )
    yield "ties: identical requests, one slot", build_market(np.zeros((5, 1)), np.ones((5, 2)), np.ones((1, 2)))
    demand = np.array([[0.1, 0.7], [0.2, 0.1], [0.3, 0.2], [0.4, 0.3]])
    exact = demand.sum(axis=0, keepdims=True)
    yield "tight capacity: fits exactly", build_market(np.zeros((4, 1)), demand, exact)
    yield "tight capacity: short by a hair", build_market(np.zeros((4, 1)), demand, exact - 1e-7)
    yield "tiny and huge numbers", build_market(
        np.array([[0, 1], [1, 0], [0, -1]]), np.array([[1e-9, 1e-9], [1e9, 1e-9], [1e-9, 1e9]]),
        np.array([[1e9, 1e9], [1e-9, 1e-9]]), budget=np.array([1e-9, 1e9, 1.0]),
        reserve=np.array([[1e-12, 1e-12], [1e6, 1e6], [0.5, 0.0]]),
    )
    yield "zero utility", build_market(np.tile(np.arange(2), (3, 1)), np.ones((3, 2)), np.ones((2, 2)), utility=np.zeros((3, 2)))
    rng = np.random.default_rng(seed)
    yield "one user, many requests", random_market(rng, 12, 3, 3, users=1, fairness_weight=1.0)
    sizes = [(1, 1, 1), (3, 2, 2), (8, 3, 3), (20, 4, 4), (40, 6, 5), (15, 2, 6)]
    for r in range(n_markets):
        n, m, k = sizes[r % len(sizes)]
        yield f"random #{r}: N={n}, M={m}, K={k}", random_market(
            rng, n, m, k, users=max(1, n // 2) if r % 2 else None,
            fairness_weight=(0.0, 0.3, 1.0)[r % 3], cost_weight=(0.0, 0.4)[r % 2],
        )
    for dims in DIMENSIONS:
        yield from dimension_markets(dims, seed)
    yield from held_markets(seed)


def held_markets(seed: int = 0) -> Iterator[tuple[str, SubMarket]]:
    """Random markets whose requests hold their resource 1-6 rounds, 2-4 rounds left in the run.

    What the engine hands a mechanism in every run (``duration``, ``rounds_left``), so a
    mechanism that reads them (MOHAF's bid prices) is checked on them too. A generator of
    their own, so the other markets do not move.
    """
    rng = np.random.default_rng([seed, 1])
    for r, (n, m, k) in enumerate([(8, 3, 3), (20, 4, 4), (40, 6, 5)]):
        market = random_market(rng, n, m, k, users=max(1, n // 2), fairness_weight=(0.0, 0.3, 1.0)[r])
        yield f"held #{r}: N={n}, M={m}, K={k}, {r + 2} rounds left", replace(
            market, duration=rng.integers(1, 7, n), rounds_left=r + 2
        )


def truthful_markets(seed: int = 0) -> Iterator[tuple[str, SubMarket]]:
    """Small markets for the ``truthful`` invariant: one request per user, truthful bids.

    The last one has three resource dimensions, the others two.

    Yields:
        ``(label, market)`` pairs.
    """
    rng = np.random.default_rng([seed, 1])
    for r, (n, m, k, dims) in enumerate([(4, 1, 1, 2), (6, 2, 2, 2), (8, 3, 3, 2), (8, 3, 3, 3)]):
        yield f"truthful #{r}: N={n}, M={m}, K={k}, D={dims}", random_market(
            rng, n, m, k, fairness_weight=0.0, cost_weight=0.0, shading=False, dims=dims,
        )


# --- the invariants -----------------------------------------------------------------------


def _arrays(market: SubMarket) -> dict[str, np.ndarray]:
    return {f.name: getattr(market, f.name) for f in fields(market) if isinstance(getattr(market, f.name), np.ndarray)}


def _frozen(market: SubMarket) -> SubMarket:
    """A copy of ``market`` whose arrays are read-only."""
    copies = {}
    for name, array in _arrays(market).items():
        copy = array.copy()
        copy.flags.writeable = False
        copies[name] = copy
    return replace(market, **copies)


def _call(
    mechanism: Mechanism, market: SubMarket, seed: int, label: str, choice: np.ndarray | None = None
) -> Allocation:
    """``allocate`` (or, given ``choice``, ``refine``) on read-only arrays, failures turned into the invariant they break."""
    what = "allocate" if choice is None else "refine"
    try:
        rng = np.random.default_rng(seed)
        alloc = mechanism.allocate(market, rng) if choice is None else mechanism.refine(market, choice, rng)
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}"
        if "read-only" in text or "readonly" in text:
            _fail("no-mutation", f"{what} wrote to an input array ({text})", label)
        _fail("no-crash", f"{what} raised {text}", label)
    if not isinstance(alloc, Allocation):
        _fail("returns-allocation", f"{what} returned {type(alloc).__name__}, not an Allocation", label)
    return alloc


def _check_interface(mechanism: object) -> None:
    if not isinstance(mechanism, Mechanism):
        _fail("interface", f"{mechanism!r} is not a Mechanism instance (got {type(mechanism).__name__})")
    for attr in ("flat", "truthful"):
        value = getattr(type(mechanism), attr, None)
        if not isinstance(value, bool | np.bool_):
            _fail("interface", f"class attribute {attr!r} must be a bool, got {value!r}")


def _snapshot(market: SubMarket) -> dict[str, object]:
    """Every field of ``market``, arrays copied."""
    return {f.name: np.copy(v) if isinstance(v := getattr(market, f.name), np.ndarray) else v for f in fields(market)}


def _check_no_mutation(market: SubMarket, before: dict[str, object], label: str) -> None:
    for name, old in before.items():
        now = getattr(market, name)
        if isinstance(old, np.ndarray):
            same = (
                isinstance(now, np.ndarray) and now.shape == old.shape and now.dtype == old.dtype
                and now.tobytes() == old.tobytes()
            )
        else:
            same = type(now) is type(old) and now == old
        if not same:
            _fail("no-mutation", f"allocate changed market.{name}", label)


def check_form(market: SubMarket, alloc: object, label: str | None = None) -> None:
    """Check that ``alloc`` is an answer the engine can read for ``market``, before anyone reads it.

    Checked: ``returns-allocation``, ``single-assignment``, ``payment-shape``,
    ``choice-range``, ``qos`` (no padding chosen) and ``unserved-pays-nothing``, in O(N):
    what the engine's settlement would otherwise index out of bounds with, or silently
    drop (a choice past the last column, a payment of an unserved request). The round's
    shared feasibility check (:mod:`market.core.feasibility`) then checks capacity,
    eligibility and payments of the whole round.

    Raises:
        InvariantError: on the first broken invariant (an ``AssertionError``).
    """
    if not isinstance(alloc, Allocation):
        _fail("returns-allocation", f"the answer is {type(alloc).__name__}, not an Allocation", label)
    for flag in ("failed", "time_limited", "proven_optimal"):
        if np.ndim(getattr(alloc, flag)) != 0:
            _fail("returns-allocation", f"Allocation.{flag} must be one true or false, "
                                        f"got {type(getattr(alloc, flag)).__name__}", label)
    n, k = market.candidates.shape
    choice, payment = alloc.choice, alloc.payment
    if not (_plain_array(choice, "iu") and choice.shape == (n,)):
        got = f"{type(choice).__name__} {getattr(choice, 'shape', '')} {getattr(choice, 'dtype', '')}".strip()
        _fail("single-assignment", f"choice must be an (N,) integer array, one column or -1 per request "
                                   f"(N={n}); got {got}", label)
    if not (_plain_array(payment, "iuf") and payment.shape == (n,)):
        got = f"{type(payment).__name__} {getattr(payment, 'shape', '')} {getattr(payment, 'dtype', '')}".strip()
        _fail("payment-shape", f"payment must be an (N,) real array (N={n}); got {got}", label)
    broken, i = _first_malformed(choice, payment, market.candidates)
    if broken == 1:
        _fail("choice-range", f"request {i} has choice {int(choice[i])}, not -1 or a column in [0, {k})", label)
    if broken == 2:
        _fail("qos", f"request {i} was given column {int(choice[i])}, which is padding, not one of its candidates", label)
    if broken == 3:
        _fail("unserved-pays-nothing", f"request {i} is unserved but pays {payment[i]:.6g}", label)


def _plain_array(a: object, kinds: str) -> bool:
    """Whether ``a`` is an ndarray of a machine type numba reads, of kind ``kinds``.

    Not a masked array; native byte order; 1 to 8 bytes an item (float16 and long double
    are not among them).
    """
    return (isinstance(a, np.ndarray) and not isinstance(a, np.ma.MaskedArray) and a.dtype.isnative
            and a.dtype.kind in kinds and a.dtype.itemsize in ((4, 8) if a.dtype.kind == "f" else (1, 2, 4, 8)))


@nb.njit(cache=True)
def _first_malformed(choice: np.ndarray, payment: np.ndarray, cand: np.ndarray) -> tuple[int, int]:
    """:func:`check_form`'s row checks, in its order: ``(0, -1)`` if none breaks, else ``(which, row)``.

    ``which``: 1 a choice outside ``[-1, K)`` (first such row), 2 padding chosen, 3 an
    unserved request that pays. One pass each, as numba loops: a few microseconds a
    sub-market where numpy's ten array operations took 20.
    """
    n, k = cand.shape
    for i in range(n):
        if choice[i] < -1 or choice[i] >= k:
            return 1, i
    for i in range(n):
        if choice[i] >= 0 and cand[i, choice[i]] < 0:
            return 2, i
    for i in range(n):
        if choice[i] < 0 and payment[i] != 0:
            return 3, i
    return 0, -1


class WellFormed:
    """A mechanism whose every answer passes :func:`check_form` before anyone reads it.

    The engine hands this to the planners (:func:`market.core.engine.clear_round`), so
    a plug-in's malformed answer stops the round with the invariant it breaks instead
    of reaching the settlement's unchecked indexing. Everything else (``name``,
    ``flat``, ``refines``, parameters) is the wrapped mechanism's.
    """

    def __init__(self, mechanism: Mechanism) -> None:
        self.mechanism = mechanism

    def __getattr__(self, name: str) -> object:
        return getattr(self.mechanism, name)

    def allocate(self, market: SubMarket, rng: np.random.Generator) -> Allocation:
        """The wrapped mechanism's ``allocate``, its answer checked."""
        alloc = self.mechanism.allocate(market, rng)
        check_form(market, alloc)
        return alloc

    def refine(self, market: SubMarket, choice: np.ndarray, rng: np.random.Generator) -> Allocation:
        """The wrapped mechanism's ``refine``, its answer checked."""
        alloc = self.mechanism.refine(market, choice, rng)
        check_form(market, alloc)
        return alloc


def check_allocation(market: SubMarket, alloc: Allocation, label: str | None = None) -> None:
    """Check one allocation of ``market`` (every invariant that needs only the result).

    Checked: :func:`check_form`'s invariants, then ``capacity`` (every resource, every
    dimension), ``payment-finite``, ``payment-nonnegative`` and ``payment-budget``.

    Args:
        market: the sub-market that was allocated.
        alloc: the mechanism's answer.
        label: a name for the market in the failure message.

    Raises:
        InvariantError: on the first broken invariant (an ``AssertionError``).
    """
    check_form(market, alloc, label)
    choice, payment = alloc.choice, alloc.payment
    served = np.flatnonzero(choice >= 0)
    j = market.candidates[served, choice[served]]
    used = np.zeros_like(market.capacity, dtype=float)
    np.add.at(used, j, market.demand[served])
    over = used - market.capacity
    bad = np.argwhere(over > TOL * (1.0 + np.abs(market.capacity)))
    if bad.size:
        r, d = (int(x) for x in bad[0])
        _fail("capacity", f"resource {r} dimension {d} over by {over[r, d]:.6g} "
                          f"(demand {used[r, d]:.6g} > capacity {market.capacity[r, d]:.6g})", label)
    bad = np.flatnonzero(~np.isfinite(payment))
    if bad.size:
        _fail("payment-finite", f"request {int(bad[0])} pays {payment[bad[0]]}", label)
    bad = np.flatnonzero(payment < 0)
    if bad.size:
        _fail("payment-nonnegative", f"request {int(bad[0])} pays {payment[bad[0]]:.6g} < 0", label)
    bad = np.flatnonzero(payment > market.budget * (1 + TOL) + TOL)
    if bad.size:
        i = int(bad[0])
        _fail("payment-budget", f"request {i} pays {payment[i]:.6g} > its budget {market.budget[i]:.6g}", label)


def _check_determinism(first: Allocation, second: Allocation, label: str) -> None:
    same_choice = np.array_equal(first.choice, second.choice)
    if same_choice and np.array_equal(first.payment, second.payment):
        return
    what = "choice" if not same_choice else "payment"
    a, b = (first.choice, second.choice) if not same_choice else (first.payment, second.payment)
    rows = np.flatnonzero(a != b)[:5].tolist() if np.shape(a) == np.shape(b) else "shapes differ"
    _fail("determinism", f"two calls on the same market with same-seeded generators differ in {what} "
                         f"(requests {rows})", label)


def _check_truthful(mechanism: Mechanism, market: SubMarket, seed: int, label: str) -> None:
    """No request gains by shading its bid, everyone else bidding truthfully."""

    def gain(alloc: Allocation, i: int) -> float:
        c = int(alloc.choice[i])
        return 0.0 if c < 0 else float(market.budget[i] * market.utility[i, c] - alloc.payment[i])

    truth = _call(mechanism, _frozen(market), seed, label)
    for i in range(market.n_requests):
        honest = gain(truth, i)
        for factor in SHADINGS:
            scale = market.bid_scale.copy()
            scale[i] = factor
            lied = _call(mechanism, _frozen(replace(market, bid_scale=scale)), seed, label)
            check_allocation(market, lied, label)
            if gain(lied, i) > honest + TOL * max(1.0, float(market.budget[i])):
                _fail("truthful", f"request {i} gains {gain(lied, i) - honest:.6g} by bidding "
                                  f"{factor} x its value (utility {gain(lied, i):.6g} > {honest:.6g} truthful)", label)


def check_mechanism(mechanism: Mechanism, *, n_markets: int = 8, seed: int = 0) -> int:
    """Run ``mechanism`` through the invariants every mechanism must keep.

    On each conformance market (:func:`markets`) the mechanism allocates once on
    read-only copies of the arrays, and the allocation is checked for: the result
    type, no mutation of the sub-market, single assignment (one integer column per
    request), payment shape, the choice range, QoS (only real candidates are
    chosen), capacity on every resource in every dimension, finite payments with
    ``0 <= payment <= budget``, nothing paid when unserved; then it allocates again
    with a generator of the same seed, and the two allocations must be identical
    (determinism). A mechanism that :meth:`~mechanisms.base.Mechanism.refines` a
    market of that size must also refine its own allocation there (read-only) into
    one that passes the same allocation invariants. Empty and degenerate markets must
    not crash. Mechanisms declaring
    ``truthful = True`` are also checked against bid shading on small markets with
    one request per user (:func:`truthful_markets`). See the module docstring for
    the invariant names.

    Args:
        mechanism: the mechanism instance (e.g. ``mechanisms.create("mohaf")``).
        n_markets: seeded random markets to run after the fixed degenerate ones.
        seed: seed of the random markets and of the generator passed to ``allocate``.

    Returns:
        The number of checks that passed (one per invariant and market).

    Raises:
        AssertionError: on the first broken invariant; the message starts with
            ``invariant '<name>':`` and names the market it broke on.
    """
    _check_interface(mechanism)
    checks = 1
    per_market = len(INVARIANTS) - 2  # all but interface and truthful
    for label, market in markets(n_markets, seed):
        before = _snapshot(market)
        frozen = _frozen(market)
        alloc = _call(mechanism, frozen, seed, label)
        _check_no_mutation(frozen, before, label)
        check_allocation(market, alloc, label)
        again = _call(mechanism, frozen, seed, label)
        _check_no_mutation(frozen, before, label)
        _check_determinism(alloc, again, label)
        checks += per_market
        if mechanism.refines(market.n_requests):  # the root's refinement of its own allocation
            given = alloc.choice.copy()
            given.flags.writeable = False
            refined = _call(mechanism, frozen, seed, f"{label} (refine)", given)
            _check_no_mutation(frozen, before, f"{label} (refine)")
            check_allocation(market, refined, f"{label} (refine)")
            checks += per_market - 1  # every invariant but determinism
    if mechanism.truthful:
        for label, market in truthful_markets(seed):
            _check_truthful(mechanism, market, seed, label)
            checks += 1
    return checks
