"""Property-based fuzzing of the engine and every mechanism (hypothesis, derandomised).

Every registered mechanism is fuzzed (:func:`mechanisms.available`: the built-ins and
any plug-in installed through an entry point), and each must first pass the conformance
check :func:`mechanisms.checks.check_mechanism` under several seeds.
Random markets (no requests, zero-capacity resources, requests that fit nowhere, many
ties, huge and tiny numbers, QoS thresholds nobody meets) go through a few rounds of
:class:`market.core.model.MarketModel` with each mechanism; random sub-markets go straight
into each mechanism's ``allocate`` (and through :func:`mechanisms.checks.check_allocation`).
Checked every time: the engine's own feasibility
check passes, the written tables pass the independent :func:`check_run_tables`,
``0 <= payment <= budget``, metrics are finite and in range, the books balance
(revenue = sum of payments = what resources were credited), truthful-payment mechanisms
never charge a winner more than its value, and the same seed gives identical tables.

``max_examples`` is fixed and ``derandomize=True``, so CI time is bounded and failures
reproduce; shrinking is off unless ``FUZZ_SHRINK=1`` (it can take minutes). A deeper
local hunt: ``FUZZ_EXAMPLES=500 FUZZ_SHRINK=1 pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from market.core.feasibility import TOL, check_run_tables
from market.core.model import MarketModel
from mechanisms import available, create
from mechanisms.base import SubMarket
from mechanisms.checks import check_allocation, check_mechanism
from scenarios.config import parse
from scenarios.tables import MarketData, validate

#: every registered mechanism: the built-ins and any installed plug-in (entry points)
MECHANISMS = available()
#: mechanisms whose winners never pay more than their value (``budget * b_ij``)
INDIVIDUALLY_RATIONAL = {"first_price", "second_price"}

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")),
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # shrinking a failure can take minutes: on in a debugging session (FUZZ_SHRINK=1), off in CI
    phases=[Phase.explicit, Phase.generate, *([Phase.shrink] if os.environ.get("FUZZ_SHRINK") else [])],
)

# --- value strategies: small sets make ties likely; huge and tiny numbers included ---------
TINY, HUGE = 1e-9, 1e9
sizes = st.sampled_from([0.0, TINY, 0.25, 0.5, 1.0, 1.0, 1.0, 2.0, 3.0, HUGE])
capacities = st.sampled_from([0.0, TINY, 1.0, 2.0, 4.0, 4.0, 8.0, 8.0, 16.0, HUGE])
budgets = st.sampled_from([TINY, 0.01, 1.0, 5.0, 5.0, 10.0, 50.0, HUGE])
costs = st.sampled_from([0.0, TINY, 0.1, 0.5, 1.0, 1.0, 2.0, HUGE])
unit = st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0])
coords = st.sampled_from([0.0, 0.0, 1.0, -5.0, 10.0, 10.0, 50.0, -50.0, HUGE])
latency = st.sampled_from([math.inf, math.inf, math.inf, 0.0, 1.0, 20.0, 1000.0])


@st.composite
def markets(draw: st.DrawFn) -> tuple[MarketData, int]:
    """A market (requests, resources) and the number of rounds to run."""
    rounds = draw(st.integers(1, 3))
    m = draw(st.integers(1, 5))
    n = draw(st.integers(0, 10))
    n_users = draw(st.integers(1, 4))
    res = pd.DataFrame({
        "resource_id": np.arange(m) * 7 + 3,
        "cpu": draw(st.lists(capacities, min_size=m, max_size=m)),
        "mem": draw(st.lists(capacities, min_size=m, max_size=m)),
        "unit_cost": draw(st.lists(costs, min_size=m, max_size=m)),
        "reliability": draw(st.lists(unit, min_size=m, max_size=m)),
        "availability": draw(st.lists(unit, min_size=m, max_size=m)),
        "energy_efficiency": draw(st.lists(st.sampled_from([TINY, 0.3, 0.5, 0.5, 1.0]), min_size=m, max_size=m)),
        "x": draw(st.lists(coords, min_size=m, max_size=m)),
        "y": draw(st.lists(coords, min_size=m, max_size=m)),
    })
    qos = draw(st.booleans())
    req = pd.DataFrame({
        "request_id": np.arange(n) + 1000,
        "user_id": draw(st.lists(st.integers(0, n_users - 1), min_size=n, max_size=n)),
        "round": draw(st.lists(st.integers(0, rounds), min_size=n, max_size=n)),  # some arrive too late
        "cpu": draw(st.lists(sizes, min_size=n, max_size=n)),
        "mem": draw(st.lists(sizes, min_size=n, max_size=n)),
        "budget": draw(st.lists(budgets, min_size=n, max_size=n)),
        "priority": draw(st.lists(st.sampled_from([0, 1, 1, 5, 10]), min_size=n, max_size=n)),
        "x": draw(st.lists(coords, min_size=n, max_size=n)),
        "y": draw(st.lists(coords, min_size=n, max_size=n)),
        "duration": draw(st.lists(st.integers(1, 3), min_size=n, max_size=n)),
        "min_reliability": draw(st.lists(unit, min_size=n, max_size=n)) if qos else 0.0,
        "min_availability": draw(st.lists(unit, min_size=n, max_size=n)) if qos else 0.0,
        "max_latency": draw(st.lists(latency, min_size=n, max_size=n)) if qos else math.inf,
    })
    if (res["cpu"] > 0).all() and (res["mem"] > 0).all():
        # what the tabular loader accepts must be exactly what it normalises
        res = validate(res, "resources", "fuzz-resources.csv")
        req = validate(req, "requests", "fuzz-requests.csv")
    pmax = max(10.0, float(req["priority"].max()) if n else 1.0)
    return MarketData(req, res, priority_max=pmax), rounds


@st.composite
def scenarios(draw: st.DrawFn, mechanism: str, rounds: int) -> dict:
    """Scenario keys around the market: capacity model, weights, clusters, pricing, users."""
    raw_w = draw(st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.25, 0.5, 1.0]), min_size=4, max_size=4))
    total = sum(raw_w)
    weights = [w / total for w in raw_w] if total > 1 else raw_w
    slots = draw(st.booleans())
    return {
        "name": "fuzz",
        "rounds": rounds,
        "seeds": [0],
        "mechanisms": [mechanism],
        "market": {"source": "synthetic"},  # replaced by the generated market
        "utility": {"weights": weights, "d_max": draw(st.sampled_from([1.0, 50.0, 300.0]))},
        "pricing": {"eta": draw(st.sampled_from([0.0, 0.05, 1.0])), "target": draw(st.sampled_from([0.5, 1.0]))},
        "clustering": {
            "clusters": draw(st.integers(0, 3)),
            "candidates": draw(st.integers(0, 3)),
            "spill_neighbors": draw(st.integers(-1, 2)),
        },
        "capacity": {"mode": "slots" if slots else "sum", "slots": draw(st.integers(1, 2)),
                     "min_cpu": draw(st.sampled_from([0.0, 0.0, 0.1]))},
        "settlement": {"patience": draw(st.integers(0, 2)), "fairness_memory": draw(st.sampled_from([0.0, 0.5, 1.0]))},
        "users": {"shading_share": draw(st.sampled_from([0.0, 0.5, 1.0])), "shading_factor": draw(st.sampled_from([0.5, 1.0]))},
        "oracle_params": {"time_limit": 10.0},
    }


def run(raw: dict, market: MarketData, mechanism: str, seed: int) -> MarketModel:
    model = MarketModel(parse(raw, "fuzz.toml", Path(".")), mechanism=mechanism, rng=seed, market=market)
    for _ in range(raw["rounds"]):
        model.step()
    return model


def check_run(model: MarketModel, raw: dict, market: MarketData, mechanism: str) -> None:
    rounds = pd.DataFrame(model.round_records)
    alloc = model.allocations_table()
    assert len(rounds) == raw["rounds"]
    # independent re-check of every allocation from the tables alone
    cap = raw["capacity"]
    check_run_tables(market.requests, market.resources, alloc, cap["mode"], cap["slots"])
    budget = market.requests.set_index("request_id")["budget"].reindex(alloc["request_id"]).to_numpy()
    assert (alloc["payment"] >= 0).all()
    assert (alloc["payment"].to_numpy() <= budget * (1 + TOL) + TOL).all()
    assert np.isfinite(alloc[["payment", "utility"]].to_numpy()).all()
    # metrics: finite, shares and indices in [0, 1]
    numeric = rounds.drop(columns=["mechanism"]).astype(float)
    assert np.isfinite(numeric.to_numpy()).all(), rounds.T
    for col in ["jain", "jain_winners", "jain_users", "satisfaction", "gini", "gini_requests", "resource_share"]:
        assert rounds[col].between(0, 1).all(), (col, rounds[col].tolist())
    if cap["mode"] == "sum":
        assert rounds["utilization"].between(0, 1 + 1e-9).all()
    assert (rounds["n_allocated"] <= rounds["n_requests"]).all()
    assert (rounds["welfare"] >= 0).all() and (rounds["revenue"] >= 0).all()
    np.testing.assert_allclose(rounds["efficiency"] * rounds["n_requests"], rounds["welfare"], rtol=1e-9, atol=1e-12)
    # served rows, revenue and welfare agree with the allocation rows
    per_round = alloc.groupby("round").agg(n=("payment", "size"), paid=("payment", "sum"), utility=("utility", "sum"))
    per_round = per_round.reindex(rounds["round"], fill_value=0)
    np.testing.assert_array_equal(per_round["n"].to_numpy(), rounds["n_allocated"].to_numpy())
    np.testing.assert_allclose(per_round["paid"].to_numpy(), rounds["revenue"].to_numpy(), rtol=1e-12, atol=0)
    np.testing.assert_allclose(per_round["utility"].to_numpy(), rounds["welfare"].to_numpy(), rtol=1e-9, atol=1e-12)
    # budget balance: resources were credited exactly what users paid (the model takes it as
    # a difference of cumulative credits, so round-off scales with the revenue so far)
    scale = np.maximum(np.cumsum(rounds["revenue"].to_numpy()), 1.0)
    assert (np.abs(rounds["budget_balance"].to_numpy()) <= 1e-12 * scale).all()
    assert math.isclose(model.resource_ledger.revenue.sum(), alloc["payment"].sum(), rel_tol=1e-9, abs_tol=1e-12)
    if mechanism in INDIVIDUALLY_RATIONAL:  # users bid at most their value here (shading <= 1)
        assert (rounds["ir_violations"] == 0).all()
        assert (rounds["user_surplus"] >= -1e-9 * np.maximum(rounds["revenue"], 1.0)).all()


@pytest.mark.parametrize("mechanism", MECHANISMS)
@settings(FUZZ, max_examples=max(1, int(os.environ.get("FUZZ_EXAMPLES", "40")) // 10))
@given(seed=st.integers(0, 2**32 - 1))
def test_every_mechanism_passes_the_conformance_check(mechanism: str, seed: int):
    """check_mechanism on fresh random markets per seed (the fixed degenerate ones each time)."""
    assert check_mechanism(create(mechanism), n_markets=6, seed=seed) > 0


@pytest.mark.parametrize("mechanism", MECHANISMS)
@FUZZ
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_random_markets_through_the_engine(mechanism: str, data: st.DataObject, seed: int):
    market, rounds = data.draw(markets())
    raw = data.draw(scenarios(mechanism, rounds))
    model = run(raw, market, mechanism, seed)
    check_run(model, raw, market, mechanism)
    served = len(model.allocations_table())
    event("served: none" if served == 0 else "served: some")
    event("no requests" if market.requests.empty else "requests")
    again = run(raw, market, mechanism, seed)  # same seed, same tables
    pd.testing.assert_frame_equal(pd.DataFrame(model.round_records), pd.DataFrame(again.round_records), check_exact=True)
    pd.testing.assert_frame_equal(
        model.allocations_table(),
        again.allocations_table(), check_exact=True,
    )


# --- mechanisms on raw sub-markets -------------------------------------------------------------


@st.composite
def submarkets(draw: st.DrawFn) -> SubMarket:
    """An arbitrary sub-market in the ELL layout (padding, repeats of a resource, zero capacity)."""
    n = draw(st.integers(0, 8))
    m = draw(st.integers(1, 4))
    k = draw(st.integers(1, 4))
    n_users = draw(st.integers(1, 3))
    vals = st.sampled_from([0.0, TINY, 0.2, 0.5, 0.5, 1.0])
    cand = np.array(draw(st.lists(st.lists(st.integers(-1, m - 1), min_size=k, max_size=k), min_size=n, max_size=n)),
                    dtype=np.int64).reshape(n, k)
    utility = np.array(draw(st.lists(vals, min_size=n * k, max_size=n * k))).reshape(n, k)
    budget = np.array(draw(st.lists(budgets, min_size=n, max_size=n)), dtype=float)
    reserve = np.array(draw(st.lists(costs, min_size=n * k, max_size=n * k))).reshape(n, k)
    reserve = np.minimum(reserve, budget[:, None])  # candidates only carry prices within budget
    posted = np.minimum(reserve * (0.8 + 0.4 * utility), budget[:, None])
    utility = np.where(cand >= 0, utility, 0.0)
    demand = np.array(draw(st.lists(sizes, min_size=2 * n, max_size=2 * n))).reshape(n, 2)
    capacity = np.array(draw(st.lists(capacities, min_size=2 * m, max_size=2 * m))).reshape(m, 2)
    user = np.array(draw(st.lists(st.integers(0, n_users - 1), min_size=n, max_size=n)), dtype=np.int64)
    return SubMarket(
        demand=demand, budget=budget,
        bid_scale=np.array(draw(st.lists(st.sampled_from([0.5, 1.0, 1.0, 1.5]), min_size=n, max_size=n)), dtype=float),
        priority=np.array(draw(st.lists(st.sampled_from([0.0, 0.1, 0.5, 1.0]), min_size=n, max_size=n)), dtype=float),
        user=user, candidates=cand, utility=utility, reserve=reserve, posted=posted, capacity=capacity,
        user_won=np.array(draw(st.lists(st.sampled_from([0.0, 0.5, 3.0]), min_size=n_users, max_size=n_users))),
        fairness_weight=draw(st.sampled_from([0.0, 0.2, 1.0])),
        resource_ids=np.arange(m) + 50, request_ids=np.arange(n),
    )


@pytest.mark.parametrize("mechanism", MECHANISMS)
@settings(FUZZ, max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")))
@given(sub=submarkets(), seed=st.integers(0, 2**32 - 1))
def test_random_submarkets_straight_into_the_mechanism(mechanism: str, sub: SubMarket, seed: int):
    mech = create(mechanism)
    frozen = {name: getattr(sub, name).copy() for name in ("capacity", "candidates", "budget", "utility")}
    alloc = mech.allocate(sub, np.random.default_rng(seed))
    again = mech.allocate(sub, np.random.default_rng(seed))
    np.testing.assert_array_equal(alloc.choice, again.choice)
    np.testing.assert_array_equal(alloc.payment, again.payment)
    for name, before in frozen.items():  # mechanisms never mutate their input
        np.testing.assert_array_equal(getattr(sub, name), before)
    check_allocation(sub, alloc, "fuzzed sub-market")
    n = sub.n_requests
    assert alloc.choice.shape == (n,) and alloc.payment.shape == (n,)
    served = np.flatnonzero(alloc.choice >= 0)
    event("served: none" if served.size == 0 else "served: some")
    assert (alloc.choice < sub.candidates.shape[1]).all()
    assert np.isfinite(alloc.payment).all()
    assert (alloc.payment[alloc.choice < 0] == 0).all()
    assert (alloc.payment >= 0).all()
    assert (alloc.payment <= sub.budget * (1 + TOL) + TOL).all()
    j = sub.candidates[served, alloc.choice[served]]
    assert (j >= 0).all(), "a request was given a padding column"
    used = np.zeros_like(sub.capacity)
    np.add.at(used, j, sub.demand[served])
    assert (used <= sub.capacity + 1e-9 * (1 + sub.capacity)).all()
    if mechanism in INDIVIDUALLY_RATIONAL:  # nobody pays more than it bid for what it got
        bid = sub.bids()[served, alloc.choice[served]]
        assert (alloc.payment[served] <= bid * (1 + 1e-9) + 1e-12).all()

