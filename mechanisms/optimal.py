"""The exact mechanism: the welfare program over the sub-market's candidate pairs (HiGHS).

Maximises the same welfare every mechanism is scored by,
``F(S) = sum_S b_ij + delta * sum_u [g(W_u + X_u(S)) - g(W_u)]``, ``g = log2(1 + x)``,
subject to single assignment and capacity: the
:class:`~mechanisms.welfare_program.WelfareProgram` over the candidate pairs it is
given (the whole-market oracle, :mod:`market.core.oracle`, solves the same program over
every feasible pair). On unit-demand, delta = 0 markets the LP is integral and HiGHS
proves optimality at the root.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from mechanisms.base import Allocation, Mechanism, SubMarket, paid
from mechanisms.registry import register
from mechanisms.welfare_program import WelfareProgram


def solve_exact(
    market: SubMarket, time_limit: float = 30.0, relax: bool = False, node_limit: int | None = None,
) -> Allocation:
    """Solve the sub-market's welfare maximisation exactly (within the limits).

    Args:
        market: the sub-market (all candidate pairs are variables).
        time_limit: seconds for HiGHS (a safety net: a run that hits it may differ by machine).
        relax: solve the LP relaxation instead: ``bound`` is then the LP upper bound
            (fast, always valid) and the returned allocation serves nobody.
        node_limit: branch-and-bound nodes for HiGHS. Unlike the time limit it stops
            the search at the same point on every machine, so results stay reproducible.

    Returns:
        The best allocation found (winners pay the posted price), with ``bound`` a proven
        upper bound on ``F``, ``proven_optimal`` set, and ``failed`` when the solver found
        no allocation within its limits (the allocation then serves nobody).
    """
    n = market.candidates.shape[0]
    rows, cols = np.nonzero(market.valid)
    if rows.size == 0:
        alloc = Allocation.empty(n)
        alloc.proven_optimal, alloc.bound = True, 0.0
        return alloc
    program = WelfareProgram(market.demand, market.capacity, market.user, market.priority, market.user_won,
                             float(market.fairness_weight), reachable=np.isin(np.arange(n), rows))
    program.add_pairs(rows, market.candidates[rows, cols], market.utility[rows, cols])
    if relax:
        lp = program.solve_lp(time_limit)
        alloc = Allocation.empty(n)
        alloc.bound, alloc.proven_optimal = (lp.value if lp.ok else math.inf), False
        alloc.info = {"exact_model": program.exact}
        return alloc
    mip = program.solve_mip(time_limit, node_limit)
    choice = np.full(n, -1, dtype=np.int64)
    choice[rows[mip.pairs]] = cols[mip.pairs]
    solved = choice.copy()
    choice = _drop_overflow(market, choice)
    alloc = Allocation(choice, paid(market, choice, market.posted))
    alloc.bound = mip.bound
    # a solution cut back to fit is not the one proven optimal
    alloc.proven_optimal = bool(mip.optimal and program.exact and mip.found and np.array_equal(choice, solved))
    alloc.failed = not mip.found
    alloc.time_limited = bool(mip.timed_out)
    alloc.info = {"exact_model": program.exact}
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
    """Exact welfare maximisation over the candidate pairs (MILP); says whether optimality was proven.

    Args:
        time_limit: seconds per solve; on timeout the incumbent is used and
            ``proven_optimal`` is False (``failed`` if there is none).
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
