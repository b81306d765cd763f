"""MOHAF in ``consistent`` mode: lazy greedy on a monotone submodular welfare.

``F(S) = sum_S b_ij + delta * sum_u log2(1 + X_u(S))`` where ``b_ij`` is the normalised
cost/QoS/energy utility and ``X_u`` the priority mass user ``u`` already won (MOHAF_SPEC
§3.3). The fairness part of a gain shrinks as a user wins more, so users who have won
little are preferred. Winners pay the posted dynamic price ``pi_ij`` (§3.8 ``posted``).
"""

from __future__ import annotations

import numpy as np

from mechanisms.base import Allocation, Mechanism, SubMarket
from mechanisms.kernels import lazy_greedy
from mechanisms.registry import register


def paid(market: SubMarket, choice: np.ndarray, price: np.ndarray) -> np.ndarray:
    """Payments of the chosen pairs from an ``(N, K)`` price array (0 if unserved)."""
    rows = np.flatnonzero(choice >= 0)
    payment = np.zeros(market.n_requests)
    payment[rows] = price[rows, choice[rows]]
    return payment


@register("mohaf")
class MOHAF(Mechanism):
    """Multi-objective hierarchical auction (consistent mode): lazy greedy, posted prices."""

    def allocate(self, market: SubMarket, rng: np.random.Generator) -> Allocation:
        """Lazy greedy on marginal gains; winners pay the posted price."""
        choice = lazy_greedy(
            market.candidates,
            market.utility,
            market.demand,
            market.capacity,
            market.user,
            market.priority,
            market.user_won,
            float(market.fairness_weight),
        )
        return Allocation(choice, paid(market, choice, market.posted))
