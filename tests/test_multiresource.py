"""Multi-resource round metrics: known values (DRF's example, hand-made nodes) and properties."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from market.core import multiresource as mr
from market.core.metrics import jain
from market.core.multiresource import (
    Envy,
    dominant_share_jain,
    dominant_shares,
    envy,
    fragmentation,
    per_user,
    typical_demand,
    unallocated_share,
    user_tasks,
    users_with_requests,
)
from mechanisms import create
from mechanisms import drf as drf_mechanism
from tests.test_drf import one_pool

PROPS = settings(max_examples=150, deadline=None, derandomize=True)

# --- the DRF paper's example: 9 CPUs, 18 GB; A's tasks <1 CPU, 4 GB> x3, B's <3 CPUs, 1 GB> x2

DRF_USER = np.array([0, 0, 0, 1, 1])
DRF_DEMAND = np.array([[1.0, 4.0]] * 3 + [[3.0, 1.0]] * 2)
DRF_CAPACITY = np.array([9.0, 18.0])
DRF_TASKS = np.array([[1.0, 4.0], [3.0, 1.0]])


def test_drf_example_dominant_shares_are_two_thirds_each():
    shares = dominant_shares(DRF_USER, DRF_DEMAND, DRF_CAPACITY, 2)
    # A: max(3/9, 12/18) = 2/3 (memory); B: max(6/9, 2/18) = 2/3 (cpu)
    assert shares == pytest.approx([2 / 3, 2 / 3])
    assert dominant_share_jain(shares, np.array([True, True])) == 1.0


def test_drf_example_is_envy_free():
    assert user_tasks(DRF_USER, DRF_DEMAND, 2) == pytest.approx(DRF_TASKS)
    assert envy(DRF_USER, DRF_DEMAND, DRF_TASKS) == Envy(count=0, share=0.0, pairs=2)


def test_drf_example_swapped_bundles_both_envy():
    # A holds B's <6, 2> and B holds A's <3, 12>: A runs min(6/1, 2/4) = 0.5 task, would run
    # min(3/1, 12/4) = 3 with B's; B runs min(3/3, 12/1) = 1, would run min(6/3, 2/1) = 2
    user = np.array([0, 1])
    bundles = np.array([[6.0, 2.0], [3.0, 12.0]])
    assert envy(user, bundles, DRF_TASKS) == Envy(count=2, share=1.0, pairs=2)


def test_same_definition_as_the_drf_mechanism():
    market = one_pool([([1.0, 4.0], 10), ([3.0, 1.0], 10)], [9.0, 18.0])
    alloc = create("drf").allocate(market, np.random.default_rng(0))
    served = alloc.choice >= 0
    ours = dominant_shares(
        market.user[served], market.demand[served], market.capacity.sum(axis=0), 2
    )
    assert ours == pytest.approx(drf_mechanism.dominant_shares(market, alloc.choice))
    assert ours == pytest.approx([2 / 3, 2 / 3])
    tasks = user_tasks(market.user, market.demand, 2)
    assert envy(market.user[served], market.demand[served], tasks).count == 0


# --- dominant shares and their Jain index


def test_dominant_shares_ignore_dimensions_without_capacity():
    # the second dimension has no capacity: 5 units of it count as nothing
    shares = dominant_shares(
        np.array([0, 2]), np.array([[1.0, 5.0], [4.0, 0.0]]), np.array([10.0, 0.0]), 4
    )
    assert shares.tolist() == [0.1, 0.0, 0.4, 0.0]


def test_dominant_shares_degenerate_inputs():
    assert dominant_shares(np.zeros(0, int), np.zeros((0, 3)), np.ones(3), 2).tolist() == [0.0, 0.0]
    assert dominant_shares(np.zeros(0, int), np.zeros((0, 3)), np.ones(3), 0).shape == (0,)
    assert dominant_shares(np.array([0]), np.zeros((1, 0)), np.zeros(0), 1).tolist() == [0.0]
    assert dominant_shares(np.array([0]), np.ones((1, 2)), np.zeros(2), 1).tolist() == [0.0]
    with pytest.raises(ValueError, match="user indices"):
        dominant_shares(np.array([2]), np.ones((1, 2)), np.ones(2), 2)
    with pytest.raises(ValueError, match="capacity_total"):
        dominant_shares(np.array([0]), np.ones((1, 2)), np.ones(3), 1)


def test_dominant_share_jain_counts_only_active_users():
    shares = np.array([0.5, 0.0, 0.7])
    # user 1 asked and got nothing (counts, share 0), user 2 had no request (left out)
    active = users_with_requests(np.array([0, 1, 1, 0]), 3)
    assert active.tolist() == [True, True, False]
    assert dominant_share_jain(shares, active) == pytest.approx(0.5)  # 0.5^2 / (2 * 0.25)
    assert dominant_share_jain(shares) == pytest.approx(jain(shares))


def test_dominant_share_jain_is_one_for_nobody_one_user_or_all_zero():
    assert dominant_share_jain(np.zeros(0)) == 1.0
    assert dominant_share_jain(np.array([0.3, 0.9]), np.array([False, False])) == 1.0
    assert dominant_share_jain(np.array([0.3, 0.9]), np.array([False, True])) == 1.0
    assert dominant_share_jain(np.zeros(4), np.ones(4, bool)) == 1.0


# --- envy


def test_hand_made_envy_has_exactly_one_envious_pair():
    # tasks: u0 <1, 1>, u1 <1, 0> (only d0 matters), u2 <0, 1>; u3 had no request (zero row)
    tasks = np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    # bundles x0 = <1, 1>, x1 = <2, 2> (two requests), x2 = <0, 3>, x3 = nothing
    user = np.array([0, 1, 1, 2])
    alloc = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [0.0, 3.0]])
    # u0 runs 1, with x1 would run 2 (envies u1), with x2 min(0, 3) = 0; u1 runs 2 > 1, 0;
    # u2 runs 3 > 1, 2: the one envious pair is (0, 1), of 3 * 2 ordered pairs
    assert envy(user, alloc, tasks) == Envy(count=1, share=1 / 6, pairs=6)
    # counting u3 too: it runs unboundedly many tasks (needs nothing), so it envies no one,
    # and nobody envies its empty bundle, but it adds pairs
    assert envy(user, alloc, tasks, active=np.ones(4, bool)) == Envy(
        count=1, share=1 / 12, pairs=12
    )


def test_envy_is_strict():
    tasks = np.array([[1.0, 2.0], [1.0, 2.0]])
    alloc = np.array([[2.0, 4.0], [2.0, 4.0 + 1e-13]])
    assert envy(np.array([0, 1]), alloc, tasks).count == 0


def test_envy_with_no_or_one_user_is_zero():
    assert envy(np.zeros(0, int), np.zeros((0, 2)), np.zeros((0, 2))) == Envy(0, 0.0, 0)
    assert envy(np.array([0]), np.ones((1, 2)), np.ones((1, 2))) == Envy(0, 0.0, 0)
    # nobody allocated anything: nobody can envy an empty bundle
    assert envy(np.zeros(0, int), np.zeros(0), np.ones((3, 2))) == Envy(0, 0.0, 6)


def brute_envy(user, alloc, tasks, active):
    bundle = per_user(user, alloc, len(tasks))

    def run(u, x):
        need = tasks[u] > 0
        return min(x[need] / tasks[u][need]) if need.any() else np.inf

    users = np.flatnonzero(active)
    return sum(
        run(u, bundle[v]) > run(u, bundle[u]) * (1 + 1e-9)
        for u, v in itertools.permutations(users, 2)
    )


def test_envy_counts_like_brute_force_and_estimates_on_a_sample(monkeypatch):
    rng = np.random.default_rng(7)
    n_users, d = 40, 3
    tasks = rng.integers(0, 3, size=(n_users, d)).astype(float)
    user = rng.integers(0, n_users, size=120)
    alloc = rng.integers(0, 4, size=(120, d)).astype(float)
    active = rng.random(n_users) < 0.8
    whole = envy(user, alloc, tasks, active)
    assert whole.count == brute_envy(user, alloc, tasks, active) > 0
    # above ENVY_SAMPLE users: the share among evenly spaced users, scaled to every pair
    monkeypatch.setattr(mr, "ENVY_SAMPLE", 10)
    kept = np.flatnonzero(active)[np.linspace(0, active.sum() - 1, 10).round().astype(int)]
    sample_active = np.zeros(n_users, dtype=bool)
    sample_active[kept] = True
    exact_sample = brute_envy(user, alloc, tasks, sample_active)
    estimate = envy(user, alloc, tasks, active)
    assert estimate.pairs == whole.pairs
    assert estimate.share == pytest.approx(exact_sample / 90)
    assert estimate.count == round(exact_sample / 90 * whole.pairs)


# --- unallocated share and fragmentation on three hand-made nodes (cpu, mem GB, gpu)

CAPACITY = np.array([[32.0, 128.0, 8.0], [16.0, 64.0, 4.0], [8.0, 32.0, 4.0]])
FREE = np.array(
    [
        [16.0, 64.0, 2.0],  # hosts the typical <4, 16, 1>
        [1.0, 32.0, 4.0],  # 4 GPUs free but 1 cpu: all 4 stranded
        [8.0, 32.0, 0.5],  # half a GPU: too small
    ]
)
GPU = 2
TYPICAL = np.array([4.0, 16.0, 1.0])


def test_unallocated_share_of_three_nodes():
    assert unallocated_share(FREE, CAPACITY, GPU) == 6.5 / 16
    assert unallocated_share(FREE, CAPACITY, 0) == 25 / 56
    assert unallocated_share(FREE, CAPACITY, -1) == 6.5 / 16


def test_fragmentation_of_three_nodes():
    assert fragmentation(FREE, CAPACITY, TYPICAL, GPU) == 4.5 / 16
    # a typical request wanting no memory: node 1 still lacks cpu, node 2 gpu
    assert fragmentation(FREE, CAPACITY, np.array([4.0, 0.0, 1.0]), GPU) == 4.5 / 16
    # a 2-GPU request fits node 0 exactly (free 2): 4.5 still stranded
    assert fragmentation(FREE, CAPACITY, np.array([2.0, 1.0, 2.0]), GPU) == 4.5 / 16
    # with 1 cpu, node 1 fits it too: only node 2's half GPU is stranded
    assert fragmentation(FREE, CAPACITY, np.array([1.0, 1.0, 2.0]), GPU) == 0.5 / 16
    # a 5-GPU request fits nowhere: every free GPU is fragmented
    assert fragmentation(FREE, CAPACITY, np.array([1.0, 1.0, 5.0]), GPU) == 6.5 / 16
    # a small request fits everywhere
    assert fragmentation(FREE, CAPACITY, np.array([1.0, 1.0, 0.5]), GPU) == 0.0


def test_fragmentation_without_typical_request_or_capacity_is_zero():
    assert fragmentation(FREE, CAPACITY, None, GPU) == 0.0
    assert fragmentation(FREE, CAPACITY, np.zeros(0), GPU) == 0.0
    assert fragmentation(FREE, CAPACITY, typical_demand(np.zeros((0, 3))), GPU) == 0.0
    assert fragmentation(FREE, CAPACITY, np.zeros(3), GPU) == 0.0
    no_gpu = CAPACITY * np.array([1.0, 1.0, 0.0])
    free = FREE * np.array([1.0, 1.0, 0.0])
    assert fragmentation(free, no_gpu, TYPICAL, GPU) == 0.0
    assert unallocated_share(free, no_gpu, GPU) == 0.0
    assert unallocated_share(np.zeros((0, 3)), np.zeros((0, 3)), GPU) == 0.0
    assert fragmentation(np.zeros((0, 3)), np.zeros((0, 3)), TYPICAL, GPU) == 0.0


def test_round_off_below_zero_counts_as_nothing_free():
    free = FREE.copy()
    free[0, GPU] = -1e-15
    assert unallocated_share(free, CAPACITY, GPU) == 4.5 / 16
    assert fragmentation(free, CAPACITY, TYPICAL, GPU) == 4.5 / 16


def test_typical_demand_is_the_median():
    demand = np.array([[1.0, 8.0, 1.0], [4.0, 16.0, 1.0], [8.0, 64.0, 2.0]])
    assert typical_demand(demand).tolist() == [4.0, 16.0, 1.0]
    assert typical_demand(np.zeros((0, 3))) is None


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="free and capacity"):
        unallocated_share(FREE[:2], CAPACITY, GPU)
    with pytest.raises(ValueError, match="dim"):
        fragmentation(FREE, CAPACITY, TYPICAL, 3)
    with pytest.raises(ValueError, match="typical_demand"):
        fragmentation(FREE, CAPACITY, TYPICAL[:2], GPU)
    with pytest.raises(ValueError, match="demand_alloc"):
        envy(np.array([0]), np.ones((1, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="active"):
        envy(np.array([0]), np.ones((1, 2)), np.ones((2, 2)), active=np.ones(3, bool))


# --- properties

amounts = st.floats(0.0, 100.0, allow_nan=False, allow_infinity=False)


@st.composite
def allocations(draw):
    """Requests of up to 8 users in D dims, and a total capacity they fit in."""
    d = draw(st.integers(0, 4))
    s = draw(st.integers(0, 30))
    n_users = draw(st.integers(1, 8))
    user = draw(hnp.arrays(np.int64, s, elements=st.integers(0, n_users - 1)))
    demand = draw(hnp.arrays(float, (s, d), elements=amounts))
    slack = draw(hnp.arrays(float, d, elements=st.floats(1.0, 3.0)))
    capacity = demand.sum(axis=0) * slack  # 0 where nothing is demanded: ignored dims
    return user, demand, capacity, n_users


@PROPS
@given(allocations())
def test_dominant_shares_of_feasible_allocations_lie_in_0_1(case):
    user, demand, capacity, n_users = case
    shares = dominant_shares(user, demand, capacity, n_users)
    assert shares.shape == (n_users,)
    assert np.all(np.isfinite(shares))
    assert np.all((shares >= 0) & (shares <= 1 + 1e-12))
    j = dominant_share_jain(shares, users_with_requests(user, n_users))
    assert np.isfinite(j) and 0 < j <= 1


@PROPS
@given(allocations(), st.integers(0, 2**32 - 1))
def test_envy_share_lies_in_0_1_and_matches_brute_force(case, seed):
    user, demand, _, n_users = case
    rng = np.random.default_rng(seed)
    served = rng.random(user.size) < 0.7
    tasks = user_tasks(user, demand, n_users)
    active = users_with_requests(user, n_users)
    result = envy(user[served], demand[served], tasks, active)
    assert 0 <= result.count <= result.pairs == active.sum() * (active.sum() - 1)
    assert np.isfinite(result.share) and 0.0 <= result.share <= 1.0
    assert result.count == brute_envy(user[served], demand[served], tasks, active)


@st.composite
def nodes(draw):
    """``(free, capacity, typical, dim)`` with ``0 <= free <= capacity``."""
    d = draw(st.integers(1, 4))
    m = draw(st.integers(0, 10))
    capacity = draw(hnp.arrays(float, (m, d), elements=amounts))
    used = draw(hnp.arrays(float, (m, d), elements=st.floats(0.0, 1.0)))
    free = capacity * (1.0 - used)
    typical = draw(st.none() | hnp.arrays(float, d, elements=amounts))
    return free, capacity, typical, draw(st.integers(0, d - 1))


@PROPS
@given(nodes())
def test_fragmentation_is_at_most_the_unallocated_share(case):
    free, capacity, typical, dim = case
    idle = unallocated_share(free, capacity, dim)
    frag = fragmentation(free, capacity, typical, dim)
    assert np.isfinite(idle) and np.isfinite(frag)
    assert 0.0 <= frag <= idle <= 1.0 + 1e-12
