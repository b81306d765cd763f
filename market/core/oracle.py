"""The whole-market oracle: the round's optimum over every feasible pair, and proven bounds.

The yardstick every ALG/OPT figure rests on. It solves the round's market as a whole, not
the mechanisms' candidate pairs: every request-resource pair that passes the one
feasibility rule (:func:`market.core.candidates.feasible_utility`) on the round's free
capacity, ignoring clusters and the K-candidate cut. Two objectives (the
:class:`~mechanisms.welfare_program.WelfareProgram`): the paper's welfare ``F`` (utility
sum plus the concave fairness term), solved exactly where the limits allow, and social
welfare in money ``sum budget_i b_ij`` (the winners' values), bounded.

Algorithm, per objective:

1. **Column generation on the LP relaxation.** Start from each request's best pairs; solve
   the LP; price *every* feasible pair against its duals (a numba scan of the N x M
   pairs, never stored); add the pairs of positive reduced cost; repeat. After any
   iteration ``LP + sum_i max(0, max_j rc_ij)`` is a proven upper bound on the whole
   market's LP (raise each request's assignment dual by its largest positive reduced
   cost and the duals become feasible: Lagrangian bound, Lasdon, *Optimization Theory
   for Large Systems*, 1970, ch. 3; Desrosiers and Luebbecke, "A primer in column
   generation", 2005, sec. 2.1); when no pair prices out it is the LP itself.
2. **Reduced-cost fixing** (welfare only). With the LP bound ``UB`` and the best known
   welfare ``LB`` (the best of the mechanism's own allocation, which is feasible for the
   whole market, the LP rounded greedily and an LP dive, :func:`_dive`), a
   pair with reduced cost below ``LB - UB`` is in no solution better than ``LB``
   (``c.x <= UB + sum_p rc_p x_p`` for every feasible ``x``; Nemhauser and Wolsey,
   *Integer and Combinatorial Optimization*, 1988, II.2). The MILP over the remaining
   pairs, started from the mechanism's allocation, therefore decides the whole market:
   its optimum, if proven, is the whole market's (``opt_scope = "all"``). If too many
   pairs remain (more than ``max_pairs``), the MILP runs over each request's best pairs
   only, and with ``node_limit = 0`` there is no MILP: then ``opt_scope = "candidates"``
   (the best known was searched for over part of the pairs) and the bound stays the LP's.

The MILP's search is capped by branch-and-bound nodes (deterministic) and by a time
limit (a safety net; a run that hits it may differ by machine). ``opt_status`` says what
was reached: ``optimal`` (proven whole-market optimum), ``feasible`` (a solution, not
proven), ``bound_only`` (the solver found none; the best known is the mechanism's),
``failed`` (not even the LP solved; the bound is the trivial one, every request on its
best pair and every user winning all it asked for). No figure is ever NaN.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numba as nb
import numpy as np

from market.core.candidates import feasible_utility, has_room
from market.core.eligibility import any_type
from market.core.engine import OrderBook, RoundParams
from mechanisms import numba_threads  # noqa: F401  (before any parallel kernel: its threads sleep when idle)
from mechanisms.kernels import fit_slack
from mechanisms.numba_cache import compiled_twice  # its import sets the kernels' cache folder
from mechanisms.welfare_program import UNIT_RANGE, LPResult, WelfareProgram, fairness_gain

#: pairs per request added per column-generation iteration
PRICE_TOP = 2
#: column-generation iterations per objective (each one prices every pair)
MAX_ITERATIONS = 60
#: most pairs the exact search takes before it is restricted to each request's best pairs
MAX_PAIRS = 60_000
_RC_TOL = 1e-9


def _price_rows(rq, need, rs, free, allowed, alpha, beta, gamma, d_max, weight, offset, lam, threshold, top):
    """Per request: its feasible pairs' count, the largest reduced cost, and the ``top`` best above ``threshold``.

    Reduced cost of ``(i, j)``: ``weight_i b_ij + offset_i - sum_d lam_jd need_id``.
    Returns ``(res (N, top), rc (N, top), gain (N, top), best (N,), feasible (N,), above (N,))``,
    rows ordered by reduced cost descending (ties: smaller resource index), -1 padded.
    """
    n, m, dims = rq.shape[0], rs.shape[0], need.shape[1]
    out_res = np.full((n, top), -1, dtype=np.int64)
    out_rc = np.full((n, top), -np.inf)
    out_gain = np.zeros((n, top))
    best = np.full(n, -np.inf)
    feasible = np.zeros(n, dtype=np.int64)
    above = np.zeros(n, dtype=np.int64)
    for i in nb.prange(n):
        kept = 0
        for j in range(m):
            b = feasible_utility(rq, need, rs, free, allowed, i, j, alpha, beta, gamma, d_max)
            if b < 0.0:
                continue
            feasible[i] += 1
            gain = weight[i] * b
            rc = gain + offset[i]
            for d in range(dims):
                rc -= lam[j, d] * need[i, d]
            if rc > best[i]:
                best[i] = rc
            if rc <= threshold:
                continue
            above[i] += 1
            if kept == top and rc <= out_rc[i, top - 1]:
                continue
            pos = kept if kept < top else top - 1
            while pos > 0 and out_rc[i, pos - 1] < rc:
                if pos < top:
                    out_res[i, pos], out_rc[i, pos], out_gain[i, pos] = out_res[i, pos - 1], out_rc[i, pos - 1], out_gain[i, pos - 1]
                pos -= 1
            out_res[i, pos], out_rc[i, pos], out_gain[i, pos] = j, rc, gain
            if kept < top:
                kept += 1
    return out_res, out_rc, out_gain, best, feasible, above


# Compiled twice, as the candidate kernel: a parallel launch costs milliseconds, which
# only pays off on big markets.
_price_parallel, _price_serial = compiled_twice(_price_rows)
PARALLEL_MIN_PAIRS = 2_000_000


@nb.njit(cache=True)
def _round(
    order: np.ndarray, req: np.ndarray, res: np.ndarray, need: np.ndarray, free: np.ndarray, capacity: np.ndarray
) -> np.ndarray:
    """Pairs taken greedily in ``order`` while their request is free and they fit: ``(P,)`` bool.

    ``free`` is taken from ``capacity`` (the free capacity the round cleared on), the scale
    of the fit test's slack (:func:`~market.core.candidates.has_room`).
    """
    left = free.copy()
    taken = np.zeros(req.size, dtype=np.bool_)
    done = np.zeros(need.shape[0], dtype=np.bool_)
    for p in order:
        i, j = req[p], res[p]
        if done[i]:
            continue
        fits = True
        for d in range(need.shape[1]):
            if not has_room(need[i, d], left[j, d], capacity[j, d]):
                fits = False
        if fits:
            for d in range(need.shape[1]):
                left[j, d] -= need[i, d]
            done[i] = True
            taken[p] = True
    return taken


@dataclass(frozen=True)
class RoundMarket:
    """The round's whole market as the oracle sees it (arrays of the order book).

    Attributes:
        requests: ``(N, 8 + D)`` request rows in the candidate kernel's layout
            (:mod:`market.core.candidates`).
        need: ``(N, E)`` demand in allocation units.
        resources: ``(M, 7 + D)`` resource rows at the round's prices.
        free: ``(M, E)`` free capacity the round cleared on.
        user: ``(N,)`` user index; priority ``(N,)`` normalised; budget ``(N,)``.
        start_won: ``(U,)`` priority mass the users carried into the round.
        weights: ``(alpha, beta, gamma, delta)``; d_max: the proximity scale.
        allowed: ``(N, W)`` eligibility masks (:mod:`market.core.eligibility`); None:
            every request may use every resource.
    """

    requests: np.ndarray
    need: np.ndarray
    resources: np.ndarray
    free: np.ndarray
    user: np.ndarray
    priority: np.ndarray
    budget: np.ndarray
    start_won: np.ndarray
    weights: tuple[float, float, float, float]
    d_max: float
    allowed: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.allowed is None:
            object.__setattr__(self, "allowed", any_type(self.requests.shape[0]))

    @classmethod
    def of_book(cls, book: OrderBook, resource_matrix: np.ndarray, free: np.ndarray, start_won: np.ndarray,
                params: RoundParams) -> RoundMarket:
        """The whole market of an order book on ``free`` capacity, at ``resource_matrix``'s prices."""
        return cls(book.request_matrix(), book.need, resource_matrix, free, book.user, book.columns["priority"],
                   book.columns["budget"], start_won, params.weights, params.d_max, book.allowed)

    def price(self, weight: np.ndarray, offset: np.ndarray, lam: np.ndarray, threshold: float, top: int) -> tuple:
        """Scan every pair against duals (see :func:`_price_rows`)."""
        a, b, g, _ = self.weights
        kernel = _price_parallel if self.requests.shape[0] * self.resources.shape[0] >= PARALLEL_MIN_PAIRS else _price_serial
        return kernel(self.requests, self.need, self.resources, self.free, self.allowed, float(a), float(b), float(g),
                      float(self.d_max), weight, offset, lam, float(threshold), int(top))


@dataclass
class OracleResult:
    """The oracle's account of one round (``rounds`` columns, see :meth:`metrics`)."""

    opt_welfare: float
    bound_welfare: float
    opt_status: str
    opt_scope: str
    bound_value_welfare: float
    pairs: int
    iterations: int
    timed_out: bool = False

    def metrics(self, welfare: float, value_welfare: float) -> dict[str, float | bool | str]:
        """The ``rounds`` columns of a mechanism's round that reached ``welfare`` and ``value_welfare``."""
        return {
            "opt_welfare": self.opt_welfare,
            "bound_welfare": self.bound_welfare,
            "alg_opt": _ratio(welfare, self.opt_welfare),
            "alg_bound": _ratio(welfare, self.bound_welfare),
            "opt_proven": self.opt_status == "optimal",
            "opt_status": self.opt_status,
            "opt_scope": self.opt_scope,
            "bound_value_welfare": self.bound_value_welfare,
            "alg_value_bound": _ratio(value_welfare, self.bound_value_welfare),
            "opt_time_limited": self.timed_out,
        }


def _ratio(part: float, whole: float) -> float:
    """``part / whole``; 1 when both are 0 (nothing to win, nothing won)."""
    return part / whole if whole > 0 else 1.0


def _column_generation(
    market: RoundMarket, program: WelfareProgram, weight: np.ndarray, deadline: float,
) -> tuple[float, LPResult | None, int, bool]:
    """Grow ``program`` until no pair prices out or ``deadline`` (``time.perf_counter()``) passes.

    Returns:
        ``(bound, lp, iterations, timed_out)``: the best Lagrangian bound found (inf if no
        LP solved), the last LP solved to optimality (None if none was), and whether time
        (not convergence) stopped it.
    """
    m = market.resources.shape[0]
    keys = set((program.req * m + program.res).tolist())
    bound, last = math.inf, None
    for it in range(1, MAX_ITERATIONS + 1):
        lp = program.solve_lp(max(0.05, deadline - time.perf_counter()))
        if not lp.ok:  # out of time: the bounds found so far stand
            return bound, last, it, True
        last = lp
        res, _, gain, best, _, _ = market.price(weight, lp.offset, lp.lam, _RC_TOL, PRICE_TOP)
        # the Lagrangian bound: slack for the LP's own tolerances
        bound = min(bound, lp.value + float(np.maximum(best, 0.0).sum()) + 1e-7 * (1.0 + abs(lp.value)))
        rows, cols = np.nonzero(res >= 0)
        new = rows * m + res[rows, cols]
        fresh = np.fromiter((k not in keys for k in new.tolist()), dtype=bool, count=new.size)
        if not fresh.any() or time.perf_counter() > deadline:
            return bound, lp, it, bool(fresh.any())
        keys.update(new[fresh].tolist())
        program.add_pairs(rows[fresh], res[rows, cols][fresh], gain[rows, cols][fresh])
    return bound, last, MAX_ITERATIONS, False


def _dive(market: RoundMarket, prog: WelfareProgram, x: np.ndarray, deadline: float) -> tuple[np.ndarray, bool]:
    """A good allocation from the LP by diving: fix near-integral pairs, re-solve, repeat.

    Each step takes the pairs at ``x > 0.9`` (else the largest tenth of the fractional
    ones) greedily while they fit, removes their requests and capacity, and re-solves the
    LP of what is left over the program's pairs (users' won mass updated, so the fairness
    term stays exact); at the end the pairs still open are filled greedily by gain.

    Returns:
        Indices into the program's pairs of a feasible allocation, and whether the deadline
        cut the dive short.
    """
    need, user, prio = market.need, market.user, market.priority
    free, won = market.free.copy(), market.start_won.astype(float).copy()
    slack = fit_slack(market.free)  # the fit test's, relative to the capacity the round cleared on
    done = np.zeros(need.shape[0], dtype=bool)
    chosen: list[np.ndarray] = []
    alive = x > -1.0
    timed_out = False
    while not (timed_out := time.perf_counter() >= deadline):
        fix = np.flatnonzero(alive & (x > 0.9))
        if fix.size == 0:
            frac = np.flatnonzero(alive & (x > 1e-6))
            if frac.size == 0:
                break
            fix = frac[np.argsort(-x[frac], kind="stable")[: max(1, frac.size // 10)]]
        fix = np.flatnonzero(_round(fix[np.argsort(-x[fix], kind="stable")], prog.req, prog.res, need, free, market.free))
        np.subtract.at(free, prog.res[fix], need[prog.req[fix]])
        np.add.at(won, user[prog.req[fix]], prio[prog.req[fix]])
        done[prog.req[fix]] = True
        chosen.append(fix)
        alive = ~done[prog.req] & np.all(need[prog.req] <= free[prog.res] + slack[prog.res], axis=1)
        if not alive.any():
            break
        rest = WelfareProgram(need, free, user, prio, won, prog.delta)
        ids = np.flatnonzero(alive)
        rest.add_pairs(prog.req[ids], prog.res[ids], prog.gain[ids])
        lp = rest.solve_lp(max(0.05, deadline - time.perf_counter()))
        if not lp.ok:
            timed_out = True
            break
        x = np.zeros(prog.n_pairs)
        x[ids] = lp.x
    open_ = np.flatnonzero(alive)
    fill = np.flatnonzero(_round(open_[np.argsort(-prog.gain[open_], kind="stable")], prog.req, prog.res, need, free,
                                 market.free))
    return (np.concatenate([*chosen, fill]) if chosen else fill), timed_out


def _first_pass(market: RoundMarket) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every feasible pair at zero duals.

    Returns:
        ``(res, gain, best, feasible)``: each request's best pairs and their ``b``, its best
        ``b``, and its count of feasible pairs (0: it cannot be served anywhere).
    """
    n, (m, dims) = market.requests.shape[0], market.free.shape
    res, _, gain, best, feasible, _ = market.price(np.ones(n), np.zeros(n), np.zeros((m, dims)), -np.inf, PRICE_TOP)
    return res, gain, best, feasible


def _program(
    market: RoundMarket, first: tuple, weight: np.ndarray, delta: float,
    rows: np.ndarray | None = None, res: np.ndarray | None = None, b: np.ndarray | None = None,
) -> WelfareProgram:
    """The program seeded with each request's best pairs and the pairs ``(rows, res)`` of utility ``b``."""
    m = market.free.shape[0]
    res0, gain0, _, feasible = first
    prog = WelfareProgram(market.need, market.free, market.user, market.priority, market.start_won, delta, feasible > 0)
    r, c = np.nonzero(res0 >= 0)
    prog.add_pairs(r, res0[r, c], gain0[r, c] * weight[r])
    if rows is not None and rows.size:
        extra = ~np.isin(rows * m + res, r * m + res0[r, c])
        prog.add_pairs(rows[extra], res[extra], b[extra] * weight[rows[extra]])
    return prog


def welfare_bound(market: RoundMarket, time_limit: float = 600.0) -> tuple[float, float, int, int, int]:
    """A proven upper bound on the whole market's welfare ``F`` (step 1 of the module).

    Args:
        market: the round's whole market.
        time_limit: seconds; the bound holds wherever column generation stops.

    Returns:
        ``(bound, lp, columns, pairs, iterations)``: the bound, the LP over the final
        columns (equal to the bound at convergence), the columns, the market's feasible
        pairs and the iterations.
    """
    first = _first_pass(market)
    n = market.requests.shape[0]
    prog = _program(market, first, np.ones(n), float(market.weights[3]))
    bound, lp, iterations, _ = _column_generation(market, prog, np.ones(n), time.perf_counter() + time_limit)
    return bound, (lp.value if lp is not None else math.inf), prog.n_pairs, int(first[3].sum()), iterations


def solve_round(
    market: RoundMarket, served: np.ndarray, base_utility: np.ndarray, welfare: float, value_welfare: float,
    time_limit: float, node_limit: int | None, max_pairs: int = MAX_PAIRS,
) -> OracleResult:
    """The round's whole-market optimum (welfare ``F``) and bounds on both objectives.

    Args:
        market: the round's whole market.
        served: ``(N,)`` resource of each request in the mechanism's allocation, -1 if unserved.
        base_utility: ``(N,)`` the mechanism's ``b_ij`` of each served request.
        welfare: the mechanism's welfare ``F`` (a feasible value: the search starts from it).
        value_welfare: the mechanism's ``sum budget_i b_ij`` over its winners.
        time_limit: seconds for the whole round (a safety net that makes the result
            depend on the machine when it is hit; nodes cap the search): the money bound
            gets up to 30 %, the welfare bound up to 70 % of it, the MILP what is left.
        node_limit: branch-and-bound nodes of the MILP; 0 skips the MILP and the dive (the
            bounds, and the better of the mechanism's allocation and the rounded LP, are
            reported).
        max_pairs: most pairs the exact search takes (else each request's best pairs).

    Returns:
        The oracle's result; ``opt_welfare >= welfare`` and ``bound_welfare >= opt_welfare``,
        ``bound_value_welfare >= value_welfare``, all finite.
    """
    n = market.requests.shape[0]
    m = market.free.shape[0]
    delta = float(market.weights[3])
    ones = np.ones(n)
    first = _first_pass(market)
    # the budget starts after the first scan, which compiles the scan kernel in a fresh
    # process: compiling must not eat the bounds' share (it made bounds depend on the cache)
    t0 = time.perf_counter()
    reachable, best0 = first[3] > 0, first[2]
    mine = np.flatnonzero(served >= 0)

    def program(weight: np.ndarray, fair: float) -> WelfareProgram:
        # the mechanism's pairs too, for the MILP's start
        return _program(market, first, weight, fair, mine, served[mine], base_utility[mine])

    # --- money: a bound (column generation on the LP)
    budget = market.budget.astype(float)
    trivial_value = float(np.sum(np.where(reachable, budget * np.maximum(best0, 0.0), 0.0)))
    # the program in a unit of money near the largest budget when that is far from 1 (budgets
    # of 1e100 are costs beyond HiGHS's infinity: its LP gave up); ordinary budgets unchanged
    top = float(budget.max()) if budget.size else 1.0
    money = top if top > 0 and not UNIT_RANGE[0] <= top <= UNIT_RANGE[1] else 1.0
    value_prog = program(budget / money, 0.0)
    value_bound, _, _, late = _column_generation(market, value_prog, budget / money, t0 + 0.3 * time_limit)
    value_bound *= money
    bound_value = max(min(value_bound, trivial_value), value_welfare)

    # --- welfare F: bound, then the exact search
    trivial = float(np.maximum(best0, 0.0)[reachable].sum()) + fairness_gain(
        market.user[reachable], market.priority[reachable], market.start_won, delta)
    prog = program(ones, delta)
    cg_bound, lp, iterations, late_f = _column_generation(market, prog, ones, t0 + 0.7 * time_limit)
    late |= late_f
    bound = min(cg_bound, trivial)
    if lp is None:  # not even the LP solved: no search either
        return OracleResult(welfare, max(trivial, welfare), "failed", "candidates", bound_value, prog.n_pairs,
                            iterations, late)

    def welfare_of(pairs: np.ndarray) -> float:
        req = prog.req[pairs]
        return float(prog.gain[pairs].sum()) + fairness_gain(market.user[req], market.priority[req], market.start_won, delta)

    # the incumbent: the best of the mechanism's allocation, the LP rounded greedily and a dive
    # (a near-optimal start shrinks the search: fewer pairs survive the fixing below)
    start = np.flatnonzero(served[prog.req] == prog.res)
    best_known = welfare
    x = np.zeros(prog.n_pairs)
    x[: lp.x.size] = lp.x  # pairs added after the last LP solved (out of time) are at 0
    rounded = np.flatnonzero(_round(np.lexsort((-prog.gain, -x)), prog.req, prog.res, market.need, market.free,
                                    market.free))
    # the dive serves the search (a near-optimal start, fewer pairs after fixing); without
    # a search (node_limit 0) its LP solves would cost more than the rest of the round
    dived, late_d = _dive(market, prog, x, t0 + 0.8 * time_limit) if node_limit != 0 else (rounded, False)
    late |= late_d
    for found in (rounded, dived):
        if welfare_of(found) > best_known:
            best_known, start = welfare_of(found), found

    bound = max(bound, best_known)
    scope = "all"
    gap = bound - best_known
    if gap <= 1e-7 * max(1.0, abs(bound)) and prog.exact:  # the incumbent reached the bound
        return OracleResult(best_known, bound, "optimal", scope, bound_value, prog.n_pairs, iterations, late)
    if node_limit == 0:  # no search asked for: the bound and the best allocation known, found
        # over part of the pairs only (the mechanism's, the LP's)
        return OracleResult(best_known, bound, "feasible", "candidates", bound_value, prog.n_pairs, iterations, late)
    # reduced-cost fixing: only pairs with rc >= LB - UB can beat the incumbent, UB being the
    # Lagrangian bound of these very duals (not the best bound of an earlier iteration, nor
    # the trivial one: they do not certify it); equal to the LP once nothing prices out
    _, _, _, best_rc, _, _ = market.price(ones, lp.offset, lp.lam, np.inf, 1)
    gap = max(gap, lp.value + float(np.maximum(best_rc, 0.0).sum()) + 1e-7 * (1.0 + abs(lp.value)) - best_known)
    keep = prog.reduced_costs(lp, prog.req, prog.res, prog.gain) >= -gap - _RC_TOL
    keep[start] = True
    prog.fix_out(np.flatnonzero(~keep))
    _, _, _, _, _, above = market.price(ones, lp.offset, lp.lam, -gap - _RC_TOL, 1)
    if int(above.sum()) <= max_pairs:
        top = max(1, int(above.max()))
        res, _, gain, *_ = market.price(ones, lp.offset, lp.lam, -gap - _RC_TOL, top)
        rows, cols = np.nonzero(res >= 0)
        new = rows * m + res[rows, cols]
        fresh = ~np.isin(new, prog.req * m + prog.res)
        prog.add_pairs(rows[fresh], res[rows, cols][fresh], gain[rows, cols][fresh])
    else:
        scope = "candidates"
    mip = prog.solve_mip(max(0.1 * time_limit, t0 + time_limit - time.perf_counter()), node_limit, start)
    if mip.found and not mip.overfilled:
        best_known = max(best_known, welfare_of(mip.pairs))
    if scope == "all" and math.isfinite(mip.bound):
        # every solution better than the incumbent lies in the program: its bound holds for the market
        bound = min(bound, max(best_known, mip.bound + 1e-9 * (1.0 + abs(mip.bound))))
    bound = max(bound, best_known)
    proven = scope == "all" and prog.exact and best_known >= bound - 1e-7 * max(1.0, abs(bound))
    status = "optimal" if proven else ("feasible" if mip.found else "bound_only")
    late |= mip.timed_out
    return OracleResult(best_known, bound, status, scope, bound_value, prog.n_pairs, iterations, late)
