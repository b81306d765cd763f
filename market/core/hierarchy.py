"""The planner hierarchy: k-means clusters of resources and request routing.

The root planner z-scores the resource features ``[x, y, cpu, mem, cost, reliability,
availability, energy]`` and runs k-means (random initial points, not k-means++, which
costs minutes at 10^5 resources: scipy's ``kmeans2(minit="++")`` took 226 s for k = 1,024 on
10^5 points on a 2-core machine, ``minit="points"`` 1.5 s). With many resources the centroids are
fitted on a seeded sample of :data:`SAMPLE_PER_CLUSTER` points per cluster and every
resource then joins its nearest centroid (Lloyd on a sample: the same clusters up to
sampling noise, at a tenth of the cost). Each cluster gets a planner. A request
is routed to the nearest cluster (by the cluster's mean location) that holds a resource
with room for it, plus ``spill_neighbors`` further clusters for the spill-over pass.
``clusters = 1`` is the flat auction. The tree root -> cluster planners -> resources is
kept as a networkx graph for the dashboard and reports.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import networkx as nx
import numba as nb
import numpy as np
from scipy.cluster.vq import kmeans2, vq
from scipy.spatial import cKDTree

from market.core.candidates import has_room
from mechanisms import numba_threads  # noqa: F401  (before any parallel kernel: its threads sleep when idle)
from mechanisms.numba_cache import compiled_twice  # its import sets the kernels' cache folder

#: sample size per cluster for fitting centroids when resources are plentiful
SAMPLE_PER_CLUSTER = 10

FEATURES = ["x", "y", "cpu", "mem", "unit_cost", "reliability", "availability", "energy_efficiency"]


def features_of(dimensions: tuple[str, ...] | list[str]) -> list[str]:
    """The resource columns the planners cluster on: :data:`FEATURES` with the market's dimensions.

    ``x, y`` first, then the capacity of each dimension, then cost, QoS and energy (for the
    default dimensions exactly :data:`FEATURES`).
    """
    return ["x", "y", *dimensions, *FEATURES[4:]]


@dataclass(frozen=True)
class Hierarchy:
    """Resource clusters: labels, members sorted by cluster, and mean locations."""

    labels: np.ndarray  # (M,) cluster of each resource
    order: np.ndarray  # resources sorted by cluster (stable)
    start: np.ndarray  # (C + 1,) offsets of each cluster in ``order``
    centres: np.ndarray  # (C, 2) mean location of each cluster

    @property
    def n_clusters(self) -> int:
        """Number of clusters."""
        return int(self.centres.shape[0])

    def members(self, c: int) -> np.ndarray:
        """Resource indices of cluster ``c``."""
        return self.order[self.start[c] : self.start[c + 1]]

    def graph(self) -> nx.DiGraph:
        """The planner tree: ``root`` -> ``cluster-c`` -> ``resource-j``."""
        g = nx.DiGraph()
        g.add_node("root", kind="root")
        for c in range(self.n_clusters):
            g.add_edge("root", f"cluster-{c}")
            g.nodes[f"cluster-{c}"]["kind"] = "cluster"
            for j in self.members(c):
                g.add_edge(f"cluster-{c}", f"resource-{j}")
                g.nodes[f"resource-{j}"]["kind"] = "resource"
        return g


def build_hierarchy(features: np.ndarray, n_clusters: int, rng: np.random.Generator) -> Hierarchy:
    """Cluster resources with k-means on z-scored features.

    Args:
        features: ``(M, F)`` resource features, columns as :data:`FEATURES` (x, y first).
        n_clusters: wanted number of clusters (empty clusters are dropped).
        rng: random generator for the initial points.

    Returns:
        The hierarchy.
    """
    m = features.shape[0]
    n_clusters = max(1, min(int(n_clusters), m))
    if n_clusters == 1:
        labels = np.zeros(m, dtype=np.int64)
    else:
        std = features.std(axis=0)
        z = (features - features.mean(axis=0)) / np.where(std > 0, std, 1.0)
        sample = z
        if m > 2 * SAMPLE_PER_CLUSTER * n_clusters:
            sample = z[np.sort(rng.choice(m, SAMPLE_PER_CLUSTER * n_clusters, replace=False))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "one of the clusters is empty": handled below
            centroids, labels = kmeans2(sample, n_clusters, iter=10, minit="points", seed=rng)
        if sample is not z:
            labels = vq(z, centroids, check_finite=False)[0]
        labels = np.unique(labels, return_inverse=True)[1].astype(np.int64)
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels)
    start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    centres = np.zeros((counts.size, 2))
    np.add.at(centres, labels, features[:, :2])
    centres /= counts[:, None]
    return Hierarchy(labels, order, start, centres)


def route(
    hierarchy: Hierarchy,
    xy: np.ndarray,
    need: np.ndarray,
    free: np.ndarray,
    spill_neighbors: int,
) -> np.ndarray:
    """Route each request to its clusters, nearest first, skipping clusters with no room.

    Args:
        hierarchy: the clusters.
        xy: ``(N, 2)`` request locations.
        need: ``(N, E)`` demand in allocation units.
        free: ``(M, E)`` free capacity in allocation units.
        spill_neighbors: further clusters per request for the spill-over pass
            (``-1`` = all other clusters).

    Returns:
        ``(N, 1 + S)`` cluster ids, nearest feasible first, -1 padded; column 0 is the
        request's own cluster (-1 if no cluster has room).
    """
    n = xy.shape[0]
    c_total = hierarchy.n_clusters
    width = c_total if spill_neighbors < 0 else min(c_total, 1 + spill_neighbors)
    if c_total == 1:
        return np.zeros((n, 1), dtype=np.int64)
    # a cluster can take a request only if its roomiest resource can
    room = _cluster_room(hierarchy.labels, free, c_total)
    probe = c_total if spill_neighbors < 0 else min(c_total, 2 * width + 6)
    workers = -1 if n > 50_000 else 1
    # the `width` nearest clusters usually all have room; look further only where not
    routes, short = _first_with_room(nearest(hierarchy.centres, xy, width, workers), room, need, width)
    redo = np.flatnonzero(short)
    if redo.size and probe > width:
        routes[redo] = _first_with_room(nearest(hierarchy.centres, xy[redo], probe, workers), room, need[redo], width)[0]
    return routes


#: up to this many clusters :func:`nearest` compares every request with every centre
BRUTE_FORCE_CENTRES = 64
#: relative gap under which two squared distances count as a tie (:func:`nearest`)
TIE_RTOL = 1e-9


def nearest(centres: np.ndarray, xy: np.ndarray, k: int, workers: int = 1) -> np.ndarray:
    """The ``k`` nearest centres of each point, nearest first: ``cKDTree(centres).query(xy, k)``.

    With few centres (:data:`BRUTE_FORCE_CENTRES`) a numba loop measures every distance
    (a tree's search costs more than it saves then); with more, a numba search of a
    uniform grid of the centres measures those in the cells around each point, ring by
    ring, until no centre outside can be nearer (1M points among 1,000 centres: 0.19-0.28 s
    against the tree's 0.38-0.47 s, both on two threads). Either way the order is the tree's wherever
    the distances are apart; a row with two of its ``k + 1`` smallest distances within
    :data:`TIE_RTOL` of each other (or a non-finite one) is asked of the tree, which breaks
    ties its own way, so the answer is the tree's in every row. Centres that are not all
    finite go to the tree.

    Args:
        centres: ``(C, 2)`` the centres.
        xy: ``(N, 2)`` the points.
        k: neighbours wanted, ``1 <= k <= C``.
        workers: threads: 1 (one), else all (the tree's ``-1``; the grid search then uses
            numba's threads, as many as numba has).

    Returns:
        ``(N, k)`` int64 centre indices.

    Raises:
        ValueError: ``k`` outside ``1 .. C``.
    """
    n = xy.shape[0]
    if not 1 <= k <= centres.shape[0]:
        raise ValueError(f"nearest: k must be in 1..{centres.shape[0]} (the centres), got {k}")
    centres = np.ascontiguousarray(centres, dtype=float)
    xy = np.ascontiguousarray(xy, dtype=float)
    if centres.shape[0] <= BRUTE_FORCE_CENTRES:
        near, tied = _nearest(centres, xy, k, TIE_RTOL)
    elif np.isfinite(centres).all():
        grid = _grid(centres)
        search = _nearest_in_grid_parallel if workers != 1 and n >= PARALLEL_MIN_POINTS else _nearest_in_grid
        # points grouped by cell, so that neighbours search the same cells one after
        # another (1M points: 0.16 against 0.39 s in row order, the gathers included)
        visit = _by_cell(xy, *grid[3:])[0]
        near, tied = np.empty((n, k), dtype=np.int64), np.empty(n, dtype=np.bool_)
        near[visit], tied[visit] = search(centres, xy[visit], k, TIE_RTOL, *grid)
    else:
        return cKDTree(centres).query(xy, k=k, workers=workers)[1].reshape(n, k)
    redo = np.flatnonzero(tied)
    if redo.size:
        near[redo] = cKDTree(centres).query(xy[redo], k=k)[1].reshape(redo.size, k)
    return near


#: the fewest points for which the grid search runs on threads
PARALLEL_MIN_POINTS = 20_000


def _grid(centres: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float, float, int]:
    """A uniform grid over the centres' bounding box, about two centres per cell.

    (Two per cell: the 5 nearest centres of a point, the usual ``k + 1``, then mostly lie
    within the 3 x 3 cells around it, 18 centres measured.)

    Returns:
        ``(start, members, located, x0, y0, width, side)``: cell ``(a, b)`` (``a`` along
        x) is ``a * side + b``; its centres are ``members[start[cell]:start[cell + 1]]``,
        at ``located[start[cell]:start[cell + 1]]`` (the centres in that order, so a cell's
        are read one after another); cells are squares of ``width`` from ``(x0, y0)``.
    """
    side = max(1, int(np.ceil(np.sqrt(centres.shape[0] / 2))))
    low, high = centres.min(axis=0), centres.max(axis=0)
    width = float(max(high[0] - low[0], high[1] - low[1])) / side
    width = width if width > 0.0 else 1.0
    x0, y0 = float(low[0]), float(low[1])
    members, start = _by_cell(centres, x0, y0, width, side)
    return start, members, centres[members], x0, y0, width, side


@nb.njit(cache=True, inline="always")
def _cell_at(v: float, low: float, width: float, side: int) -> int:
    """The grid column (or row) of coordinate ``v``, clamped to the grid (NaN: 0)."""
    at = (v - low) / width
    return int(min(max(at, 0.0), side - 1.0)) if at == at else 0


@nb.njit(cache=True)
def _by_cell(xy: np.ndarray, x0: float, y0: float, width: float, side: int) -> tuple[np.ndarray, np.ndarray]:
    """The points grouped by grid cell (a counting sort; rows in order within a cell).

    Returns:
        ``(visit, start)``: ``(N,)`` the rows, cell after cell, and ``(side**2 + 1,)``
        where each cell's rows start in ``visit``.
    """
    n = xy.shape[0]
    cell = np.empty(n, dtype=np.int64)
    start = np.zeros(side * side + 1, dtype=np.int64)
    for i in range(n):
        cell[i] = _cell_at(xy[i, 0], x0, width, side) * side + _cell_at(xy[i, 1], y0, width, side)
        start[cell[i] + 1] += 1
    for c in range(side * side):
        start[c + 1] += start[c]
    visit = np.empty(n, dtype=np.int64)
    at = start[:-1].copy()
    for i in range(n):
        visit[at[cell[i]]] = i
        at[cell[i]] += 1
    return visit, start


def _nearest_in_grid_rows(
    centres: np.ndarray, xy: np.ndarray, k: int, rtol: float, start: np.ndarray, members: np.ndarray,
    located: np.ndarray, x0: float, y0: float, width: float, side: int,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nearest` by the grid of :func:`_grid`: ``(N, k)`` indices and ``(N,)`` rows with a (near) tie.

    Rings of cells around a point's cell are searched until the ``k + 1`` smallest
    distances found are below the squared distance from the point to the edge of the
    searched square (a side at the grid's edge has no centre past it). Distances and ties
    as :func:`_nearest`.
    """
    n, c = xy.shape[0], centres.shape[0]
    keep = min(k + 1, c)
    near = np.empty((n, k), dtype=np.int64)
    tied = np.zeros(n, dtype=np.bool_)
    slack = 1e-9 * (abs(x0) + abs(y0) + side * width)
    for block in nb.prange((n + 1023) // 1024):
        dist = np.empty(keep)
        idx = np.empty(keep, dtype=np.int64)
        for i in range(block * 1024, min(n, (block + 1) * 1024)):
            px, py = xy[i, 0], xy[i, 1]
            if not (abs(px) < np.inf and abs(py) < np.inf):  # nan or inf: the tree's answer
                tied[i] = True
                near[i, :] = 0
                continue
            ca = _cell_at(px, x0, width, side)
            cb = _cell_at(py, y0, width, side)
            found = 0
            ring = 0
            while True:
                a_lo, a_hi, b_lo, b_hi = ca - ring, ca + ring, cb - ring, cb + ring
                for a in range(max(a_lo, 0), min(a_hi, side - 1) + 1):
                    edge_a = a in (a_lo, a_hi)
                    for b in range(max(b_lo, 0), min(b_hi, side - 1) + 1):
                        if not edge_a and b != b_lo and b != b_hi:
                            continue  # an inner cell: searched in an earlier ring
                        cell = a * side + b
                        for m in range(start[cell], start[cell + 1]):
                            d = _squared(px, py, located, m)
                            tied[i] |= not d < np.inf  # overflow
                            found = _keep_nearest(d, members[m], dist, idx, found)
                # the nearest a centre outside the searched square can be (sides at the
                # grid's edge have none past them)
                bound = np.inf  # less a slack for the round-off of the cells' edges
                if a_lo > 0:
                    bound = min(bound, px - (x0 + a_lo * width))
                if a_hi < side - 1:
                    bound = min(bound, x0 + (a_hi + 1) * width - px)
                if b_lo > 0:
                    bound = min(bound, py - (y0 + b_lo * width))
                if b_hi < side - 1:
                    bound = min(bound, y0 + (b_hi + 1) * width - py)
                if bound == np.inf:
                    break  # every cell searched
                bound -= slack
                if found == keep and bound > 0.0 and dist[keep - 1] * (1.0 + 1e-9) < bound * bound:
                    break
                ring += 1
            _answer(i, dist, idx, rtol, near, tied)
    return near, tied


# compiled twice: threads pay off only on many points
_nearest_in_grid_parallel, _nearest_in_grid = compiled_twice(_nearest_in_grid_rows)


@nb.njit(cache=True)
def _nearest(centres: np.ndarray, xy: np.ndarray, k: int, rtol: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nearest` by brute force: ``(N, k)`` indices and ``(N,)`` rows with a (near) tie.

    Squared distances summed as the tree sums them (``dx * dx`` then ``+ dy * dy``); the
    ``k + 1`` smallest kept sorted by insertion (ties in index order, flagged).
    """
    n, c = xy.shape[0], centres.shape[0]
    keep = min(k + 1, c)
    near = np.empty((n, k), dtype=np.int64)
    tied = np.zeros(n, dtype=np.bool_)
    dist = np.empty(keep)
    idx = np.empty(keep, dtype=np.int64)
    for i in range(n):
        found = 0
        for q in range(c):
            d = _squared(xy[i, 0], xy[i, 1], centres, q)
            tied[i] |= not d < np.inf  # nan or inf
            found = _keep_nearest(d, q, dist, idx, found)
        _answer(i, dist, idx, rtol, near, tied)
    return near, tied


@nb.njit(cache=True, inline="always")
def _squared(px: float, py: float, centres: np.ndarray, q: int) -> float:
    """Squared distance from ``(px, py)`` to centre ``q``, summed as the tree sums it (``dx * dx`` then ``+ dy * dy``)."""
    dx = px - centres[q, 0]
    dy = py - centres[q, 1]
    d = 0.0 + dx * dx
    d += dy * dy
    return d


@nb.njit(cache=True, inline="always")
def _keep_nearest(d: float, q: int, dist: np.ndarray, idx: np.ndarray, found: int) -> int:
    """Insert centre ``q`` at squared distance ``d`` into the ``found`` nearest so far (sorted, at most ``dist.size``).

    Equal distances in index order. Returns the new count.
    """
    keep = dist.size
    if found == keep and not d < dist[keep - 1]:
        return found
    p = found if found < keep else keep - 1
    while p > 0 and (d < dist[p - 1] or (d == dist[p - 1] and q < idx[p - 1])):
        if p < keep:
            dist[p], idx[p] = dist[p - 1], idx[p - 1]
        p -= 1
    dist[p], idx[p] = d, q
    return min(found + 1, keep)


@nb.njit(cache=True, inline="always")
def _answer(i: int, dist: np.ndarray, idx: np.ndarray, rtol: float, near: np.ndarray, tied: np.ndarray) -> None:
    """Row ``i``'s ``k`` nearest into ``near[i]``, flagged in ``tied`` if two of the kept distances are within ``rtol``."""
    for p in range(1, dist.size):
        if dist[p] <= dist[p - 1] * (1.0 + rtol):
            tied[i] = True
    for p in range(near.shape[1]):
        near[i, p] = idx[p]


@nb.njit(cache=True)
def _cluster_room(labels: np.ndarray, free: np.ndarray, c_total: int) -> np.ndarray:
    """``(C, E)`` the largest free capacity of each cluster's resources, per unit (at least 0).

    ``np.maximum.at(zeros, labels, free)`` in one pass.
    """
    room = np.zeros((c_total, free.shape[1]))
    for j in range(labels.size):
        for e in range(free.shape[1]):
            if free[j, e] > room[labels[j], e]:
                room[labels[j], e] = free[j, e]
    return room


@nb.njit(cache=True)
def _first_with_room(near: np.ndarray, room: np.ndarray, need: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the first ``width`` clusters of ``near`` with room for the request (-1 padded).

    ``room`` is each cluster's largest free capacity at the round's start, so it is also
    the scale of the fit test's slack (:func:`~market.core.candidates.has_room`).

    Returns:
        ``(routes, short)``: ``(N, width)`` cluster ids and whether a row found fewer.
    """
    n = near.shape[0]
    routes = np.full((n, width), -1, dtype=np.int64)
    short = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        found = 0
        for c in near[i]:
            if found == width:
                break
            fits = True
            for d in range(need.shape[1]):
                if not has_room(need[i, d], room[c, d], room[c, d]):
                    fits = False
                    break
            if fits:
                routes[i, found] = c
                found += 1
        short[i] = found < width
    return routes, short
