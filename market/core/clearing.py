"""Market-clearing prices of a round, and how far the posted prices are from them.

**Clearing prices** are the dual prices of the capacity constraints of the round's LP
relaxation over the whole market (every feasible request-resource pair, as the oracle's,
:mod:`market.core.oracle`): in an assignment market the optimal duals of the capacity rows
are exactly the competitive (Walrasian) equilibrium prices (Shapley and Shubik, "The
assignment game I: the core", Int. J. Game Theory 1, 1971; Bikhchandani and Mamer,
"Competitive equilibrium in an exchange economy with indivisibilities", JET 74, 1997, for
the LP relaxation in general).

The LP (:class:`~mechanisms.welfare_program.WelfareProgram`, grown by the oracle's column
generation) maximises social welfare in money, ``sum_p budget_i b_ij x_p``, with the
fairness term off (``delta = 0``), and its values are taken **at zero posted prices**:
``b_ij`` of the candidate kernel contains the cost term ``alpha (1 - rho_j q_i dur_i / B_i)``,
so at posted prices the duals would only be the rent *above* the posted prices (0 on any
over-priced resource); at price 0 they are the prices themselves. The pairs are those
feasible at price 0 (capacity, free capacity, eligibility, QoS, latency; every budget
check passes at price 0).

**Units: quasi-linear money.** A request's value of pair ``(i, j)`` is ``v_ij = B_i b_ij``
at price 0, in money, and a payment ``P`` lowers its surplus by ``P``: the same value
everywhere in the framework (``value_welfare``, ``bid_to_value``, the learners' surplus
``value - payment``). ``lam_jd`` is then money per allocation unit of dimension ``d`` of
``j`` for a request's whole stay. The posted price ``rho_j`` is money per unit of priced
quantity ``q_i`` per round (a pair pays ``rho_j q_i dur_i``). The clearing unit price of
``j`` is the price that, posted, charges the LP's allocation on ``j`` what the duals charge
it::

    rho*_j = sum_{p on j} x_p (lam_j . need_i) / sum_{p on j} x_p q_i dur_i

(the volume-weighted mean of the pairs' ``lam_j . need_i / (q_i dur_i)``; with one
dimension, ``need = q`` and unit durations it is ``lam_j``). A resource the LP places
nothing on gets 0 (by complementary slackness its duals are 0 when it has capacity to
spare). An earlier version divided by the cost weight ``alpha`` (the paper's utility
charges ``alpha P / B_i`` per payment): that valued the QoS and energy terms as money and
put the clearing prices at about ``1 / alpha`` times what the requests' budgets can pay; on
a stationary market tatonnement then never approached them (measured: the gap of the last
10 of 60 rounds 0.56 to 0.92 of the first 10's), against 0.15 to 0.21 in money (greedy,
mohaf, first price at ``eta = 0.1``; ``tests/test_pricing.py``).

**Which duals.** The LP's duals are not unique where the market is degenerate (one unit,
bids 3 and 5: any price in [3, 5] clears). The capacity is enlarged by a relative
``perturb`` (1e-6) inside the LP, which selects the right-hand derivative of the LP value
in the capacity: the **lowest** clearing prices (the displaced bid, 3; the minimal
Walrasian prices, which are the VCG prices of unit-demand markets: Leonard, "Elicitation of
honest preferences for the assignment of individuals to positions", JPE 91, 1983).

**Time.** Column generation stops at ``time_limit``; the duals are then those of the LP
over the pairs generated so far (``Clearing.converged`` False).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np

from market.core.candidates import RQ_DURATION, RQ_PRICED, RS_PRICE
from market.core.oracle import RoundMarket, _column_generation, _first_pass
from mechanisms.welfare_program import LPResult, WelfareProgram

#: relative enlargement of the capacity that selects the lowest clearing prices
PERTURB = 1e-6


@dataclass(frozen=True)
class Clearing:
    """The round's clearing prices and the LP they come from.

    Attributes:
        prices: ``(M,)`` clearing unit prices (money per unit of priced quantity per round).
        lam: ``(M, D)`` the capacity duals (money welfare per allocation unit).
        value: the LP's money welfare at zero prices (NaN if no LP solved).
        converged: column generation finished (no pair prices out) within the time limit.
        iterations: column-generation iterations; pairs: the LP's columns.
        seconds: wall time (the first call in a fresh process includes compiling the scan kernel).
    """

    prices: np.ndarray
    lam: np.ndarray
    value: float
    converged: bool
    iterations: int
    pairs: int
    seconds: float


def unit_prices(lam: np.ndarray, req: np.ndarray, res: np.ndarray, x: np.ndarray, need: np.ndarray,
                priced: np.ndarray, duration: np.ndarray, m: int) -> np.ndarray:
    """``(M,)`` ``rho*_j`` from capacity duals and the LP's allocation (the module's formula).

    Args:
        lam: ``(M, D)`` capacity duals.
        req: ``(P,)`` request of each LP pair.
        res: ``(P,)`` resource of each LP pair.
        x: ``(P,)`` the LP's value of each pair.
        need: ``(N, D)`` demand in allocation units.
        priced: ``(N,)`` priced quantity ``q_i``.
        duration: ``(N,)`` rounds held ``dur_i``.
        m: resources.
    """
    x = np.maximum(np.asarray(x, dtype=float), 0.0)
    charge = np.einsum("pd,pd->p", lam[res], need[req]) * x
    volume = priced[req] * duration[req] * x
    paid = np.bincount(res, weights=charge, minlength=m)
    held = np.bincount(res, weights=volume, minlength=m)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(held > 0, paid / np.where(held > 0, held, 1.0), 0.0)


def clearing(market: RoundMarket, time_limit: float = 2.0, perturb: float = PERTURB) -> Clearing:
    """The round's clearing prices with the LP's account (see the module).

    Args:
        market: the round's whole market (at any posted prices: they are set to 0 here).
        time_limit: seconds for column generation (a safety net: the duals of the last LP
            solved are used when it is hit).
        perturb: relative capacity enlargement selecting the lowest clearing prices (0: the
            solver's vertex).
    """
    t0 = time.perf_counter()
    n, m = market.requests.shape[0], market.free.shape[0]
    dims = market.need.shape[1]
    resources = market.resources.copy()
    resources[:, RS_PRICE] = 0.0
    free_market = replace(market, resources=resources)
    if n == 0 or m == 0:
        return Clearing(np.zeros(m), np.zeros((m, dims)), 0.0, True, 0, 0, time.perf_counter() - t0)
    res0, gain0, _, feasible = _first_pass(free_market)
    # the time limit starts after the first scan, which compiles the scan kernel in a fresh
    # process (as the oracle's): compiling must not eat column generation's time
    start = time.perf_counter()
    budget = market.budget.astype(float)
    capacity = market.free.astype(float) * (1.0 + perturb)
    prog = WelfareProgram(market.need, capacity, market.user, market.priority, market.start_won, 0.0, feasible > 0)
    r, c = np.nonzero(res0 >= 0)
    prog.add_pairs(r, res0[r, c], gain0[r, c] * budget[r])
    _, lp, iterations, timed_out = _column_generation(free_market, prog, budget, start + time_limit)
    if lp is None:
        lp = LPResult(False, math.nan, np.zeros(n), np.zeros((m, dims)), np.zeros(0))
    x = np.zeros(prog.n_pairs)
    x[: lp.x.size] = lp.x  # pairs added after the last LP solved are at 0
    requests = market.requests
    prices = unit_prices(lp.lam, prog.req, prog.res, x, market.need.astype(float), requests[:, RQ_PRICED],
                         requests[:, RQ_DURATION], m)
    return Clearing(prices, lp.lam, float(lp.value), lp.ok and not timed_out, iterations, prog.n_pairs,
                    time.perf_counter() - t0)


def clearing_prices(market: RoundMarket, time_limit: float = 2.0, perturb: float = PERTURB) -> np.ndarray:
    """``(M,)`` the round's clearing unit prices, comparable with the posted ones (>= 0, finite)."""
    return clearing(market, time_limit, perturb).prices


def price_gap(posted: np.ndarray, clearing_price: np.ndarray) -> float:
    """Mean relative distance ``|posted_j - clearing_j| / clearing_j`` over resources with ``clearing_j > 0``.

    0.0 when no resource has a positive clearing price (never NaN).
    """
    posted, clearing_price = np.asarray(posted, dtype=float), np.asarray(clearing_price, dtype=float)
    positive = clearing_price > 0
    if not positive.any():
        return 0.0
    return float(np.mean(np.abs(posted[positive] - clearing_price[positive]) / clearing_price[positive]))
