"""Dynamic pricing: each resource's unit price moves towards a target utilisation.

``rho_j <- clip(rho_j + eta_t * (util_j - tau), rho_min, rho_max)`` with
``util_j = max_k used_jk / C_jk``: the utilisation-driven pricing of the MOHAF paper
(Agrawal et al., arXiv:2508.14830, 2025; its code multiplies the cost by
``1 + eta * (util - tau)``), as an additive step projected onto the price bounds, i.e. a
projected tatonnement step on excess demand ``util_j - tau``. Prices start at the unit cost;
the bounds are ``[lower * min cost, upper * max cost]`` (``lower < upper``, checked when
the scenario loads), or ``[0, inf)`` when every unit cost is 0 (see :class:`PriceRule`).
``eta_t`` is constant or ``eta / sqrt(t + 1)``. The price enters both the cost utility
and the payments, so an over-used resource gets dearer, loses bids and its utilisation
falls back towards tau.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PriceRule:
    """Projected price step towards a target utilisation.

    The bounds are multiples of the market's unit costs, one interval for every resource:
    ``[lower * min(unit_cost), upper * max(unit_cost)]``. A resource that costs nothing
    (``unit_cost = 0``, which a resources table may give) starts at price 0 and is priced
    by congestion alone; in a market with a positive cost somewhere it moves within those
    bounds like any other. When **every** unit cost is 0 the costs give the bounds no
    scale (``upper * 0 = 0`` would pin every price at 0 for good), so the prices are
    bounded below by 0 only: a price rises by ``eta_t * (util - tau)`` while utilisation
    exceeds the target and falls back when it does not. The requests' budgets bound it in
    effect: a pair whose posted price exceeds the request's budget is no candidate, so a
    resource priced above what its users pay loses them and its price comes down.

    Attributes:
        eta: step size (in price units per round and unit of excess utilisation).
        target: target utilisation tau in (0, 1].
        schedule: ``"constant"`` or ``"sqrt"`` (``eta / sqrt(t + 1)``).
        lower: ``rho_min = lower * min(unit_cost)``.
        upper: ``rho_max = upper * max(unit_cost)``; ``lower < upper`` (a scenario with
            ``lower >= upper`` is refused when it loads: the price could not move).
    """

    eta: float = 0.01
    target: float = 0.8
    schedule: str = "constant"
    lower: float = 0.5
    upper: float = 2.0

    def bounds(self, unit_cost: np.ndarray) -> tuple[float, float]:
        """``(rho_min, rho_max)`` for these unit costs; ``(0, inf)`` if every cost is 0 (or none)."""
        top = float(unit_cost.max()) if unit_cost.size else 0.0
        if not top > 0:
            return 0.0, math.inf
        return self.lower * float(unit_cost.min()), self.upper * top

    def step(self, price: np.ndarray, utilization: np.ndarray, t: int, unit_cost: np.ndarray) -> np.ndarray:
        """The prices after round ``t`` given each resource's utilisation."""
        eta = self.eta / np.sqrt(t + 1.0) if self.schedule == "sqrt" else self.eta
        lo, hi = self.bounds(unit_cost)
        return np.clip(price + eta * (utilization - self.target), lo, hi)
