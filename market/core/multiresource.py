"""Per-round metrics over any number ``D`` of resource dimensions, as pure array functions.

One function per formula, numpy only, no state; none is ever NaN (each defines its value
for empty and degenerate inputs). The round pipeline (:mod:`market.core.model`) chooses
the arrays; nothing here knows the order book or the resource table.

- :func:`dominant_shares`: each user's dominant share of the market (Ghodsi et al.,
  "Dominant Resource Fairness: Fair Allocation of Multiple Resource Types", NSDI 2011);
  :func:`dominant_share_jain`: Jain's index over the dominant shares of the users who
  count this round (:func:`market.core.metrics.jain`, not a second Jain);
- :func:`envy`: envious ordered pairs of users under Leontief tasks, the envy-freeness
  DRF is proven to satisfy (Ghodsi et al. 2011, section 4);
- :func:`unallocated_share`: share of one dimension's total capacity left free;
- :func:`fragmentation`: share of one dimension's total capacity that is free but on
  resources that cannot host the typical waiting request (after Weng et al., "Beware of
  Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent",
  USENIX ATC 2023), in a one-number-per-resource approximation;
- helpers to build their inputs: :func:`per_user`, :func:`users_with_requests`,
  :func:`user_tasks`, :func:`typical_demand`.

Shapes: ``S`` requests (served/held ones, or the whole book, as each function says),
``U`` users (local indices ``0..U-1``), ``M`` resources, ``D`` dimensions.
"""

from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np

import mechanisms.numba_cache  # noqa: F401  (before any kernel: the cache keyed by the kernels' source)
from market.core.dense import unique_inverse
from market.core.metrics import jain, share
from mechanisms.kernels import _EPS, fit_slack

#: slack of the fit test, as in the allocation kernels (``mechanisms.kernels._room``) and
#: ``mechanisms.drf``: a request fits if ``free + EPS * (1 + |capacity|) >= demand`` in
#: every dimension (relative to the resource's capacity)
EPS = _EPS

#: above this many counted users, envy is estimated over this many of them (evenly spaced)
ENVY_SAMPLE = 1_000


def _user_index(user: np.ndarray, n_users: int) -> np.ndarray:
    """``user`` as a 1-d int array, checked to lie in ``0..n_users-1``."""
    user = np.asarray(user)
    if user.ndim != 1:
        raise ValueError(f"user must be 1-d, got shape {user.shape}")
    user = user.astype(np.int64, copy=False)
    if user.size and (user.min() < 0 or user.max() >= n_users):
        raise ValueError(
            f"user indices must lie in 0..{n_users - 1}, got {user.min()}..{user.max()}"
        )
    return user


def per_user(user: np.ndarray, demand: np.ndarray, n_users: int) -> np.ndarray:
    """Each user's summed bundle: ``out[u, d] = sum over s with user[s] == u of demand[s, d]``.

    Args:
        user: ``(S,)`` int, local user index of each request, in ``0..n_users-1``.
        demand: ``(S, D)`` demand of each request (resource units of each dimension).
        n_users: ``U``, the number of users (rows of the result).

    Returns:
        ``(U, D)`` float; all zeros for a user with no request (and for ``S = 0``).
    """
    demand = np.asarray(demand, dtype=float)
    if demand.ndim != 2:
        raise ValueError(f"demand must be (S, D), got shape {demand.shape}")
    user = _user_index(user, n_users)
    if user.size != demand.shape[0]:
        raise ValueError(f"user has {user.size} rows, demand {demand.shape[0]}")
    # one bincount per dimension: np.add.at is ~10x slower on a round's book
    out = np.zeros((n_users, demand.shape[1]))
    for d in range(demand.shape[1]):
        out[:, d] = np.bincount(user, weights=demand[:, d], minlength=n_users)
    return out


def users_with_requests(user: np.ndarray, n_users: int) -> np.ndarray:
    """``(U,)`` bool mask of the users with at least one request in ``user``.

    Args:
        user: ``(S,)`` int, local user index of each request of the round's book.
        n_users: ``U``.
    """
    return np.bincount(_user_index(user, n_users), minlength=n_users) > 0


def user_tasks(user: np.ndarray, demand: np.ndarray, n_users: int) -> np.ndarray:
    """Each user's Leontief task vector: the mean demand of its requests.

    Args:
        user: ``(S,)`` int, local user index of each request (e.g. the round's whole book).
        demand: ``(S, D)`` demand of each request.
        n_users: ``U``.

    Returns:
        ``(U, D)`` float: ``sum of u's demand / number of u's requests``; a zero row for a
        user with no request.
    """
    total = per_user(user, demand, n_users)
    count = np.bincount(_user_index(user, n_users), minlength=n_users)
    return total / np.maximum(count, 1)[:, None]


def typical_demand(demand: np.ndarray) -> np.ndarray | None:
    """The median demand vector (per dimension) of some requests, ``None`` if there are none.

    Args:
        demand: ``(S, D)`` demand of, e.g., the round's waiting (unserved) requests that
            demand the dimension :func:`fragmentation` looks at.

    Returns:
        ``(D,)`` component-wise median, or ``None`` when ``S = 0`` (no typical request;
        :func:`fragmentation` then gives 0).
    """
    demand = np.asarray(demand, dtype=float)
    if demand.ndim != 2 or demand.shape[0] == 0:
        return None
    return np.median(demand, axis=0)


def dominant_shares(
    user: np.ndarray, demand: np.ndarray, capacity_total: np.ndarray, n_users: int
) -> np.ndarray:
    """Each user's dominant share of the market.

    ``ds[u] = max over d with C[d] > 0 of (sum over s with user[s] == u of demand[s, d]) / C[d]``,
    ``C = capacity_total``: the largest share of any one resource's total capacity that the
    user's requests hold (Ghodsi, Zaharia, Hindman, Konwinski, Shenker and Stoica,
    "Dominant Resource Fairness: Fair Allocation of Multiple Resource Types", NSDI 2011,
    section 4). The same definition as ``mechanisms.drf`` (which measures against the
    sub-market's capacity; here ``capacity_total`` is whatever the caller passes, e.g.
    the whole market's).

    Args:
        user: ``(S,)`` int, local user index (``0..n_users-1``) of each request held or
            served (pass only those: every row counts).
        demand: ``(S, D)`` demand of each of those requests, in each dimension's units.
        capacity_total: ``(D,)`` total capacity of each dimension in the market, same units.
        n_users: ``U``.

    Returns:
        ``(U,)`` float, dimensionless; 0 for a user holding nothing. Dimensions with no
        total capacity (``C[d] <= 0``) are ignored (count as share 0), so with ``D = 0`` or
        no capacity at all every share is 0. In ``[0, 1]`` when the requests fit the
        capacity (sum of holdings <= total in every dimension).
    """
    held = per_user(user, demand, n_users)
    total = np.asarray(capacity_total, dtype=float)
    if total.shape != (held.shape[1],):
        raise ValueError(f"capacity_total must be ({held.shape[1]},), got shape {total.shape}")
    scale = np.where(total > 0, total, np.inf)  # x / inf = 0: the dimension is ignored
    frac = held / scale
    return frac.max(axis=1) if frac.shape[1] else np.zeros(n_users)


def dominant_share_jain(shares: np.ndarray, active: np.ndarray | None = None) -> float:
    """Jain's index over the dominant shares of the users who count this round.

    ``J = (sum ds)^2 / (n sum ds^2)`` over the ``n`` counted users, by
    :func:`market.core.metrics.jain` (R. Jain, D. Chiu and W. Hawe, DEC-TR-301, 1984);
    the fairness DRF aims at is equal dominant shares (Ghodsi et al. 2011), i.e. ``J = 1``.

    Args:
        shares: ``(U,)`` dominant shares (:func:`dominant_shares`).
        active: ``(U,)`` bool, the users who count: those with at least one request in the
            round's book (:func:`users_with_requests`), served or not, so that a user who
            asked and got nothing pulls the index down. ``None``: every user counts.

    Returns:
        ``J`` in ``[1/n, 1]``; 1.0 when no user or one user counts, or when every counted
        share is 0 (everyone equal; :func:`market.core.metrics.jain`'s convention).
    """
    shares = np.asarray(shares, dtype=float)
    if active is not None:
        shares = shares[np.asarray(active, dtype=bool)]
    return jain(shares)


class Envy(NamedTuple):
    """Envy among a round's users (:func:`envy`)."""

    #: envious ordered pairs ``(u, v)``
    count: int
    #: ``count / pairs`` in ``[0, 1]``; 0.0 when there are no pairs
    share: float
    #: ordered pairs considered, ``n (n - 1)`` for ``n`` counted users
    pairs: int


def envy(
    user: np.ndarray,
    demand_alloc: np.ndarray,
    user_task: np.ndarray,
    active: np.ndarray | None = None,
    rtol: float = 1e-9,
) -> Envy:
    """The envious ordered pairs of users under Leontief tasks.

    User ``u``'s bundle ``x_u`` is the summed demand of its allocated requests. With task
    demand vector ``t_u = user_task[u]``, ``u`` can run
    ``tasks_u(x) = min over d with t_u[d] > 0 of x[d] / t_u[d]`` tasks with a bundle ``x``
    (Leontief preferences; tasks divisible, as in the paper's model; ``+inf`` when
    ``t_u`` has no positive entry). ``u`` envies ``v`` (``u != v``) iff
    ``tasks_u(x_v) > tasks_u(x_u) * (1 + rtol)``: it could run strictly more of its tasks
    with ``v``'s bundle than with its own. This is the envy-freeness DRF is proven to
    satisfy (Ghodsi et al., "Dominant Resource Fairness", NSDI 2011, section 4: "a user
    should not prefer the allocation of another user"), so under a DRF allocation of
    divisible tasks ``count`` is 0; under indivisible requests DRF need not be envy-free.

    A numba loop over pairs (O(n^2 D), stopping at a pair's first ratio under the limit).
    With more than :data:`ENVY_SAMPLE` counted users the share is estimated over
    :data:`ENVY_SAMPLE` of them, evenly spaced in index order (deterministic), and
    ``count`` is that share times ``pairs``, rounded.

    Args:
        user: ``(S,)`` int, local user index of each allocated (served/held) request.
        demand_alloc: ``(S, D)`` demand of each of those requests.
        user_task: ``(U, D)`` each user's task demand vector, e.g. the mean demand of its
            requests in the round (:func:`user_tasks`); ``U`` is the number of users.
        active: ``(U,)`` bool, the users who count (those with requests in the round,
            :func:`users_with_requests`). ``None``: the users whose task vector has a
            positive entry (:func:`user_tasks` gives a zero row to a user without requests).
        rtol: relative slack of "strictly more", against round-off of the sums.

    Returns:
        :class:`Envy`: ``count`` of envious ordered pairs among the counted users, ``pairs
        = n (n - 1)`` and ``share = count / pairs`` in ``[0, 1]``. With 0 or 1 counted user
        there is no pair: ``Envy(0, 0.0, 0)`` (nobody to envy: envy-free).
    """
    task = np.asarray(user_task, dtype=float)
    if task.ndim != 2:
        raise ValueError(f"user_task must be (U, D), got shape {task.shape}")
    n_users, d = task.shape
    alloc = np.asarray(demand_alloc, dtype=float)
    if alloc.size == 0 and alloc.ndim != 2:
        alloc = alloc.reshape(0, d)  # no allocation at all: any empty array will do
    if alloc.ndim != 2 or alloc.shape[1] != d:
        raise ValueError(f"demand_alloc must be (S, {d}), got shape {alloc.shape}")
    bundle = per_user(user, alloc, n_users)
    keep = (task > 0).any(axis=1) if active is None else np.asarray(active, dtype=bool)
    if keep.shape != (n_users,):
        raise ValueError(f"active must be ({n_users},), got shape {keep.shape}")
    task, bundle = task[keep], bundle[keep]
    n = task.shape[0]
    pairs = n * (n - 1)
    if pairs == 0:
        return Envy(0, 0.0, 0)
    if n > ENVY_SAMPLE:  # estimated on evenly spaced users (deterministic): O(ENVY_SAMPLE^2 D)
        pick = np.linspace(0, n - 1, ENVY_SAMPLE).round().astype(np.int64)
        task, bundle, n = task[pick], bundle[pick], ENVY_SAMPLE
    count = int(_envy_count(np.ascontiguousarray(bundle), np.ascontiguousarray(task), float(rtol)))
    sampled = n * (n - 1)
    return Envy(count if sampled == pairs else round(count * pairs / sampled), count / sampled, pairs)


@nb.njit(cache=True, error_model="numpy")
def _envy_count(bundle: np.ndarray, task: np.ndarray, rtol: float) -> int:
    """Envious ordered pairs: ``min_{d: t_ud > 0} x_vd / t_ud > (1 + rtol) tasks_u(x_u)``, ``u != v``.

    The minimum exceeds the limit iff every ratio does: for each ``u``, the ratios of
    every ``v`` are compared dimension by dimension, in a branch-free loop over ``v`` that
    the compiler vectorises (the divisions bound the time; no ``t_ud`` divided by is 0). A
    user with no positive task entry runs unboundedly many tasks with any bundle and
    envies nobody.

    Args:
        bundle: ``(n, D)`` each user's bundle.
        task: ``(n, D)`` each user's task vector.
        rtol: relative slack of "strictly more".
    """
    n, d = task.shape
    by_dim = np.ascontiguousarray(bundle.T)  # (D, n): each dimension's bundles in a row
    envious = np.empty(n, dtype=np.bool_)
    count = 0
    for u in range(n):
        own = np.inf
        for k in range(d):
            if task[u, k] > 0:
                own = min(own, bundle[u, k] / task[u, k])
        if own == np.inf:
            continue
        limit = own * (1.0 + rtol)
        envious[:] = True
        for k in range(d):
            t = task[u, k]
            if t > 0:
                row = by_dim[k]
                for v in range(n):
                    envious[v] &= not row[v] / t <= limit
        envious[u] = False
        count += envious.sum()
    return count


def _free_column(
    free: np.ndarray, capacity: np.ndarray, dim: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """``free`` and ``capacity`` as ``(M, D)``, negative free (round-off) as 0, and the total."""
    free = np.asarray(free, dtype=float)
    capacity = np.asarray(capacity, dtype=float)
    if free.ndim != 2 or free.shape != capacity.shape:
        raise ValueError(
            f"free and capacity must both be (M, D), got {free.shape} and {capacity.shape}"
        )
    if not -free.shape[1] <= dim < free.shape[1]:
        raise ValueError(f"dim {dim} out of range for D = {free.shape[1]}")
    return np.maximum(free, 0.0), capacity, float(capacity[:, dim].sum())


def unallocated_share(free: np.ndarray, capacity: np.ndarray, dim: int) -> float:
    """The share of dimension ``dim``'s total capacity left unallocated.

    ``sum_j free[j, dim] / sum_j capacity[j, dim]`` (e.g. idle GPUs / all GPUs).

    Args:
        free: ``(M, D)`` free capacity of each resource after the round (units of each
            dimension); negative entries (round-off) count as 0.
        capacity: ``(M, D)`` capacity of each resource.
        dim: the dimension's column index.

    Returns:
        In ``[0, 1]`` when ``0 <= free <= capacity``; 0.0 when the total capacity of
        ``dim`` is 0 (no such resource: nothing is left idle), including ``M = 0``.
    """
    free, _, total = _free_column(free, capacity, dim)
    return share(float(free[:, dim].sum()), total)


def fragmentation(
    free: np.ndarray, capacity: np.ndarray, typical_demand: np.ndarray | None, dim: int
) -> float:
    """The share of dimension ``dim``'s total capacity that is free but too fragmented to use.

    ``F = sum over fragmented j of free[j, dim] / sum_j capacity[j, dim]``, where resource
    ``j`` is *fragmented* iff it cannot host the typical waiting request ``t =
    typical_demand``: ``free[j, d] + EPS (1 + |capacity[j, d]|) < t[d]`` for ANY dimension
    ``d`` with ``t[d] > 0`` (the fit test of the allocation kernels). Its free ``dim``
    capacity is then in a piece too small (or stranded beside too little cpu/memory) to
    serve that request. After
    Weng, Yang, Yu, Shi, Wang, Zhang, Chen, Zhang, Dong and Lin, "Beware of Fragmentation:
    Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent" (USENIX ATC
    2023): a node's fragmentation for a task is its free GPU capacity that task cannot use,
    all of it when the task cannot run on the node.

    Scalar approximation: the paper measures per physical GPU (a node's free GPU capacity
    is a vector, one entry per GPU, and a task needing ``g`` GPUs fits only on GPUs with
    enough free capacity each; partially used GPUs are fragments even on a node the task
    fits). This framework keeps one number per resource and dimension (``free[j, dim]``
    is the node's summed free GPU), so which GPU holds what is unknown; the node's free
    GPU is treated as one pool, and it counts as fragmented only when the typical request
    cannot be placed on the node at all. Also a single typical request stands in for the
    paper's workload distribution (its expectation over task types). For the same request
    ``F`` is thus a lower bound of the paper's per-GPU measure: where this says the node
    cannot host it, neither can any set of its GPUs (all free GPU counted in both); where
    this says it can, ``F`` adds 0 and the paper >= 0.

    Args:
        free: ``(M, D)`` free capacity of each resource after the round; negative entries
            (round-off) count as 0. Pass only the resources the typical request may use
            (e.g. the eligible resource types), or the share is over all of them.
        capacity: ``(M, D)`` capacity of each resource (its ``dim`` column is the
            denominator).
        typical_demand: ``(D,)`` demand of the typical waiting request, e.g. the median
            demand of the round's waiting requests that demand ``dim``
            (:func:`typical_demand`); ``None`` or empty when there is none.
        dim: the dimension's column index (e.g. the GPU column).

    Returns:
        ``F`` in ``[0, unallocated_share(free, capacity, dim)]``; 0.0 when there is no
        typical request (``None``/empty), when it demands nothing (no positive entry), and
        when the total capacity of ``dim`` is 0.
    """
    free, capacity, total = _free_column(free, capacity, dim)
    if typical_demand is None:
        return 0.0
    t = np.asarray(typical_demand, dtype=float).ravel()
    if t.size == 0:
        return 0.0
    if t.shape != (free.shape[1],):
        raise ValueError(f"typical_demand must be ({free.shape[1]},), got shape {t.shape}")
    cannot_host = ((free + fit_slack(capacity) < t) & (t > 0)).any(axis=1)
    return share(float(free[cannot_host, dim].sum()), total)


#: the dimension whose unallocated share and fragmentation a round reports, when a market has it
ACCELERATOR = "gpu"


def round_multiresource(
    user: np.ndarray,
    demand: np.ndarray,
    served: np.ndarray,
    capacity: np.ndarray,
    used: np.ndarray,
    dimensions: tuple[str, ...],
) -> dict[str, float]:
    """The multi-resource metrics of one round (``rounds`` columns).

    - ``dominant_share_jain``: Jain's index over the dominant shares of the round's
      winners' bundles (each user's served demand over the market's total capacity),
      among the users with a request in the book (a user served nothing has share 0);
    - ``envy_share``: the share of ordered pairs of those users where one could run more of
      its tasks (its mean request in the round) with the other's round bundle (:func:`envy`);
    - for a market with a ``gpu`` dimension, ``unallocated_gpu``: the share of GPU capacity
      free after the round (running requests included), and ``gpu_fragmentation``: the share
      of GPU capacity free on nodes that cannot host the typical (median) request still
      waiting for a GPU (:func:`fragmentation`), over the nodes that have GPUs.

    Args:
        user: ``(N,)`` user of each order-book request (any integer ids).
        demand: ``(N, D)`` demand of each.
        served: ``(N,)`` bool, served this round.
        capacity: ``(M, D)`` capacity of every resource.
        used: ``(M, D)`` capacity in use after settlement (running requests included).
        dimensions: the ``D`` dimension names.
    """
    users, local = unique_inverse(np.asarray(user))
    n_users = users.size
    local = local.reshape(-1)
    demand = np.asarray(demand, dtype=float)
    served = np.asarray(served, dtype=bool)
    active = users_with_requests(local, n_users)
    shares = dominant_shares(local[served], demand[served], capacity.sum(axis=0), n_users)
    out = {
        "dominant_share_jain": dominant_share_jain(shares, active),
        "envy_share": envy(local[served], demand[served], user_tasks(local, demand, n_users), active).share,
    }
    if ACCELERATOR in dimensions:
        g = dimensions.index(ACCELERATOR)
        has = capacity[:, g] > 0
        free = np.maximum(capacity - used, 0.0)
        waiting = ~served & (demand[:, g] > 0)
        out["unallocated_gpu"] = unallocated_share(free[has], capacity[has], g)
        out["gpu_fragmentation"] = fragmentation(free[has], capacity[has], typical_demand(demand[waiting]), g)
    return out


def multiresource_columns(dimensions: tuple[str, ...]) -> list[str]:
    """The ``rounds`` columns :func:`round_multiresource` gives for a market's dimensions."""
    return ["dominant_share_jain", "envy_share", *(["unallocated_gpu", "gpu_fragmentation"]
                                                   if ACCELERATOR in dimensions else [])]
