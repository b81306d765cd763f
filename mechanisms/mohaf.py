"""MOHAF in ``consistent`` mode: greedy on a monotone submodular welfare, then local improvement.

``F(S) = sum_S b_ij + delta * sum_u log2(1 + X_u(S))`` where ``b_ij`` is the normalised
cost/QoS/energy utility and ``X_u`` the priority mass user ``u`` already won (the
objective of the MOHAF paper, Agrawal et al., arXiv:2508.14830, 2025, with its fairness term
made concave so that ``F`` is monotone submodular). The fairness part of a gain,
``delta * [log2(1 + X_u + p_i) - log2(1 + X_u)]``, shrinks as a user wins more, so users who
have won little are preferred. Winners pay the posted dynamic price
``pi_ij = rho_j * cpu_i * duration_i * (0.8 + 0.4 * b_ij)`` (:class:`mechanisms.base.SubMarket`).

The algorithm, in three steps:

1. **Two greedies** (:func:`mechanisms.kernels.lazy_greedy`), the better by ``F`` kept.
   The first ranks requests by marginal gain per unit of capacity they take (``rank =
   "density"``: their largest demand share of the sub-market's mean capacity times their
   relative duration, :func:`capacity_share`): with utilities that differ little between requests, serving
   more small requests is worth more than a few large ones, and ranking by gain alone
   (the paper's rule, ``rank = "gain"``) fills resources with large requests first. The
   second ranks pairs by gain minus the price of the capacity they take, prices found by
   ``prices`` subgradient steps on the Lagrangian dual of the capacity constraints
   (:func:`mechanisms.lagrangian.capacity_prices`), which leaves scarce resources to the
   requests that need them. Gains only fall as ``S`` grows, so the lazy evaluation
   (Minoux, "Accelerated greedy algorithms for maximizing submodular set functions",
   1978) picks what plain greedy picks on either ranking.
2. **Re-insertion** after each greedy (:func:`mechanisms.improve.reinsert`, ``improve``
   passes, 0 = off): the unserved requests, in rank order, are inserted where that
   raises ``F`` most, directly, after moving one served request to another of its
   candidates, or in place of one whose loss is smaller. ``F`` never falls. The two
   chains (greedy then re-insertion, each) share nothing but their inputs, so they run
   side by side, on two threads where numba has them (:func:`mechanisms.chains.two_chains`).
3. **Refinement at the root** (:meth:`refine`, rounds of at most ``limit`` requests): once
   the cluster auctions and the spill-over are done, the root re-runs steps 1-2 over the
   whole round, every request with its candidates in its own and its neighbouring
   clusters, and re-inserts from the hierarchy's allocation; the better of the two by
   ``F`` is the round's allocation. The clusters cut each request off from the other
   clusters' resources, which cost 5 % of the proven optimum on ``tight``.

**Bid-price control** (``hold > 0``, off by default): the paper's welfare is one round's, so a
request that keeps its resource for many rounds is valued as if the capacity were free
again next round. Every step (both greedies, re-insertion, the choice between them, the
root's refinement) maximises ``F`` less ``hold`` times the opportunity cost of the
capacity a served pair holds past this round: the bid prices of network revenue
management (Talluri and van Ryzin, "An analysis of bid-price controls for network revenue
management", Management Sci. 44(11), 1998), for resources that come back when a request
leaves. With ``bid_prices = "fluid"`` (the default) the prices are those of the
occupancy LP of reusable resources (Levi and Radovanovic, "Provably near-optimal LP-based
policies for revenue management in systems with reusable resources", Oper. Res. 58(2),
2010): the round's requests stand in for every round's arrivals, so in the steady state
a request of duration ``d`` occupies its demand ``d`` times over the same capacity; its
capacity prices ``pf`` (the same ``prices`` subgradient steps, on demand times
occupancy, the steps divided by the mean occupancy and the prices kept in the box that
holds the LP's, :func:`~mechanisms.lagrangian.capacity_prices`, against the sub-market's
free capacity) charge a pair ``pf_ij * later_i / (1 +
later_i)``, the part of its occupancy past this round (this round's capacity the greedies
share out themselves). ``later_i =
sum_{t=1}^{d_i - 1} discount^t``, with ``d_i`` cut at the rounds left in the market's span
(``SubMarket.rounds_left``): capacity held past the run's end costs the run nothing.
``bid_prices = "round"`` charges ``price_ij * later_i`` at this round's capacity prices
instead (step 1's; they see only this round's contention). No charge without price steps
(``prices = 0``), without durations, when no request holds past the round, or on a
sub-market over ``limit`` (the first greedy alone, on ``F``); the
fairness term is unchanged. It trades this round's ``F`` for later rounds', so the
per-round guarantee below does not cover it, and the whole-market oracle, which measures
each round's ``F``, scores it lower (``tight``: 0.966 of the proven optimum at ``hold = 0``,
0.840 at ``hold = 1``) while the run's welfare rises (589.2 to 621.3). So the default
stays the paper's per-round ``F``, and the scenarios whose run hinges on who holds
capacity (``azure-llm``, ``audit-unit``) set ``hold = 1``: measured in the README, "MOHAF
quality", for every shipped scenario.

Steps 1-2 run in full on sub-markets of at most ``limit`` requests; a larger one (the
spill-over of a large round) gets the first greedy alone, which keeps a round linear.
The fairness term is the paper's, unchanged: every step maximises the same ``F`` (less
the bid prices' charge when ``hold > 0``).

Guarantee. On unit-demand markets (every request takes one slot; capacity counted in
slots) the feasible pair sets are the independent sets of the intersection of two
partition matroids (one pair per request, at most ``c_j`` pairs per resource). When the
requests' durations are equal too (or not known), all requests have the same size, so
the first greedy is plain greedy, and greedy on a monotone submodular function over the
intersection of ``p`` matroids is within ``1 / (p + 1) = 1/3`` of the optimum (Fisher,
Nemhauser and Wolsey, "An analysis of approximations for maximizing submodular set
functions II", Math. Prog. Study 8, 1978), ``1/2`` when ``delta = 0`` (a linear
objective). Keeping the better greedy and re-insertion never lower ``F``, so the bound
holds for MOHAF on each sub-market, and, when the root refines a round, over the pairs
of the whole round it is offered (a round cut into clusters and not refined has the
bound per cluster only). With unequal durations the first greedy ranks by gain per
slot-round and no such bound is claimed. On multi-dimensional markets (vector packing)
greedy has no constant guarantee; the whole-market oracle (:mod:`market.core.oracle`)
certifies each round's ratio instead (``alg_bound``), and the README reports it per
scenario.
"""

from __future__ import annotations

import numba as nb
import numpy as np

import mechanisms.numba_cache  # noqa: F401  (before any kernel: the cache keyed by the kernels' source)
from mechanisms.base import Allocation, Mechanism, SubMarket, paid
from mechanisms.chains import greedy_chain, two_chains
from mechanisms.improve import reinsert
from mechanisms.kernels import lazy_greedy
from mechanisms.lagrangian import capacity_prices
from mechanisms.registry import register
from mechanisms.welfare_program import fairness_gain

RANKS = ("gain", "density")
BID_PRICES = ("fluid", "round")


def durations(market: SubMarket) -> np.ndarray:
    """``(N,)`` the sub-market's durations as floats (``market.duration`` must be set).

    Raises:
        ValueError: a duration that is not finite (the engine's are whole rounds >= 1; a
            hand-built market's NaN would leave the greedy's keys unordered).
    """
    held = np.asarray(market.duration, dtype=float)
    if not np.isfinite(held).all():
        raise ValueError("SubMarket.duration must be finite")
    return held


def capacity_share(market: SubMarket) -> np.ndarray:
    """Each request's size in capacity-time (largest demand share times relative duration).

    The share is of the sub-market's mean capacity, the duration over the sub-market's
    mean duration (when the sub-market carries durations).

    Returns:
        ``(N,)`` positive sizes (at least 1e-9).

    Raises:
        ValueError: a duration that is not finite (:func:`durations`).
    """
    mean_cap = (
        market.capacity.mean(axis=0)
        if market.capacity.shape[0]
        else np.ones(market.demand.shape[1])
    )
    scale = np.where(mean_cap > 0, mean_cap, 1.0)
    held, mean = np.empty(0), 0.0  # no durations: no duration factor
    if market.duration is not None and market.n_requests:
        held = durations(market)
        mean = float(held.mean())
    return _sizes(market.demand, scale, held, mean)


@nb.njit(cache=True, inline="always")
def _maximum(a: float, b: float) -> float:
    """``np.maximum`` of two floats: NaN if either is."""
    return a if a != a or a > b else b


@nb.njit(cache=True)
def _sizes(demand: np.ndarray, scale: np.ndarray, held: np.ndarray, mean: float) -> np.ndarray:
    """:func:`capacity_share`'s arithmetic, elementwise as numpy does it (a NaN may differ in its sign bit only).

    ``max_d demand_id / scale_d`` (NaN if any is), times ``max(held_i / mean, 1e-3)`` when
    ``held`` is given and ``mean > 0``, then at least 1e-9.
    """
    n, dims = demand.shape
    size = np.empty(n)
    timed = held.size > 0 and mean > 0.0
    for i in range(n):
        s = demand[i, 0] / scale[0] if dims else -np.inf
        for d in range(1, dims):
            s = _maximum(s, demand[i, d] / scale[d])
        if timed:
            s = s * _maximum(held[i] / mean, 1e-3)
        size[i] = _maximum(s, 1e-9)
    return size


@nb.njit(cache=True)
def _rank_key(cand: np.ndarray, net: np.ndarray, size: np.ndarray) -> np.ndarray:
    """``(N,)`` ``-(best_i / size_i)``, ``best_i`` a request's largest ``net`` over its real pairs.

    ``-inf`` best without a pair, NaN if any of its pairs' is (``np.max``'s NaN).
    """
    n, k = cand.shape
    key = np.empty(n)
    for i in range(n):
        best = -np.inf
        for c in range(k):
            if cand[i, c] >= 0:
                best = _maximum(best, net[i, c])
        key[i] = -(best / size[i])
    return key


@nb.njit(cache=True)
def _with_fairness(cand: np.ndarray, utility: np.ndarray, each: np.ndarray) -> np.ndarray:
    """``(N, K)`` ``utility_ij + each_i`` on real pairs, 0 on padding."""
    n, k = cand.shape
    gain = np.zeros((n, k))
    for i in range(n):
        for c in range(k):
            if cand[i, c] >= 0:
                gain[i, c] = utility[i, c] + each[i]
    return gain


@register("mohaf")
class MOHAF(Mechanism):
    """Multi-objective hierarchical auction (consistent mode): greedy, re-insertion, posted prices.

    Args:
        rank: ``"density"`` (marginal gain per unit of capacity-time, the default) or
            ``"gain"`` (the paper's greedy on marginal gains).
        improve: passes of re-insertion after each greedy (0 = the greedies alone).
        prices: subgradient iterations of the capacity prices of the second, price-directed
            greedy (0 = no second greedy).
        step: first subgradient step of the capacity prices (welfare per unit overload).
        width: how many of its first candidates a served request may be moved to by
            re-insertion (bounds the pass's work).
        limit: the most requests a market may have for MOHAF to spend more than the
            first greedy on it: the root refines rounds of at most ``limit`` requests
            (step 3), and a sub-market of more (the spill-over of a large round) gets the
            first greedy alone (0 = the first greedy only, everywhere). 2,000 by default:
            above every shipped scenario's rounds but the 3,553 of ``google2011-mohaf``,
            above the cluster sub-markets of the bench markets. Refining costs about a
            flat round: on the 3,553 x 888 bench market it raised welfare from 1,398 to
            1,489 and made the round 3.5x slower; a second greedy and re-insertion on the
            500,000-request spill-over of a 1M x 100k round took more than the rest of
            the round.
        hold: weight of the opportunity cost of capacity held past this round (bid-price
            control, module docstring; 0, the default, = the paper's per-round welfare).
        discount: per-round discount of that cost (1 = every later round held counts
            fully).
        bid_prices: ``"fluid"`` (the occupancy LP's prices) or ``"round"`` (this round's
            capacity prices), module docstring.
    """

    def __init__(
        self,
        rank: str = "density",
        improve: int = 1,
        prices: int = 10,
        step: float = 0.2,
        width: int = 8,
        limit: int = 2_000,
        hold: float = 0.0,
        discount: float = 1.0,
        bid_prices: str = "fluid",
    ) -> None:
        if rank not in RANKS:
            raise ValueError(f"rank must be one of {RANKS}, got {rank!r}")
        if bid_prices not in BID_PRICES:
            raise ValueError(f"bid_prices must be one of {BID_PRICES}, got {bid_prices!r}")
        for key, value in (
            ("improve", improve),
            ("prices", prices),
            ("width", width),
            ("limit", limit),
        ):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"{key} must be a whole number >= 0, got {value!r}")
        if (
            isinstance(step, bool)
            or not isinstance(step, int | float)
            or not step > 0
            or not np.isfinite(step)
        ):
            raise ValueError(f"step must be a positive number, got {step!r}")
        self.rank = rank
        self.improve = int(improve)
        self.prices = int(prices)
        self.step = float(step)
        self.width = int(width)
        self.limit = int(limit)
        if isinstance(hold, bool) or not isinstance(hold, int | float) or not hold >= 0 or not np.isfinite(hold):
            raise ValueError(f"hold must be a number >= 0, got {hold!r}")
        self.hold = float(hold)
        if isinstance(discount, bool) or not isinstance(discount, int | float) or not 0 <= discount <= 1:
            raise ValueError(f"discount must be a number in [0, 1], got {discount!r}")
        self.discount = float(discount)
        self.bid_prices = bid_prices

    def refines(self, n_requests: int) -> bool:
        """The root refines rounds of at most ``limit`` requests (with re-insertion on)."""
        return self.improve > 0 and n_requests <= self.limit

    def allocate(self, market: SubMarket, rng: np.random.Generator) -> Allocation:
        """The better of the two greedies, each followed by re-insertion; winners pay the posted price."""
        if not market.valid.any():  # no pair at all (also K = 0): nobody to serve
            return Allocation.empty(market.n_requests)
        size = self._size(market)
        if market.n_requests > self.limit:  # a large spill-over: the greedy alone (see limit)
            choice = self._greedy(market, market.utility, size)
            return Allocation(choice, paid(market, choice, market.posted))
        net, price = self._net_and_price(market)
        order = self._order(market, net, size)
        passes, order = (0, np.empty(0, dtype=np.int64)) if order is None else (self.improve, order)
        arrays = (market.candidates, net)
        fairness = (market.user, market.priority, market.user_won, float(market.fairness_weight))
        if not self.prices:
            choice = greedy_chain(*arrays, net, market.demand, market.capacity, *fairness, size, order, passes,
                                  self.width)
            return Allocation(choice, paid(market, choice, market.posted))
        # the second greedy ranks pairs by net gain minus the capacity prices of step 1, each
        # request's gain weighed with its fairness gain alone (mechanisms.chains)
        choice, directed = two_chains(*arrays, priced_gain(market), market.demand, market.capacity, *fairness, size,
                                      order, passes, self.width, self.prices, self.step, price)
        if welfare(market, directed, net) > welfare(market, choice, net):
            choice = directed
        return Allocation(choice, paid(market, choice, market.posted))

    def refine(self, market: SubMarket, choice: np.ndarray, rng: np.random.Generator) -> Allocation:
        """Step 3: the better of re-insertion from the hierarchy's allocation and steps 1-2 afresh."""
        if not market.valid.any():
            return Allocation.empty(market.n_requests)
        net = self._net(market)  # allocate computes its own prices
        choice = self._reinsert(market, choice, net, self._order(market, net, self._size(market)))
        fresh = self.allocate(market, rng).choice
        if welfare(market, fresh, net) > welfare(market, choice, net):
            choice = fresh
        return Allocation(choice, paid(market, choice, market.posted))

    def _capacity_prices(self, market: SubMarket, occupancy: np.ndarray | None = None) -> np.ndarray | None:
        """``(N, K)`` each pair's capacity price (None without price steps).

        ``occupancy``: ``(N,)`` rounds of capacity each request takes (the fluid prices of
        :meth:`_net`); None: this round's capacity prices (each request takes its demand once).
        """
        if not self.prices:
            return None
        gain = priced_gain(market)
        if occupancy is None:  # (the same prices as those of the price-directed greedy, mechanisms.chains)
            return capacity_prices(market.candidates, gain, market.demand, market.capacity, self.prices, self.step)
        # loads are ~occupancy times one round's: steps scaled to match, prices kept in the
        # box that holds the LP's (else one early step leaves them above every request's value)
        return capacity_prices(market.candidates, gain, market.demand * occupancy[:, None], market.capacity,
                               self.prices, self.step, float(occupancy.mean()), True)

    def _later(self, market: SubMarket) -> np.ndarray | None:
        """``(N,)`` the rounds each request would hold capacity past this one, discounted.

        ``sum_{t=1}^{d_i - 1} discount^t`` with ``d_i`` its duration cut at the rounds left in
        the market's span (capacity held past the run's end costs the run nothing). None
        when bid-price control is off (``hold = 0`` or ``prices = 0``), durations are not
        known, or no request holds past this round (then ``F`` is unchanged).
        """
        if not self.hold or not self.prices or market.duration is None or not market.n_requests:
            return None
        held = durations(market)
        if market.rounds_left is not None:
            held = np.minimum(held, float(market.rounds_left))
        later = np.maximum(held - 1.0, 0.0)
        if not later.any():
            return None
        if self.discount < 1.0:  # sum_{t=1}^{d-1} discount^t
            later = self.discount * (1.0 - self.discount**later) / (1.0 - self.discount)
        return later

    def _net(self, market: SubMarket) -> np.ndarray:
        """``(N, K)`` pair utility less the opportunity cost of the capacity held past this round (:meth:`_net_and_price`)."""
        return self._net_and_price(market)[0]

    def _net_and_price(self, market: SubMarket) -> tuple[np.ndarray, np.ndarray | None]:
        """``(N, K)`` pair utility less the opportunity cost of the capacity held past this round.

        ``b_ij - hold * cost_ij`` (bid-price control, module docstring), ``later_i`` from
        :meth:`_later`:

        - ``bid_prices = "fluid"``: ``cost_ij = pf_ij * later_i / (1 + later_i)``, ``pf`` the
          capacity prices of the occupancy LP (each request taking its demand for
          ``1 + later_i`` rounds of the same capacity), of which the rounds past this one;
        - ``bid_prices = "round"``: ``cost_ij = price_ij * later_i``, ``price`` this round's
          capacity prices, the same as the price-directed chain's (:mod:`mechanisms.chains`),
          which then takes them from here.

        Returns:
            ``(net, price)``: ``b_ij`` itself when :meth:`_later` is None; ``price`` this
            round's ``(N, K)`` capacity prices where they were computed, else None.
        """
        later = self._later(market)
        if later is None:
            return market.utility, None
        price = None
        if self.bid_prices == "fluid":
            occupancy = 1.0 + later
            cost = self._capacity_prices(market, occupancy) * (later / occupancy)[:, None]
        else:
            price = self._capacity_prices(market)
            cost = price * later[:, None]
        return market.utility - self.hold * cost, price

    def _size(self, market: SubMarket) -> np.ndarray:
        return capacity_share(market) if self.rank == "density" else np.ones(market.n_requests)

    @staticmethod
    def _greedy(market: SubMarket, key: np.ndarray, size: np.ndarray) -> np.ndarray:
        return lazy_greedy(
            market.candidates,
            key,
            market.demand,
            market.capacity,
            market.user,
            market.priority,
            market.user_won,
            float(market.fairness_weight),
            size,
        )

    def _order(self, market: SubMarket, net: np.ndarray, size: np.ndarray) -> np.ndarray | None:
        """The order re-insertion tries requests in: best static rank first (ties to the lower row)."""
        if not self.improve or not market.n_requests:
            return None
        return np.argsort(_rank_key(market.candidates, net, size), kind="stable")

    def _reinsert(
        self, market: SubMarket, choice: np.ndarray, net: np.ndarray, order: np.ndarray | None
    ) -> np.ndarray:
        if order is None:
            return choice
        return reinsert(
            choice,
            order,
            market.candidates,
            net,
            market.demand,
            market.capacity,
            market.user,
            market.priority,
            market.user_won,
            float(market.fairness_weight),
            self.improve,
            self.width,
        )


def fairness_gain_each(market: SubMarket) -> np.ndarray:
    """``(N,)`` each request's fairness gain if it alone were served: ``delta * [g(X_u + p_i) - g(X_u)]``."""
    won = market.user_won[market.user]
    return float(market.fairness_weight) * np.log2((1.0 + won + market.priority) / (1.0 + won))


def priced_gain(market: SubMarket) -> np.ndarray:
    """``(N, K)`` the gain the capacity prices weigh: ``b_ij`` plus the request's fairness gain alone (0 on padding)."""
    return _with_fairness(market.candidates, market.utility, fairness_gain_each(market))


def welfare(market: SubMarket, choice: np.ndarray, base: np.ndarray | None = None) -> float:
    """``F`` of an allocation of the sub-market (utility sum plus the fairness term).

    ``base``: ``(N, K)`` pair values to sum instead of the utility ``b`` (MOHAF's net
    utility); None: ``market.utility``.
    """
    base = market.utility if base is None else base
    won = np.flatnonzero(choice >= 0)
    return float(base[won, choice[won]].sum()) + fairness_gain(
        market.user[won], market.priority[won], market.user_won, float(market.fairness_weight)
    )
