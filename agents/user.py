"""UserAgent: a requester that owns many requests and bids for them.

Users' state lives in one :class:`UserLedger` of arrays (row ``u`` = user ``u``): the
model settles a round into it with one vectorised call, and each UserAgent reads its own
row. Each round every user's strategy is asked for the scale of its bids
(:func:`bid_scales`, one vectorised call per strategy object), so a strategy assigned to
``user.strategy`` between rounds acts in the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import mesa
import numpy as np

from agents.strategies import BiddingStrategy, Truthful, UserHistory

if TYPE_CHECKING:
    from market.core.model import MarketModel


#: the per-user arrays of a history
_PER_USER = tuple(f.name for f in fields(UserHistory) if f.name not in ("users", "rounds"))


@dataclass
class UserLedger(UserHistory):
    """Every user's history (a :class:`UserHistory` over all ``U`` users) and fairness memory.

    Attributes:
        memory: ``(U,)`` priority mass each user won in the last round (fairness memory).
    """

    memory: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def empty(cls, n_users: int) -> UserLedger:
        """A ledger of ``n_users`` users with nothing played."""
        counts, amounts = (lambda: np.zeros(n_users, dtype=np.int64)), (lambda: np.zeros(n_users))
        return cls(np.arange(n_users), 0, counts(), amounts(), amounts(), counts(), amounts(), amounts(), amounts())

    def copy(self) -> UserLedger:
        """An independent copy (for what-if rounds)."""
        return UserLedger(**{f.name: getattr(self, f.name).copy() if f.name != "rounds" else self.rounds
                             for f in fields(self)})

    def settle(self, user: np.ndarray, served: np.ndarray, payment: np.ndarray, utility: np.ndarray,
               won: np.ndarray) -> None:
        """Book one round.

        Args:
            user: ``(N,)`` user of each order-book request.
            served: ``(N,)`` bool, served this round.
            payment: ``(N,)`` payment of each request (0 if unserved).
            utility: ``(N,)`` welfare share of each request (0 if unserved).
            won: ``(U,)`` priority mass each user holds after the round.
        """
        n = self.wins.size
        self.last_wins = np.bincount(user[served], minlength=n).astype(np.int64)
        self.last_spend = np.bincount(user[served], payment[served], minlength=n)
        self.last_utility = np.bincount(user, utility, minlength=n)
        self.wins += self.last_wins
        self.spend += self.last_spend
        self.utility += self.last_utility
        self.memory = won
        self.rounds += 1

    def history(self, users: np.ndarray) -> UserHistory:
        """What the users ``users`` (dense indices) know of their past."""
        rows = {name: getattr(self, name)[users] for name in _PER_USER}
        return UserHistory(users=users, rounds=self.rounds, **rows)


def bid_scales(users: list[UserAgent], ledger: UserLedger) -> np.ndarray:
    """Every user's bid scale this round: one vectorised strategy call per strategy object.

    Args:
        users: the user agents, ``users[u].index == u``.
        ledger: their history.

    Returns:
        ``(U,)`` bid scales.

    Raises:
        ValueError: if a strategy returns a scale that is not finite and > 0, naming it.
    """
    # equal strategies (frozen dataclasses compare by value) answer in one call; others by identity
    groups: dict[BiddingStrategy, list[int]] = {}
    for agent in users:
        groups.setdefault(agent.strategy, []).append(agent.index)
    scale = np.ones(len(users))
    for strategy, members in groups.items():
        idx = np.asarray(members, dtype=np.int64)
        scale[idx] = strategy.bid_scale(ledger.history(idx))
    if not np.all((scale > 0) & np.isfinite(scale)):
        bad = int(np.flatnonzero(~((scale > 0) & np.isfinite(scale)))[0])
        raise ValueError(f"user {users[bad].user_id!r}: strategy {users[bad].strategy.name!r} "
                         f"returned bid scale {scale[bad]!r} (must be finite and > 0)")
    return scale


class UserAgent(mesa.Agent):
    """A user. Its requests are rows of the model's request arrays (never objects).

    Attributes:
        index: dense user index (the ``user`` column of order books).
        user_id: the id from the market table.
        strategy: its bidding strategy, asked every round.
    """

    def __init__(self, model: MarketModel, index: int, user_id: object,
                 strategy: BiddingStrategy | None = None) -> None:
        super().__init__(model)
        self.index = int(index)
        self.user_id = user_id
        self.strategy = strategy or Truthful()

    @property
    def history(self) -> UserHistory:
        """Its wins, payments and utility so far (from the model's user ledger)."""
        return self.model.user_ledger.history(np.array([self.index]))

    @property
    def bid_scale(self) -> float:
        """The scale its bids would carry now (the model asks all users at once, :func:`bid_scales`)."""
        return float(np.broadcast_to(self.strategy.bid_scale(self.history), (1,))[0])

    @property
    def wins(self) -> int:
        """Requests served so far."""
        return int(self.model.user_ledger.wins[self.index])

    @property
    def spend(self) -> float:
        """Total paid so far."""
        return float(self.model.user_ledger.spend[self.index])

    @property
    def utility(self) -> float:
        """Total utility received so far."""
        return float(self.model.user_ledger.utility[self.index])
