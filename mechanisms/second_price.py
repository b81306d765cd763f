"""Truthful auction with critical-value (Myerson) payments.

A user's value for pair (i, j) is ``B_i * b_ij`` with the budget ``B_i`` inside ``b_ij``
too, through the cost term ``alpha * (1 - c_ij / B_i)`` (``c_ij`` is the posted cost
``reserve``). For any affordable pair that value is affine in the budget:

    ``B * b_ij = B * s_ij - alpha * c_ij``, with the budget-free slope
    ``s_ij = b_ij + alpha * c_ij / B``.

So the whole private type is one number, and each request reports one: ``z_i`` (its
budget times its bid scale, never more than it has). Requests are served in descending
report; each takes the fitting candidate of highest slope among those open to its
report. Pair j opens at ``z >= max((1 + alpha) c_ij / s_ij, 1.2 c_ij)`` (its value then
covers the posted cost, and the posted price ``c_ij (0.8 + 0.4 b_ij)`` is within the
report, so a budget report never changes the candidate set of an open pair) and once
``z s_ij - alpha c_ij`` is at least that of every cheaper, lower-slope candidate that is
open below that point (:func:`mechanisms.kernels.ladder_reserve`).
The slope a request gets is non-decreasing in its report, and by Myerson's lemma with an
allocation-dependent offset the payment

    ``p(z) = z s(z) - integral_0^z s(t) dt - alpha * c(z)``

makes reporting the true budget a dominant strategy, whether the misreport is called a
bid or a budget. Each upgrade ``l -> j`` on the way is charged at least
``alpha (c_ij - c_il)``, so ``p >= 0``; and ``p <= z b_ij(z) <= z``. Truthfulness needs
one request per user in the sub-market and a candidate set that does not hinge on the
budget (K at least the affordable resources). On a single item with no cost term and the
same utility ``b`` for every request this is exactly the Vickrey auction (the highest
budget wins and pays the second highest). With unequal utilities it is not: requests
rank by their report ``z``, not by their value ``z s_ij``, so a large budget with a
small utility beats a smaller budget with a large one. (Ranking by ``z * max_j s_ij``
would keep the payment identity: pass :func:`~mechanisms.kernels.myerson_ladder` the
reports times ``max_j s_ij`` and the slopes divided by it, and ``z q(z) - integral q``
is unchanged; not done, as it moves every ``second_price`` result.)

Slopes that differ only by round-off are merged first (:func:`~mechanisms.kernels.merge_ties`):
computed from the reported budget, they would otherwise move with it by an ulp and decide
which of two equal-slope pairs opens.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from mechanisms.base import Allocation, Mechanism, SubMarket
from mechanisms.kernels import POSTED_MARKUP_MAX, ladder_reserve, merge_ties, myerson_ladder
from mechanisms.registry import register

#: relative difference below which two slopes of a request are the same slope
SLOPE_TIES = 1e-12


@register("second_price")
class SecondPrice(Mechanism):
    """Request-ordered ladder on budget-free slopes with exact critical-value payments."""

    truthful: ClassVar[bool] = True

    def allocate(self, market: SubMarket, rng: np.random.Generator) -> Allocation:
        """Serve by descending reported budget; charge each winner its critical value."""
        alpha = market.cost_weight
        cost = market.reserve
        report = np.minimum(market.bid_scale, 1.0) * market.budget
        # budget-free only in exact arithmetic: round-off ties merged, else a report moves
        # the noise and with it which of two equal-slope pairs opens (a profitable misreport)
        slope = merge_ties(market.utility + alpha * np.minimum(cost / market.budget[:, None], 1.0), SLOPE_TIES)
        with np.errstate(divide="ignore", invalid="ignore"):  # padding pairs: 0 / 0
            threshold = np.maximum((1.0 + alpha) * cost / slope, POSTED_MARKUP_MAX * cost)
        order = np.argsort(-report, kind="stable")
        choice, critical = myerson_ladder(
            order,
            report,
            slope,
            ladder_reserve(market.candidates, slope, cost, threshold, alpha),
            market.candidates,
            market.demand,
            market.capacity,
        )
        won = np.flatnonzero(choice >= 0)
        payment = np.zeros(choice.size)
        payment[won] = np.clip(critical[won] - alpha * cost[won, choice[won]], 0.0, report[won])
        return Allocation(choice, payment)
