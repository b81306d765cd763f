"""Mechanisms in isolation: exactness of greedy and the optimum, Vickrey payments, plug-ins."""

from __future__ import annotations

import itertools
import os
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.core.feasibility import check_round
from mechanisms import available, create, register, unregister
from mechanisms.base import Allocation, Mechanism, SubMarket
from mechanisms.checks import check_allocation
from mechanisms.kernels import lazy_greedy
from mechanisms.optimal import solve_exact
from scenarios.config import load
from tests.conftest import DATA


def random_submarket(
    rng: np.random.Generator, n: int, m: int, k: int, delta: float, users: int, dims: int = 2
) -> SubMarket:
    """A random sub-market as candidate generation makes them, with ``dims`` resource dimensions.

    Priorities are integers over 10, and every candidate's posted price is within the
    request's budget (pairs priced above it are never candidates).
    """
    cand = np.full((n, k), -1, dtype=np.int64)
    for i in range(n):
        width = rng.integers(0, k + 1)
        cand[i, :width] = rng.choice(m, size=width, replace=False)
    utility = np.where(cand >= 0, rng.uniform(0.05, 1.0, (n, k)), 0.0)
    budget = rng.uniform(2.0, 10.0, n)
    reserve = np.where(cand >= 0, rng.uniform(0.0, 0.8, (n, k)) * budget[:, None], 0.0)
    return SubMarket(
        demand=rng.uniform(0.2, 1.0, (n, dims)),
        budget=budget,
        bid_scale=np.ones(n),
        priority=rng.integers(1, 11, n) / 10.0,
        user=rng.integers(0, users, n),
        candidates=cand,
        utility=utility,
        reserve=reserve,
        posted=reserve * (0.8 + 0.4 * utility),
        capacity=rng.uniform(0.5, 2.5, (m, dims)),
        user_won=rng.integers(0, 4, users) / 10.0,
        fairness_weight=delta,
        resource_ids=np.arange(m),
        request_ids=np.arange(n),
    )


def welfare(market: SubMarket, choice: np.ndarray) -> float:
    """``F = sum b + delta * sum_u [g(W_u + X_u) - g(W_u)]``, or -inf if infeasible."""
    used = np.zeros_like(market.capacity)
    won = market.user_won.copy()
    total = 0.0
    for i, c in enumerate(choice):
        if c < 0:
            continue
        used[market.candidates[i, c]] += market.demand[i]
        won[market.user[i]] += market.priority[i]
        total += market.utility[i, c]
    if np.any(used > market.capacity + 1e-9):
        return -np.inf
    return total + market.fairness_weight * float(np.sum(np.log2(1 + won) - np.log2(1 + market.user_won)))


def plain_greedy(market: SubMarket) -> np.ndarray:
    """Textbook greedy: recompute every pair's marginal gain, take the best, repeat."""
    n, k = market.candidates.shape
    choice = np.full(n, -1, dtype=np.int64)
    while True:
        best, best_gain = None, 0.0
        base = welfare(market, choice)
        for i, c in itertools.product(range(n), range(k)):
            if choice[i] >= 0 or market.candidates[i, c] < 0:
                continue
            choice[i] = c
            gain = welfare(market, choice) - base
            choice[i] = -1
            if gain > best_gain + 1e-12:
                best, best_gain = (i, c), gain
        if best is None:
            return choice
        choice[best[0]] = best[1]


@pytest.mark.parametrize("seed", range(8))
def test_lazy_greedy_makes_the_picks_of_plain_greedy(seed):
    market = random_submarket(np.random.default_rng(seed), n=14, m=4, k=3, delta=0.6, users=4)
    lazy = lazy_greedy(market.candidates, market.utility, market.demand, market.capacity,
                       market.user, market.priority, market.user_won, market.fairness_weight,
                       np.ones(market.n_requests))
    assert welfare(market, lazy) == pytest.approx(welfare(market, plain_greedy(market)), abs=1e-12)


@pytest.mark.parametrize(("seed", "dims"), [(s, d) for d in (1, 3, 4) for s in range(3)])
def test_lazy_greedy_makes_the_picks_of_plain_greedy_in_any_dimension(seed, dims):
    market = random_submarket(np.random.default_rng([seed, dims]), n=14, m=4, k=3, delta=0.6, users=4, dims=dims)
    lazy = lazy_greedy(market.candidates, market.utility, market.demand, market.capacity,
                       market.user, market.priority, market.user_won, market.fairness_weight,
                       np.ones(market.n_requests))
    assert welfare(market, lazy) == pytest.approx(welfare(market, plain_greedy(market)), abs=1e-12)


def test_lazy_greedy_ends_and_serves_no_request_whose_gain_is_not_a_number():
    """A NaN key went back on the heap for ever (no comparison ranks it): the greedy never ended."""
    cand = np.array([[0, 1], [0, 1], [1, 0]])
    base = np.array([[np.nan, 0.5], [0.4, np.nan], [0.3, 0.2]])
    choice = lazy_greedy(cand, base, np.ones((3, 1)), np.full((2, 1), 2.0), np.arange(3), np.ones(3),
                         np.zeros(3), 0.5, np.ones(3))
    # row 0's first fitting column is NaN (the scan keeps it), so row 0 is not served; row 1's
    # best is r0 (0.4), row 2's r1 (0.3)
    assert choice.tolist() == [-1, 0, 0]


#: every mechanism but the exact solver (HiGHS per hypothesis example is slow; its D is the program's)
ANY_D = ["mohaf", "greedy", "best_fit", "dot_product", "drf", "first_price", "second_price", "random"]
#: those that serve every request that still fits when its turn comes (utilities here are positive)
MAXIMAL = {"mohaf", "greedy", "best_fit", "dot_product", "drf", "random"}


@pytest.mark.parametrize("name", ANY_D)
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 40), m=st.integers(1, 6), k=st.integers(1, 5),
       dims=st.integers(1, 4))
def test_every_mechanism_is_feasible_in_any_number_of_dimensions(name, seed, n, m, k, dims):
    """D = 1..4 resource dimensions: capacity holds in every one, payments within budgets."""
    rng = np.random.default_rng(seed)
    market = random_submarket(rng, n, m, min(k, m), delta=0.3, users=max(1, n // 3), dims=dims)
    # a dimension that binds: the last one is scarce
    market = replace(market, capacity=market.capacity * np.r_[np.full(dims - 1, 4.0), 0.5])
    alloc = create(name).allocate(market, np.random.default_rng(1))
    check_allocation(market, alloc, f"{name} D={dims}")
    if name in MAXIMAL:  # nobody left out could still fit somewhere, in every dimension
        served = np.flatnonzero(alloc.choice >= 0)
        left = market.capacity.copy()
        np.add.at(left, market.candidates[served, alloc.choice[served]], -market.demand[served])
        for i in np.flatnonzero(alloc.choice < 0):
            j = market.candidates[i][market.candidates[i] >= 0]
            assert not np.any(np.all(left[j] >= market.demand[i] + 1e-9, axis=1)), (name, i)


@pytest.mark.parametrize("seed", range(6))
def test_optimal_matches_brute_force(seed):
    market = random_submarket(np.random.default_rng(100 + seed), n=6, m=2, k=2, delta=0.5, users=3)
    best = max(
        welfare(market, np.array(choice))
        for choice in itertools.product(*[[-1, *np.flatnonzero(row >= 0)] for row in market.candidates])
    )
    alloc = solve_exact(market, time_limit=10)
    assert alloc.proven_optimal
    assert welfare(market, alloc.choice) == pytest.approx(best, abs=1e-7)
    assert alloc.bound == pytest.approx(best, abs=1e-6)


@pytest.mark.parametrize("unit", [1.0, 2e6, 5e-7])
@pytest.mark.parametrize("seed", range(3))
def test_optimal_matches_brute_force_with_a_pair_too_large_and_rows_in_their_own_unit(seed, unit):
    """A candidate larger than its resource (fixed at 0 in the program) and a resource whose
    capacity and demands are scaled out of [1e-6, 1e6] (written in its own unit)."""
    market = random_submarket(np.random.default_rng(200 + seed), n=6, m=2, k=2, delta=0.5, users=3)
    market.capacity[0] *= unit
    market.demand[market.candidates[:, 0] == 0] *= unit  # requests whose first candidate is resource 0
    market.demand[0] = market.capacity.max(axis=0) * 3  # request 0 fits nowhere
    market.valid[0] = market.candidates[0] >= 0  # still offered as candidates

    def feasible(choice):
        served = np.flatnonzero(choice >= 0)
        used = np.zeros_like(market.capacity)
        np.add.at(used, market.candidates[served, choice[served]], market.demand[served])
        return np.all(used <= market.capacity * (1 + 1e-9) + 1e-12)

    best = max(
        welfare(market, np.array(choice))
        for choice in itertools.product(*[[-1, *np.flatnonzero(row >= 0)] for row in market.candidates])
        if feasible(np.array(choice))
    )
    alloc = solve_exact(market, time_limit=10)
    assert alloc.proven_optimal and alloc.choice[0] == -1 and feasible(alloc.choice)
    assert welfare(market, alloc.choice) == pytest.approx(best, rel=1e-7, abs=1e-7)


@pytest.mark.parametrize(
    "name", ["mohaf", "greedy", "first_price", "second_price", "random", "optimal", "drf", "best_fit", "dot_product"]
)
def test_every_mechanism_respects_capacity_and_budgets(name):
    rng = np.random.default_rng(7)
    for _ in range(5):
        market = random_submarket(rng, n=40, m=6, k=4, delta=0.3, users=8)
        alloc = create(name).allocate(market, np.random.default_rng(1))
        served = np.flatnonzero(alloc.choice >= 0)
        used = np.zeros_like(market.capacity)
        np.add.at(used, market.candidates[served, alloc.choice[served]], market.demand[served])
        assert np.all(used <= market.capacity + 1e-9)
        assert np.all(alloc.payment >= 0) and np.all(alloc.payment <= market.budget + 1e-9)
        assert np.all(alloc.payment[alloc.choice < 0] == 0)


def single_item(reports: list[float]) -> SubMarket:
    """One resource that fits one request; equal quality 1 and no reserve for everybody."""
    n = len(reports)
    return SubMarket(
        demand=np.ones((n, 2)), budget=np.array(reports, dtype=float), bid_scale=np.ones(n),
        priority=np.full(n, 0.5), user=np.arange(n), candidates=np.zeros((n, 1), dtype=np.int64),
        utility=np.ones((n, 1)), reserve=np.zeros((n, 1)), posted=np.zeros((n, 1)),
        capacity=np.ones((1, 2)), user_won=np.zeros(n), fairness_weight=0.0,
        resource_ids=np.zeros(1, dtype=np.int64), request_ids=np.arange(n),
    )


def test_second_price_is_vickrey_on_a_single_item():
    alloc = create("second_price").allocate(single_item([3.0, 7.0, 5.0]), np.random.default_rng(0))
    assert alloc.choice.tolist() == [-1, 0, -1]
    assert alloc.payment.tolist() == pytest.approx([0.0, 5.0, 0.0])


def test_second_price_winner_pays_the_same_whatever_it_reports():
    for report in (5.5, 7.0, 100.0):
        alloc = create("second_price").allocate(single_item([3.0, report, 5.0]), np.random.default_rng(0))
        assert alloc.choice[1] == 0 and alloc.payment[1] == pytest.approx(5.0)


def budget_market(rest: np.ndarray, cost: np.ndarray, alpha: float, budget: np.ndarray, scale: np.ndarray) -> SubMarket:
    """A one-slot-per-resource market as candidate generation builds it from *reported* budgets.

    ``b_ij = alpha * clip(1 - cost / budget, 0, 1) + rest_ij`` at the budget the market
    sees, and a pair is a candidate only when its cost and posted price fit that budget.
    """
    n, m = rest.shape
    b = alpha * np.clip(1.0 - cost / budget[:, None], 0.0, 1.0) + rest
    posted = cost * (0.8 + 0.4 * b)
    ok = (cost <= budget[:, None]) & (posted <= budget[:, None])
    return SubMarket(
        demand=np.ones((n, 2)), budget=budget, bid_scale=scale, priority=np.full(n, 0.5), user=np.arange(n),
        candidates=np.where(ok, np.arange(m), -1), utility=np.where(ok, b, 0.0), reserve=np.where(ok, cost, 0.0),
        posted=np.where(ok, posted, 0.0), capacity=np.ones((m, 2)), user_won=np.zeros(n), fairness_weight=0.0,
        resource_ids=np.arange(m), request_ids=np.arange(n), cost_weight=alpha,
    )


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")), derandomize=True, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 7), m=st.integers(1, 4), alpha=st.floats(0.0, 0.7))
def test_second_price_is_truthful_in_the_budget_it_reports(seed, n, m, alpha):
    """No user gains by reporting another budget, as a bid or as the budget itself.

    The true value of pair (i, j) is ``B_i * b_ij`` with ``b_ij`` at the true budget, so the
    report moves both the bid and the cost term of the utility; every payment lies between
    0 and the reported value.
    """
    rng = np.random.default_rng(seed)
    rest = rng.uniform(0.0, 1.0 - alpha, (n, m))
    cost = rng.uniform(0.0, 3.0, (n, m))
    budget = rng.uniform(0.5, 6.0, n)
    ones = np.ones(n)

    def true_utility(user: int, market: SubMarket) -> float:
        alloc = create("second_price").allocate(market, np.random.default_rng(0))
        won = np.flatnonzero(alloc.choice >= 0)
        reported = market.bid_scale[won] * market.budget[won]
        assert np.all(alloc.payment[won] >= 0)
        assert np.all(alloc.payment[won] <= reported * market.utility[won, alloc.choice[won]] + 1e-9)
        if alloc.choice[user] < 0:
            return 0.0
        c = cost[user, market.candidates[user, alloc.choice[user]]]
        b = alpha * np.clip(1.0 - c / budget[user], 0.0, 1.0) + rest[user, market.candidates[user, alloc.choice[user]]]
        return budget[user] * b - alloc.payment[user]

    for user in range(n):
        truthful = true_utility(user, budget_market(rest, cost, alpha, budget, ones))
        assert truthful >= -1e-9
        for factor in (0.3, 0.6, 0.9, 0.99, 1.01, 1.1, 1.5, 3.0):
            seen = budget.copy()
            seen[user] *= factor
            lied = true_utility(user, budget_market(rest, cost, alpha, seen, ones))
            assert lied <= truthful + 1e-9 * max(1.0, budget[user]), ("budget", user, factor)
            if factor < 1:
                scale = ones.copy()
                scale[user] = factor
                lied = true_utility(user, budget_market(rest, cost, alpha, budget, scale))
                assert lied <= truthful + 1e-9 * max(1.0, budget[user]), ("bid", user, factor)


def test_first_price_winner_pays_its_bid():
    alloc = create("first_price").allocate(single_item([3.0, 7.0, 5.0]), np.random.default_rng(0))
    assert alloc.choice.tolist() == [-1, 0, -1]
    assert alloc.payment[1] == pytest.approx(7.0)


class NobodyServed(Mechanism):
    """A user's own mechanism: serves nobody (registered in the test below)."""

    def allocate(self, market: SubMarket, rng: np.random.Generator) -> Allocation:
        return Allocation.empty(market.n_requests)


def test_user_mechanism_registers_and_runs_without_core_changes():
    register("test_nobody")(NobodyServed)
    try:  # unregistered after: tests that run every available mechanism must not meet it
        assert "test_nobody" in available()
        from market.core.model import MarketModel

        model = MarketModel(load(DATA / "small.toml").replace(oracle=False), mechanism="test_nobody", rng=1)
        model.run_for(2)
    finally:
        unregister("test_nobody")
    assert [r["n_allocated"] for r in model.round_records] == [0, 0]
    assert all(r["welfare"] == 0 for r in model.round_records)


def test_feasibility_check_rejects_an_overfull_resource():
    from market.core.feasibility import InfeasibleAllocationError

    cols = {"demand": np.ones((2, 2)), "budget": np.array([5.0, 5.0]),
            "min_reliability": np.zeros(2), "min_availability": np.zeros(2), "max_latency": np.full(2, np.inf),
            "x": np.zeros(2), "y": np.zeros(2)}
    res = {"capacity": np.array([[1.5, 4.0]]), "type": np.zeros(1), "reliability": np.ones(1), "availability": np.ones(1),
           "x": np.zeros(1), "y": np.zeros(1)}
    need = np.ones((2, 2))
    with pytest.raises(InfeasibleAllocationError, match="capacity exceeded"):
        check_round(np.array([0, 0]), np.array([1.0, 1.0]), cols, res, need, np.array([[1.5, 4.0]]))
    check_round(np.array([0, -1]), np.array([1.0, 0.0]), cols, res, need, np.array([[1.5, 4.0]]))


@pytest.mark.parametrize("dims", [1, 3, 4])
def test_feasibility_check_sees_every_dimension_and_eligibility(dims):
    from market.core.eligibility import allowed_masks
    from market.core.feasibility import InfeasibleAllocationError

    cols = {"demand": np.ones((2, dims)), "budget": np.array([5.0, 5.0]),
            "min_reliability": np.zeros(2), "min_availability": np.zeros(2), "max_latency": np.full(2, np.inf),
            "x": np.zeros(2), "y": np.zeros(2)}
    res = {"capacity": np.full((1, dims), 2.0), "type": np.array([1]), "reliability": np.ones(1),
           "availability": np.ones(1), "x": np.zeros(1), "y": np.zeros(1)}
    free = np.full((1, dims), 2.0)
    check_round(np.array([0, 0]), np.array([1.0, 1.0]), cols, res, cols["demand"], free)
    free[0, dims - 1] = 1.5  # the last dimension binds: two requests no longer fit
    with pytest.raises(InfeasibleAllocationError, match="capacity exceeded"):
        check_round(np.array([0, 0]), np.array([1.0, 1.0]), cols, res, cols["demand"], free)
    # request 1 allows only type B; the resource is type A (code 1)
    cols["allowed"] = allowed_masks(np.array(["", "B"], dtype=object), ["A", "B"])
    check_round(np.array([0, -1]), np.array([1.0, 0.0]), cols, res, cols["demand"], free)
    with pytest.raises(InfeasibleAllocationError, match="type not allowed"):
        check_round(np.array([-1, 0]), np.array([0.0, 1.0]), cols, res, cols["demand"], free)
