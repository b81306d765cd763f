"""Sealed-bid first-price auction: pay your bid (the MOHAF paper's ``First-Price``, corrected).

A request bids ``v_ij = scale * budget_i * b_ij`` (its value, shaded by its strategy) on
each candidate whose posted cost it covers; pairs are accepted in descending bid while
capacity lasts, and the winner pays its bid. Shading pays here: see ``market audit``.
"""

from __future__ import annotations

import numpy as np

from mechanisms.base import Allocation, Mechanism, SubMarket, paid
from mechanisms.kernels import edge_scan
from mechanisms.registry import register


@register("first_price")
class FirstPrice(Mechanism):
    """Pay-your-bid sorted-edge auction."""

    def allocate(self, market: SubMarket, rng: np.random.Generator) -> Allocation:
        """Accept bids in descending order while they fit; winners pay their bid."""
        bids = market.bids()
        ok = market.valid & (bids >= market.reserve)
        flat = np.flatnonzero(ok.ravel())
        order = flat[np.argsort(-bids.ravel()[flat], kind="stable")]
        choice = edge_scan(order, market.candidates, market.demand, market.capacity)
        return Allocation(choice, paid(market, choice, bids))
