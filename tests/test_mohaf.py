"""MOHAF's two steps and its guarantee: greedy, capacity prices, re-insertion.

Known values on textbook markets, brute force on small ones, and properties
(hypothesis) of re-insertion: it never lowers the welfare and never overfills a
resource in any dimension.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mechanisms.base import SubMarket
from mechanisms.improve import reinsert
from mechanisms.kernels import lazy_greedy
from mechanisms.lagrangian import capacity_prices
from mechanisms.mohaf import MOHAF
from mechanisms.optimal import solve_exact
from tests.test_mechanisms import random_submarket, welfare


def market_of(
    cand: list[list[int]],
    utility: list[list[float]],
    demand: list[float],
    capacity: list[float],
    delta: float = 0.0,
) -> SubMarket:
    """A one-dimension sub-market, one user per request, budgets far above the prices."""
    cand_a = np.array(cand, dtype=np.int64)
    n = cand_a.shape[0]
    util = np.where(cand_a >= 0, np.array(utility, dtype=float), 0.0)
    return SubMarket(
        demand=np.array(demand, dtype=float)[:, None],
        budget=np.full(n, 100.0),
        bid_scale=np.ones(n),
        priority=np.ones(n),
        user=np.arange(n),
        candidates=cand_a,
        utility=util,
        reserve=np.zeros_like(util),
        posted=np.zeros_like(util),
        capacity=np.array(capacity, dtype=float)[:, None],
        user_won=np.zeros(n),
        fairness_weight=delta,
        resource_ids=np.arange(len(capacity)),
        request_ids=np.arange(n),
    )


def brute_force(market: SubMarket) -> float:
    """The optimum of ``F`` over every allocation (small markets only)."""
    rows = [[-1, *np.flatnonzero(row >= 0)] for row in market.candidates]
    return max(welfare(market, np.array(choice)) for choice in itertools.product(*rows))


def test_reinsertion_moves_a_flexible_request_to_make_room():
    """A can use r0 or r1 (prefers r0), B only r0, each resource holds one: greedy strands B."""
    market = market_of(
        cand=[[0, 1], [0, -1]], utility=[[0.9, 0.8], [0.5, 0.0]], demand=[1, 1], capacity=[1, 1]
    )
    greedy = lazy_greedy(
        market.candidates,
        market.utility,
        market.demand,
        market.capacity,
        market.user,
        market.priority,
        market.user_won,
        0.0,
        np.ones(2),
    )
    assert greedy.tolist() == [0, -1]  # A takes r0 (0.9 > 0.5): welfare 0.9
    alloc = MOHAF(prices=0).allocate(market, np.random.default_rng(0))
    assert alloc.choice.tolist() == [1, 0]  # A moved to r1, B on r0: 0.8 + 0.5
    assert welfare(market, alloc.choice) == pytest.approx(1.3) == pytest.approx(brute_force(market))


def test_reinsertion_swaps_one_large_request_for_a_better_one():
    """r0 (capacity 2) holds A (size 2, 0.6); B (size 2, 0.9) arrives only after: swap A out."""
    market = market_of(cand=[[0], [0]], utility=[[0.6], [0.9]], demand=[2, 2], capacity=[2])
    start = np.array([0, -1])
    out = reinsert(
        start,
        np.array([1, 0]),
        market.candidates,
        market.utility,
        market.demand,
        market.capacity,
        market.user,
        market.priority,
        market.user_won,
        0.0,
        1,
        8,
    )
    assert out.tolist() == [-1, 0]


def test_density_serves_two_small_requests_before_one_large_one():
    """Capacity 2: one request of size 2 (0.7) or two of size 1 (0.6 each): density takes the two."""
    market = market_of(
        cand=[[0], [0], [0]], utility=[[0.7], [0.6], [0.6]], demand=[2, 1, 1], capacity=[2]
    )
    gain = MOHAF(rank="gain", improve=0, prices=0).allocate(market, np.random.default_rng(0))
    density = MOHAF(rank="density", improve=0, prices=0).allocate(market, np.random.default_rng(0))
    assert welfare(market, gain.choice) == pytest.approx(0.7)
    assert (
        welfare(market, density.choice) == pytest.approx(1.2) == pytest.approx(brute_force(market))
    )


def test_capacity_prices_rise_only_on_overloaded_resources():
    """Three requests want r0 (room for one) and none wants r1: r0 gets a price, r1 none."""
    market = market_of(
        cand=[[0, 1], [0, 1], [0, 1]], utility=[[0.9, 0.5]] * 3, demand=[1, 1, 1], capacity=[1, 3]
    )
    price = capacity_prices(
        market.candidates, market.utility, market.demand, market.capacity, 20, 0.2
    )
    assert np.all(price[:, 0] > 0) and np.all(price[:, 1] == 0)
    assert np.all(
        capacity_prices(market.candidates, market.utility, market.demand, market.capacity, 0, 0.2)
        == 0
    )


def test_unit_demand_meets_the_greedy_guarantee():
    """Unit demand, capacity in slots: F(MOHAF) >= 1/3 of the optimum (1/2 with delta = 0), in fact near it."""
    ratios = []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        base = random_submarket(rng, n=7, m=3, k=2, delta=0.5 if seed % 2 else 0.0, users=3, dims=1)
        market = SubMarket(
            **{
                **base.__dict__,
                "demand": np.ones((7, 1)),
                "capacity": rng.integers(1, 3, (3, 1)).astype(float),
            }
        )
        best = brute_force(market)
        got = welfare(market, MOHAF().allocate(market, rng).choice)
        assert got >= (0.5 if market.fairness_weight == 0 else 1 / 3) * best - 1e-9
        ratios.append(got / best if best > 0 else 1.0)
    assert np.mean(ratios) >= 0.95


def test_mohaf_is_near_the_optimum_on_random_markets():
    """Over 20 random markets (2 dimensions, tight capacity) MOHAF reaches 0.95 of the proven optimum."""
    got = best = 0.0
    for seed in range(20):
        market = random_submarket(
            np.random.default_rng(1000 + seed), n=30, m=5, k=4, delta=0.3, users=8
        )
        exact = solve_exact(market, time_limit=30, node_limit=None)
        assert exact.proven_optimal
        best += welfare(market, exact.choice)
        got += welfare(market, MOHAF().allocate(market, np.random.default_rng(seed)).choice)
    assert got >= 0.95 * best


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 30),
    m=st.integers(1, 5),
    k=st.integers(1, 4),
    dims=st.integers(1, 3),
    delta=st.sampled_from([0.0, 0.3, 1.0]),
    width=st.integers(1, 4),
)
def test_reinsertion_never_lowers_welfare_nor_overfills(seed, n, m, k, dims, delta, width):
    rng = np.random.default_rng(seed)
    market = random_submarket(
        rng, n=n, m=m, k=min(k, m), delta=delta, users=max(1, n // 3), dims=dims
    )
    start = lazy_greedy(
        market.candidates,
        market.utility,
        market.demand,
        market.capacity,
        market.user,
        market.priority,
        market.user_won,
        delta,
        rng.uniform(0.5, 2.0, n),
    )
    out = reinsert(
        start,
        rng.permutation(n),
        market.candidates,
        market.utility,
        market.demand,
        market.capacity,
        market.user,
        market.priority,
        market.user_won,
        delta,
        2,
        width,
    )
    assert welfare(market, out) >= welfare(market, start) - 1e-9  # -inf if a resource overflowed
    assert np.all((out == -1) | (market.candidates[np.arange(n), np.maximum(out, 0)] >= 0))


def test_bid_price_control_leaves_contested_capacity_to_the_short_request():
    """One slot, A (0.6, held 5 rounds) against B (0.5, 1 round): F takes A, bid prices take B.

    Fluid prices (``hold > 0``'s default): the occupancy LP ``max 0.6 x_A + 0.5 x_B`` s.t. ``5 x_A + x_B
    <= 1`` prices the slot-round at B's value 0.5 (A is worth 0.12 a slot-round), so A's four
    rounds past this one cost ``hold * 4 * 0.5`` = 1 at ``hold = 0.5``, more than A's lead
    of 0.1 (the subgradient's price after ten steps is near enough). Round prices: both want
    the slot now, so its price rises to between B's and A's value and ``hold = 1`` charges
    A four times that.
    """
    market = market_of([[0], [0]], [[0.6], [0.5]], [1.0, 1.0], [1.0])
    timed = SubMarket(**{**market.__dict__, "duration": np.array([5.0, 1.0])})
    rng = np.random.default_rng(0)
    fluid = MOHAF(hold=0.5)
    assert list(MOHAF().allocate(timed, rng).choice) == [0, -1]  # the default: the paper's F
    assert list(fluid.allocate(timed, rng).choice) == [-1, 0]
    assert list(MOHAF(bid_prices="round", hold=1.0).allocate(timed, rng).choice) == [-1, 0]
    # without durations (or with every request held one round) nothing is charged
    assert list(fluid.allocate(market, rng).choice) == [0, -1]
    # discount 0: later rounds are worth nothing, back to F
    assert list(MOHAF(hold=0.5, discount=0.0).allocate(timed, rng).choice) == [0, -1]
    # the market's last round: capacity held past the run's end costs the run nothing
    last = SubMarket(**{**timed.__dict__, "rounds_left": 1})
    assert list(fluid.allocate(last, rng).choice) == [0, -1]
    assert list(MOHAF(bid_prices="round", hold=1.0).allocate(last, rng).choice) == [0, -1]
    # two rounds left: A is charged one later round at the LP's price 0.5 (x 0.5 = 0.25 > 0.1)
    assert list(fluid.allocate(SubMarket(**{**timed.__dict__, "rounds_left": 2}), rng).choice) == [-1, 0]
    # no price steps, no prices to charge at: F
    assert list(MOHAF(hold=0.5, prices=0).allocate(timed, rng).choice) == [0, -1]


@pytest.mark.parametrize("held", [2, 5, 47, 240, 10**6])
@pytest.mark.parametrize("hold", [0.25, 0.5, 0.9])
def test_fluid_bid_prices_never_price_a_lone_request_out_of_a_free_slot(held, hold):
    """One request, one slot it fills, nothing else: the occupancy LP's price is its own value.

    ``max 0.6 x`` s.t. ``d x <= 1``: the dual price of the slot-round is ``0.6 / d``, so
    the charge is ``hold * 0.6 * (d - 1) / d`` < 0.6 for ``hold < 1``, and the request is
    served. The subgradient's first step overshoots that price by ``~0.2 d``; the box
    ``[0, g C / d]`` brings it back (without it the charge grew like ``d^2``: -385 at d = 47).
    """
    market = market_of([[0]], [[0.6]], [1.0], [1.0])
    timed = SubMarket(**{**market.__dict__, "duration": np.array([float(held)]), "rounds_left": 10**9})
    mohaf = MOHAF(hold=hold)
    net = mohaf._net(timed)[0, 0]
    assert 0.6 * (1 - hold) - 1e-9 <= net <= 0.6
    assert list(mohaf.allocate(timed, np.random.default_rng(0)).choice) == [0]


@pytest.mark.parametrize(
    "bad",
    [
        {"rank": "best"},
        {"improve": -1},
        {"prices": 1.5},
        {"step": 0.0},
        {"width": True},
        {"hold": -1.0},
        {"hold": float("nan")},
        {"discount": 1.5},
        {"bid_prices": "lp"},
    ],
)
def test_bad_parameters_are_refused(bad):
    with pytest.raises(ValueError):
        MOHAF(**bad)


@pytest.mark.parametrize("duration", [np.nan, np.inf])
def test_a_duration_that_is_not_finite_is_refused_not_looped_on(duration):
    """A hand-built market's NaN or infinite duration (the engine's are whole rounds): one clear error."""
    market = market_of([[0], [0]], [[0.6], [0.5]], [1.0, 1.0], [1.0])
    timed = SubMarket(**{**market.__dict__, "duration": np.array([duration, 1.0]), "rounds_left": 5})
    for mohaf in (MOHAF(), MOHAF(hold=0.5)):
        with pytest.raises(ValueError, match="duration must be finite"):
            mohaf.allocate(timed, np.random.default_rng(0))


def _numpy_inputs(market: SubMarket) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MOHAF's per-market inputs as numpy computes them: sizes, re-insertion order, priced gains."""
    mean_cap = market.capacity.mean(axis=0) if market.capacity.shape[0] else np.ones(market.demand.shape[1])
    size = (market.demand / np.where(mean_cap > 0, mean_cap, 1.0)).max(axis=1)
    if market.duration is not None and market.n_requests:
        held = np.asarray(market.duration, dtype=float)
        if held.mean() > 0:
            size = size * np.maximum(held / held.mean(), 1e-3)
    size = np.maximum(size, 1e-9)
    best = np.where(market.valid, market.utility, -np.inf).max(axis=1)
    won = market.user_won[market.user]
    each = market.fairness_weight * np.log2((1.0 + won + market.priority) / (1.0 + won))
    return size, np.argsort(-(best / size), kind="stable"), np.where(market.valid, market.utility + each[:, None], 0.0)


@pytest.mark.parametrize("seed", range(40))
def test_mohaf_inputs_are_numpys_bit_for_bit(seed):
    """The kernels behind sizes, order and priced gains give numpy's floats, NaN, zeros and ties included.

    (Bytes compared: these markets' NaN come out positive either way; a NaN from ``-inf / inf``
    may keep its sign bit in the kernels, where numpy's ``max`` returns a positive one.)
    """
    from dataclasses import replace

    from mechanisms.mohaf import capacity_share, priced_gain

    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 8))
    market = random_submarket(rng, int(rng.integers(0, 40)), m, int(rng.integers(1, m + 1)), 0.3, 5,
                              int(rng.integers(1, 4)))
    n = market.n_requests
    demand, utility, capacity = market.demand.copy(), market.utility.copy(), market.capacity.copy()
    if n and seed % 4 == 1:  # NaN demand and utility, a dimension of zero capacity
        demand[rng.integers(0, n), rng.integers(0, demand.shape[1])] = np.nan
        utility[rng.integers(0, n), 0] = np.nan
        capacity[:, 0] = 0.0
    if n and seed % 4 == 2:  # ties everywhere
        demand[:] = 0.5
        utility = np.where(market.valid, 0.5, 0.0)
    duration = rng.integers(1, 5, n).astype(float) if seed % 2 else None
    market = replace(market, demand=demand, utility=utility, capacity=capacity, duration=duration)
    size, order, gain = _numpy_inputs(market)
    mohaf = MOHAF()
    assert capacity_share(market).tobytes() == size.tobytes()
    got = mohaf._order(market, market.utility, capacity_share(market))
    assert (got if got is not None else np.empty(0, dtype=np.int64)).tolist() == order.tolist()
    assert priced_gain(market).tobytes() == gain.tobytes()
