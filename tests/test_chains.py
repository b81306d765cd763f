"""mechanisms.chains: MOHAF's two greedy chains side by side give what each gives alone, on any thread count."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

from mechanisms.base import SubMarket
from mechanisms.chains import directed_key, greedy_chain, two_chains
from mechanisms.improve import reinsert
from mechanisms.kernels import lazy_greedy
from mechanisms.lagrangian import capacity_prices
from mechanisms.mohaf import MOHAF, capacity_share, priced_gain
from tests.test_mechanisms import random_submarket


def _order(market, size):
    """Re-insertion's order as MOHAF sets it: best pair value over size, descending (stable)."""
    return np.argsort(-(np.where(market.valid, market.utility, -np.inf).max(axis=1) / size), kind="stable")


def _by_parts(market, size, order, passes, width, iterations, step):
    """The two chains from the separate kernels, one call after another (MOHAF's steps 1-2 as written)."""
    args = (market.demand, market.capacity, market.user, market.priority, market.user_won,
            float(market.fairness_weight))
    net = market.utility
    first = lazy_greedy(market.candidates, net, *args, size)
    price = capacity_prices(market.candidates, priced_gain(market), market.demand, market.capacity, iterations, step)
    key = np.where(market.valid, net - price, 0.0)
    key += 1e-9 - min(0.0, float(key.min()))  # numpy's reading of the shift
    directed = lazy_greedy(market.candidates, key, *args, np.ones(market.n_requests))
    if passes:
        first, directed = (reinsert(c, order, market.candidates, net, *args, passes, width) for c in (first, directed))
    return first, directed, key


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("seed", range(12))
def test_two_chains_equal_the_chains_run_one_after_another(seed, threads):
    rng = np.random.default_rng(seed)
    dims = int(rng.integers(1, 4))
    m = int(rng.integers(1, 9))
    market = random_submarket(rng, n=int(rng.integers(1, 60)), m=m, k=min(4, m),
                              delta=float(rng.choice([0.0, 0.5])), users=5, dims=dims)
    size = capacity_share(market)
    order = _order(market, size)
    passes = int(rng.integers(0, 3))
    first, directed, key = _by_parts(market, size, order, passes, 8, 10, 0.2)
    assert np.array_equal(directed_key(market.candidates, market.utility,
                                       capacity_prices(market.candidates, priced_gain(market), market.demand,
                                                       market.capacity, 10, 0.2)), key)
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        both = two_chains(market.candidates, market.utility, priced_gain(market), market.demand, market.capacity,
                          market.user, market.priority, market.user_won, float(market.fairness_weight), size,
                          order, passes, 8, 10, 0.2)
    finally:
        numba.set_num_threads(before)
    assert [c.tolist() for c in both] == [first.tolist(), directed.tolist()]
    # the prices handed in (MOHAF's bid_prices = "round" has them already) give the same
    known = two_chains(market.candidates, market.utility, priced_gain(market), market.demand, market.capacity,
                       market.user, market.priority, market.user_won, float(market.fairness_weight), size,
                       order, passes, 8, 10, 0.2,
                       capacity_prices(market.candidates, priced_gain(market), market.demand, market.capacity, 10, 0.2))
    assert [c.tolist() for c in known] == [first.tolist(), directed.tolist()]
    alone = greedy_chain(market.candidates, market.utility, market.utility, market.demand, market.capacity,
                         market.user, market.priority, market.user_won, float(market.fairness_weight), size, order,
                         passes, 8)
    assert np.array_equal(alone, first)


def test_directed_key_shifts_a_nan_minimum_as_python_min_does():
    """numpy's key.min() is NaN if a key is; min(0.0, nan) is 0.0, so the shift is 1e-9."""
    cand = np.array([[0, -1]])
    key = directed_key(cand, np.array([[np.nan, 0.0]]), np.zeros((1, 2)))
    assert np.isnan(key[0, 0]) and key[0, 1] == 1e-9


def test_mohaf_without_price_steps_runs_the_first_chain_alone():
    market = random_submarket(np.random.default_rng(3), n=40, m=5, k=4, delta=0.5, users=5)
    size = capacity_share(market)
    order = _order(market, size)
    first, _, _ = _by_parts(market, size, order, 1, 8, 10, 0.2)
    assert MOHAF(prices=0).allocate(market, np.random.default_rng(0)).choice.tolist() == first.tolist()


@pytest.mark.parametrize("params", [{}, {"improve": 0}, {"prices": 0}, {"prices": 0, "improve": 0}])
def test_mohaf_never_serves_a_pair_whose_utility_is_not_a_number(params):
    """Re-insertion placed a NaN pair that the greedy leaves (NaN compares false with every bound)."""
    cand = np.array([[0, 1]])
    market = SubMarket(
        demand=np.array([[1.0]]), budget=np.array([5.0]), bid_scale=np.ones(1), priority=np.ones(1),
        user=np.zeros(1, dtype=np.int64), candidates=cand, utility=np.array([[np.nan, 0.5]]),
        reserve=np.ones((1, 2)), posted=np.ones((1, 2)), capacity=np.array([[1.0], [0.5]]), user_won=np.zeros(1),
        fairness_weight=0.0, resource_ids=np.arange(2), request_ids=np.arange(1),
    )  # the 0.5 pair does not fit: only the NaN pair would
    alloc = MOHAF(**params).allocate(market, np.random.default_rng(0))
    assert alloc.choice.tolist() == [-1] and alloc.payment.tolist() == [0.0]


# a thread that still allocates while the interpreter shuts down: the helper thread's
# executor takes no more work then, and the chains must run in turn instead of failing
SHUTDOWN = """
import threading, numpy as np
from mechanisms.mohaf import MOHAF
from tests.test_mechanisms import random_submarket
market = random_submarket(np.random.default_rng(1), n=40, m=5, k=4, delta=0.5, users=5)
MOHAF().allocate(market, np.random.default_rng(0))  # the helper thread starts
expected = MOHAF().allocate(market, np.random.default_rng(0)).choice.tolist()
def work():
    for _ in range(100):
        assert MOHAF().allocate(market, np.random.default_rng(0)).choice.tolist() == expected
    print("finished", flush=True)
threading.Thread(target=work).start()
"""


def test_mohaf_allocates_in_a_thread_that_outlives_the_main_thread():
    proc = subprocess.run([sys.executable, "-c", SHUTDOWN], check=False, capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0 and proc.stdout.split() == ["finished"], proc.stderr[-2000:]
