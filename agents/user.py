"""UserAgent: a requester that owns many requests and bids for them.

Users' state lives in one :class:`UserLedger` of arrays (row ``u`` = user ``u``): the
model settles a round into it with one vectorised call, and each UserAgent reads its own
row. Each round every user's strategy is asked for the scale of its bids
(:func:`bid_scales`, one vectorised call per strategy object), so a strategy assigned to
``user.strategy`` between rounds acts in the next. After settlement the model lets
stateful strategies learn (:func:`update_strategies`); their per-user arrays live in
``UserLedger.strategy_state`` and are copied with the ledger (what-if rounds play on a
copy). Strategies with a spending limit cap the requests a user puts in the book
(:func:`remaining_budgets`, :func:`affordable`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import mesa
import numpy as np

from agents.strategies import BiddingStrategy, Truthful, UserHistory
from market.errors import MarketInputError

if TYPE_CHECKING:
    from market.core.model import MarketModel


#: the per-user arrays of a history
_PER_USER = tuple(f.name for f in fields(UserHistory) if f.name not in ("users", "rounds", "state"))


@dataclass
class UserLedger(UserHistory):
    """Every user's history (a :class:`UserHistory` over all ``U`` users) and fairness memory.

    Attributes:
        memory: ``(U,)`` priority mass each user won in the last round (fairness memory).
        strategy_state: per-user arrays strategies own (``key -> (U, ...)``), e.g. a
            learner's ``(U, G)`` log-weights or a pacer's ``(U,)`` multipliers; created by
            the strategies' ``update`` on first use, copied with the ledger.
    """

    memory: np.ndarray = field(default_factory=lambda: np.zeros(0))
    strategy_state: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def empty(cls, n_users: int, budget_total: np.ndarray | None = None) -> UserLedger:
        """A ledger of ``n_users`` users with nothing played.

        Args:
            n_users: users.
            budget_total: ``(U,)`` sum of each user's request budgets over the run (what a
                pacing user's run budget is a share of); ``nan`` if not given.
        """
        counts, amounts = (lambda: np.zeros(n_users, dtype=np.int64)), (lambda: np.zeros(n_users))
        total = np.full(n_users, np.nan) if budget_total is None else np.asarray(budget_total, dtype=float).copy()
        if total.shape != (n_users,):
            raise ValueError(f"budget_total must have shape ({n_users},), got {total.shape}")
        return cls(users=np.arange(n_users), rounds=0, wins=counts(), spend=amounts(), utility=amounts(),
                   last_wins=counts(), last_spend=amounts(), last_utility=amounts(), last_requests=counts(),
                   last_value=amounts(), last_surplus=amounts(), last_relative_surplus=amounts(),
                   budget_total=total, memory=amounts())

    def copy(self) -> UserLedger:
        """An independent copy (for what-if rounds): every array and strategy array copied."""
        values: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict):
                values[f.name] = {k: v.copy() for k, v in value.items()}
            else:
                values[f.name] = value.copy() if isinstance(value, np.ndarray) else value
        return UserLedger(**values)

    def settle(self, user: np.ndarray, served: np.ndarray, payment: np.ndarray, utility: np.ndarray,
               won: np.ndarray, value: np.ndarray | None = None, budget: np.ndarray | None = None) -> None:
        """Book one round.

        Args:
            user: ``(N,)`` user of each order-book request.
            served: ``(N,)`` bool, served this round.
            payment: ``(N,)`` payment of each request (0 if unserved).
            utility: ``(N,)`` welfare share of each request (0 if unserved).
            won: ``(U,)`` priority mass each user holds after the round.
            value: ``(N,)`` the user's value of each request, ``budget * b_ij`` of the won
                pair (0 if unserved); without it the surplus fields stay 0.
            budget: ``(N,)`` each request's budget (normalises ``last_relative_surplus``);
                without it, ``value`` does.
        """
        n = self.wins.size
        self.last_wins = np.bincount(user[served], minlength=n).astype(np.int64)
        self.last_spend = np.bincount(user[served], payment[served], minlength=n)
        self.last_utility = np.bincount(user, utility, minlength=n)
        self.last_requests = np.bincount(user, minlength=n).astype(np.int64)
        if value is None:
            self.last_value, self.last_surplus, self.last_relative_surplus = np.zeros(n), np.zeros(n), np.zeros(n)
        else:
            value = np.where(served, value, 0.0)
            surplus = np.where(served, value - payment, 0.0)
            scale = np.asarray(value if budget is None else budget, dtype=float)
            relative = np.divide(surplus, scale, out=np.zeros(surplus.size), where=served & (scale > 0))
            self.last_value = np.bincount(user, value, minlength=n)
            self.last_surplus = np.bincount(user, surplus, minlength=n)
            self.last_relative_surplus = np.bincount(user, relative, minlength=n)
        self.wins += self.last_wins
        self.spend += self.last_spend
        self.utility += self.last_utility
        self.memory = won
        self.rounds += 1

    def history(self, users: np.ndarray) -> UserHistory:
        """What the users ``users`` (dense indices) know of their past."""
        rows = {name: getattr(self, name)[users] for name in _PER_USER}
        state = {key: arr[users] for key, arr in self.strategy_state.items()}
        return UserHistory(users=users, rounds=self.rounds, state=state, **rows)


def strategy_groups(users: list[UserAgent]) -> dict[BiddingStrategy, np.ndarray]:
    """Users by strategy object (equal frozen dataclasses are one group), dense indices.

    Groups in the order of their first user, each keyed by its first user's object, members
    in list order. Users share a few strategy objects, so the users are grouped by object
    identity with numpy and only the distinct objects are hashed and compared (hashing every
    user's frozen dataclass cost ~0.1 s at 100,000 users). The model groups its users once a
    round and hands the groups to the calls below (``groups``).
    """
    strategies = [agent.strategy for agent in users]
    index = np.array([agent.index for agent in users], dtype=np.int64)
    _, first, inverse = np.unique(np.array(list(map(id, strategies)), dtype=np.int64), return_index=True,
                                  return_inverse=True)
    classes: dict[BiddingStrategy, list[int]] = {}  # equal objects -> their identity groups
    for d in np.argsort(first, kind="stable").tolist():
        strategy = strategies[first[d]]
        try:
            hash(strategy)
        except TypeError:  # e.g. a plain (not frozen) dataclass: grouped by identity alone
            strategy = _ByIdentity(strategy)
        classes.setdefault(strategy, []).append(d)
    return {strategy: index[np.isin(inverse, ids)] for strategy, ids in classes.items()}


class _ByIdentity:
    """A strategy object that cannot be hashed, as a key of :func:`strategy_groups`: hashed by identity.

    Everything else (``name``, ``bid_scale``, ``update``, ...) is the strategy's own.
    """

    __slots__ = ("strategy",)

    def __init__(self, strategy: BiddingStrategy) -> None:
        self.strategy = strategy

    def __getattr__(self, name: str) -> object:
        return getattr(self.strategy, name)


def update_strategies(users: list[UserAgent], ledger: UserLedger,
                      groups: dict[BiddingStrategy, np.ndarray] | None = None) -> None:
    """Let stateful strategies learn from the round just settled into ``ledger``.

    Calls ``strategy.update(history, ledger)`` once per strategy object that has one,
    ``history`` being its users' rows taken after settlement but before any update (so a
    strategy sees the state it bid with). Strategies write into ``ledger.strategy_state``
    only: call it on the ledger of the state the round was played on. ``groups``: the users'
    :func:`strategy_groups`, if the caller has them.
    """
    groups = strategy_groups(users) if groups is None else groups
    histories = {strategy: ledger.history(idx) for strategy, idx in groups.items()}
    for strategy, history in histories.items():
        update = getattr(strategy, "update", None)
        if update is not None:
            update(history, ledger)


def _per_user(users: list[UserAgent], ledger: UserLedger, method: str, default: float | bool,
              groups: dict[BiddingStrategy, np.ndarray] | None) -> np.ndarray:
    """``(U,)`` each strategy's ``method(history)`` for its users; ``default`` where it has none."""
    out = np.full(len(users), default)
    for strategy, idx in (strategy_groups(users) if groups is None else groups).items():
        answer = getattr(strategy, method, None)
        if answer is not None:
            out[idx] = answer(ledger.history(idx))
    return out


def remaining_budgets(users: list[UserAgent], ledger: UserLedger,
                      groups: dict[BiddingStrategy, np.ndarray] | None = None) -> np.ndarray:
    """``(U,)`` what each user may still pay this run: ``inf`` unless its strategy has ``remaining``."""
    return _per_user(users, ledger, "remaining", np.inf, groups)


def run_budgets(users: list[UserAgent], ledger: UserLedger,
                groups: dict[BiddingStrategy, np.ndarray] | None = None) -> np.ndarray:
    """``(U,)`` each user's budget for the whole run: ``nan`` unless its strategy has ``run_budget``."""
    return _per_user(users, ledger, "run_budget", np.nan, groups)


def exhausted_users(users: list[UserAgent], ledger: UserLedger,
                    groups: dict[BiddingStrategy, np.ndarray] | None = None) -> np.ndarray:
    """``(U,)`` bool: users whose strategy says their run budget is spent (``exhausted``)."""
    return _per_user(users, ledger, "exhausted", False, groups)


def affordable(user: np.ndarray, cap: np.ndarray, remaining: np.ndarray) -> np.ndarray:
    """Which order-book requests a user can still pay for, whatever the mechanism charges.

    A request costs at most ``cap`` (its budget: every mechanism charges
    ``0 <= payment <= budget``). Walking each user's requests in book order (first fit), a
    request is kept if its cap fits in what the user has left after the caps of the
    requests kept before it; one that does not fit is skipped and a later, smaller one
    may still be kept (a prefix rule would end a pacer's run with up to its largest
    request's budget unspent). Users with ``remaining = inf`` keep everything.

    Args:
        user: ``(N,)`` user of each request.
        cap: ``(N,)`` the most each request can cost.
        remaining: ``(U,)`` what each user may still pay.

    Returns:
        ``(N,)`` bool mask of the requests to put in the book.
    """
    user = np.asarray(user, dtype=np.int64)
    cap = np.asarray(cap, dtype=float)
    keep = np.ones(user.size, dtype=bool)
    limited = np.flatnonzero(np.isfinite(remaining[user])) if user.size else user
    left = np.asarray(remaining, dtype=float).copy()
    for i in limited.tolist():  # only budget-limited users' requests: a few per round
        u = user[i]
        if cap[i] <= left[u] * (1 + 1e-12):
            left[u] -= cap[i]
        else:
            keep[i] = False
    return keep


def bid_scales(users: list[UserAgent], ledger: UserLedger,
               groups: dict[BiddingStrategy, np.ndarray] | None = None) -> np.ndarray:
    """Every user's bid scale this round: one vectorised strategy call per strategy object.

    Args:
        users: the user agents, ``users[u].index == u``.
        ledger: their history.
        groups: the users' :func:`strategy_groups`, if the caller has them.

    Returns:
        ``(U,)`` bid scales.

    Raises:
        MarketInputError: if a strategy answers with anything but one number or one per
            user of its group, or with a scale that is not finite and > 0, naming it (and
            the user).
    """
    # equal strategies (frozen dataclasses compare by value) answer in one call; others by identity
    scale = np.ones(len(users))
    for strategy, idx in (strategy_groups(users) if groups is None else groups).items():
        answer = strategy.bid_scale(ledger.history(idx))
        try:
            answer = np.asarray(answer, dtype=float)
        except (TypeError, ValueError):
            answer = None
        if answer is None or answer.shape not in ((), (idx.size,)):
            got = "something that is not numbers" if answer is None else f"an array of shape {answer.shape}"
            raise MarketInputError(f"strategy {strategy.name!r}: bid_scale must return one number or one per user "
                                   f"({idx.size}), got {got}")
        scale[idx] = answer
    if not np.all((scale > 0) & np.isfinite(scale)):
        bad = int(np.flatnonzero(~((scale > 0) & np.isfinite(scale)))[0])
        user_id = users[bad].user_id
        user_id = user_id.item() if isinstance(user_id, np.generic) else user_id
        raise MarketInputError(f"user {user_id!r}: strategy {users[bad].strategy.name!r} "
                               f"returned bid scale {float(scale[bad])!r} (must be finite and > 0)")
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
