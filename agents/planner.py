"""PlannerAgent: the root planner and one planner per cluster of resources.

The engine (:func:`market.core.engine.clear_round`) hands each cluster planner its
sub-market of the round and the root planner the spill-over market; the planner runs
the market's mechanism on it and keeps what it cleared (for the dashboard and records).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa
import numpy as np

from mechanisms.base import Allocation, Mechanism, SubMarket

if TYPE_CHECKING:
    from market.core.model import MarketModel


class PlannerAgent(mesa.Agent):
    """A node of the planner hierarchy (a networkx tree kept by the model).

    Attributes:
        cluster: the cluster index, or None for the root.
        members: global indices of the resources this planner manages.
        cleared: requests in the last sub-market it cleared.
        served: requests it served in that sub-market.
        refined: the root: requests its last refinement of a round added to the served
            (net, may be negative; 0 for a mechanism that does not refine).
    """

    def __init__(self, model: MarketModel, cluster: int | None, members: np.ndarray) -> None:
        super().__init__(model)
        self.cluster = cluster
        self.members = np.asarray(members)
        self.cleared = 0
        self.served = 0
        self.refined = 0

    def clear(self, mechanism: Mechanism, market: SubMarket, rng: np.random.Generator) -> Allocation:
        """Clear one sub-market with ``mechanism`` (the root: the spill-over market).

        Args:
            mechanism: the market's mechanism.
            market: the sub-market (read-only arrays).
            rng: this planner's generator for the round.

        Returns:
            The mechanism's allocation.
        """
        alloc = mechanism.allocate(market, rng)
        self.cleared, self.served = market.n_requests, int(np.count_nonzero(alloc.choice >= 0))
        return alloc

    def refine(self, mechanism: Mechanism, market: SubMarket, choice: np.ndarray,
               rng: np.random.Generator) -> Allocation:
        """The root's last step: let ``mechanism`` improve the whole round's allocation.

        Args:
            mechanism: the market's mechanism (one that :meth:`~mechanisms.base.Mechanism.refines` the round).
            market: the whole round (:meth:`mechanisms.base.Mechanism.refine`).
            choice: ``(N,)`` the allocation of the cluster auctions and the spill-over.
            rng: the root's generator for this step.

        Returns:
            The round's allocation.
        """
        alloc = mechanism.refine(market, choice, rng)
        self.refined = int(np.count_nonzero(alloc.choice >= 0)) - int(np.count_nonzero(choice >= 0))
        return alloc

    @property
    def is_root(self) -> bool:
        """True for the root planner."""
        return self.cluster is None

    @property
    def node(self) -> str:
        """Its node name in the hierarchy graph."""
        return "root" if self.is_root else f"cluster-{self.cluster}"

    @property
    def load(self) -> float:
        """Mean utilisation of its resources."""
        load = self.model.resource_ledger.load
        return float(load[self.members].mean()) if self.members.size else 0.0

    @property
    def mean_price(self) -> float:
        """Mean posted unit price of its resources."""
        return float(self.model.price[self.members].mean()) if self.members.size else 0.0
