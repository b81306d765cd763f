"""The welfare program: a round's welfare maximisation as an LP or MILP over pairs (HiGHS).

Over a list of request-resource pairs ``p = (i, j)`` with gains ``c_p``::

    max  sum_p c_p x_p + delta * sum_u [g(W_u + X_u) - g(W_u)],   g = log2(1 + x)
    s.t. sum_{p of i} x_p <= 1                      each request at most once   (dual mu_i)
         sum_{p on j} need_{i,d} x_p <= cap_{j,d}   every resource, dimension   (dual lam_jd)
         X_u = sum_{p of u} prio_i x_p              priority mass won by user u (dual pi_u)
         t_u <= a_k + s_k X_u                       cuts of the concave gain    (t_u in objective)
         x_p in {0, 1}  (or x_p >= 0 in the LP relaxation)

With ``c_p = b_ij`` and the scenario's ``delta`` this is the paper's welfare ``F``
(every mechanism is scored by it); with ``c_p = budget_i * b_ij`` and ``delta = 0`` it is
social welfare in money. The concave gain is modelled exactly by chords on the grid of
reachable ``X_u`` values (priorities are integer multiples of a unit, so ``X_u`` only takes
grid values and the chords' minimum equals ``g`` there); when the grid is too fine,
tangents give an outer approximation and the program's value is only an upper bound
(``exact`` is then False).

Pairs can be added between solves (column generation): the LP is re-solved from its last
basis, and :meth:`WelfareProgram.reduced_costs` prices any pair against the current duals.
One program serves the ``optimal`` mechanism (over its candidate pairs) and the
whole-market oracle (:mod:`market.core.oracle`, over every feasible pair).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass

import highspy
import numpy as np

MAX_GRID_POINTS = 400
#: relative capacity tolerance of an allocation (the engine's and the conformance check's)
CAPACITY_TOL = 1e-9
INF = highspy.kHighsInf
#: magnitudes HiGHS is given as they are; a capacity row (or, in the oracle, the money of a
#: value program) outside this range gets a unit of its own, so that every number HiGHS sees
#: is within its limits (matrix values in [1e-9, 1e15], costs below 1e20)
UNIT_RANGE = (1e-6, 1e6)


def _g(x: np.ndarray | float) -> np.ndarray | float:
    return np.log2(1.0 + np.asarray(x, dtype=float))


def priority_grid(priority: np.ndarray) -> float | None:
    """The unit of which every positive priority is an integer multiple, if any."""
    positive = priority[priority > 0]
    if positive.size == 0:
        return None
    smallest = float(positive.min())
    for divisor in range(1, 13):
        unit = smallest / divisor
        ratio = positive / unit
        if np.all(np.abs(ratio - np.round(ratio)) < 1e-7):
            return unit
    return None


def fairness_cuts(start: float, top: float, unit: float | None) -> tuple[np.ndarray, np.ndarray, bool]:
    """Lines ``t <= a + s X`` bounding the gain ``g(start + X) - g(start)`` on [0, top].

    Returns:
        ``(intercepts, slopes, exact)``: chords on the grid when it is small enough
        (exact at every reachable point), tangents otherwise (an upper bound).
    """
    base = float(_g(start))
    if unit is not None and top / unit <= MAX_GRID_POINTS:
        nodes = np.arange(0, round(top / unit) + 1) * unit
        values = _g(start + nodes) - base
        if nodes.size == 1:
            return np.array([0.0]), np.array([0.0]), True
        slopes = np.diff(values) / np.diff(nodes)
        return values[:-1] - slopes * nodes[:-1], slopes, True
    points = np.concatenate([[0.0], np.geomspace(1e-3, max(top, 1e-3), 48)])
    slopes = 1.0 / ((1.0 + start + points) * math.log(2.0))
    values = _g(start + points) - base
    return values - slopes * points, slopes, False


def fairness_gain(user: np.ndarray, priority: np.ndarray, user_won: np.ndarray, delta: float) -> float:
    """``delta * sum_u [g(W_u + X_u) - g(W_u)]`` of a set of won requests (exact ``g``).

    Args:
        user: ``(S,)`` user of each won request.
        priority: ``(S,)`` its priority.
        user_won: ``(U,)`` mass ``W_u`` each user holds before the round.
        delta: the fairness weight.
    """
    if delta == 0 or user.size == 0:
        return 0.0
    won = np.bincount(user, weights=priority, minlength=user_won.size)
    return float(delta * np.sum(_g(user_won + won) - _g(user_won)))


def _quiet_highs() -> highspy.Highs:
    """A silent HiGHS instance (its first construction prints a banner on fd 1)."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
    return h


@dataclass
class LPResult:
    """The LP relaxation over the program's pairs.

    Attributes:
        ok: the LP was solved to optimality (duals valid).
        value: its optimal value (an upper bound on the program's integer optimum).
        offset: ``(N,)`` per-request part of a pair's reduced cost, ``-mu_i + pi_u prio_i``.
        lam: ``(M, D)`` capacity prices ``lam_jd >= 0``.
        x: ``(P,)`` the LP's value of each pair (fractional).
    """

    ok: bool
    value: float
    offset: np.ndarray
    lam: np.ndarray
    x: np.ndarray


@dataclass
class MIPResult:
    """The integer program over the program's pairs.

    Attributes:
        pairs: indices (into the program's pairs) of the chosen pairs, empty if none found.
        found: the solver returned a feasible solution.
        value: its objective value in the program (NaN if none).
        bound: a proven upper bound on the program's optimum (inf if none).
        optimal: HiGHS proved optimality (within ``mip_rel_gap``) of a solution that
            keeps every capacity within the market's tolerance.
        timed_out: the time limit stopped the search (the result depends on the machine).
        overfilled: even at HiGHS's tightest tolerances the solution exceeds a capacity
            by more than the market's tolerance (``pairs`` is then no allocation).
    """

    pairs: np.ndarray
    found: bool
    value: float
    bound: float
    optimal: bool
    timed_out: bool = False
    overfilled: bool = False


class WelfareProgram:
    """The welfare program of one market (see the module), built up pair by pair.

    Args:
        need: ``(N, D)`` demand of each request in allocation units.
        capacity: ``(M, D)`` free capacity of each resource.
        user: ``(N,)`` user index of each request (rows of ``user_won``).
        priority: ``(N,)`` normalised priority.
        user_won: ``(U,)`` priority mass each user holds before the round.
        delta: weight of the concave fairness term (0: none).
        reachable: ``(N,)`` requests that have at least one feasible pair anywhere (they
            bound how much a user can win, which places the fairness cuts); default all.
    """

    def __init__(self, need: np.ndarray, capacity: np.ndarray, user: np.ndarray, priority: np.ndarray,
                 user_won: np.ndarray, delta: float, reachable: np.ndarray | None = None) -> None:
        self.need = np.asarray(need, dtype=float)
        self.capacity = np.asarray(capacity, dtype=float)
        self.n, self.dims = self.need.shape
        self.m = self.capacity.shape[0]
        self.user, self.priority = np.asarray(user), np.asarray(priority, dtype=float)
        self.user_won = np.asarray(user_won, dtype=float)
        self.delta = float(delta)
        self.req = np.zeros(0, dtype=np.int64)
        self.res = np.zeros(0, dtype=np.int64)
        self.gain = np.zeros(0)
        self.exact = True
        self._fixed = np.zeros(0, dtype=np.int64)
        self.h = _quiet_highs()
        h = self.h
        # rows: assignment (N), capacity (M x D, resource-major), then the fairness rows
        h.addRows(self.n, np.full(self.n, -INF), np.ones(self.n), 0, np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0))
        # a capacity far from 1 is that row's unit: HiGHS refuses matrix values above 1e15 and
        # drops those below 1e-9, so a market at the magnitude bounds (1e-100 to 1e100) lost
        # its pairs; rows within [1e-6, 1e6] keep their units, the program of an ordinary
        # market unchanged (duals are given back in the market's units: solve_lp)
        far = (self.capacity > 0) & ((self.capacity < UNIT_RANGE[0]) | (self.capacity > UNIT_RANGE[1]))
        self.row_unit = np.where(far, self.capacity, 1.0)
        cap = (self.capacity / self.row_unit).reshape(-1)
        h.addRows(cap.size, np.full(cap.size, -INF), cap, 0, np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0))
        self.users = np.unique(self.user) if self.delta > 0 and self.n else np.zeros(0, dtype=np.int64)
        self.n_fixed_cols = 0
        if self.users.size:
            self._fairness_rows(reachable if reachable is not None else np.ones(self.n, dtype=bool))

    def _fairness_rows(self, reachable: np.ndarray) -> None:
        """Columns ``t_u, X_u`` with their rows: ``X_u - sum prio x = 0`` and the cuts."""
        h, users = self.h, self.users
        k = users.size
        self.x_row = self.n + self.m * self.dims  # first X row; X row of users[q] is x_row + q
        h.addRows(k, np.zeros(k), np.zeros(k), 0, np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0))
        top = np.zeros(k)
        mine = np.searchsorted(users, self.user[reachable])
        np.add.at(top, mine, self.priority[reachable])
        unit = priority_grid(self.priority)
        cut_start = self.x_row + k
        row = cut_start
        t_entries, x_entries, upper = [], [], []
        for q, u in enumerate(users):
            intercepts, slopes, exact = fairness_cuts(float(self.user_won[u]), float(top[q]), unit)
            self.exact &= exact
            cuts = np.arange(row, row + slopes.size)
            t_entries.append((cuts, np.ones(slopes.size)))
            x_entries.append((cuts, -slopes))
            upper.append(intercepts)
            row += slopes.size
        upper = np.concatenate(upper)
        h.addRows(upper.size, np.full(upper.size, -INF), upper, 0, np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0))
        # t_u: objective -delta (we minimise), in its cuts; X_u: in its X row and cuts
        starts, index, value = [], [], []
        for q in range(k):
            starts.append(len(index))
            index += list(t_entries[q][0])
            value += list(t_entries[q][1])
        for q in range(k):
            starts.append(len(index))
            index += [self.x_row + q, *x_entries[q][0]]
            value += [1.0, *x_entries[q][1]]
        cost = np.concatenate([np.full(k, -self.delta), np.zeros(k)])
        h.addCols(2 * k, cost, np.zeros(2 * k), np.full(2 * k, INF), len(index), np.asarray(starts, np.int32),
                  np.asarray(index, np.int32), np.asarray(value, float))
        self.n_fixed_cols = 2 * k

    @property
    def n_pairs(self) -> int:
        """Pairs in the program."""
        return int(self.req.size)

    def add_pairs(self, req: np.ndarray, res: np.ndarray, gain: np.ndarray) -> None:
        """Add pairs ``(req[p], res[p])`` with objective gains ``gain[p]`` (as LP columns)."""
        req, res, gain = np.asarray(req, np.int64), np.asarray(res, np.int64), np.asarray(gain, float)
        if req.size == 0:
            return
        d = self.dims
        fair = self.users.size > 0
        per = 1 + d + int(fair)
        index = np.empty((req.size, per), dtype=np.int32)
        value = np.empty((req.size, per))
        index[:, 0], value[:, 0] = req, 1.0
        index[:, 1 : 1 + d] = self.n + res[:, None] * d + np.arange(d)
        value[:, 1 : 1 + d] = self.need[req] / self.row_unit[res]
        # a pair larger than its resource in some dimension is in no allocation: its column is
        # fixed at 0 (below), its coefficients capped so that HiGHS takes them (a demand of 1e18
        # capacities is beyond HiGHS's 1e15); the markets the engine builds have none
        cap = self.capacity[res]
        misfit = np.flatnonzero(np.any(self.need[req] > cap + CAPACITY_TOL * (1.0 + np.abs(cap)), axis=1))
        value[misfit, 1 : 1 + d] = np.minimum(value[misfit, 1 : 1 + d], 2.0)
        if fair:
            index[:, -1] = self.x_row + np.searchsorted(self.users, self.user[req])
            value[:, -1] = -self.priority[req]
        # HiGHS wants no explicit zeros: a zero demand in a dimension is left out
        keep = value != 0
        keep[:, 0] = True
        counts = keep.sum(axis=1)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
        status = self.h.addCols(req.size, -gain, np.zeros(req.size), np.full(req.size, INF), int(counts.sum()), starts,
                                index[keep].astype(np.int32), value[keep])
        if status == highspy.HighsStatus.kError:  # it adds none of them: the program would silently lack pairs
            raise RuntimeError(f"HiGHS refused {req.size} pairs (a coefficient outside its limits: demand over "
                               f"capacity up to {float(np.abs(value[:, 1:1 + d]).max(initial=0.0)):.3g}, gain up to "
                               f"{float(np.abs(gain).max(initial=0.0)):.3g})")
        first = self.n_pairs
        self.req = np.concatenate([self.req, req])
        self.res = np.concatenate([self.res, res])
        self.gain = np.concatenate([self.gain, gain])
        self.fix_out(first + misfit)

    def solve_lp(self, time_limit: float = 60.0) -> LPResult:
        """Solve the LP relaxation (warm-started from the last basis) and read its duals."""
        h = self.h
        # HiGHS compares its time limit with the instance's run time summed over every run
        h.setOptionValue("time_limit", h.getRunTime() + float(time_limit))
        h.run()
        status = h.getModelStatus()
        if status == highspy.HighsModelStatus.kModelEmpty:  # no pairs, no rows: nothing to win
            return LPResult(True, 0.0, np.zeros(self.n), np.zeros((self.m, self.dims)), np.zeros(self.n_pairs))
        if status != highspy.HighsModelStatus.kOptimal:
            return LPResult(False, math.inf, np.zeros(self.n), np.zeros((self.m, self.dims)), np.zeros(self.n_pairs))
        solution = h.getSolution()
        dual = np.asarray(solution.row_dual)
        # HiGHS minimises -objective: a <= row's dual is <= 0; flip to the max problem's signs
        mu = np.maximum(-dual[: self.n], 0.0)
        lam = np.maximum(-dual[self.n : self.n + self.m * self.dims], 0.0).reshape(self.m, self.dims) / self.row_unit
        offset = -mu
        if self.users.size:
            pi = dual[self.x_row : self.x_row + self.users.size]
            # x_p has -prio_i in its user's X row: (max) reduced cost gain_p - mu_i - lam.need - pi_u prio_i
            offset = offset - pi[np.searchsorted(self.users, self.user)] * self.priority
        x = np.asarray(solution.col_value)[self.n_fixed_cols :]
        return LPResult(True, -float(h.getInfo().objective_function_value), offset, lam, x)

    def reduced_costs(self, lp: LPResult, req: np.ndarray, res: np.ndarray, gain: np.ndarray) -> np.ndarray:
        """Reduced costs (max problem) of pairs against ``lp``'s duals: > 0 would improve the LP."""
        return gain + lp.offset[req] - np.einsum("pd,pd->p", lp.lam[res], self.need[req])

    def fix_out(self, pairs: np.ndarray) -> None:
        """Fix pairs to 0 (reduced-cost fixing: they are in no solution better than a known one; pairs that do not fit)."""
        if pairs.size:
            cols = (pairs + self.n_fixed_cols).astype(np.int32)
            self.h.changeColsBounds(pairs.size, cols, np.zeros(pairs.size), np.zeros(pairs.size))
            self._fixed = np.union1d(self._fixed, pairs)

    def solve_mip(self, time_limit: float, node_limit: int | None, start: np.ndarray | None = None,
                  rel_gap: float = 1e-7) -> MIPResult:
        """Solve the integer program over the program's pairs (after which it stays integer).

        Args:
            time_limit: seconds (a safety net: it makes results depend on the machine).
            node_limit: branch-and-bound nodes (deterministic), None for no limit.
            start: indices of pairs forming a feasible solution to start from.
            rel_gap: relative gap at which the search stops as optimal.
        """
        h = self.h
        p = self.n_pairs
        cols = np.arange(self.n_fixed_cols, self.n_fixed_cols + p, dtype=np.int32)
        if p:
            h.changeColsIntegrality(p, cols, np.full(p, highspy.HighsVarType.kInteger))
            upper = np.ones(p)
            upper[self._fixed] = 0.0
            h.changeColsBounds(p, cols, np.zeros(p), upper)
        # HiGHS compares its time limit with the instance's run time summed over every run
        h.setOptionValue("time_limit", h.getRunTime() + float(time_limit))
        h.setOptionValue("mip_rel_gap", float(rel_gap))
        h.setOptionValue("mip_abs_gap", 1e-9)
        if node_limit is not None:
            h.setOptionValue("mip_max_nodes", int(node_limit))
        if start is not None and start.size:
            h.setSolution(start.size, (start + self.n_fixed_cols).astype(np.int32), np.ones(start.size))
        h.run()
        result = self._mip_result()
        if result.found and self.overfilled(result.pairs):
            # HiGHS accepts a row violated by up to 1e-6 (absolute), the market only 1e-9 of a
            # capacity: three requests of 0.3333336 "fit" one of 1. Solve again at the tightest
            # tolerances HiGHS allows; a solution still over is no allocation
            h.setOptionValue("mip_feasibility_tolerance", 1e-10)
            h.setOptionValue("primal_feasibility_tolerance", 1e-10)
            h.setOptionValue("time_limit", h.getRunTime() + float(time_limit))
            h.run()
            result = self._mip_result()
            if result.found and self.overfilled(result.pairs):
                result.optimal, result.overfilled = False, True
        return result

    def overfilled(self, pairs: np.ndarray) -> bool:
        """Whether pairs ``pairs`` exceed a capacity by more than ``CAPACITY_TOL * (1 + |C_jd|)``.

        The market's tolerance, the engine's (:mod:`market.core.feasibility`) and the
        conformance check's.
        """
        used = np.zeros_like(self.capacity)
        np.add.at(used, self.res[pairs], self.need[self.req[pairs]])
        return bool(np.any(used > self.capacity + CAPACITY_TOL * (1.0 + np.abs(self.capacity))))

    def _mip_result(self) -> MIPResult:
        h = self.h
        p = self.n_pairs
        info = h.getInfo()
        found = info.primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible
        x = np.asarray(h.getSolution().col_value)[self.n_fixed_cols :] if found else np.zeros(p)
        chosen = np.flatnonzero(x > 0.5)
        bound = -float(info.mip_dual_bound) if math.isfinite(info.mip_dual_bound) else math.inf
        status = h.getModelStatus()
        return MIPResult(chosen, found, -float(info.objective_function_value) if found else math.nan, bound,
                         status == highspy.HighsModelStatus.kOptimal,
                         status in (highspy.HighsModelStatus.kTimeLimit, highspy.HighsModelStatus.kInterrupt))
