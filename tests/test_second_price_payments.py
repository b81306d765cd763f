"""``second_price``'s critical values: the local replay equals the full one and the definition.

:func:`mechanisms.kernels.myerson_ladder` charges a winner ``z q(z) - integral_0^z q(t) dt``
(Myerson 1981), replaying the run without the winner only where it can differ from the
actual run. Two references check it on small, tight markets (few resources, ties in the
reports and the qualities, demands on a coarse grid so that fits are often exact):

* :func:`replay_reference`, the algorithm it replaced, kept here only: for each winner it
  replays every later request without the winner and integrates the step function q;
* :func:`definition_reference`: q(t) straight from its definition, re-running the whole
  allocation with the winner's report set to every midpoint between breakpoints.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mechanisms import create
from mechanisms.kernels import myerson_ladder, sequential_pick
from tests.test_mechanisms import single_item

EPS = 1e-12  # the kernels' fit tolerance, relative to the capacity (mechanisms.kernels._room)
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))


def fits(res: np.ndarray, need: np.ndarray, cap: np.ndarray) -> bool:
    """``need`` fits the residual ``res`` of the capacity ``cap`` in every dimension."""
    return bool(np.all(res + EPS * (1 + np.abs(cap)) >= need))


def best_column(o, quality, cand, ok, demand, res, cap) -> int:
    best = -1
    for c in range(cand.shape[1]):
        j = cand[o, c]
        if (
            j >= 0
            and ok[o, c]
            and fits(res[j], demand[o], cap[j])
            and (best < 0 or quality[o, c] > quality[o, best])
        ):
            best = c
    return best


def quality_integral(lo, hi, avail, quality, threshold) -> float:
    """Integral over t in (lo, hi) of max{quality_c : avail_c and t >= threshold_c}."""
    if hi <= lo:
        return 0.0
    pts = sorted([lo, hi, *(t for a, t in zip(avail, threshold) if a and lo < t < hi)])
    total = 0.0
    for a, b in itertools.pairwise(pts):
        if b <= a:
            continue
        mid = 0.5 * (a + b)
        q = 0.0
        for c in range(len(quality)):
            if avail[c] and mid >= threshold[c] and quality[c] > q:
                q = quality[c]
        total += q * (b - a)
    return total


def replay_reference(order, report, quality, reserve, cand, demand, cap):
    """The former kernel, line for line: a full replay of the later requests per winner."""
    n, k = cand.shape
    res = cap.copy()
    choice = np.full(n, -1)
    payment = np.zeros(n)
    ok = report[:, None] * quality >= reserve
    for pos in range(n):
        i = order[pos]
        c = best_column(i, quality, cand, ok, demand, res, cap)
        if c < 0:
            continue
        with np.errstate(divide="ignore"):
            threshold = np.where(
                quality[i] > 0, reserve[i] / np.where(quality[i] > 0, quality[i], 1.0), np.inf
            )
        avail = [cand[i, cc] >= 0 and fits(res[cand[i, cc]], demand[i], cap[cand[i, cc]]) for cc in range(k)]
        floor = min((threshold[cc] for cc in range(k) if avail[cc]), default=np.inf)
        run = res.copy()
        upper, integral = report[i], 0.0
        for o in order[pos + 1 :]:
            if upper <= floor or report[o] <= floor:
                break
            co = best_column(o, quality, cand, ok, demand, run, cap)
            if co < 0:
                continue
            jo = cand[o, co]
            run[jo] -= demand[o]
            if any(avail[cc] and cand[i, cc] == jo for cc in range(k)) and not fits(
                run[jo], demand[i], cap[jo]
            ):
                lo = min(report[o], upper)
                integral += quality_integral(lo, upper, avail, quality[i], threshold)
                upper = lo
                avail = [avail[cc] and cand[i, cc] != jo for cc in range(k)]
                floor = min((threshold[cc] for cc in range(k) if avail[cc]), default=np.inf)
        integral += quality_integral(0.0, upper, avail, quality[i], threshold)
        choice[i] = c
        payment[i] = max(0.0, report[i] * quality[i, c] - integral)
        res[cand[i, c]] -= demand[i]
    return choice, payment


def allocation(report, quality, reserve, cand, demand, cap) -> np.ndarray:
    """The ladder's allocation at these reports (the kernels' own sequential pick)."""
    order = np.argsort(-report, kind="stable")
    return sequential_pick(order, quality, report[:, None] * quality >= reserve, cand, demand, cap)


def definition_reference(report, quality, reserve, cand, demand, cap) -> np.ndarray:
    """``z q(z) - integral_0^z q(t) dt`` with q(t) the quality of a whole re-run at report t."""
    choice = allocation(report, quality, reserve, cand, demand, cap)
    payment = np.zeros(report.size)
    for i in np.flatnonzero(choice >= 0):
        z = report[i]
        with np.errstate(divide="ignore", invalid="ignore"):
            opens = reserve[i] / quality[i]
        points = np.unique([0.0, z, *report[report < z], *opens[(opens > 0) & (opens < z)]])
        integral = 0.0
        for a, b in itertools.pairwise(points):
            moved = report.copy()
            moved[i] = 0.5 * (a + b)
            got = allocation(moved, quality, reserve, cand, demand, cap)[i]
            integral += (quality[i, got] if got >= 0 else 0.0) * (b - a)
        payment[i] = max(0.0, z * quality[i, choice[i]] - integral)
    return payment


@st.composite
def ladders(draw):
    """A small, tight ladder market: ties in reports and qualities, demands on a grid."""
    n = draw(st.integers(1, 40))
    m = draw(st.integers(1, 8))
    k = draw(st.integers(1, min(5, m)))
    dims = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    cand = np.full((n, k), -1, dtype=np.int64)
    for i in range(n):
        width = rng.integers(1, k + 1)
        cand[i, :width] = rng.choice(m, size=width, replace=False)
    # few distinct values: equal reports and equal qualities are common
    report = rng.choice([1.0, 2.0, 2.5, 3.0, 4.0, 6.0], n) * draw(st.sampled_from([1.0, 1.1]))
    quality = np.where(cand >= 0, rng.choice([0.0, 0.25, 0.5, 0.5, 0.75, 1.0, 1.0], (n, k)), 0.0)
    reserve = np.where(cand >= 0, rng.choice([0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 2.0], (n, k)), np.inf)
    demand = rng.choice([0.0, 0.5, 0.5, 1.0, 1.0, 1.5, 2.0], (n, dims))
    cap = rng.choice([1.0, 2.0, 3.0, 4.0], (m, dims))
    return report, quality, reserve, cand, demand, cap


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None)
@given(market=ladders())
def test_payments_equal_the_full_replay_and_the_definition(market):
    report, quality, reserve, cand, demand, cap = market
    order = np.argsort(-report, kind="stable")
    choice, payment = myerson_ladder(order, report, quality, reserve, cand, demand, cap)
    want_choice, want_payment = replay_reference(order, report, quality, reserve, cand, demand, cap)
    np.testing.assert_array_equal(choice, want_choice)
    np.testing.assert_allclose(payment, want_payment, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(payment, definition_reference(*market), rtol=1e-9, atol=1e-9)
    assert np.all(payment[choice < 0] == 0.0)


def test_a_cascade_moves_a_later_request_down_its_ladder():
    """Without the winner, a bigger request takes its resource and pushes a later one down.

    Request 0 (report 5) takes A (quality 1) of capacity 2; request 1 (4, demand 2) then
    misses A and request 2 (3) takes A too. Without request 0, request 1 fills A, so
    request 2 falls to B (quality 0.5), the winner's other free candidate, which it never
    touched in the actual run: q(t) = 1 on (4, 5), 0.5 on (3, 4), 0 below, and request 0
    pays 5 - (1 + 0.5) = 3.5.
    """
    report = np.array([5.0, 4.0, 3.0])
    cand = np.array([[0, 1], [0, -1], [0, 1]])
    quality = np.array([[1.0, 0.5], [1.0, 0.0], [1.0, 0.5]])
    reserve = np.where(cand >= 0, 0.0, np.inf)
    demand = np.array([[1.0], [2.0], [1.0]])
    cap = np.array([[2.0], [1.0]])
    choice, payment = myerson_ladder(np.arange(3), report, quality, reserve, cand, demand, cap)
    assert choice.tolist() == [0, -1, 0]
    assert payment.tolist() == pytest.approx([3.5, 0.0, 0.0], rel=1e-12)
    assert payment.tolist() == pytest.approx(
        definition_reference(report, quality, reserve, cand, demand, cap).tolist()
    )


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None)
@given(
    reports=st.lists(st.sampled_from([0.5, 1.0, 2.0, 3.0, 3.5, 7.0, 10.0]), min_size=1, max_size=12)
)
def test_one_item_without_cost_is_vickrey(reports):
    """The highest report wins (the first of equal ones) and pays the second-highest report."""
    alloc = create("second_price").allocate(single_item(reports), np.random.default_rng(0))
    winner = int(np.argmax(reports))
    assert np.flatnonzero(alloc.choice >= 0).tolist() == [winner]
    second = max(reports[:winner] + reports[winner + 1 :], default=0.0)
    assert alloc.payment[winner] == pytest.approx(second, rel=1e-12)
    assert np.count_nonzero(alloc.payment) == (1 if second > 0 else 0)
