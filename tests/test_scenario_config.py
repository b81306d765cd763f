"""Scenario tables as frozen dataclasses; ``Scenario.replace`` checks like the file does."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from market.core.model import MarketModel
from market.errors import MarketInputError
from scenarios.config import (
    Capacity,
    Clustering,
    OracleParams,
    Pricing,
    Scenario,
    Settlement,
    Users,
    Utility,
    parse,
)

RAW: dict[str, Any] = {
    "name": "t", "rounds": 2, "seeds": [1, 2], "mechanisms": ["greedy", "mohaf"],
    "market": {"source": "synthetic", "resources": 12, "users": 5, "requests": 60},
}


def _parse(**tables: dict[str, Any]) -> Scenario:
    return parse({**RAW, **tables}, "t.toml", Path("."))


def test_tables_are_frozen_dataclasses_with_the_files_defaults():
    sc = _parse()
    assert (sc.utility, sc.pricing, sc.clustering, sc.capacity, sc.settlement, sc.users, sc.oracle_params) == (
        Utility(), Pricing(), Clustering(), Capacity(), Settlement(), Users(), OracleParams())
    assert sc.utility.weights == (0.4, 0.3, 0.1, 0.2) and sc.weights == (0.4, 0.3, 0.1, 0.2)
    assert (sc.pricing.eta, sc.settlement.patience, sc.oracle_params.node_limit) == (0.01, 2, 1000)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sc.pricing.eta = 0.5  # type: ignore[misc]
    with pytest.raises(TypeError):
        sc.settlement["patience"]  # type: ignore[index]


def test_to_dict_is_the_manifests_plain_data():
    sc = _parse(utility={"weights": [1, 0, 0, 0]}, pricing={"eta": 0})
    d = sc.to_dict()
    assert list(d) == [f.name for f in dataclasses.fields(Scenario)]
    assert d["utility"] == {"weights": [1, 0, 0, 0], "d_max": sc.utility.d_max, "priority_max": 10.0}
    assert d["pricing"] == {"eta": 0, "target": 0.8, "schedule": "constant", "lower": 0.5, "upper": 2.0,
                            "rule": "utilization", "mode": "multiplicative", "clearing": False,
                            "clearing_time_limit": 2.0}
    assert d["settlement"] == {"patience": 2, "fairness_memory": 0.0}
    assert json.loads(json.dumps(d)) == d  # lists, dicts, numbers and strings only


def test_replace_equals_the_same_keys_in_the_file():
    sc = _parse()
    changed = sc.replace(
        rounds=3, oracle=True,
        utility=sc.utility.replace(weights=(0.5, 0.2, 0.1, 0.2)),
        pricing=sc.pricing.replace(eta=0.1, target=0.7),
        clustering=sc.clustering.replace(clusters=2),
    )
    # changing rounds keeps the market's horizon (the file's rounds, 2): in a file, key horizon
    expected = parse({**RAW, "rounds": 3, "horizon": 2, "oracle": True, "utility": {"weights": [0.5, 0.2, 0.1, 0.2]},
                      "pricing": {"eta": 0.1, "target": 0.7}, "clustering": {"clusters": 2}}, "t.toml", Path("."))
    assert changed == expected
    assert sc == _parse()  # the original is unchanged


@pytest.mark.parametrize(("table", "key", "value"), [
    ("pricing", "eta", -0.1), ("pricing", "target", 0), ("pricing", "target", float("nan")),
    ("pricing", "schedule", "linear"), ("pricing", "lower", 3.0), ("pricing", "nope", 1),
    ("utility", "weights", [0.6, 0.6, 0, 0]), ("utility", "weights", [0.5, 0.5]), ("utility", "d_max", 0),
    ("clustering", "clusters", -1), ("clustering", "candidates", 1.5), ("capacity", "mode", "max"),
    ("settlement", "patience", True), ("settlement", "fairness_memory", 2), ("users", "shading_share", -1),
    ("oracle_params", "node_limit", -1),
])
def test_a_bad_table_value_gives_the_files_message(table, key, value):
    with pytest.raises(MarketInputError) as in_file:
        _parse(**{table: {key: value}})
    sc = _parse()
    with pytest.raises(MarketInputError) as in_code:
        sc.replace(**{table: getattr(sc, table).replace(**{key: value})})
    assert str(in_file.value) == f"t.toml: {in_code.value}"
    assert f"{table}.{key}" in str(in_code.value)


@pytest.mark.parametrize(("changes", "message"), [
    ({"rounds": 0}, "key 'rounds' must be in [1, 1000000], got 0"),
    ({"rounds": 2**63 - 1}, "key 'rounds' must be in [1, 1000000], got 9223372036854775807"),
    ({"rounds": "2"}, "key 'rounds' must be int"),
    ({"horizon": 0}, "key 'horizon' must be in [1, 1000000], got 0"),
    ({"horizon": 2.5}, "key 'horizon' must be int"),
    ({"seeds": [1, 1]}, "key 'seeds': seed 1 is listed twice"),
    ({"mechanisms": ["vickrey"]}, "key 'mechanisms': unknown mechanism 'vickrey'"),
    ({"oracle": 1}, "key 'oracle' must be bool, got 1"),
    ({"name": " "}, "key 'name' must not be empty"),
    ({"pricing": {"eta": 0.1}}, "key 'pricing' must be Pricing"),
    ({"pricing": Pricing(eta=-1)}, "key 'pricing.eta' must be >= 0, got -1"),
    ({"eta": 0.1}, "unknown key 'eta'"),
    ({"mechanism_params": {"mohaf": {"nope": 1}}}, "key 'mechanism_params.mohaf'"),
])
def test_replace_checks_top_level_values(changes, message):
    with pytest.raises(MarketInputError, match=message.replace("(", r"\(").replace("[", r"\[")):
        _parse().replace(**changes)


def test_the_model_takes_its_settings_from_the_scenario_only():
    sc = _parse(oracle_params={"time_limit": 5.0})
    with pytest.raises(TypeError):
        MarketModel(sc, "greedy", rng=1, oracle=False)  # type: ignore[call-arg]
    changed = sc.replace(
        oracle=True, compare_flat=True,
        utility=sc.utility.replace(weights=(0.5, 0.2, 0.1, 0.2)),
        pricing=sc.pricing.replace(eta=0.1, target=0.7),
        clustering=sc.clustering.replace(clusters=2),
    )
    model = MarketModel(changed, "greedy", rng=1)
    assert model.round_params.weights == (0.5, 0.2, 0.1, 0.2)
    assert (model.price_rule.eta, model.price_rule.target) == (0.1, 0.7)
    assert model.hierarchy.n_clusters == 2
    assert model.oracle and model.compare_flat


def test_rounds_are_played_and_horizon_is_the_markets_span():
    sc = _parse()
    assert (sc.rounds, sc.horizon) == (2, 2)  # no horizon key: the market spans the rounds
    assert sc.to_dict()["horizon"] == 2  # in the manifest
    shorter = sc.replace(rounds=1)
    assert (shorter.rounds, shorter.horizon) == (1, 2)
    assert shorter.replace(rounds=7).horizon == 2  # kept through any number of changes
    assert sc.replace(rounds=5, horizon=None).horizon == 5  # asked for: the market spans the new rounds
    assert sc.replace(rounds=5, horizon=3).horizon == 3
    assert _parse(horizon=4).horizon == 4
    with pytest.raises(MarketInputError, match=r"t.toml: key 'horizon' must be in \[1, 1000000\], got 0"):
        _parse(horizon=0)
    with pytest.raises(MarketInputError, match=r"t.toml: key 'horizon' must be int, got True"):
        _parse(horizon=True)
