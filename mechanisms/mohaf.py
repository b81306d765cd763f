"""MOHAF in ``consistent`` mode: lazy greedy on a monotone submodular welfare.

``F(S) = sum_S b_ij + delta * sum_u log2(1 + X_u(S))`` where ``b_ij`` is the normalised
cost/QoS/energy utility and ``X_u`` the priority mass user ``u`` already won (the
objective of the MOHAF paper, Agrawal et al., arXiv:2508.14830, 2025, with its fairness term
made concave so that ``F`` is monotone submodular). The fairness part of a gain,
``delta * [log2(1 + X_u + p_i) - log2(1 + X_u)]``, shrinks as a user wins more, so users who
have won little are preferred. Winners pay the posted dynamic price
``pi_ij = rho_j * cpu_i * duration_i * (0.8 + 0.4 * b_ij)`` (:class:`mechanisms.base.SubMarket`).
Gains only fall as ``S`` grows, so the lazy evaluation (Minoux, "Accelerated greedy
algorithms for maximizing submodular set functions", 1978) picks what plain greedy picks.
"""

from __future__ import annotations

import numpy as np

from mechanisms.base import Allocation, Mechanism, SubMarket, paid
from mechanisms.kernels import lazy_greedy
from mechanisms.registry import register


def capacity_share(market: SubMarket) -> np.ndarray:
    """Each request's size: its largest demand share of the sub-market's mean capacity."""
    mean_cap = market.capacity.mean(axis=0) if market.capacity.shape[0] else np.ones(market.demand.shape[1])
    share = market.demand / np.where(mean_cap > 0, mean_cap, 1.0)
    return np.maximum(share.max(axis=1), 1e-9)


@register("mohaf")
class MOHAF(Mechanism):
    """Multi-objective hierarchical auction (consistent mode): lazy greedy, posted prices.

    Args:
        rank: ``"gain"`` (the paper's greedy on marginal gains) or ``"density"``
            (marginal gain per unit of capacity the request takes, which packs
            capacity-constrained markets better; see the README's quality table).
    """

    def __init__(self, rank: str = "gain") -> None:
        if rank not in ("gain", "density"):
            raise ValueError(f"rank must be 'gain' or 'density', got {rank!r}")
        self.rank = rank

    def allocate(self, market: SubMarket, rng: np.random.Generator) -> Allocation:
        """Lazy greedy on marginal gains; winners pay the posted price."""
        size = capacity_share(market) if self.rank == "density" else np.ones(market.n_requests)
        choice = lazy_greedy(
            market.candidates,
            market.utility,
            market.demand,
            market.capacity,
            market.user,
            market.priority,
            market.user_won,
            float(market.fairness_weight),
            size,
        )
        return Allocation(choice, paid(market, choice, market.posted))
