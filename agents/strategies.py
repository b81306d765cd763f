"""Bidding strategies: how a user turns its private value into a bid.

A user's value for being served by resource j is ``budget_i * b_ij``. A strategy
returns the scale its bids carry: 1 is truthful; shading bids a fraction of the value
(profitable under first-price, pointless under a truthful mechanism).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Truthful:
    """Bid the true value."""

    name: str = "truthful"

    @property
    def bid_scale(self) -> float:
        """Scale applied to the true value."""
        return 1.0


@dataclass(frozen=True)
class Shading:
    """Bid ``factor`` times the true value (``factor < 1`` shades)."""

    factor: float = 0.8
    name: str = "shading"

    @property
    def bid_scale(self) -> float:
        """Scale applied to the true value."""
        return float(self.factor)


BiddingStrategy = Truthful | Shading
