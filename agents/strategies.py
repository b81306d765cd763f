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

Stateful strategies (:class:`Learning`, :class:`Pacing`) may also have
``update(history, ledger)``, called once per round after settlement
(:func:`agents.user.update_strategies`); it writes the strategy's per-user arrays into
``ledger.strategy_state`` (rows ``history.users``), never into the strategy object: the
ledger is copied with the model state, so a what-if round on a copy leaves the real
learners untouched. ``bid_scale`` reads those arrays from ``history.state``. A strategy
with a spending limit also has ``remaining(history)`` (what each user may still pay,
``inf`` if unlimited); the model drops requests it could not pay for
(:func:`agents.user.affordable`).

Strategies are plug-ins registered by name (:func:`register_strategy`,
:func:`create_strategy`), like mechanisms; a scenario's ``[users] mix`` names them
(:func:`strategy_mix`, :func:`assign_strategies`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Protocol, runtime_checkable

import numpy as np

from agents import bandit
from market.errors import MarketInputError
from market.plugins import Registry


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
        last_requests: ``(n,)`` requests the user had in the last round's order book.
        last_value: ``(n,)`` value (``budget * b_ij``) of the user's requests served last round.
        last_surplus: ``(n,)`` value minus payment over the user's requests served last round.
        last_relative_surplus: ``(n,)`` sum over the user's served requests of
            ``(value - payment) / budget`` (each term in ``[-1, 1]``) last round.
        budget_total: ``(n,)`` sum of the budgets of all the user's requests in the run
            (``nan`` if the model did not say; pacing needs it).
        state: strategy-owned per-user arrays (``key -> (n, ...)`` rows of these users).
    """

    users: np.ndarray
    rounds: int
    wins: np.ndarray
    spend: np.ndarray
    utility: np.ndarray
    last_wins: np.ndarray
    last_spend: np.ndarray
    last_utility: np.ndarray
    last_requests: np.ndarray
    last_value: np.ndarray
    last_surplus: np.ndarray
    last_relative_surplus: np.ndarray
    budget_total: np.ndarray
    state: dict[str, np.ndarray] = field(default_factory=dict)


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


class StrategyParamError(ValueError):
    """A strategy parameter out of range; ``param`` names it (the scenario key is ``users.<name>_<param>``)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param} {message}")
        self.param = param


def check_exp3_rates(eta: float, gamma: float) -> None:
    """An EXP3 learner's rate and exploration (users' and owners' alike).

    Raises:
        StrategyParamError: ``eta`` outside ``(0, 10]`` or ``gamma`` outside ``[0, 1)``.
    """
    if not 0.0 < float(eta) <= 10.0:
        raise StrategyParamError("eta", f"must be in (0, 10], got {eta!r}")
    if not 0.0 <= float(gamma) < 1.0:
        raise StrategyParamError("gamma", f"must be in [0, 1), got {gamma!r}")


#: separates the users' EXP3 draws from other learners' (:func:`agents.bandit.uniforms`)
USER_SALT = 0x5EED


@dataclass(frozen=True)
class Learning:
    """A no-regret learner over bid-shading factors: EXP3 (Auer et al. 2002) on a grid.

    Each round every learning user plays one factor of ``grid``, drawn from
    ``p = (1 - gamma) * softmax(log_weights) + gamma / G``; after the round its reward is
    the realised surplus per request, normalised by budget:
    ``x = sum over its served requests of (value - payment) / budget``, divided by the
    requests it had in the book. ``x`` is in ``[0, 1]`` unless the user paid above its
    value (overbidding, a posted price), then negative down to -1 (clipped to
    ``[-1, 1]``), which only lowers that factor's weight. Only the played factor's
    log-weight moves, by the importance-weighted reward:
    ``log_w[k] += eta * x / p[k]`` (EXP3's estimator, Auer et al. 2002). A user with no
    request in the book learns nothing. ``eta`` 0.2 by default: on a synthetic
    first-price market (tests) it puts ~0.9 of the mass on the best of six factors
    within 400 rounds; 0.5 is noisier (0.8).

    Bandit feedback, because a user only sees what its played bid earned; not Hedge's full
    information, which would need the surplus every other factor would have earned.

    ``truthful_bias`` is the initial log-weight of the factor nearest 1 (the others start
    at 0): 0 starts uniform; ``b`` starts bidding truthfully with probability
    ``e^b / (e^b + G - 1)`` (3 with 5 factors: 0.83). Users who start truthful and
    explore shading learn to shade where it pays (first price: surplus 0 at factor 1) and
    stay near the truth where it does not. From a uniform start a truthful mechanism gives
    the learner little to go on: shading loses only the requests whose critical value
    lies between the shaded bid and the value (measured on the ``strategic`` market over
    300 second-price rounds: mean reward per request 0.061 at factor 1.0, 0.066 at 0.9,
    0.056 at 0.8, 0.034 at 0.6; the learners ended at a mean factor of 0.86).

    Deterministic per seed: the draw is an inverse-CDF of a uniform that is a pure function
    of ``(seed, round, user)`` (:func:`agents.bandit.uniforms`), so there is no rng state to copy, a
    what-if round plays the same factors as the real round, and :meth:`update` recovers
    the factor played from the same draw. The weights live in the ledger
    (``strategy_state[state_key]``, ``(U, G)`` log-weights), copied with the state.

    Raises:
        StrategyParamError: ``grid`` empty, unsorted or outside ``(0, 1.5]``; ``eta`` outside
            ``(0, 10]``; ``gamma`` outside ``[0, 1)``; ``truthful_bias`` outside ``[0, 50]``.
    """

    grid: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    eta: float = 0.2
    gamma: float = 0.05
    truthful_bias: float = 0.0
    seed: int = 0
    name: str = "learning"

    def __post_init__(self) -> None:
        try:
            grid = tuple(float(g) for g in self.grid)
        except (TypeError, ValueError):
            raise StrategyParamError("grid", f"must be a list of numbers, got {self.grid!r}") from None
        if not grid:
            raise StrategyParamError("grid", "must not be empty")
        if not all(0.0 < g <= 1.5 for g in grid):  # also rejects nan
            raise StrategyParamError("grid", f"values must be in (0, 1.5], got {list(grid)}")
        if any(b <= a for a, b in pairwise(grid)):
            raise StrategyParamError("grid", f"must be sorted increasing without repeats, got {list(grid)}")
        object.__setattr__(self, "grid", grid)
        check_exp3_rates(self.eta, self.gamma)
        if not 0.0 <= float(self.truthful_bias) <= 50.0:
            raise StrategyParamError("truthful_bias", f"must be in [0, 50], got {self.truthful_bias!r}")

    @property
    def state_key(self) -> str:
        """Key of its ``(U, G)`` log-weights in the ledger's ``strategy_state``."""
        return f"learning.log_weights{self.grid}{self.truthful_bias}"

    @property
    def prior(self) -> np.ndarray | None:
        """``(G,)`` initial log-weights: ``truthful_bias`` on the factor nearest 1 (None: uniform)."""
        if not self.truthful_bias:
            return None
        prior = np.zeros(len(self.grid))
        prior[int(np.argmin(np.abs(np.asarray(self.grid) - 1.0)))] = float(self.truthful_bias)
        return prior

    def probabilities(self, history: UserHistory) -> np.ndarray:
        """``(n, G)`` probability of each grid factor, per user."""
        return bandit.probabilities(history.state.get(self.state_key), history.users.size, len(self.grid), self.gamma,
                                    self.prior)

    def arm(self, history: UserHistory, rounds: int | None = None) -> np.ndarray:
        """``(n,)`` index of the grid factor each user plays in round ``rounds`` (default: next)."""
        u = bandit.uniforms(self.seed, history.rounds if rounds is None else rounds, history.users, USER_SALT)
        return bandit.draw(self.probabilities(history), u)

    def bid_scale(self, history: UserHistory) -> np.ndarray:
        """The drawn grid factor per user."""
        return np.asarray(self.grid)[self.arm(history)]

    def update(self, history: UserHistory, ledger: Any) -> None:
        """One EXP3 step from last round's realised surplus (``history`` taken after settlement).

        ``history.state`` must be the weights the round was bid with (the model calls
        this once, right after settling the round).
        """
        n_users = ledger.wins.size
        log_w = ledger.strategy_state.setdefault(self.state_key, bandit.initial(n_users, len(self.grid), self.prior))
        active = history.last_requests > 0
        if not active.any():
            return
        k = self.arm(history, history.rounds - 1)  # the factor played in the round just settled
        x = history.last_relative_surplus / np.maximum(history.last_requests, 1)
        bandit.update(log_w, history.users, k, x, self.probabilities(history), self.eta, active)


@dataclass(frozen=True)
class Pacing:
    """Adaptive pacing of a run budget (Balseiro & Gur 2019): bid ``value / (1 + mu)``.

    The user may spend ``run_budget = budget_share * budget_total`` over the whole run
    (``budget_total``: the sum of its requests' budgets, from the ledger). After each round
    ``mu <- min(mu_max, max(0, mu - eta * (rho - spend_last) / rho))``: spending above the
    target rate ``rho`` raises ``mu`` (lower bids), below lowers it. The step is divided by
    ``rho`` so ``eta`` is unitless whatever the currency (Balseiro and Gur's dual step on
    spend per unit of target rate). ``mu`` lives in the ledger
    (``strategy_state["pacing.mu"]``).

    The target rate: ``target = "fixed"`` is Balseiro and Gur's ``rho = run_budget /
    rounds``; ``"remaining"`` (default) re-solves it every round from what is left,
    ``rho_t = (run_budget - spent before t) / (rounds - t)``, so a pacer that won little
    early (spend comes in lumps: a round wins one request or none) catches up instead of
    ending the run with money left. Measured on the ``strategic`` market (second price,
    pacers at 5 % of their budgets): the fixed rate left the worst pacer at 0.68 of its
    run budget.

    The bid scale alone cannot keep spend within the budget (a posted price charges its
    price whatever the bid), so the strategy also says what each user may still pay
    (:meth:`remaining`) and which users are done (:meth:`exhausted`, bidding a scale of
    ``1e-9`` then); the model drops requests the user could not pay for
    (:func:`agents.user.affordable`: a request may cost up to its budget).

    Raises:
        StrategyParamError: ``budget_share`` negative or not finite, ``eta`` outside
            ``(0, 10]``, ``rounds`` < 1, ``target`` not ``"fixed"`` or ``"remaining"``.
    """

    budget_share: float = 0.5
    eta: float = 0.1
    rounds: int = 1
    target: str = "remaining"
    mu_max: float = 1e6
    name: str = "pacing"

    state_key = "pacing.mu"

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.budget_share) < math.inf:
            raise StrategyParamError("budget_share", f"must be a finite number >= 0, got {self.budget_share!r}")
        if not 0.0 < float(self.eta) <= 10.0:
            raise StrategyParamError("eta", f"must be in (0, 10], got {self.eta!r}")
        if int(self.rounds) < 1:
            raise StrategyParamError("rounds", f"must be >= 1, got {self.rounds!r}")
        if self.target not in ("fixed", "remaining"):
            raise StrategyParamError("target", f"must be 'fixed' or 'remaining', got {self.target!r}")

    def run_budget(self, history: UserHistory) -> np.ndarray:
        """``(n,)`` what each user may spend over the run."""
        if np.isnan(history.budget_total).any():
            raise ValueError("pacing needs the users' run budgets: UserLedger.empty(n_users, budget_total=...)")
        return float(self.budget_share) * history.budget_total

    def remaining(self, history: UserHistory) -> np.ndarray:
        """``(n,)`` what each user may still pay this run (never negative)."""
        return np.maximum(self.run_budget(history) - history.spend, 0.0)

    def exhausted(self, history: UserHistory) -> np.ndarray:
        """``(n,)`` bool: the user has spent its run budget (up to round-off)."""
        budget = self.run_budget(history)
        return history.spend >= budget * (1.0 - 1e-12)

    def mu(self, history: UserHistory) -> np.ndarray:
        """``(n,)`` current multipliers (0 before any update)."""
        mu = history.state.get(self.state_key)
        return np.zeros(history.users.size) if mu is None else mu

    def bid_scale(self, history: UserHistory) -> np.ndarray:
        """``1 / (1 + mu)``; ``1e-9`` once the run budget is spent."""
        return np.where(self.exhausted(history), 1e-9, 1.0 / (1.0 + self.mu(history)))

    def update(self, history: UserHistory, ledger: Any) -> None:
        """One dual step per user from last round's spend against the target rate."""
        mu_all = ledger.strategy_state.setdefault(self.state_key, np.zeros(ledger.wins.size))
        budget = self.run_budget(history)
        if self.target == "fixed":
            rho = budget / int(self.rounds)
        else:  # what was left before the round just settled, over the rounds left then
            left = max(1, int(self.rounds) - (history.rounds - 1))
            rho = np.maximum(budget - (history.spend - history.last_spend), 0.0) / left
        step = np.divide(rho - history.last_spend, rho, out=np.zeros_like(rho), where=rho > 0)
        mu = np.clip(self.mu(history) - float(self.eta) * step, 0.0, float(self.mu_max))
        mu_all[history.users] = np.where(rho > 0, mu, float(self.mu_max))


# --- registry --------------------------------------------------------------------------

#: the entry-point group of strategies from other packages (``win_shy = "mypkg.bids:WinShy"``)
ENTRY_POINT_GROUP = "market.strategies"


def _callable(name: str, cls: Callable[..., BiddingStrategy]) -> Callable[..., BiddingStrategy]:
    """Refuse a registered strategy that cannot be called with its parameters (e.g. a number)."""
    if not callable(cls):
        raise TypeError(f"{cls!r} is not a strategy class (not callable)")
    return cls


_STRATEGIES: Registry[Callable[..., BiddingStrategy]] = Registry(ENTRY_POINT_GROUP, _callable)
#: the built-in strategies (their parameters are ``[users] <name>_<param>`` keys; a plug-in's
#: are ``[users.params.<name>]``)
BUILT_IN = ("truthful", "shading", "learning", "pacing")


def register_strategy(name: str) -> Callable[[type], type]:
    """Class decorator registering a bidding strategy under ``name`` (scenarios' ``[users] mix``).

    The class is instantiated with keyword parameters (:func:`create_strategy`); it should
    raise :class:`StrategyParamError` (or ``ValueError``) for a bad one.
    """

    def decorate(cls: type) -> type:
        return _STRATEGIES.add(name, cls)

    return decorate


def unregister_strategy(name: str) -> None:
    """Forget the strategy registered under ``name`` (no error if there is none)."""
    _STRATEGIES.remove(name)


def available_strategies() -> list[str]:
    """Names of all registered strategies (entry points included), sorted."""
    return _STRATEGIES.names()


def strategy_class(name: str, source: str | None = None) -> Callable[..., BiddingStrategy]:
    """The class registered under ``name``.

    Raises:
        MarketInputError: naming ``users.mix.<name>`` if no strategy has that name.
    """
    cls = _STRATEGIES.get(name)
    if cls is None:
        problem = _STRATEGIES.problem(name)
        raise MarketInputError(f"users.mix.{name}: strategy {name!r}: {problem}" if problem else
                               f"users.mix.{name}: unknown strategy {name!r} "
                               f"(available: {', '.join(available_strategies())})", source=source)
    return cls


def create_strategy(name: str, source: str | None = None, **params: Any) -> BiddingStrategy:
    """Instantiate the strategy ``name`` with ``params``.

    Raises:
        MarketInputError: one line naming the key: ``users.mix.<name>`` for an unknown
            name, ``users.<name>_<param>`` for a built-in strategy's value out of range,
            ``users.params.<name>`` for a plug-in's parameters it refuses.
    """
    cls = strategy_class(name, source)
    key = f"users.mix.{name}" if name in BUILT_IN else f"users.params.{name}"
    try:
        return cls(**params)
    except StrategyParamError as exc:
        where = f"users.{name}_{exc.param}" if name in BUILT_IN else f"users.params.{name}.{exc.param}"
        raise MarketInputError(f"{where}: {exc}", source=source) from None
    except (TypeError, ValueError) as exc:
        raise MarketInputError(f"{key}: bad parameters {params}: {exc}", source=source) from None


register_strategy("truthful")(Truthful)
register_strategy("shading")(Shading)
register_strategy("learning")(Learning)
register_strategy("pacing")(Pacing)


def strategy_mix(mix: Mapping[str, Any], params: Mapping[str, Mapping[str, Any]] | None = None,
                 source: str | None = None) -> list[tuple[str, float]]:
    """Validate ``[users] mix`` (shares by strategy name) and the strategies' parameters.

    Args:
        mix: ``name -> share``; shares finite, ``>= 0``, summing to 1 (within ``1e-9``).
        params: ``name -> {param: value}`` for the strategies in the mix (others ignored).
        source: the scenario file, for messages.

    Returns:
        ``[(name, share)]`` in assignment order: the mix's order with ``truthful`` last, so
        ``{truthful = 1 - s, shading = s}`` assigns exactly as ``shading_share = s`` did.

    Raises:
        MarketInputError: one line naming the key (``users.mix.<name>`` for an unknown name
            or a bad share, ``users.mix`` for a sum other than 1, ``users.<name>_<param>``
            for a parameter out of range).
    """
    if not isinstance(mix, Mapping) or not mix:
        raise MarketInputError(f"users.mix: must be a non-empty table of shares, got {mix!r}", source=source)
    params = params or {}
    shares: list[tuple[str, float]] = []
    for name, share in mix.items():
        strategy_class(str(name), source)
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= float(share) < math.inf:
            raise MarketInputError(f"users.mix.{name}: share must be a finite number >= 0, got {share!r}",
                                   source=source)
        create_strategy(str(name), source, **dict(params.get(name, {})))
        shares.append((str(name), float(share)))
    total = math.fsum(s for _, s in shares)
    if abs(total - 1.0) > 1e-9:
        raise MarketInputError(f"users.mix: shares must sum to 1, got {total!r}", source=source)
    return [s for s in shares if s[0] != "truthful"] + [s for s in shares if s[0] == "truthful"]


def assign_strategies(mix: list[tuple[str, float]], params: Mapping[str, Mapping[str, Any]] | None,
                      n_users: int, rng: np.random.Generator) -> list[BiddingStrategy]:
    """One strategy object per user, drawn from the validated ``mix`` (:func:`strategy_mix`).

    User ``u`` draws one uniform ``r_u`` (``rng.random(n_users)``) and takes the strategy
    whose cumulative-share interval holds it; users of one strategy share one object.
    With ``[("shading", s), ("truthful", 1 - s)]`` this is the old ``shading_share`` rule
    (``r_u < s`` shades) draw for draw.
    """
    params = params or {}
    objects = [create_strategy(name, **dict(params.get(name, {}))) for name, _ in mix]
    edges = np.cumsum([share for _, share in mix])
    draw = rng.random(n_users)
    which = np.minimum(np.searchsorted(edges, draw, side="right"), len(mix) - 1)
    return [objects[int(k)] for k in which]
