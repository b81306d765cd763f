"""Dynamic prices: the projected step, and convergence on a stationary market."""

from __future__ import annotations

import numpy as np
import pytest

from agents.resource import utilization
from market.core.model import MarketModel
from market.core.pricing import PriceRule
from scenarios.config import load
from tests.conftest import DATA


def test_step_moves_towards_target_and_stays_in_bounds():
    rule = PriceRule(eta=0.1, target=0.8, lower=0.5, upper=2.0)
    cost = np.array([1.0, 1.0, 1.0])
    price = rule.step(np.array([1.0, 1.0, 1.99]), np.array([1.0, 0.0, 1.0]), 0, cost)
    assert price.tolist() == pytest.approx([1.02, 0.92, 2.0])
    assert rule.step(np.array([0.5]), np.array([0.0]), 0, np.array([1.0]))[0] == 0.5  # floor


def test_sqrt_schedule_shrinks_steps():
    rule = PriceRule(eta=0.1, target=0.5, schedule="sqrt")
    cost = np.ones(1)
    assert rule.step(np.ones(1), np.ones(1), 3, cost)[0] - 1 == pytest.approx(0.1 / 2 * 0.5)


def test_utilization_is_the_tighter_dimension():
    assert utilization(np.array([[1.0, 3.0], [0.0, 0.0]]), np.array([[2.0, 4.0], [1.0, 0.0]])).tolist() == [0.75, 0.0]


def test_prices_converge_on_a_stationary_market():
    """Prices settle where utilisation meets the target: steps die out, levels plateau."""
    model = MarketModel(load(DATA / "stationary.toml"), mechanism="mohaf", rng=1)
    prices, loads = [model.price.copy()], []
    for _ in range(60):
        model.step()
        prices.append(model.price.copy())
        loads.append(model.resource_ledger.load.copy())
    p, load_ = np.array(prices), np.array(loads)
    step = np.abs(np.diff(p, axis=0)).mean(axis=1)
    mean_price = p.mean(axis=1)
    # prices really moved (the market starts under-used at unit cost) ...
    assert mean_price[-1] < 0.8 * mean_price[0]
    # ... then settle: late steps are a fraction of early ones, the level is flat
    assert step[-15:].mean() < 0.25 * step[:10].mean()
    assert abs(mean_price[-15:].mean() - mean_price[-30:-15].mean()) < 0.03 * mean_price[-15:].mean()
    # and the resources are used near the target utilisation
    assert abs(load_[-30:].mean() - 0.8) < 0.06


def test_free_resources_are_priced_by_congestion():
    """Every unit cost 0: the bounds have no scale, so prices are bounded below by 0 only."""
    rule = PriceRule(eta=0.1, target=0.8)
    free = np.zeros(3)
    assert rule.bounds(free) == (0.0, np.inf)
    assert rule.step(np.zeros(3), np.array([1.0, 0.8, 0.0]), 0, free).tolist() == pytest.approx([0.02, 0.0, 0.0])
    # one positive cost gives the scale for all (the floor is then 0: a free resource stays free if idle)
    assert rule.bounds(np.array([0.0, 0.4])) == (0.0, 0.8)


def test_a_market_of_free_resources_raises_its_prices_when_over_used():
    import pandas as pd

    from scenarios.config import parse
    from scenarios.tables import MarketData, validate

    m, n, rounds = 4, 48, 6
    res = pd.DataFrame({
        "resource_id": np.arange(m), "cpu": 2.0, "mem": 2.0, "unit_cost": 0.0, "reliability": 0.99,
        "availability": 0.99, "energy_efficiency": np.linspace(0.6, 0.9, m), "x": np.linspace(-50, 50, m), "y": 0.0,
    })
    req = pd.DataFrame({  # 8 requests of cpu 1 a round, each held 3 rounds: the machines stay full
        "request_id": np.arange(n), "user_id": np.arange(n) % 12, "round": np.arange(n) // 8, "cpu": 1.0, "mem": 1.0,
        "budget": 50.0, "priority": 5.0, "x": np.linspace(-60, 60, n), "y": 10.0, "duration": 3,
    })
    scenario = parse({"name": "free", "rounds": rounds, "mechanisms": ["greedy"], "market": {"source": "synthetic"},
                      "pricing": {"eta": 0.05, "target": 0.8}, "clustering": {"candidates": m}}, "free.toml", DATA)
    market = MarketData(validate(req, "requests", "requests"), validate(res, "resources", "resources"), priority_max=10.0)
    model = MarketModel(scenario, "greedy", rng=1, market=market)
    model.run_for(rounds)
    table = model.rounds_table()
    assert (table["utilization"] > 0.8).all()  # over the target every round
    assert table["mean_price"].iloc[0] == 0.0  # free to start with
    assert (np.diff(table["mean_price"].to_numpy()) > 0).all()  # and dearer every round
    assert (table["price_change"] > 0).all()
    assert table["price_change"].iloc[0] == pytest.approx(0.05 * (1.0 - 0.8))  # full machines: eta (1 - tau)


def test_equal_price_bounds_are_refused_in_one_line(tmp_path, capsys):
    from market.apps.cli import main

    path = tmp_path / "equal.toml"
    path.write_text('name = "equal"\nrounds = 2\nmechanisms = ["greedy"]\n[market]\nsource = "synthetic"\n'
                    "[pricing]\nlower = 1.0\nupper = 1.0\n")
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {path}: key 'pricing.lower' must be below 'pricing.upper' (1.0), got 1.0"
    assert not out.exists()


# --- tatonnement: prices on excess demand

def test_tatonnement_moves_with_excess_demand_and_stays_in_bounds():
    from market.core.pricing import Tatonnement

    cost = np.ones(3)
    cap = np.array([4.0, 4.0, 4.0])
    # z = (unserved - free) / cap: +0.5, -0.25, 0
    unserved, free = np.array([3.0, 0.0, 1.0]), np.array([1.0, 1.0, 1.0])
    for mode in ("multiplicative", "additive"):
        rule = Tatonnement(eta=0.2, mode=mode)
        new = rule.step(np.ones(3), unserved, free, cap, 0, cost)
        assert new[0] > 1.0 and new[1] < 1.0 and new[2] == 1.0
    mult = Tatonnement(eta=0.2).step(np.ones(3), unserved, free, cap, 0, cost)
    assert mult.tolist() == pytest.approx([1.1, 0.95, 1.0])
    add = Tatonnement(eta=0.2, mode="additive").step(np.ones(3), unserved, free, cap, 0, cost)
    assert add.tolist() == pytest.approx([1.1, 0.95, 1.0])
    # bounds: [0.5, 2] x unit cost; a huge excess is clipped at z = 1 (multiplicative) and at the cap
    rule = Tatonnement(eta=0.9)
    assert rule.step(np.array([1.9]), np.array([100.0]), np.zeros(1), np.ones(1), 0, np.ones(1))[0] == 2.0
    assert rule.step(np.array([0.55]), np.zeros(1), np.ones(1), np.ones(1), 0, np.ones(1))[0] == 0.5


def test_tatonnement_is_a_no_op_at_zero_excess_demand():
    from market.core.pricing import Tatonnement

    price = np.array([0.7, 1.3, 2.0])
    for mode in ("multiplicative", "additive"):
        rule = Tatonnement(eta=0.5, mode=mode, schedule="sqrt")
        same = rule.step(price, np.array([2.0, 0.0, 5.0]), np.array([2.0, 0.0, 5.0]), np.array([4.0, 0.0, 8.0]), 3,
                         np.ones(3))
        assert same.tolist() == price.tolist()


def test_tatonnement_prices_free_resources_from_zero():
    from market.core.pricing import Tatonnement

    rule = Tatonnement(eta=0.1)
    free_cost = np.zeros(2)
    new = rule.step(np.zeros(2), np.array([2.0, 0.0]), np.array([0.0, 1.0]), np.array([1.0, 1.0]), 0, free_cost)
    assert new.tolist() == pytest.approx([0.2, 0.0])  # additive from 0: eta * z = 0.1 * 2
    assert rule.step(new, np.array([2.0, 0.0]), np.zeros(2), np.ones(2), 1, free_cost)[0] == pytest.approx(0.22)


def test_price_rule_factory_and_unknown_name():
    from market.core.pricing import Tatonnement, price_rule
    from market.errors import MarketInputError

    assert price_rule("utilization", eta=0.02, target=0.7, mode="additive") == PriceRule(eta=0.02, target=0.7)
    assert price_rule("tatonnement", eta=0.3, target=0.7) == Tatonnement(eta=0.3)
    with pytest.raises(MarketInputError, match=r"pricing\.rule") as info:
        price_rule("walras")
    assert "\n" not in str(info.value)


def test_tatonnement_and_the_price_gap_through_the_model():
    """``[pricing] rule = "tatonnement"`` moves each price with its unmet demand; ``clearing``
    adds the round's ``price_gap`` (finite, >= 0); the default rule is unchanged."""
    sc = load("default").replace(oracle=False, rounds=4)
    base = MarketModel(sc, "greedy", 1)
    tat = MarketModel(sc.replace(pricing=sc.pricing.replace(rule="tatonnement", eta=0.2, clearing=True)), "greedy", 1)
    for model in (base, tat):
        for _ in range(4):
            model.step()
    assert "price_gap" not in base.rounds_table() and "price_gap" in tat.rounds_table()
    gap = tat.rounds_table()["price_gap"].to_numpy()
    assert np.isfinite(gap).all() and (gap >= 0).all()
    # round 0 clears on the same prices and book: same allocation; the price steps differ
    assert base.rounds_table()["welfare"].iloc[0] == tat.rounds_table()["welfare"].iloc[0]
    assert not np.allclose(base.price, tat.price)
    lo, _ = tat.price_rule.bounds(tat.resource_columns["unit_cost"])
    assert (tat.price >= lo - 1e-12).all()


def test_an_unknown_price_rule_is_one_line(tmp_path):
    from market.errors import MarketInputError

    path = tmp_path / "s.toml"
    path.write_text('name = "x"\nrounds = 2\nseeds = [1]\nmechanisms = ["greedy"]\n[market]\nsource = "synthetic"\n'
                    '[pricing]\nrule = "walras"\n')
    with pytest.raises(MarketInputError, match=r"pricing\.rule"):
        load(path)


@pytest.mark.parametrize("mechanism", load("stationary").mechanisms)
def test_tatonnement_finds_the_clearing_level_of_a_stationary_market(mechanism):
    """The same book every round, so the same clearing prices: tatonnement halves the gap at least.

    Measured (seed 1, 120 rounds, eta 0.05): last-10 over first-10 mean price_gap from 0.06
    (mohaf) to 0.38 (second_price).
    """
    sc = load("stationary")
    model = MarketModel(sc, mechanism, 1)
    model.run_for(sc.rounds)
    gap = model.rounds_table()["price_gap"].to_numpy()
    assert np.isfinite(gap).all() and (gap >= 0).all()
    assert gap[-10:].mean() <= 0.5 * gap[:10].mean()
