"""ResourceAgent: a server, edge node or IoT gateway that sells capacity."""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa

if TYPE_CHECKING:
    from market.core.model import MarketModel


class ResourceAgent(mesa.Agent):
    """A resource of the market.

    Its state lives in the model's arrays (row ``index``); this agent is the identity that reporters, the dashboard and the planner tree refer to.

    Attributes:
        index: row of this resource in the model's resource arrays.
        resource_id: the id from the market table.
    """

    def __init__(self, model: MarketModel, index: int, resource_id: int) -> None:
        super().__init__(model)
        self.index = int(index)
        self.resource_id = int(resource_id)

    def _col(self, name: str) -> float:
        return float(self.model.resource_columns[name][self.index])

    @property
    def capacity(self) -> tuple[float, float]:
        """(cpu, mem) capacity."""
        return self._col("cpu"), self._col("mem")

    @property
    def unit_cost(self) -> float:
        """Cost per unit of cpu per round (the initial price)."""
        return self._col("unit_cost")

    @property
    def reliability(self) -> float:
        """Reliability in [0, 1]."""
        return self._col("reliability")

    @property
    def availability(self) -> float:
        """Availability in [0, 1]."""
        return self._col("availability")

    @property
    def energy_efficiency(self) -> float:
        """Energy efficiency (> 0; higher uses less energy per unit of load)."""
        return self._col("energy_efficiency")

    @property
    def location(self) -> tuple[float, float]:
        """(x, y) on the map."""
        return self._col("x"), self._col("y")

    @property
    def price(self) -> float:
        """Current posted unit price."""
        return float(self.model.price[self.index])

    @property
    def load(self) -> float:
        """Utilisation (max over cpu and memory) including running requests."""
        return float(self.model.load[self.index])

    @property
    def energy(self) -> float:
        """Energy used so far."""
        return float(self.model.resource_energy[self.index])

    @property
    def revenue(self) -> float:
        """Payments collected so far."""
        return float(self.model.resource_revenue[self.index])
