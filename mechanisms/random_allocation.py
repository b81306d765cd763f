"""Random allocation: the floor every mechanism must beat.

Requests in a random permutation each take a uniformly random fitting candidate and
pay its posted cost (the MOHAF paper's ``Random`` baseline). All draws come from the rng the
planner passes in, so a seed fixes the outcome.
"""

from __future__ import annotations

import numpy as np

from mechanisms.base import Allocation, Mechanism, SubMarket, paid
from mechanisms.kernels import sequential_pick
from mechanisms.registry import register


@register("random")
class RandomAllocation(Mechanism):
    """Random order, random fitting candidate, posted cost."""

    def allocate(self, market: SubMarket, rng: np.random.Generator) -> Allocation:
        """Random permutation of requests; each picks a random candidate that fits."""
        order = rng.permutation(market.n_requests)
        key = rng.random(market.candidates.shape)
        choice = sequential_pick(
            order, key, market.valid, market.candidates, market.demand, market.capacity
        )
        return Allocation(choice, paid(market, choice, market.reserve))
