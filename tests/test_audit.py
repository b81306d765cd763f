"""Incentives: individual rationality and budget balance per round, and ``market audit``.




"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market.core.metrics import round_metrics
from market.core.model import MarketModel
from market.core.runner import run_one
from market.studies.audit import (
    AUDIT_COLUMNS,
    DEFAULT_FACTORS,
    RELATIVE_TOLERANCE,
    Auditor,
    true_base_utility,
)
from scenarios.config import load
from scenarios.sources import build_market

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "reports" / "audit"


@pytest.fixture(scope="module")
def scenario():
    return load("audit-unit")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(REPO / ".numba_cache"))}
    return subprocess.run([sys.executable, "-m", "market", *args], capture_output=True, text=True,
                          check=False, cwd=REPO, env=env, timeout=600)


# --- individual rationality and budget balance in the round metrics -----------------------------


def test_round_metrics_count_ir_violations_and_excess():
    served = np.array([True, True, False, True])
    payment = np.array([2.0, 5.0, 0.0, 1.0])
    value = np.array([3.0, 4.0, 0.0, 1.0])  # request 1 pays 1 more than its value; 3 pays exactly it
    m = round_metrics(
        utility=np.array([0.5, 0.4, 0.0, 0.1]), served=served, payment=payment, value=value,
        user=np.array([0, 1, 1, 2]), used=np.array([[1.0, 0.5]]), capacity=np.array([[2.0, 2.0]]),
        load=np.array([0.5]), energy=np.array([1.0]), price=np.array([1.0]),
    )
    assert m["ir_violations"] == 1
    assert m["ir_excess"] == pytest.approx(1.0)
    assert m["user_surplus"] == pytest.approx((3 - 2) + (4 - 5) + (1 - 1))
    assert m["revenue"] == pytest.approx(8.0)
    assert m["utilization"] == m["utilization_cpu"] == pytest.approx(0.5)
    assert m["utilization_mem"] == pytest.approx(0.25)


@pytest.mark.parametrize("mechanism", ["second_price", "first_price", "greedy", "mohaf"])
def test_ir_and_budget_balance_from_the_written_tables(scenario, mechanism):
    run = run_one(scenario, mechanism, 1)
    market = build_market(scenario, 1).requests.set_index("request_id")
    a = run.allocations.join(market[["budget"]], on="request_id")
    a["value"] = a["budget"] * a["utility"]  # delta = 0: the allocation's utility is b_ij
    a["over"] = a["payment"] > a["value"] * (1 + 1e-9) + 1e-9
    a["excess"] = np.where(a["over"], a["payment"] - a["value"], 0.0)
    a["surplus"] = a["value"] - a["payment"]
    cols = ["payment", "over", "excess", "surplus"]
    per_round = a.groupby("round")[cols].sum().reindex(run.rounds["round"], fill_value=0)
    rounds = run.rounds.set_index("round")
    np.testing.assert_array_equal(rounds["ir_violations"].to_numpy(), per_round["over"].to_numpy())
    np.testing.assert_allclose(rounds["ir_excess"], per_round["excess"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rounds["user_surplus"], per_round["surplus"], rtol=1e-12, atol=1e-12)
    # sum of payments == revenue == what the resources were credited
    np.testing.assert_allclose(rounds["revenue"], per_round["payment"], rtol=1e-12, atol=0)
    assert (rounds["budget_balance"].abs() <= 1e-12 * np.maximum(rounds["revenue"].cumsum(), 1)).all()
    if mechanism in ("second_price", "first_price"):
        assert (rounds["ir_violations"] == 0).all() and (rounds["user_surplus"] >= 0).all()


def test_resources_are_credited_exactly_what_users_pay(scenario):
    model = MarketModel(scenario, mechanism="greedy", rng=1)
    model.run_for(scenario.rounds)
    paid = model.allocations_table()["payment"].sum()
    credited = sum(agent.revenue for agent in model.resource_agents)
    spent = sum(agent.spend for agent in model.user_agents)
    assert paid > 0
    assert credited == pytest.approx(paid, rel=1e-12) and spent == pytest.approx(paid, rel=1e-12)
    # posted-cost greedy is not individually rational: the metric sees it on this market
    assert sum(r["ir_violations"] for r in model.round_records) > 0


# --- the audit ------------------------------------------------------------------------------------


def test_true_base_utility_moves_only_the_cost_term():
    alpha, rest = 0.5, np.array([0.3, 0.1])
    cost = np.array([0.4, 2.0])
    true_b, reported_b = np.array([1.0, 1.5]), np.array([0.5, 3.0])

    def b(budget):
        return alpha * np.clip(1 - cost / budget, 0, 1) + rest

    np.testing.assert_allclose(true_base_utility(b(reported_b), cost, reported_b, true_b, alpha), b(true_b))
    np.testing.assert_allclose(true_base_utility(b(true_b), cost, true_b, true_b, alpha), b(true_b))


def test_truthful_outcome_matches_the_run_tables(scenario):
    """The audit's true utility of each user is value - payment from ``market run``'s tables."""
    auditor = Auditor(scenario, "second_price", 1)
    run = run_one(scenario, "second_price", 1)
    req = auditor.market.requests.set_index("request_id")
    a = run.allocations.join(req[["budget", "user_id"]], on="request_id")
    expected = (a["budget"] * a["utility"] - a["payment"]).groupby(a["user_id"]).sum()
    for u in auditor.users:
        uid = auditor.user_ids[u]
        assert auditor.outcome(u).utility == pytest.approx(expected.get(uid, 0.0), rel=1e-12, abs=1e-12), uid
    assert len(auditor.users) == 36 and int(expected.gt(0).sum()) > 5


def test_second_price_has_no_profitable_misreport_and_matches_the_reference(tmp_path):
    out = tmp_path / "second_price"
    proc = cli("audit", "audit-unit", "--mechanism", "second_price", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out / "audit.csv")
    assert list(table.columns) == AUDIT_COLUMNS
    assert len(table) == 36 * 2 * len(DEFAULT_FACTORS)
    # neither a bid nor a budget misreport pays (the budget also moves the cost utility)
    assert not table["profitable"].any()
    assert table["relative_gain"].max() <= RELATIVE_TOLERANCE
    summary = pd.read_csv(out / "summary.csv").set_index("kind")
    assert (summary["profitable"] == 0).all() and (summary["max_relative_gain"] <= RELATIVE_TOLERANCE).all()
    bids = table[table["kind"] == "bid"]
    # underbidding can lose the slot, never gain: some misreports cost real utility
    assert bids["gain"].min() < -1e-3
    # the committed reference tables are what this command writes (up to round-off noise,
    # should the reference have been made on a machine with other SIMD paths)
    for name in ("audit.csv", "summary.csv"):
        pd.testing.assert_frame_equal(
            pd.read_csv(out / name), pd.read_csv(REFERENCE / "second_price" / name), rtol=1e-9, atol=1e-12,
        )
    assert (out / "audit.md").read_text().splitlines()[:8] == (REFERENCE / "second_price" / "audit.md").read_text().splitlines()[:8]


def test_first_price_shading_pays_and_overbidding_does_not(scenario):
    auditor = Auditor(scenario, "first_price", 1)
    table = auditor.audit(factors=(0.5, 0.8, 0.95, 1.1, 1.5), kinds=("bid",))
    shade = table[table["factor"] < 1]
    assert shade["profitable"].sum() >= 3
    assert shade["relative_gain"].max() > 0.1
    # winners pay their bid: a truthful winner gets nothing, so shading is the only way to gain
    assert (table["truthful_utility"].abs() < 1e-12).all()
    assert (table.loc[table["factor"] > 1, "gain"] <= 1e-12).all()


def test_a_budget_misreport_on_whole_number_budgets(tmp_path):
    """A table of whole-number budgets is read as integers; a scaled budget is not one (helper-52: a TypeError)."""
    import shutil

    (tmp_path / "data").mkdir()
    for name in ("requests", "resources"):
        shutil.copy(REPO / "scenarios" / "data" / f"audit-unit-{name}.csv", tmp_path / "data")
    req = pd.read_csv(tmp_path / "data" / "audit-unit-requests.csv")
    req["budget"] = np.ceil(req["budget"] * 10).astype(int)  # whole numbers, 1 to 10
    req.to_csv(tmp_path / "data" / "audit-unit-requests.csv", index=False)
    (tmp_path / "s.toml").write_text((REPO / "scenarios" / "audit-unit.toml").read_text())
    auditor = Auditor(load(str(tmp_path / "s.toml")), "second_price", 1)
    assert auditor.market.requests["budget"].dtype.kind == "i"
    table = auditor.audit(factors=(0.5, 1.5), kinds=("budget",), users=auditor.users[:6])
    assert len(table) == 12 and not table["profitable"].any()  # second price: no budget misreport pays either


def test_audit_errors_are_one_line_exit_2(tmp_path):
    out = tmp_path / "bad"
    proc = cli("audit", "audit-unit", "--mechanism", "vickrey", "--out", str(out))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "vickrey" in proc.stderr
    assert not out.exists()
