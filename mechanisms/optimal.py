"""The exact reference: a MILP over the round's candidate pairs (HiGHS via scipy).

Maximises the same welfare every mechanism is scored by,
``F(S) = sum_S b_ij + delta * sum_u [g(W_u + X_u(S)) - g(W_u)]``, ``g = log2(1 + x)``,
subject to single assignment and cpu/memory capacity. The concave fairness term is
modelled exactly with chord cuts ``t_u <= g`` on the grid of reachable ``X_u`` values
(priorities are integers over ``p_max``, so ``X_u`` only takes grid values and the
piecewise-linear interpolant is exact there). If the grid is too fine, tangent cuts give
an outer approximation and the solver's value is only an upper bound.

:func:`solve_exact` returns the incumbent allocation, a proven upper bound on welfare and
whether optimality is proven (solver status optimal *and* an exact model). On
unit-demand, delta = 0 markets the LP is integral and HiGHS proves optimality at the root.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_array

from mechanisms.base import Allocation, Mechanism, SubMarket, paid
from mechanisms.registry import register

MAX_GRID_POINTS = 400


def _g(x: np.ndarray | float) -> np.ndarray | float:
    return np.log2(1.0 + np.asarray(x, dtype=float))


def priority_grid(priority: np.ndarray) -> float | None:
    """The unit of which every positive priority is an integer multiple, if any."""
    positive = priority[priority > 0]
    if positive.size == 0:
        return None
    smallest = float(positive.min())
    for divisor in range(1, 13):
        unit = smallest / divisor
        ratio = positive / unit
        if np.all(np.abs(ratio - np.round(ratio)) < 1e-7):
            return unit
    return None


def _fairness_cuts(start: float, top: float, unit: float | None) -> tuple[np.ndarray, np.ndarray, bool]:
    """Lines ``t <= a + b X`` bounding the gain ``g(start + X) - g(start)`` on [0, top].

    Returns:
        ``(intercepts, slopes, exact)``: chords on the grid when it is small enough
        (exact at every reachable point), tangents otherwise (an upper bound).
    """
    base = float(_g(start))
    if unit is not None and top / unit <= MAX_GRID_POINTS:
        nodes = np.arange(0, round(top / unit) + 1) * unit
        values = _g(start + nodes) - base
        if nodes.size == 1:
            return np.array([0.0]), np.array([0.0]), True
        slopes = np.diff(values) / np.diff(nodes)
        return values[:-1] - slopes * nodes[:-1], slopes, True
    points = np.concatenate([[0.0], np.geomspace(1e-3, max(top, 1e-3), 48)])
    slopes = 1.0 / ((1.0 + start + points) * math.log(2.0))
    values = _g(start + points) - base
    return values - slopes * points, slopes, False


def solve_exact(
    market: SubMarket, time_limit: float = 30.0, mip_rel_gap: float = 1e-9, relax: bool = False,
    node_limit: int | None = None,
) -> Allocation:
    """Solve the sub-market's welfare maximisation exactly (within a time limit).

    Args:
        market: the sub-market (all candidate pairs are variables).
        time_limit: seconds for HiGHS.
        mip_rel_gap: relative gap at which HiGHS stops.
        relax: solve the LP relaxation instead: ``bound`` is then the LP upper bound
            (fast, always valid) and the returned allocation serves nobody.
        node_limit: branch-and-bound nodes for HiGHS. Unlike the time limit it stops
            the search at the same point on every machine, so results stay
            reproducible; the time limit is only a safety net.

    Returns:
        The best allocation found (winners pay the posted price), with ``bound`` a
        proven upper bound on ``F`` and ``proven_optimal`` set.
    """
    n = market.candidates.shape[0]
    rows, cols = np.nonzero(market.valid)
    n_pairs = rows.size
    if n_pairs == 0:
        alloc = Allocation.empty(n)
        alloc.proven_optimal, alloc.bound = True, 0.0
        return alloc
    res_idx = market.candidates[rows, cols]
    delta = float(market.fairness_weight)
    users = np.unique(market.user[rows]) if delta > 0 else np.empty(0, dtype=np.int64)
    n_users = users.size
    # variables: x (one per pair), t_u (fairness gain), X_u (priority mass won)
    n_var = n_pairs + 2 * n_users
    objective = np.zeros(n_var)
    objective[:n_pairs] = -market.utility[rows, cols]
    objective[n_pairs : n_pairs + n_users] = -delta

    blocks = []  # (row indices, col indices, values, lower, upper)
    pair_ids = np.arange(n_pairs)
    blocks.append((rows, pair_ids, np.ones(n_pairs), np.full(n, -np.inf), np.ones(n)))
    m = market.capacity.shape[0]
    for dim in range(2):
        blocks.append((res_idx, pair_ids, market.demand[rows, dim], np.full(m, -np.inf), market.capacity[:, dim]))
    exact = True
    if n_users:
        t_col = n_pairs + np.arange(n_users)
        x_col = t_col + n_users
        user_pos = np.searchsorted(users, market.user[rows])
        # X_u - sum_{pairs of u} p_i x = 0
        blocks.append(
            (
                np.concatenate([user_pos, np.arange(n_users)]),
                np.concatenate([pair_ids, x_col]),
                np.concatenate([-market.priority[rows], np.ones(n_users)]),
                np.zeros(n_users),
                np.zeros(n_users),
            )
        )
        # the most a user can win: every one of its requests that has a candidate
        served_rows = np.unique(rows)
        top = np.zeros(n_users)
        np.add.at(top, np.searchsorted(users, market.user[served_rows]), market.priority[served_rows])
        unit = priority_grid(market.priority)
        r_list, c_list, v_list, ub_list = [], [], [], []
        row = 0
        for u_pos, u in enumerate(users):
            intercepts, slopes, is_exact = _fairness_cuts(float(market.user_won[u]), float(top[u_pos]), unit)
            exact &= is_exact
            cuts = np.arange(row, row + slopes.size)
            # t_u - slope * X_u <= intercept
            r_list += [cuts, cuts]
            c_list += [np.full(slopes.size, t_col[u_pos]), np.full(slopes.size, x_col[u_pos])]
            v_list += [np.ones(slopes.size), -slopes]
            ub_list.append(intercepts)
            row += slopes.size
        blocks.append(
            (np.concatenate(r_list), np.concatenate(c_list), np.concatenate(v_list), np.full(row, -np.inf), np.concatenate(ub_list))
        )
    constraints = []
    for r, c, v, lo, hi in blocks:
        matrix = csr_array((v, (r, c)), shape=(lo.size, n_var))
        constraints.append(LinearConstraint(matrix, lo, hi))
    integrality = np.zeros(n_var)
    integrality[:n_pairs] = 0 if relax else 1
    upper = np.ones(n_var)
    upper[n_pairs:] = np.inf
    result = milp(
        objective,
        constraints=constraints,
        integrality=integrality,
        bounds=Bounds(np.zeros(n_var), upper),
        options={
            "time_limit": float(time_limit), "mip_rel_gap": mip_rel_gap, "disp": False,
            **({"node_limit": int(node_limit)} if node_limit is not None and not relax else {}),
        },
    )
    choice = np.full(n, -1, dtype=np.int64)
    if relax:
        alloc = Allocation.empty(n)
        alloc.bound = -float(result.fun) if result.status == 0 else math.inf
        alloc.proven_optimal = False
        alloc.info = {"status": int(result.status), "message": str(result.message), "exact_model": exact}
        return alloc
    if result.x is not None:
        chosen = np.flatnonzero(result.x[:n_pairs] > 0.5)
        choice[rows[chosen]] = cols[chosen]
        choice = _drop_overflow(market, choice)
    dual = getattr(result, "mip_dual_bound", None)
    bound = -float(dual) if dual is not None and np.isfinite(dual) else math.inf
    alloc = Allocation(choice, paid(market, choice, market.posted))
    alloc.bound = bound
    alloc.proven_optimal = bool(result.status == 0 and exact and result.x is not None)
    alloc.info = {"status": int(result.status), "message": str(result.message), "exact_model": exact}
    return alloc


def _drop_overflow(market: SubMarket, choice: np.ndarray) -> np.ndarray:
    """Undo solver round-off: drop the smallest winners of any resource over capacity."""
    served = np.flatnonzero(choice >= 0)
    j = market.candidates[served, choice[served]]
    used = np.zeros_like(market.capacity)
    np.add.at(used, j, market.demand[served])
    over = np.flatnonzero(np.any(used > market.capacity * (1 + 1e-12) + 1e-12, axis=1))
    for r in over:
        mine = served[j == r]
        mine = mine[np.argsort(market.utility[mine, choice[mine]])]
        for i in mine:
            if np.all(used[r] <= market.capacity[r] + 1e-12):
                break
            used[r] -= market.demand[i]
            choice[i] = -1
    return choice


@register("optimal")
class Optimal(Mechanism):
    """Exact welfare maximisation (MILP); says whether optimality was proven.

    Args:
        time_limit: seconds per solve; on timeout the incumbent is used and
            ``proven_optimal`` is False.
        relax: solve only the LP relaxation (serves nobody; ``bound`` is the LP
            bound). For quality measurements, not for running markets.
        node_limit: branch-and-bound nodes per solve (deterministic, unlike the time
            limit, which is a safety net: a run that hits it may differ by machine).
    """

    #: solve the whole round at once: clustering would break optimality
    flat: ClassVar[bool] = True

    def __init__(self, time_limit: float = 60.0, relax: bool = False, node_limit: int | None = 1000) -> None:
        self.time_limit = float(time_limit)
        self.relax = bool(relax)
        self.node_limit = None if node_limit is None else int(node_limit)

    def allocate(self, market: SubMarket, rng: np.random.Generator) -> Allocation:
        """Solve the sub-market exactly; winners pay the posted price."""
        return solve_exact(market, self.time_limit, relax=self.relax, node_limit=self.node_limit)
