"""Candidates of equal utility are spread over requests by their key: identical resources share the load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market.core.candidates import (
    RQ_DEMAND,
    RS_CAPACITY,
    find_candidates,
    request_rows,
    resource_rows,
)
from market.core.model import MarketModel, auto_candidates
from scenarios.config import parse
from scenarios.tables import MarketData

WEIGHTS = (0.4, 0.3, 0.1, 0.2)
D_MAX = 200 * np.sqrt(2)


def _resources(m: int, price: float = 0.5) -> np.ndarray:
    """``m`` identical resources for the kernel: 2 cpu, 2 mem, at ``price``."""
    one = np.ones(m)
    return resource_rows(0 * one, 0 * one, price * one, 0.99 * one, 0.99 * one, one, 0 * one, np.full((m, 2), 2.0))


def _requests(n: int) -> np.ndarray:
    """``n`` requests for 1 cpu and 1 mem, budget 10, no QoS threshold."""
    one = np.ones(n)
    # different requests; every resource is as near as the others
    return request_rows(np.linspace(-50, 50, n), 0 * one, one, one, 10 * one, 0 * one, 0 * one, np.inf * one,
                        np.ones((n, 2)))


def _candidates(rq: np.ndarray, rs: np.ndarray, k: int, keys: np.ndarray | None = None):
    n, m = rq.shape[0], rs.shape[0]
    return find_candidates(rq, rq[:, RQ_DEMAND:].copy(), rs, rs[:, RS_CAPACITY:].copy(), np.arange(m), np.array([0, m]),
                           np.zeros((n, 1), dtype=np.int64), k, WEIGHTS, D_MAX, keys)


def test_a_cut_level_of_identical_resources_is_taken_from_the_keys_member_on():
    cand = _candidates(_requests(8), _resources(6), 2)
    # key k keeps members k, k+1 (mod 6): every resource is first of some request, and in two rows' K
    assert cand.resource.tolist() == [[k % 6, (k + 1) % 6] for k in range(8)]
    assert (cand.utility == cand.utility[:, :1]).all()  # one level per row
    # the key, not the row, decides: rows with keys 3, 4, ... are those of keys 3, 4, ...
    shifted = _candidates(_requests(8), _resources(6), 2, keys=np.arange(3, 11))
    assert shifted.resource.tolist() == [[k % 6, (k + 1) % 6] for k in range(3, 11)]
    assert np.bincount(cand.resource[:6, 0], minlength=6).tolist() == [1] * 6


def test_a_better_resource_comes_first_and_the_tie_fills_the_rest():
    rs = np.vstack([_resources(4), _resources(1, price=0.1)])  # resource 4 is cheaper: higher utility
    cand = _candidates(_requests(8), rs, 3)
    assert (cand.resource[:, 0] == 4).all()
    assert cand.resource[:, 1:].tolist() == [[k % 4, (k + 1) % 4] for k in range(8)]
    assert (cand.utility[:, 0] > cand.utility[:, 1]).all() and (cand.utility[:, 1] == cand.utility[:, 2]).all()


def test_a_level_kept_whole_is_listed_from_the_keys_member():
    cand = _candidates(_requests(5), _resources(4), 4)
    assert cand.resource.tolist() == [[(k + s) % 4 for s in range(4)] for k in range(5)]
    # more room than pairs: the same rotation, padded with -1
    wide = _candidates(_requests(2), _resources(3), 5)
    assert wide.resource.tolist() == [[0, 1, 2, -1, -1], [1, 2, 0, -1, -1]]


def _market(cpu: float, mem: float, n: int = 8, m: int = 4) -> MarketData:
    res = pd.DataFrame({
        "resource_id": np.arange(m), "cpu": 2.0, "mem": 2.0, "unit_cost": 0.5, "reliability": 0.99,
        "availability": 0.99, "energy_efficiency": 0.8, "x": 0.0, "y": 0.0, "owner_id": 0,
    })
    req = pd.DataFrame({
        "request_id": np.arange(n), "user_id": np.arange(n), "round": 0, "cpu": cpu, "mem": mem, "budget": 10.0,
        "priority": 5.0, "x": np.linspace(-50, 50, n), "y": 0.0, "duration": 1, "min_reliability": 0.0,
        "min_availability": 0.0, "max_latency": np.inf,
    })
    return MarketData(req, res, priority_max=10.0)


# K = 2 of the 4 machines: every request sees only half of them, so ties must spread
SCENARIO = parse({"name": "ties", "rounds": 1, "mechanisms": ["mohaf", "greedy", "first_price"],
                  "market": {"source": "synthetic"}, "clustering": {"candidates": 2}}, "ties.toml", Path("."))


@pytest.mark.parametrize("mechanism", ["mohaf", "greedy", "first_price"])
@pytest.mark.parametrize(("cpu", "mem"), [(1.0, 1.0), (1.0, 0.5), (0.5, 1.0)], ids=["both", "cpu-bound", "mem-bound"])
def test_identical_machines_serve_a_book_that_fills_them(mechanism, cpu, mem):
    """4 identical machines (cpu 2, mem 2), 8 requests of which each machine holds two, K = 2."""
    model = MarketModel(SCENARIO, mechanism, rng=0, market=_market(cpu, mem))
    assert model.params_k == 2
    assert auto_candidates(4) == 4  # the default: every machine of a small market
    model.step()
    out = model.record.outcome
    assert (out.resource >= 0).all()  # all 8 served (with the lowest index first: 4, on machines 0 and 1)
    assert np.bincount(out.resource, minlength=4).tolist() == [2, 2, 2, 2]
    assert model.metrics["satisfaction"] == 1.0
