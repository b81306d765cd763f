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
