"""Dynamic pricing: each resource's unit price moves towards a target utilisation.

``rho_j <- clip(rho_j + eta_t * (util_j - tau), rho_min, rho_max)`` with
``util_j = max_k used_jk / C_jk``: the utilisation-driven pricing of the MOHAF paper
(Agrawal et al., arXiv:2508.14830, 2025; its code multiplies the cost by
``1 + eta * (util - tau)``), as an additive step projected onto the price bounds, i.e. a
projected tatonnement step on excess demand ``util_j - tau``. Prices start at the unit cost;
the bounds are ``[lower * min cost, upper * max cost]``. ``eta_t`` is constant or
``eta / sqrt(t + 1)``. The price enters both the cost utility and the payments, so an
over-used resource gets dearer, loses bids and its utilisation falls back towards tau.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PriceRule:
    """Projected price step towards a target utilisation.

    Attributes:
        eta: step size.
        target: target utilisation tau in (0, 1].
        schedule: ``"constant"`` or ``"sqrt"`` (``eta / sqrt(t + 1)``).
        lower: ``rho_min = lower * min(unit_cost)``.
        upper: ``rho_max = upper * max(unit_cost)``.
    """

    eta: float = 0.01
    target: float = 0.8
    schedule: str = "constant"
    lower: float = 0.5
    upper: float = 2.0

    def bounds(self, unit_cost: np.ndarray) -> tuple[float, float]:
        """``(rho_min, rho_max)`` for these unit costs."""
        return self.lower * float(unit_cost.min()), self.upper * float(unit_cost.max())

    def step(self, price: np.ndarray, utilization: np.ndarray, t: int, unit_cost: np.ndarray) -> np.ndarray:
        """The prices after round ``t`` given each resource's utilisation."""
        eta = self.eta / np.sqrt(t + 1.0) if self.schedule == "sqrt" else self.eta
        lo, hi = self.bounds(unit_cost)
        return np.clip(price + eta * (utilization - self.target), lo, hi)
