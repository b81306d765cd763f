"""The candidate kernel against the one feasibility rule, pair by pair (hypothesis).

:func:`market.core.candidates.find_candidates` scans clusters with shortcuts (columns in
price order, a budget cut, branch-free passes, a bucket sort); whatever it skips, its
answer must be the top K of the pairs that :func:`~market.core.candidates.feasible_utility`
(the rule the oracle uses) accepts, with that rule's utility bit for bit. The tie rule's
rotation is tested in ``tests/test_candidate_ties.py``; here only which utilities are kept.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from market.core.candidates import (
    RQ_DURATION,
    RQ_PRICED,
    RS_PRICE,
    feasible_utility,
    find_candidates,
    request_rows,
    resource_rows,
)
from market.core.eligibility import any_type
from market.core.hierarchy import nearest
from mechanisms.kernels import posted_price
from tests.test_candidate_ties import D_MAX, WEIGHTS


def random_market(seed: int, n: int, m: int, clusters: int, dims: int, typed: bool):
    """A small market with coarse values (so utilities tie), some free requests (priced quantity 0)
    and some infeasible pairs of every kind (capacity, free capacity, QoS, latency, budget, type)."""
    rng = np.random.default_rng(seed)
    coarse = lambda lo, hi, size: rng.choice(np.linspace(lo, hi, 4), size)  # noqa: E731
    capacity = coarse(0.5, 2.0, (m, dims))
    rs = resource_rows(
        coarse(-100, 100, m), coarse(-100, 100, m), coarse(0.5, 2.0, m), coarse(0.6, 1.0, m),
        coarse(0.6, 1.0, m), coarse(0.0, 1.0, m), rng.integers(0, 3, m) if typed else np.zeros(m), capacity,
    )
    demand = coarse(0.1, 1.0, (n, dims))
    rq = request_rows(
        coarse(-100, 100, n), coarse(-100, 100, n), np.where(rng.random(n) < 0.1, 0.0, demand[:, 0]),
        rng.integers(1, 4, n).astype(float),
        coarse(1.0, 20.0, n), coarse(0.0, 0.7, n), coarse(0.0, 0.7, n),
        np.where(rng.random(n) < 0.3, coarse(50, 200, n), np.inf), demand,
    )
    free = capacity * rng.choice([0.0, 0.5, 1.0, 1.0], (m, 1))
    labels = rng.integers(0, clusters, m)
    order = np.argsort(labels, kind="stable").astype(np.int64)
    start = np.searchsorted(labels[order], np.arange(clusters + 1)).astype(np.int64)
    routes = np.stack([rng.permutation(clusters)[:2] for _ in range(n)]) if clusters > 1 else np.zeros((n, 1), np.int64)
    routes = np.where(rng.random(routes.shape) < 0.2, -1, routes).astype(np.int64)
    allowed = rng.integers(0, 8, (n, 1)).astype(np.int64) if typed else any_type(n)
    return rq, demand, rs, free, order, start, routes, allowed


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 25),
    m=st.integers(1, 30),
    clusters=st.integers(1, 4),
    dims=st.integers(1, 3),
    k=st.integers(0, 6),
    typed=st.booleans(),
)
def test_candidates_are_the_top_k_of_the_feasibility_rule(seed, n, m, clusters, dims, k, typed):
    rq, need, rs, free, order, start, routes, allowed = random_market(seed, n, m, clusters, dims, typed)
    got = find_candidates(rq, need, rs, free, order, start, routes, k, WEIGHTS, D_MAX, allowed=allowed)
    alpha, beta, gamma, _ = WEIGHTS
    for i in range(n):
        scanned = [int(j) for c in routes[i] if c >= 0 for j in order[start[c]:start[c + 1]]]
        rule = {j: feasible_utility(rq, need, rs, free, allowed, i, j, alpha, beta, gamma, D_MAX) for j in scanned}
        feasible = {j: b for j, b in rule.items() if b >= 0}
        kept = got.resource[i][got.resource[i] >= 0]
        taken = set(kept.tolist())
        assert kept.size == min(k, len(feasible)) and len(taken) == kept.size  # distinct
        assert (got.resource[i][kept.size:] == -1).all()  # padding after the kept pairs
        util = got.utility[i, : kept.size]
        assert all(int(j) in feasible and feasible[int(j)] == b for j, b in zip(kept, util, strict=True))
        assert (np.diff(util) <= 0).all()  # best first
        left_out = [b for j, b in feasible.items() if j not in taken]
        if left_out and kept.size:
            assert max(left_out) <= util[-1]  # nothing better was skipped
        for q, j in enumerate(kept):
            reserve = rs[j, RS_PRICE] * rq[i, RQ_PRICED] * rq[i, RQ_DURATION]
            assert got.reserve[i, q] == reserve and got.posted[i, q] == posted_price(reserve, util[q])


@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    c=st.integers(1, 300),
    n=st.integers(1, 200),
    grid=st.booleans(),
    spread=st.sampled_from([1.0, 3.0, 1e-6]),
    workers=st.sampled_from([1, -1]),
)
def test_nearest_is_the_trees_answer(seed, c, n, grid, spread, workers):
    """Brute force (up to 64 centres) or grid search, the answer is ``cKDTree.query``'s, ties included.

    Points reach past the centres' box (``spread``); a box flat in one direction (1e-6)
    gives cells of a tiny width.
    """
    rng = np.random.default_rng(seed)
    draw = (lambda size: rng.integers(-3, 4, size).astype(float)) if grid else (lambda size: rng.uniform(-100, 100, size))
    centres = draw((c, 2))
    centres[:, 1] *= spread if spread < 1 else 1.0
    xy = draw((n, 2)) * (spread if spread > 1 else 1.0)
    k = int(rng.integers(1, c + 1))
    want = cKDTree(centres).query(xy, k=k)[1].reshape(n, k)
    assert np.array_equal(nearest(centres, xy, k, workers), want)


def test_nearest_on_many_points_and_odd_ones():
    """The threaded grid search (20,000+ points), far points (squares past the float range) and ties."""
    rng = np.random.default_rng(5)
    centres = rng.uniform(0, 200, (500, 2))
    xy = rng.uniform(-50, 250, (30_000, 2))
    xy[:2] = [[1e200, -1e200], [-1e200, 3.0]]
    xy[2:5] = centres[:3]  # on a centre
    xy[5] = (centres[0] + centres[1]) / 2  # halfway between two
    with np.errstate(over="ignore"):
        want = cKDTree(centres).query(xy, k=4)[1]
        for workers in (1, -1):
            assert np.array_equal(nearest(centres, xy, 4, workers), want)
    for k in (0, 501):  # the tree pads past C; a silent answer would be garbage
        with pytest.raises(ValueError, match=r"k must be in 1\.\.500"):
            nearest(centres, xy[:5], k)
