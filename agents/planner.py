"""PlannerAgent: the root planner and one planner per cluster of resources."""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa
import numpy as np

if TYPE_CHECKING:
    from market.core.model import MarketModel


class PlannerAgent(mesa.Agent):
    """A node of the planner hierarchy (a networkx tree kept by the model).

    The root routes requests to clusters and runs the spill-over pass; each cluster
    planner runs the mechanism on its sub-market (see :func:`market.core.engine.clear_round`).

    Attributes:
        cluster: the cluster index, or None for the root.
        members: global indices of the resources this planner manages.
    """

    def __init__(self, model: MarketModel, cluster: int | None, members: np.ndarray) -> None:
        super().__init__(model)
        self.cluster = cluster
        self.members = np.asarray(members)

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
        return float(self.model.load[self.members].mean()) if self.members.size else 0.0

    @property
    def mean_price(self) -> float:
        """Mean posted unit price of its resources."""
        return float(self.model.price[self.members].mean()) if self.members.size else 0.0
