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

A second rule, :class:`Tatonnement` (``[pricing] rule = "tatonnement"``), moves each price
with the resource's excess demand instead of its utilisation (Walras' tatonnement as a
dynamic process: Arrow and Hurwicz, "On the stability of the competitive equilibrium, I",
Econometrica 26, 1958; the multiplicative form and its clipping of excess demand at 1 are
those of Cheung, Cole and Devanur, "Tatonnement beyond gross substitutes?", STOC 2013, for
Fisher markets). :func:`price_rule` builds either rule by its name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from market.errors import MarketInputError


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


@dataclass(frozen=True)
class Tatonnement:
    """Price steps on each resource's excess demand (Walrasian tatonnement).

    ``z_j = (unserved_j - free_j) / capacity_j``, all three in the priced dimension (the
    same unit, e.g. cpu or slots): ``unserved_j`` is the demand of the round's unserved
    requests that wanted ``j`` (``j`` was the request's best candidate this round),
    ``free_j`` the capacity of ``j`` still free after settlement and ``capacity_j`` its
    capacity. ``z_j`` is dimensionless, in ``[-1, inf)``: ``-1`` an idle resource nobody
    asked for, ``0`` cleared (as much demand left over as capacity left over), positive
    when more was turned away than ``j`` could still take.

    - ``multiplicative`` (default): ``rho_j <- clip(rho_j * (1 + eta_t * min(z_j, 1)))``,
      the update of Cheung, Cole and Devanur (STOC 2013); ``eta_t`` is dimensionless
      (relative change per round per unit of excess demand), ``eta_t < 1`` keeps prices
      positive. A price at 0 (a free resource) cannot grow by a factor: it steps
      additively from 0 by ``eta_t * max(z_j, 0)`` price units, so an over-asked free
      resource gets a price and then moves multiplicatively.
    - ``additive``: ``rho_j <- clip(rho_j + eta_t * z_j)`` (Arrow and Hurwicz, 1958);
      ``eta_t`` in price units per round per unit of excess demand.

    ``clip`` is onto the bounds of :class:`PriceRule` (``[lower * min cost, upper * max
    cost]``, or ``[0, inf)`` when every unit cost is 0). ``z = 0`` leaves every price as it is.

    Attributes:
        eta: step size; schedule ``"constant"`` or ``"sqrt"`` (``eta / sqrt(t + 1)``).
        lower, upper: the price bounds as multiples of the unit costs (as :class:`PriceRule`).
        mode: ``"multiplicative"`` or ``"additive"``.
    """

    eta: float = 0.1
    schedule: str = "constant"
    lower: float = 0.5
    upper: float = 2.0
    mode: str = "multiplicative"

    def bounds(self, unit_cost: np.ndarray) -> tuple[float, float]:
        """``(rho_min, rho_max)``: the bounds of :meth:`PriceRule.bounds`."""
        return PriceRule(lower=self.lower, upper=self.upper).bounds(unit_cost)

    @staticmethod
    def excess_demand(unserved: np.ndarray, free: np.ndarray, capacity: np.ndarray) -> np.ndarray:
        """``(M,)`` ``z_j = (unserved_j - free_j) / capacity_j`` (0 where the capacity is 0)."""
        unserved, free, capacity = (np.asarray(a, dtype=float) for a in (unserved, free, capacity))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(capacity > 0, (unserved - free) / np.where(capacity > 0, capacity, 1.0), 0.0)

    def step(self, price: np.ndarray, unserved: np.ndarray, free: np.ndarray, capacity: np.ndarray, t: int,
             unit_cost: np.ndarray) -> np.ndarray:
        """The prices after round ``t`` given each resource's unserved demand, free capacity, capacity.

        Args:
            price: ``(M,)`` posted unit prices the round cleared at.
            unserved: ``(M,)`` demand of the unserved requests whose best candidate was ``j``.
            free: ``(M,)`` capacity of ``j`` free after settlement (same unit).
            capacity: ``(M,)`` capacity of ``j`` (same unit).
            t: the round (for the ``sqrt`` schedule).
            unit_cost: ``(M,)`` unit costs (the bounds).
        """
        eta = self.eta / np.sqrt(t + 1.0) if self.schedule == "sqrt" else self.eta
        lo, hi = self.bounds(unit_cost)
        z = self.excess_demand(unserved, free, capacity)
        price = np.asarray(price, dtype=float)
        if self.mode == "additive":
            new = price + eta * z
        else:
            new = np.where(price > 0, price * (1.0 + eta * np.minimum(z, 1.0)), eta * np.maximum(z, 0.0))
        return np.clip(new, lo, hi)


#: the price rules by their ``[pricing] rule`` name
PRICE_RULES = {"utilization": PriceRule, "tatonnement": Tatonnement}


def price_rule(name: str, **params: float | str) -> PriceRule | Tatonnement:
    """The price rule called ``name`` (``utilization`` or ``tatonnement``) with ``params``.

    Parameters a rule does not have (``target`` for tatonnement, ``mode`` for utilisation)
    are ignored, so one ``[pricing]`` table serves both.

    Raises:
        MarketInputError: on an unknown name (one line, naming ``pricing.rule``).
    """
    if name not in PRICE_RULES:
        raise MarketInputError(f"key 'pricing.rule' must be one of {', '.join(map(repr, PRICE_RULES))}, got {name!r}")
    cls = PRICE_RULES[name]
    fields = cls.__dataclass_fields__
    return cls(**{k: v for k, v in params.items() if k in fields})
