"""Sellers (agents/owner.py): reserve prices per owner, fixed or learnt by EXP3 from revenue."""

from __future__ import annotations

import numpy as np
import pytest

from agents.owner import FixedReserve, LearningReserve, create_owner_strategy, owner_index
from market.errors import MarketInputError


def _scenario(**owners):
    from scenarios.config import load

    sc = load("default")
    return sc.replace(oracle=False, rounds=6, owners=sc.owners.replace(**owners))


def test_owner_index_groups_resources_and_gives_lone_resources_their_own_owner():
    index, ids = owner_index(np.array([7, -1, 3, 7, -1], dtype=object))
    assert ids == [3, 7, None, None]
    assert index.tolist() == [1, 2, 0, 1, 3]
    index, ids = owner_index(np.array(["b", "a", "b"], dtype=object))
    assert ids == ["a", "b"] and index.tolist() == [1, 0, 1]


def test_fixed_reserve_zero_posts_the_rule_price_and_a_positive_one_floors_it():
    from market.core.model import MarketModel

    plain = MarketModel(_scenario(), "mohaf", 1)
    floored = MarketModel(_scenario(reserve=1.2), "mohaf", 1)
    for _ in range(6):
        assert plain.posted_prices() is plain.price  # no reserve: nothing changes
        plain.step()
        floored.step()
        rec = floored.record
        unit_cost = floored.resource_columns["unit_cost"]
        assert (rec.prices >= 1.2 * unit_cost - 1e-12).all()
        assert np.array_equal(rec.prices, np.maximum(rec.prices, 1.2 * unit_cost))
    assert (plain.rounds_table()["reserve_level"] == 0.0).all()
    assert floored.rounds_table()["reserve_level"].to_numpy() == pytest.approx(1.2)
    # a floor above the falling rule price keeps the mean price up
    assert floored.rounds_table()["mean_price"].iloc[-1] > plain.rounds_table()["mean_price"].iloc[-1]


def test_owners_are_agents_holding_their_resources():
    from market.core.model import MarketModel

    model = MarketModel(_scenario(reserve=0.5), "greedy", 2)
    owned = np.concatenate([o.resources for o in model.owner_agents])
    assert sorted(owned.tolist()) == list(range(model.n_resources))
    ids = model.market.resources["owner_id"].to_numpy()
    for owner in model.owner_agents:
        assert set(ids[owner.resources].tolist()) == {owner.owner_id}
        assert owner.reserve == 0.5
    model.step()
    assert sum(o.revenue for o in model.owner_agents) == pytest.approx(model.resource_ledger.revenue.sum())


def test_a_learning_owner_finds_the_revenue_maximising_reserve():
    # revenue r if the reserve multiplier r is at most 1.5 (the buyer's value), else nothing:
    # the best fixed arm is 1.5 (Myerson's reserve for a known value)
    # (eta 0.02 ~ sqrt(2 ln G / (T G)), the rate of Auer et al.'s bound for T = 600, G = 4)
    owner = LearningReserve(grid=(0.5, 1.0, 1.5, 2.0), eta=0.02, gamma=0.05, seed=4)
    state: dict[str, np.ndarray] = {}
    for t in range(600):
        r = owner.multipliers(state, t, 3)
        owner.update(state, t, np.where(r <= 1.5, r, 0.0))
    p = np.exp(state[owner.LOG_WEIGHTS])
    p /= p.sum(axis=1, keepdims=True)
    assert (p[:, 2] > 0.9).all()


def test_learning_owners_are_reproducible_and_what_if_rounds_leave_them_alone():
    from market.core.model import MarketModel

    sc = _scenario(strategy="learning")
    tables = []
    for _ in range(2):
        model = MarketModel(sc, "second_price", 3)
        for _ in range(6):
            before = {k: v.copy() for k, v in model.resource_ledger.owner_state.items()}
            model.preview("greedy")
            assert all(np.array_equal(before[k], model.resource_ledger.owner_state[k]) for k in before)
            model.step()
        tables.append(model.rounds_table())
    assert tables[0].equals(tables[1])
    level = tables[0]["reserve_level"]
    assert np.isfinite(level).all() and (level >= 0).all() and (level <= 3.0).all()
    assert level.nunique() > 1  # owners draw different multipliers round to round


@pytest.mark.parametrize(("name", "params", "key"), [
    ("auction", {}, "owners.strategy"),
    ("fixed", {"reserve": -1.0}, "owners.reserve"),
    ("learning", {"grid": (1.0, 0.5)}, "owners.grid"),
    ("learning", {"eta": 0.0}, "owners.eta"),
    ("learning", {"gamma": 1.0}, "owners.gamma"),
])
def test_bad_owner_parameters_are_one_line_naming_the_key(name, params, key):
    with pytest.raises(MarketInputError, match=key.replace(".", r"\.")) as err:
        create_owner_strategy(name, **params)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("table", "key"), [
    ('strategy = "auction"', "owners.strategy"), ("reserve = -0.5", "owners.reserve"),
    ("grid = [2.0, 1.0]", "owners.grid"), ("eta = 0", "owners.eta"), ("gamma = 1.5", "owners.gamma"),
])
def test_bad_owners_table_in_a_scenario_file_is_one_line(tmp_path, table, key):
    from scenarios.config import load

    path = tmp_path / "s.toml"
    path.write_text(f'name = "s"\nrounds = 2\nmechanisms = ["greedy"]\n[market]\nsource = "synthetic"\n[owners]\n{table}\n')
    with pytest.raises(MarketInputError, match=key.replace(".", r"\.")) as err:
        load(str(path))
    assert "\n" not in str(err.value) and "s.toml" in str(err.value)


def test_fixed_strategy_parameters():
    assert FixedReserve().multipliers({}, 0, 3).tolist() == [0.0, 0.0, 0.0]
    assert FixedReserve(1.5).multipliers({}, 9, 2).tolist() == [1.5, 1.5]
