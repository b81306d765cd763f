"""ResourceAgent: a server, edge node or IoT gateway that sells capacity.

Resources' state lives in one :class:`ResourceLedger` of arrays (row ``j`` = resource
``j``): the resources settle a round with one vectorised call (new load for each
request's duration, revenue, energy) and each ResourceAgent reads its own row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import mesa
import numpy as np

if TYPE_CHECKING:
    from market.core.model import MarketModel

#: idle share of a server's power when it holds any load (linear power model)
IDLE_POWER = 0.3


def utilization(used: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """``(M,)`` ``max_k used_jk / C_jk`` per resource (dimensions with zero capacity ignored).

    Args:
        used: ``(M, D)`` amount in use in each dimension.
        capacity: ``(M, D)`` capacity in each dimension.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(capacity > 0, used / capacity, 0.0)
    return share.max(axis=1) if share.shape[1] else np.zeros(share.shape[0])


def power(utilization: np.ndarray, energy_efficiency: np.ndarray) -> np.ndarray:
    """``(M,)`` energy of each resource for one round: linear in load, off when idle.

    ``(IDLE_POWER + (1 - IDLE_POWER) * u) / energy_efficiency`` when ``u > 0``, else 0
    (the linear server power model of Fan, Weber and Barroso, ISCA 2007).
    """
    on = utilization > 0
    return np.where(on, (IDLE_POWER + (1 - IDLE_POWER) * utilization) / energy_efficiency, 0.0)


def _at(ufunc: np.ufunc, table: np.ndarray, index: np.ndarray, rows: np.ndarray) -> None:
    """``ufunc.at(table, index, rows)`` one column at a time: the same result, in the same order.

    Numpy's unbuffered ``at`` is about ten times faster on a 1-d array than on rows of a
    2-d one.

    Args:
        ufunc: ``np.add`` or ``np.subtract``.
        table: ``(M, E)`` changed in place.
        index: ``(S,)`` the row of ``table`` each row of ``rows`` goes to.
        rows: ``(S, E)``.
    """
    for e in range(table.shape[1]):
        ufunc.at(table[:, e], index, rows[:, e])


@dataclass
class ResourceLedger:
    """Every resource's state, as arrays.

    Attributes:
        capacity: ``(M, E)`` capacity in allocation units (the D dimensions, or slots).
        capacity_real: ``(M, D)`` capacity in each dimension.
        energy_efficiency: ``(M,)`` energy efficiency (> 0).
        used: ``(M, E)`` allocation units held by running requests.
        used_real: ``(M, D)`` capacity of each dimension held by running requests.
        load: ``(M,)`` utilisation after the last round (max over the dimensions).
        energy: ``(M,)`` energy used so far.
        revenue: ``(M,)`` payments collected so far.
        credit: ``(M,)`` payments collected in the last round.
        releases: round -> list of ``(resource, need, real)`` that finish then.
        owner_state: arrays the owners' strategy keeps (:mod:`agents.owner`), e.g. the
            learners' ``(O, G)`` log-weights; copied with the ledger.
    """

    capacity: np.ndarray
    capacity_real: np.ndarray
    energy_efficiency: np.ndarray
    used: np.ndarray = field(init=False)
    used_real: np.ndarray = field(init=False)
    load: np.ndarray = field(init=False)
    energy: np.ndarray = field(init=False)
    revenue: np.ndarray = field(init=False)
    credit: np.ndarray = field(init=False)
    releases: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = field(init=False)
    owner_state: dict[str, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Every resource idle: nothing running, nothing earned or used."""
        m = self.capacity.shape[0]
        self.used = np.zeros_like(self.capacity, dtype=float)
        self.used_real = np.zeros_like(self.capacity_real, dtype=float)
        self.load = np.zeros(m)
        self.energy = np.zeros(m)
        self.revenue = np.zeros(m)
        self.credit = np.zeros(m)
        self.releases = {}
        self.owner_state = {}

    def copy(self) -> ResourceLedger:
        """An independent copy (for what-if rounds); the capacities are shared, read-only."""
        new = ResourceLedger.__new__(ResourceLedger)
        new.capacity, new.capacity_real, new.energy_efficiency = self.capacity, self.capacity_real, self.energy_efficiency
        for name in ("used", "used_real", "load", "energy", "revenue", "credit"):
            setattr(new, name, getattr(self, name).copy())
        new.releases = {t: list(items) for t, items in self.releases.items()}
        new.owner_state = {k: v.copy() for k, v in self.owner_state.items()}
        return new

    @property
    def free(self) -> np.ndarray:
        """``(M, E)`` free capacity in allocation units."""
        return self.capacity - self.used

    def release(self, t: int) -> None:
        """Free the capacity of the requests that finish at the start of round ``t``."""
        for j, need, real in self.releases.pop(t, []):
            _at(np.subtract, self.used, j, need)
            _at(np.subtract, self.used_real, j, real)
        np.maximum(self.used, 0.0, out=self.used)
        np.maximum(self.used_real, 0.0, out=self.used_real)

    def settle(self, t: int, j: np.ndarray, need: np.ndarray, real: np.ndarray, payment: np.ndarray,
               duration: np.ndarray) -> np.ndarray:
        """Take on this round's winners and meter the round.

        Args:
            t: the round.
            j: ``(S,)`` resource of each served request.
            need: ``(S, E)`` allocation units each one holds.
            real: ``(S, D)`` demand in each dimension each one uses.
            payment: ``(S,)`` what each one pays its resource.
            duration: ``(S,)`` rounds each one runs (it finishes at ``t + duration``).

        Returns:
            ``(M,)`` energy each resource used this round.
        """
        _at(np.add, self.used, j, need)
        _at(np.add, self.used_real, j, real)
        self.credit = np.bincount(j, payment, minlength=self.capacity.shape[0])
        self.revenue += self.credit
        ends = t + duration
        # the requests by the round they end in, each group in the order given
        order = np.argsort(ends, kind="stable")
        groups = np.split(order, np.flatnonzero(np.diff(ends[order])) + 1) if order.size else []
        for sel in groups:
            self.releases.setdefault(int(ends[sel[0]]), []).append(
                (j[sel], need.take(sel, axis=0), real.take(sel, axis=0)))
        self.load = utilization(self.used_real, self.capacity_real)
        energy = power(self.load, self.energy_efficiency)
        self.energy += energy
        return energy


class ResourceAgent(mesa.Agent):
    """A resource of the market: row ``index`` of the model's resource ledger.

    Attributes:
        index: row of this resource in the model's resource arrays.
        resource_id: the id from the market table.
    """

    def __init__(self, model: MarketModel, index: int, resource_id: object) -> None:
        super().__init__(model)
        self.index = int(index)
        self.resource_id = resource_id

    def _col(self, name: str) -> float:
        return float(self.model.resource_columns[name][self.index])

    @property
    def capacity(self) -> tuple[float, ...]:
        """Capacity in each of the market's dimensions (``(cpu, mem)`` by default)."""
        return tuple(float(v) for v in self.model.resource_columns["capacity"][self.index])

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
        """The unit price posted next round (the price rule's, floored by its owner's reserve)."""
        return float(self.model.posted_prices()[self.index])

    @property
    def load(self) -> float:
        """Utilisation (max over the dimensions) including running requests."""
        return float(self.model.resource_ledger.load[self.index])

    @property
    def energy(self) -> float:
        """Energy used so far."""
        return float(self.model.resource_ledger.energy[self.index])

    @property
    def revenue(self) -> float:
        """Payments collected so far."""
        return float(self.model.resource_ledger.revenue[self.index])
