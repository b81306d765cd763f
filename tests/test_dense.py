"""The round's shortcuts give what they replace: dense renumbering, strategy groups, scan order."""

import pickle
from dataclasses import dataclass

import numpy as np
import pytest

from agents.user import strategy_groups
from market.core.candidates import Candidates, find_candidates, request_rows, resource_rows
from market.core.dense import dense_unique, group_order, lookup_table, unique_inverse
from market.core.workspace import Workspace


@pytest.mark.parametrize("seed", range(20))
def test_dense_unique_is_np_unique_and_leaves_the_table_blank(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 300))
    ids = rng.integers(0, size, int(rng.integers(0, 500)))
    table = lookup_table(size)
    for _ in range(2):  # the same table twice: left blank by the first call
        distinct, inverse = dense_unique(ids, table)
        want, want_inverse = np.unique(ids, return_inverse=True)
        assert distinct.tolist() == want.tolist() and inverse.tolist() == want_inverse.tolist()
        assert distinct.dtype == np.int64 and inverse.dtype == np.int64
        assert (table == -1).all()
    out = np.full(ids.size, 7, dtype=np.int64)  # a kept buffer, stale contents
    distinct, inverse = dense_unique(ids, table, out)
    assert inverse is out and out.tolist() == np.unique(ids, return_inverse=True)[1].tolist()
    with pytest.raises(ValueError, match="out: a writable C-contiguous int64 array"):
        dense_unique(ids, table, np.empty(ids.size + 1, dtype=np.int64))
    frozen = np.empty(ids.size, dtype=np.int64)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        dense_unique(ids, table, frozen)


@pytest.mark.parametrize(
    "ids",
    [
        np.zeros(0, dtype=np.int64),
        np.array([5, -3, 5]),
        np.array([10**12, 7, 7]),
        np.array([3, 1, 3, 0, 1]),
    ],
)
def test_unique_inverse_is_np_unique_for_any_ids(ids):
    distinct, inverse = unique_inverse(ids)
    want, want_inverse = np.unique(ids, return_inverse=True)
    assert distinct.tolist() == want.tolist() and inverse.tolist() == want_inverse.tolist()


@pytest.mark.parametrize(
    ("low", "high"), [(-1, 9), (-1, 1000), (0, 32_767), (-32_768, 5), (-1, 40_000), (-(2**40), 2**40)]
)
def test_group_order_is_a_stable_argsort(low, high):
    rng = np.random.default_rng(high)
    for n in (0, 1, 7, 5_000):
        labels = rng.integers(low, high + 1, n)
        labels[: n // 3] = high  # the extremes, and long runs of one label
        labels[n // 3 : n // 2] = low
        got = group_order(labels)
        assert got.dtype == np.int64
        assert got.tolist() == np.argsort(labels, kind="stable").tolist()


@pytest.mark.parametrize("labels", [[0.5, 0.2, -0.7, 0.1], [True, False, True], np.array([3, 1, 2], dtype=np.uint64)])
def test_group_order_of_other_labels_is_the_stable_argsort(labels):
    """Floats are not truncated to 16 bits; booleans and wide integers sort as they are."""
    assert group_order(np.asarray(labels)).tolist() == np.argsort(np.asarray(labels), kind="stable").tolist()


@dataclass(frozen=True)
class _Strategy:
    level: float


class _User:
    def __init__(self, index, strategy):
        self.index, self.strategy = index, strategy


@pytest.mark.parametrize("seed", range(30))
def test_strategy_groups_match_grouping_by_equality(seed):
    rng = np.random.default_rng(seed)
    objects = [_Strategy(float(rng.integers(0, 3))) for _ in range(int(rng.integers(1, 6)))] + [
        object()
    ]
    users = [
        _User(int(i), objects[int(rng.integers(0, len(objects)))])
        for i in rng.permutation(int(rng.integers(0, 60)))
    ]
    want: dict = {}
    for user in users:  # the rule: equal strategies are one group, keyed by the first user's object
        want.setdefault(user.strategy, []).append(user.index)
    got = strategy_groups(users)
    assert [id(k) for k in got] == [id(k) for k in want]
    assert all(got[k].dtype == np.int64 and got[k].tolist() == want[k] for k in want)


def _candidate_market(rng: np.random.Generator) -> tuple:
    """A candidate search's arguments: 300 requests, 60 resources in 4 clusters, many ties."""
    n, m, clusters = 300, 60, 4
    demand = rng.uniform(0.1, 2.0, (n, 2))
    rq = request_rows(
        rng.uniform(0, 100, n),
        rng.uniform(0, 100, n),
        demand[:, 0],
        rng.integers(1, 4, n).astype(float),
        rng.uniform(5, 50, n),
        rng.uniform(0, 0.9, n),
        rng.uniform(0, 0.9, n),
        np.full(n, np.inf),
        demand,
    )
    # a coarse price grid: many pairs of equal utility, so ties and cut levels are exercised
    rs = resource_rows(
        rng.uniform(0, 100, m),
        rng.uniform(0, 100, m),
        rng.choice([0.5, 1.0], m),
        np.full(m, 0.95),
        np.full(m, 0.95),
        np.zeros(m),
        np.zeros(m),
        np.full((m, 2), 4.0),
    )
    labels = rng.integers(0, clusters, m)
    order = np.argsort(labels, kind="stable")
    start = np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=clusters))]).astype(
        np.int64
    )
    routes = np.stack([rng.permutation(clusters)[:2] for _ in range(n)]).astype(np.int64)
    args = (
        rq,
        demand,
        rs,
        np.full((m, 2), 4.0),
        order,
        start,
        routes,
        5,
        (0.4, 0.3, 0.1, 0.2),
        200.0,
        np.arange(n, dtype=np.int64) * 7,
    )
    return args


def _same(a, b) -> None:
    for x, y in zip((a.resource, a.utility, a.reserve, a.posted), (b.resource, b.utility, b.reserve, b.posted),
                    strict=True):
        assert x.tobytes() == y.tobytes()


def test_candidates_do_not_depend_on_the_scan_order():
    rng = np.random.default_rng(3)
    args = _candidate_market(rng)
    plain = find_candidates(*args)
    _same(plain, find_candidates(*args, scan=rng.permutation(args[0].shape[0])))
    assert (plain.resource >= 0).any()


@pytest.mark.parametrize("take", ["some", "repeated", "none", "all"])
def test_candidates_of_some_rows_are_those_of_the_rows_copied(take):
    """``rows=`` gives what the copied rows give (requests, need, keys, eligibility), in any scan order."""
    rng = np.random.default_rng(4)
    rq, demand, rs, free, order, start, routes, k, weights, d_max, keys = _candidate_market(rng)
    n = rq.shape[0]
    rows = {"some": rng.choice(n, 120, replace=False), "repeated": rng.integers(0, n, 50),
            "none": np.zeros(0, dtype=np.int64), "all": np.arange(n)}[take]
    allowed = rng.integers(0, 2**62, (n, 1))  # eligibility masks, one word a request
    copied = find_candidates(rq[rows], demand[rows], rs, free, order, start, routes[rows], k, weights, d_max, keys[rows],
                             allowed[rows])
    indexed = find_candidates(rq, demand, rs, free, order, start, routes[rows], k, weights, d_max, keys, allowed,
                              scan=rng.permutation(rows.size), rows=rows)
    _same(copied, indexed)
    with pytest.raises(ValueError, match="rows"):
        find_candidates(rq, demand, rs, free, order, start, routes[:1], k, weights, d_max, keys, allowed, rows=[n])


def test_candidates_written_into_a_workspace_are_those_of_new_arrays():
    """``out=``: the same tables in lent buffers, round after round (stale contents overwritten)."""
    rng = np.random.default_rng(5)
    rq, demand, rs, free, order, start, routes, k, weights, d_max, keys = _candidate_market(rng)
    space = Workspace()
    n = rq.shape[0]
    for rows in (np.arange(n), rng.choice(n, 90, replace=False), np.arange(n)):  # shrinks, then grows again
        plain = find_candidates(rq, demand, rs, free, order, start, routes[rows], k, weights, d_max, keys, rows=rows)
        out = Candidates.allocate(rows.size, k, space.array)
        for array in out.arrays():
            array.fill(7)  # what a previous round left
        _same(plain, find_candidates(rq, demand, rs, free, order, start, routes[rows], k, weights, d_max, keys,
                                     rows=rows, out=out))
    good = list(Candidates.allocate(n, k).arrays())
    frozen = np.empty((n, k))
    frozen.flags.writeable = False
    for field, array, problem in (
        (0, np.empty((n, k + 1), dtype=np.int64), "shape"),
        (1, np.empty((n, k), dtype=np.float32), "dtype float32"),
        (2, np.empty((k, n)).T, "not C-contiguous"),
        (3, frozen, "read-only"),
        (3, good[2], "memory shared"),
    ):
        bad = list(good)
        bad[field] = array
        name = ("resource", "utility", "reserve", "posted")[field]
        with pytest.raises(ValueError, match=rf"out\.{name}: .* got one {problem}"):
            find_candidates(rq, demand, rs, free, order, start, routes, k, weights, d_max, keys, out=Candidates(*bad))


def test_a_workspace_lends_the_same_buffer_until_it_is_too_small():
    space = Workspace()
    a = space.array("t", 100, 3, np.float64)
    assert a.shape == (100, 3) and a.flags.c_contiguous
    b = space.array("t", 80, 3, np.float64)
    assert np.shares_memory(a, b) and b.shape == (80, 3)
    c = space.array("t", 200, 3, np.float64)  # grown: a new buffer with headroom, the old one let go
    assert not np.shares_memory(a, c) and c.shape == (200, 3) and space.nbytes >= 200 * 3 * 8
    assert not np.shares_memory(c, space.array("t", 200, 3, np.int64))  # another dtype, another buffer
    assert pickle.loads(pickle.dumps(space)).nbytes == 0  # a pickled model does not carry the buffers
    space.release()
    assert space.nbytes == 0 and space.array("t", 10, 3, np.float64).shape == (10, 3)


def test_candidates_refuse_cluster_offsets_or_routes_the_kernel_would_read_past():
    rq, demand, rs, free, order, start, routes, k, weights, d_max, keys = _candidate_market(np.random.default_rng(6))
    for bad in (start[:-1], start - 1, start[:0], start[::-1]):  # short, shifted, empty, decreasing
        with pytest.raises(ValueError, match="start: cluster offsets"):
            find_candidates(rq, demand, rs, free, order, bad, routes, k, weights, d_max, keys)
    far = routes.copy()
    far[3, 1] = start.size - 1  # one past the last cluster
    with pytest.raises(ValueError, match="routes: cluster ids below"):
        find_candidates(rq, demand, rs, free, order, start, far, k, weights, d_max, keys)
