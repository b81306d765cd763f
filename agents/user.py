"""UserAgent: a requester that owns many requests and bids for them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa

from agents.strategies import BiddingStrategy, Truthful

if TYPE_CHECKING:
    from market.core.model import MarketModel


class UserAgent(mesa.Agent):
    """A user. Its requests are rows of the model's request arrays (never objects).

    Attributes:
        index: dense user index (the ``user`` column of order books).
        user_id: the id from the market table.
        strategy: its bidding strategy.
    """

    def __init__(self, model: MarketModel, index: int, user_id: int, strategy: BiddingStrategy | None = None) -> None:
        super().__init__(model)
        self.index = int(index)
        self.user_id = int(user_id)
        self.strategy = strategy or Truthful()

    @property
    def bid_scale(self) -> float:
        """Scale its bids carry (1 = truthful)."""
        return self.strategy.bid_scale

    @property
    def wins(self) -> int:
        """Requests served so far."""
        return int(self.model.user_wins[self.index])

    @property
    def spend(self) -> float:
        """Total paid so far."""
        return float(self.model.user_spend[self.index])

    @property
    def utility(self) -> float:
        """Total utility received so far."""
        return float(self.model.user_utility[self.index])
