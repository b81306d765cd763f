"""OwnerAgent: a seller owning some resources, who sets a reserve price under their posted price.

Each owner ``o`` (the resources table's ``owner_id``; a resource without one is its own
owner) chooses a **reserve multiplier** ``r_o`` every round; the reserve unit price of its
resource ``j`` is ``r_o * unit_cost_j`` and the market posts ``max(price_j, r_o *
unit_cost_j)``: the price rule's price, floored by the owner's reserve. How owners choose is
the scenario's ``[owners] strategy`` (:func:`create_owner_strategy`):

- ``fixed``: every owner keeps ``reserve`` (default 0: no floor, the market as before);
- ``learning``: every owner is an EXP3 learner (:mod:`agents.bandit`) over a grid of
  multipliers, rewarded by its revenue (Myerson's reserve price, learnt from bandit
  feedback as in the online reserve-price literature, e.g. Cesa-Bianchi, Gentile and
  Mansour, "Regret minimization for reserve prices in second-price auctions", IEEE Trans.
  Inf. Theory 61(1), 2015). The reward of a round is the owner's revenue over the largest
  revenue it has had in any round so far (so it lies in ``[0, 1]`` in any currency).

Owner strategies are vectorised over owners like the users' strategies are over users;
their state lives in the resource ledger's ``owner_state`` (copied with the model state, so
a what-if round never moves a learner) and draws are pure functions of ``(seed, round,
owner)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Protocol

import mesa
import numpy as np

from agents import bandit
from agents.strategies import StrategyParamError, check_exp3_rates
from market.errors import MarketInputError

if TYPE_CHECKING:
    from market.core.model import MarketModel

#: separates the owners' EXP3 draws from the users' (:func:`agents.bandit.uniforms`)
OWNER_SALT = 0x0E7E


class OwnerStrategy(Protocol):
    """How every owner of a market sets its reserve multiplier (one object for all owners)."""

    name: str

    def multipliers(self, state: dict[str, np.ndarray], rounds: int, n_owners: int) -> np.ndarray:
        """``(O,)`` reserve multipliers (finite, >= 0) for round ``rounds``; must not change ``state``."""
        ...

    def update(self, state: dict[str, np.ndarray], rounds: int, revenue: np.ndarray) -> None:
        """Learn from round ``rounds``'s ``(O,)`` revenue per owner, writing only into ``state``."""
        ...


@dataclass(frozen=True)
class FixedReserve:
    """Every owner keeps one reserve multiplier (0: no reserve, the posted price alone).

    Raises:
        StrategyParamError: ``reserve`` negative or not finite.
    """

    reserve: float = 0.0
    name: str = "fixed"

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.reserve) < math.inf:
            raise StrategyParamError("reserve", f"must be a finite number >= 0, got {self.reserve!r}")

    def multipliers(self, state: dict[str, np.ndarray], rounds: int, n_owners: int) -> np.ndarray:
        """``reserve`` for every owner."""
        return np.full(n_owners, float(self.reserve))

    def update(self, state: dict[str, np.ndarray], rounds: int, revenue: np.ndarray) -> None:
        """Nothing to learn."""


@dataclass(frozen=True)
class LearningReserve:
    """Every owner an EXP3 learner over reserve multipliers, rewarded by its revenue.

    ``eta`` 0.05 by default, near Auer et al.'s rate ``sqrt(2 ln G / (T G))`` for runs of
    about a hundred rounds and six multipliers; larger rates let one lucky exploration
    (an importance weight of ``1 / p``) flip a learner to a worse multiplier for good
    (tests: 0.3 leaves one owner in three on the wrong reserve after 600 rounds).

    Raises:
        StrategyParamError: ``grid`` empty, unsorted or outside ``[0, 100]``; ``eta``
            outside ``(0, 10]``; ``gamma`` outside ``[0, 1)``.
    """

    grid: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
    eta: float = 0.05
    gamma: float = 0.1
    seed: int = 0
    name: str = "learning"

    LOG_WEIGHTS = "owners.log_weights"
    BEST = "owners.best_revenue"

    def __post_init__(self) -> None:
        try:
            grid = tuple(float(g) for g in self.grid)
        except (TypeError, ValueError):
            raise StrategyParamError("grid", f"must be a list of numbers, got {self.grid!r}") from None
        if not grid or not all(0.0 <= g <= 100.0 for g in grid) or any(b <= a for a, b in pairwise(grid)):
            raise StrategyParamError("grid", f"must be increasing numbers in [0, 100], got {list(grid)}")
        object.__setattr__(self, "grid", grid)
        check_exp3_rates(self.eta, self.gamma)

    def _arm(self, state: dict[str, np.ndarray], rounds: int, n_owners: int) -> tuple[np.ndarray, np.ndarray]:
        p = bandit.probabilities(state.get(self.LOG_WEIGHTS), n_owners, len(self.grid), self.gamma)
        owners = np.arange(n_owners)
        return bandit.draw(p, bandit.uniforms(self.seed, rounds, owners, OWNER_SALT)), p

    def multipliers(self, state: dict[str, np.ndarray], rounds: int, n_owners: int) -> np.ndarray:
        """The grid multiplier each owner draws for round ``rounds``."""
        return np.asarray(self.grid)[self._arm(state, rounds, n_owners)[0]]

    def update(self, state: dict[str, np.ndarray], rounds: int, revenue: np.ndarray) -> None:
        """One EXP3 step: reward ``revenue / best revenue so far`` (0 while an owner has earned nothing)."""
        n = revenue.size
        arm, p = self._arm(state, rounds, n)  # the multipliers played in round ``rounds``
        log_w = state.setdefault(self.LOG_WEIGHTS, np.zeros((n, len(self.grid))))
        best = np.maximum(state.get(self.BEST, np.zeros(n)), revenue)
        state[self.BEST] = best
        reward = np.divide(revenue, best, out=np.zeros(n), where=best > 0)
        bandit.update(log_w, np.arange(n), arm, reward, p, float(self.eta), np.ones(n, dtype=bool))


#: ``[owners] strategy`` -> class
OWNER_STRATEGIES: dict[str, type] = {"fixed": FixedReserve, "learning": LearningReserve}


def create_owner_strategy(name: str, source: str | None = None, **params: Any) -> OwnerStrategy:
    """The owner strategy ``name`` (``fixed`` or ``learning``) with ``params``.

    Raises:
        MarketInputError: one line naming the key: ``owners.strategy`` for an unknown name,
            ``owners.<param>`` for a value out of range.
    """
    if name not in OWNER_STRATEGIES:
        raise MarketInputError(f"key 'owners.strategy' must be one of {', '.join(map(repr, OWNER_STRATEGIES))}, "
                               f"got {name!r}", source=source)
    try:
        return OWNER_STRATEGIES[name](**params)
    except StrategyParamError as exc:
        raise MarketInputError(f"key 'owners.{exc.param}': {exc}", source=source) from None


def owner_index(owner_ids: np.ndarray, missing: object = -1) -> tuple[np.ndarray, list[object]]:
    """Dense owner of each resource, and each owner's id.

    Args:
        owner_ids: ``(M,)`` the resources' ``owner_id`` (int or str).
        missing: the id that marks a resource without owner (the tables' fill for a
            missing ``owner_id``); each such resource is its own owner (id None).

    Returns:
        ``(M,)`` owner index per resource and the ``O`` owner ids (sorted ids first, then
        one None per ownerless resource, in resource order).
    """
    ids = np.asarray(owner_ids, dtype=object)
    lone = np.array([v == missing and not isinstance(v, str) for v in ids], dtype=bool)
    owned = ids[~lone]
    names = sorted(set(owned.tolist()), key=lambda v: (isinstance(v, str), v))
    code = {v: i for i, v in enumerate(names)}
    index = np.empty(ids.size, dtype=np.int64)
    index[~lone] = [code[v] for v in owned]
    index[lone] = len(names) + np.arange(int(lone.sum()))
    return index, [*names, *([None] * int(lone.sum()))]


class OwnerAgent(mesa.Agent):
    """A seller: owner ``index`` of the model, holding the resources ``resources``.

    Attributes:
        index: dense owner index.
        owner_id: the id from the resources table (None: a resource without owner).
        resources: ``(k,)`` its resources' rows.
    """

    def __init__(self, model: MarketModel, index: int, owner_id: object, resources: np.ndarray) -> None:
        super().__init__(model)
        self.index = int(index)
        self.owner_id = owner_id
        self.resources = resources

    @property
    def reserve(self) -> float:
        """The reserve multiplier it sets for the next round."""
        return float(self.model.reserve_multipliers()[self.index])

    @property
    def revenue(self) -> float:
        """Payments its resources collected so far."""
        return float(self.model.resource_ledger.revenue[self.resources].sum())
