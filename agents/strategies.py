"""Bidding strategies: how a user turns its private value into a bid, round by round.

A user's value for being served by resource j is ``budget_i * b_ij``. Each round a
strategy returns the scale its users' bids carry that round (1 is truthful; shading bids
a fraction of the value, profitable under first price, pointless under a truthful
mechanism). It may read its users' history (:class:`UserHistory`: wins, payments and
utility so far, and the last round's) and is asked again every round, so a strategy
assigned to ``user.strategy`` between rounds takes effect in the next round.

A strategy is any object with a ``name`` and a vectorised ``bid_scale(history)`` method
(:class:`BiddingStrategy`): one call serves every user holding that strategy object,
``history`` has one entry per such user and the answer is a scale per user (or one
for all). It must not change anything when asked (the model may play a what-if round)
and returns finite scales > 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class UserHistory:
    """What users know of their own past when they bid: one entry per user asked.

    Attributes:
        users: ``(n,)`` dense user indices (rows of the model's user ledger).
        rounds: rounds played so far (the same for all).
        wins: ``(n,)`` requests served so far.
        spend: ``(n,)`` total paid so far.
        utility: ``(n,)`` total utility received so far.
        last_wins: ``(n,)`` requests served in the last round.
        last_spend: ``(n,)`` paid in the last round.
        last_utility: ``(n,)`` utility received in the last round.
    """

    users: np.ndarray
    rounds: int
    wins: np.ndarray
    spend: np.ndarray
    utility: np.ndarray
    last_wins: np.ndarray
    last_spend: np.ndarray
    last_utility: np.ndarray


@runtime_checkable
class BiddingStrategy(Protocol):
    """The interface every bidding strategy keeps."""

    name: str

    def bid_scale(self, history: UserHistory) -> np.ndarray | float:
        """Scale this round's bids carry, per user of ``history`` (1 = the true value)."""
        ...


@dataclass(frozen=True)
class Truthful:
    """Bid the true value."""

    name: str = "truthful"

    def bid_scale(self, history: UserHistory) -> float:
        """Always 1."""
        return 1.0


@dataclass(frozen=True)
class Shading:
    """Bid ``factor`` times the true value (``factor < 1`` shades, ``> 1`` overbids).

    Raises:
        ValueError: if ``factor`` is not a finite number > 0.
    """

    factor: float = 0.8
    name: str = "shading"

    def __post_init__(self) -> None:
        if not 0.0 < float(self.factor) < float("inf"):
            raise ValueError(f"shading factor must be a finite number > 0, got {self.factor!r}")

    def bid_scale(self, history: UserHistory) -> float:
        """``factor``, whatever happened before."""
        return float(self.factor)
