"""Truthful auction with critical-value (Myerson) payments.

Each request reports a budget ``z_i`` (its true budget times its bid scale, never more
than it has). Requests are served in descending report; each takes its fitting
candidate of highest utility ``b_ij`` among those whose posted cost its report covers
(``z_i * b_ij >= reserve_ij``). The utility a request receives is non-decreasing in its
report, so the payment ``z q(z) - integral_0^z q(t) dt`` (the critical value,
generalised to quality levels) makes reporting the true budget a dominant strategy
when a user's value is ``budget * b_ij`` and it has one request in the sub-market.
This is the mechanism the spec calls ``second_price``: on a single item it is exactly
the Vickrey auction (the winner pays the runner-up's report times the quality).
"""

from __future__ import annotations

import numpy as np

from mechanisms.base import Allocation, Mechanism, SubMarket
from mechanisms.kernels import myerson_ladder
from mechanisms.registry import register


@register("second_price")
class SecondPrice(Mechanism):
    """Request-ordered quality ladder with exact Myerson critical-value payments."""

    truthful = True

    def allocate(self, market: SubMarket, rng: np.random.Generator) -> Allocation:
        """Serve by descending reported budget; charge each winner its critical value."""
        report = np.minimum(market.bid_scale, 1.0) * market.budget
        order = np.argsort(-report, kind="stable")
        choice, payment = myerson_ladder(
            order,
            report,
            market.utility,
            market.reserve,
            market.candidates,
            market.demand,
            market.capacity,
        )
        return Allocation(choice, payment)
