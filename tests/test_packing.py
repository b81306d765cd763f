"""best_fit and dot_product: the packing rules on hand-made markets, against a reference, in any D."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mechanisms
from market.errors import MarketInputError
from mechanisms import create
from mechanisms.checks import build_market, check_allocation, check_mechanism, random_market
from mechanisms.kernels import fit_slack
from mechanisms.packing import dimension_scale

PACKERS = ("best_fit", "dot_product")


def choose(name: str, market, **params) -> list[int]:
    return create(name, **params).allocate(market, np.random.default_rng(0)).choice.tolist()


def test_they_are_registered_and_declared():
    assert {"best_fit", "dot_product"} <= set(mechanisms.available())
    for name in PACKERS:
        cls = mechanisms.mechanism_class(name)
        assert cls.truthful is False and cls.flat is False
        assert create(name).name == name


@pytest.mark.parametrize("name", PACKERS)
def test_they_pass_the_conformance_check(name):
    assert check_mechanism(create(name)) > 0
    assert check_mechanism(create(name, payment="reserve")) > 0


def test_a_bad_payment_is_rejected():
    with pytest.raises(MarketInputError, match="payment must be one of"):
        mechanisms.create("best_fit", payment="bid")


def test_best_fit_fills_the_exact_node_and_dot_product_takes_the_aligned_one():
    """A cpu-heavy request (2 cpu, 0.5 mem) and three nodes, listed C, B, A.

    A (2, 0.5) fits it exactly, B (4, 1) has the same shape, C (2.5, 4) is big in memory.
    Scales are the largest capacities, (4, 4), so the request is q = (0.5, 0.125).
    best_fit, residual left: A 0 + 0 = 0, B 0.5 + 0.125, C 0.125 + 0.875: A.
    dot_product, q . r before placement: A 0.25 + 0.015625 = 0.265625,
    B 0.5 + 0.03125 = 0.53125, C 0.3125 + 0.125 = 0.4375: B, although C has more room in
    total (1.625 against B's 1.25): alignment, not size.
    """
    capacity = np.array([[2.0, 0.5], [4.0, 1.0], [2.5, 4.0]])  # A, B, C
    market = build_market(np.array([[2, 1, 0]]), np.array([[2.0, 0.5]]), capacity)
    assert dimension_scale(market.capacity).tolist() == [4.0, 4.0]
    assert choose("best_fit", market) == [2]  # column 2 is A
    assert choose("dot_product", market) == [1]  # column 1 is B


def test_best_fit_keeps_the_big_node_for_a_big_request_that_comes_later():
    """Nodes A (1, 1) and B (4, 4); a small (1, 1) request, then a big (4, 4) one.

    best_fit puts the small one on A (nothing left over) and the big one on B; dot_product
    puts the small one on B (q . r = 0.5 against 0.125 on A), and then the big one fits
    nowhere: the fragmentation best fit avoids here.
    """
    market = build_market(np.array([[0, 1], [0, 1]]), np.array([[1.0, 1.0], [4.0, 4.0]]),
                          np.array([[1.0, 1.0], [4.0, 4.0]]))
    assert choose("best_fit", market) == [0, 1]
    assert choose("dot_product", market) == [1, -1]


def test_units_do_not_matter():
    """Memory in MiB instead of GiB (x 1024, exact in binary floating point): same choices."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        market = random_market(rng, 25, 4, 3, dims=3)
        unit = np.array([1.0, 1024.0, 1.0])
        scaled = replace(market, demand=market.demand * unit, capacity=market.capacity * unit)
        for name in PACKERS:
            assert choose(name, scaled) == choose(name, market)


def test_requests_are_served_in_arrival_order_not_by_value():
    """One slot; the second request has the higher budget, priority and utility, the first gets it."""
    market = build_market(np.zeros((2, 1)), np.ones((2, 2)), np.ones((1, 2)),
                          budget=np.array([2.0, 9.0]), priority=np.array([0.1, 1.0]),
                          utility=np.array([[0.1], [1.0]]))
    for name in PACKERS:
        assert choose(name, market) == [0, -1]


def test_ties_go_to_the_lower_column():
    """Three identical nodes listed as resources 2, 0, 1: column 0 (resource 2) each time it has room."""
    market = build_market(np.tile([2, 0, 1], (3, 1)), np.ones((3, 2)), np.ones((3, 2)))
    for name in PACKERS:
        # the first takes column 0; then node 2 is full, so nodes 0 and 1 tie: column 1 first
        assert choose(name, market) == [0, 1, 2]


def test_a_gpu_dimension_with_no_capacity_on_some_nodes():
    """D = 3 (cpu, mem, gpu): a cpu-only request skips the gpu node under best_fit, a gpu
    request can only go to it; a dimension with no capacity anywhere gets scale 1."""
    capacity = np.array([[8.0, 32.0, 0.0], [8.0, 32.0, 4.0]])
    demand = np.array([[2.0, 4.0, 0.0], [2.0, 4.0, 1.0]])
    market = build_market(np.tile([1, 0], (2, 1)), demand, capacity)
    assert choose("best_fit", market) == [1, 0]  # cpu-only on the cpu node, gpu on the gpu node
    assert choose("dot_product", market) == [0, 0]  # equal alignment (gpu demand 0): the lower column
    assert dimension_scale(np.array([[1.0, 0.0], [3.0, 0.0]])).tolist() == [3.0, 1.0]
    assert dimension_scale(np.empty((0, 3))).tolist() == [1.0, 1.0, 1.0]


def test_payments_are_the_posted_price_and_unaffordable_pairs_are_skipped():
    market = build_market(np.array([[0, 1]]), np.ones((1, 2)), np.array([[1.0, 1.0], [5.0, 5.0]]),
                          budget=np.array([3.0]), reserve=np.array([[1.0, 2.0]]), utility=np.array([[0.5, 1.0]]))
    for name in PACKERS:
        alloc = create(name).allocate(market, np.random.default_rng(0))
        c = int(alloc.choice[0])
        assert alloc.payment[0] == market.posted[0, c]
        reserve = create(name, payment="reserve").allocate(market, np.random.default_rng(0))
        assert reserve.payment[0] == market.reserve[0, int(reserve.choice[0])]
    # best_fit prefers node 0 (exact); make that pair cost more than the budget: node 1
    dear = replace(market, posted=np.array([[3.5, 2.0]]))
    assert choose("best_fit", market) == [0]
    assert choose("best_fit", dear) == [1]


# --- a reference implementation, and a property test over D = 1..4 --------------------------


def reference(market, rule: str) -> list[int]:
    """The rule spelled out in Python, one request after another."""
    scale = dimension_scale(market.capacity)
    res = np.array(market.capacity, dtype=float)
    out = []
    for i in range(market.n_requests):
        best, best_score = -1, 0.0
        for c, j in enumerate(market.candidates[i]):
            if j < 0 or market.posted[i, c] > market.budget[i]:
                continue
            if not np.all(res[j] + fit_slack(market.capacity[j]) >= market.demand[i]):  # the kernels' test
                continue
            score = 0.0
            for d in range(res.shape[1]):
                if rule == "best_fit":
                    score -= (res[j, d] - market.demand[i, d]) / scale[d]
                else:
                    score += (market.demand[i, d] / scale[d]) * (res[j, d] / scale[d])
            if best < 0 or score > best_score:
                best, best_score = c, score
        if best >= 0:
            res[market.candidates[i, best]] -= market.demand[i]
        out.append(best)
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 30), m=st.integers(0, 6), k=st.integers(0, 5),
       dims=st.integers(1, 4))
def test_they_follow_their_rule_in_any_dimension(seed, n, m, k, dims):
    market = random_market(np.random.default_rng(seed), n, m, k, dims=dims)
    for name in PACKERS:
        alloc = create(name).allocate(market, np.random.default_rng(0))
        check_allocation(market, alloc, f"{name} D={dims}")
        assert alloc.choice.tolist() == reference(market, name)
        # nobody unserved had a candidate it could still take: capacity only shrinks
        used = np.zeros_like(market.capacity)
        served = np.flatnonzero(alloc.choice >= 0)
        np.add.at(used, market.candidates[served, alloc.choice[served]], market.demand[served])
        left = market.capacity - used
        for i in np.flatnonzero(alloc.choice < 0):
            for c, j in enumerate(market.candidates[i]):
                affordable = market.posted[i, c] <= market.budget[i]
                assert j < 0 or not affordable or np.any(left[j] + fit_slack(market.capacity[j]) < market.demand[i])
