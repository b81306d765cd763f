"""Priority greedy: the classic scheduler baseline (the MOHAF paper's ``Greedy``, corrected).

Requests are served in descending ``0.5 * priority + 0.5 * budget`` (both min-max
normalised within the sub-market, ties by row); each takes the fitting candidate with
the lowest posted cost ``rho_j * cpu_i * duration_i`` and pays that cost.
"""

from __future__ import annotations

import numpy as np

from mechanisms.base import Allocation, Mechanism, SubMarket, paid
from mechanisms.kernels import sequential_pick
from mechanisms.registry import register


def minmax(x: np.ndarray) -> np.ndarray:
    """Min-max normalise to [0, 1] (all zeros if constant)."""
    span = float(x.max() - x.min()) if x.size else 0.0
    return (x - x.min()) / span if span > 0 else np.zeros_like(x, dtype=float)


@register("greedy")
class Greedy(Mechanism):
    """Priority-ordered greedy, cheapest feasible resource, pays the posted cost."""

    def allocate(self, market: SubMarket, rng: np.random.Generator) -> Allocation:
        """Serve requests by priority and budget; each takes its cheapest candidate."""
        score = 0.5 * minmax(market.priority) + 0.5 * minmax(market.budget)
        order = np.argsort(-score, kind="stable")
        choice = sequential_pick(
            order, -market.reserve, market.valid, market.candidates, market.demand, market.capacity
        )
        return Allocation(choice, paid(market, choice, market.reserve))
