"""Clearing prices (capacity duals of the round's LP at zero prices) and the price gap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from market.core.candidates import request_rows, resource_rows
from market.core.clearing import clearing, clearing_prices, price_gap, unit_prices
from market.core.oracle import RoundMarket
from mechanisms.welfare_program import WelfareProgram


def hand_market(budget, demand, capacity, *, weights=(1.0, 0.0, 0.0, 0.0), duration=None, posted=None, priced=None):
    """Requests and resources at one spot, perfect QoS; with weights (alpha, 0, 0, 0) ``b_ij`` at price 0 is alpha."""
    budget = np.asarray(budget, dtype=float)
    n = budget.size
    demand = np.asarray(demand, dtype=float).reshape(n, -1)
    capacity = np.asarray(capacity, dtype=float)
    m = capacity.shape[0]
    duration = np.ones(n) if duration is None else np.asarray(duration, dtype=float)
    priced = demand[:, 0] if priced is None else np.asarray(priced, dtype=float)
    rq = request_rows(np.zeros(n), np.zeros(n), priced, duration, budget, np.zeros(n), np.zeros(n), np.full(n, np.inf),
                      demand)
    price = np.ones(m) if posted is None else np.asarray(posted, dtype=float)
    rs = resource_rows(np.zeros(m), np.zeros(m), price, np.ones(m), np.ones(m), np.ones(m), np.zeros(m), capacity)
    return RoundMarket(rq, demand, rs, capacity.copy(), np.arange(n), np.full(n, 0.1), budget, np.zeros(n),
                       tuple(weights), 100.0)


def test_one_unit_two_bids_clears_at_the_displaced_bid():
    """Capacity 1, bids of money value 3 and 5: the LP's duals in [3, 5]; the lowest, 3, is taken."""
    prog = WelfareProgram(np.ones((2, 1)), np.array([[1.0 * (1 + 1e-6)]]), np.arange(2), np.ones(2), np.zeros(2), 0.0)
    prog.add_pairs(np.array([0, 1]), np.array([0, 0]), np.array([3.0, 5.0]))
    lp = prog.solve_lp()
    assert lp.lam[0, 0] == pytest.approx(3.0)
    assert unit_prices(lp.lam, prog.req, prog.res, lp.x, np.ones((2, 1)), np.ones(2), np.ones(2), 1)[0] == \
        pytest.approx(3.0)
    # without the perturbation the dual is a vertex of [3, 5] (HiGHS 3 here, not guaranteed)
    plain = WelfareProgram(np.ones((2, 1)), np.array([[1.0]]), np.arange(2), np.ones(2), np.zeros(2), 0.0)
    plain.add_pairs(np.array([0, 1]), np.array([0, 0]), np.array([3.0, 5.0]))
    assert 3.0 - 1e-9 <= plain.solve_lp().lam[0, 0] <= 5.0 + 1e-9


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_clearing_price_of_a_hand_market_in_money(alpha):
    """Budgets 3 and 5 on one unit: b_ij(0) = alpha, money values 3 alpha and 5 alpha; price = dual = 3 alpha."""
    market = hand_market([3.0, 5.0], [[1.0, 0.0], [1.0, 0.0]], [[1.0, 1.0]], weights=(alpha, 0.0, 0.0, 0.0),
                         posted=[10.0])  # the posted price (over both budgets) plays no part
    result = clearing(market)
    assert result.converged
    assert result.prices.tolist() == pytest.approx([3.0 * alpha])
    assert result.lam[0, 0] == pytest.approx(3.0 * alpha)
    # a stay of 2 rounds: the same money for twice the unit-rounds, half the unit price
    two = hand_market([3.0, 5.0], [[1.0, 0.0], [1.0, 0.0]], [[1.0, 1.0]], weights=(alpha, 0.0, 0.0, 0.0),
                      duration=[2.0, 2.0])
    assert clearing_prices(two).tolist() == pytest.approx([1.5 * alpha])


def test_spare_capacity_clears_at_zero():
    market = hand_market([3.0, 5.0], [[1.0, 0.0], [1.0, 0.0]], [[4.0, 4.0], [4.0, 4.0]])
    assert clearing_prices(market).tolist() == [0.0, 0.0]
    assert price_gap(np.array([1.0, 2.0]), clearing_prices(market)) == 0.0


def test_two_resources_two_units_each():
    """Three bids 2, 4, 6 of one unit; two resources of one unit each: both clear at the displaced bid, 2."""
    market = hand_market([2.0, 4.0, 6.0], np.ones((3, 1)), [[1.0], [1.0]])
    assert clearing_prices(market).tolist() == pytest.approx([2.0, 2.0])


def test_price_gap_on_hand_made_arrays():
    posted = np.array([1.0, 3.0, 5.0, 7.0])
    clear = np.array([2.0, 2.0, 0.0, -1.0])  # only the first two have a positive clearing price
    assert price_gap(posted, clear) == pytest.approx((0.5 + 0.5) / 2)
    assert price_gap(np.array([1.0, 2.0]), np.array([4.0, 1.0])) == pytest.approx((0.75 + 1.0) / 2)
    assert price_gap(posted, np.zeros(4)) == 0.0
    assert price_gap(np.zeros(0), np.zeros(0)) == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_clearing_prices_are_non_negative_and_finite_on_random_markets(seed):
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 25)), int(rng.integers(1, 6))
    demand = rng.uniform(0.1, 2.0, (n, 2))
    capacity = rng.uniform(0.5, 4.0, (m, 2))
    w = rng.dirichlet(np.ones(4)) * np.array([1, 1, 1, 0])
    rq = request_rows(rng.uniform(0, 10, n), rng.uniform(0, 10, n), demand[:, 0], rng.integers(1, 4, n).astype(float),
                      rng.uniform(1, 20, n), rng.uniform(0, 0.5, n), rng.uniform(0, 0.5, n), np.full(n, np.inf), demand)
    rs = resource_rows(rng.uniform(0, 10, m), rng.uniform(0, 10, m), rng.uniform(0, 2, m), rng.uniform(0.4, 1, m),
                       rng.uniform(0.4, 1, m), rng.uniform(0, 1, m), np.zeros(m), capacity)
    free = capacity * rng.uniform(0.2, 1.0, (m, 1))
    market = RoundMarket(rq, demand, rs, free, rng.integers(0, 3, n), rng.uniform(0.1, 1, n), rq[:, 4], np.zeros(3),
                         (float(w[0]) + 0.1, float(w[1]), float(w[2]), 0.0), 20.0)
    result = clearing(market)
    assert result.prices.shape == (m,)
    assert np.all(np.isfinite(result.prices)) and np.all(result.prices >= 0)
    assert np.all(result.lam >= 0)
    assert math.isfinite(price_gap(rs[:, 2], result.prices))
