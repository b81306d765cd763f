"""Multi-resource packing heuristics: ``best_fit`` and ``dot_product``.

The node-scoring baselines GPU and cluster schedulers are measured against: Weng et al.,
"Beware of Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation Gradient
Descent" (USENIX ATC 2023, §2 and the baselines of §6), where Best-fit and Dot-product
are two of the compared policies; the dot product is the alignment score of Tetris
(Grandl, Ananthanarayanan, Kandula, Rao and Akella, "Multi-Resource Packing for Cluster
Schedulers", SIGCOMM 2014).

These are schedulers, not auctions: requests are placed in the order they come (the
rows of the sub-market are in arrival order), one at a time, with no ranking by value,
priority or budget. Each takes one of its feasible candidates: a real candidate (not -1
padding) whose price is within the request's budget and whose local resource still has
the request's demand left in every dimension ``d`` (the columns of ``demand``:
cpu, memory, gpu, ..., any number ``D >= 1``). Among them the rule picks:

- ``best_fit``: the candidate with the least weighted residual capacity left after
  placement, ``sum_d (res[j, d] - demand[i, d]) / scale[d]`` (the tightest fit);
- ``dot_product``: the candidate maximising the alignment of the normalised demand
  with the normalised residual, ``sum_d (demand[i, d] / scale[d]) * (res[j, d] /
  scale[d])`` (Tetris's score, residual before placement).

Normalisation: ``scale[d]`` is the largest capacity in dimension ``d`` among the
sub-market's resources (``capacity.max(axis=0)``, the residual at the start of the
round; 1 where that is 0), so the scores do not depend on the units of a dimension
(cores, GiB, GPUs). Tetris normalises by each machine's own capacity, which the
sub-market does not carry (only residuals); one scale for the whole sub-market keeps a
big node big. ``res`` is the residual as the requests before have left it. Ties go to
the lower candidate column (deterministic: columns are ordered by utility by candidate
generation, so a tie goes to the better pair).

Winners pay the posted price ``market.posted`` of the chosen pair (as ``drf`` and
``mohaf`` do), or with ``payment = "reserve"`` the posted cost ``market.reserve`` (as
``greedy`` does). The rng is not used. Payments are posted, not critical, so neither
mechanism is truthful. One pass, O(N K D) (:func:`mechanisms.kernels.pack_in_order`).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from mechanisms.base import Allocation, Mechanism, SubMarket, paid
from mechanisms.kernels import BEST_FIT, DOT_PRODUCT, pack_in_order
from mechanisms.registry import register

PAYMENTS = ("posted", "reserve")


def dimension_scale(capacity: np.ndarray) -> np.ndarray:
    """Each dimension's normaliser: its largest capacity among the resources.

    Args:
        capacity: ``(M, D)`` residual capacity of the sub-market's resources.

    Returns:
        ``(D,)`` positive scales: ``capacity.max(axis=0)``, 1 where that is not
        positive (no capacity in that dimension, or ``M = 0``).
    """
    capacity = np.asarray(capacity, dtype=float)
    if capacity.shape[0] == 0:
        return np.ones(capacity.shape[1])
    top = capacity.max(axis=0)
    return np.where(top > 0, top, 1.0)


class PackingMechanism(Mechanism):
    """Requests in arrival order, each placed on the feasible candidate its rule scores best.

    Subclasses set ``rule`` (:data:`mechanisms.kernels.BEST_FIT` or
    :data:`~mechanisms.kernels.DOT_PRODUCT`).

    Args:
        payment: ``"posted"`` (winners pay ``market.posted``, the default) or
            ``"reserve"`` (the posted cost ``market.reserve``, as ``greedy`` pays).
    """

    truthful: ClassVar[bool] = False
    flat: ClassVar[bool] = False
    rule: ClassVar[int]

    def __init__(self, payment: str = "posted") -> None:
        if payment not in PAYMENTS:
            raise ValueError(f"payment must be one of {PAYMENTS}, got {payment!r}")
        self.payment = payment

    def allocate(self, market: SubMarket, rng: np.random.Generator) -> Allocation:
        """Place the requests in row order by the packing rule; winners pay the price."""
        price = market.posted if self.payment == "posted" else market.reserve
        ok = market.valid & (price <= market.budget[:, None])
        choice = pack_in_order(
            self.rule,
            ok,
            market.candidates,
            np.asarray(market.demand, dtype=float),
            np.asarray(market.capacity, dtype=float),
            dimension_scale(market.capacity),
        )
        return Allocation(choice, paid(market, choice, price))


@register("best_fit")
class BestFit(PackingMechanism):
    """Best fit: the feasible candidate with the least normalised residual left after placement."""

    rule: ClassVar[int] = BEST_FIT


@register("dot_product")
class DotProduct(PackingMechanism):
    """Dot product (Tetris alignment): the feasible candidate whose normalised residual best aligns with the demand."""

    rule: ClassVar[int] = DOT_PRODUCT
